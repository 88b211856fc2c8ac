//! Runs `vw-probe` inside a test cgroup and collects the outcome of each connection attempt.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::cgroup::ChildCgroup;

/// The user the probe runs as, so events must report a uid other than the test's own.
pub const PROBE_UID: u32 = 65534;

/// Outcome of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub op: String,
    pub addr: String,
    pub ok: bool,
    pub errno: Option<i32>,
}

impl Attempt {
    pub fn refused(&self) -> bool {
        self.errno == Some(libc::EPERM)
    }
}

/// Result of one probe run.
pub struct ProbeRun {
    pub pid: u32,
    pub attempts: Vec<Attempt>,
}

/// Starts the probe as [`PROBE_UID`], moves it into `cgroup`, lets it make `ops`
/// (`(op, "addr:port")`), and returns what each attempt did.
pub fn run_in(probe: &Path, cgroup: &ChildCgroup, ops: &[(&str, String)]) -> ProbeRun {
    let mut cmd = Command::new(probe);
    std::os::unix::process::CommandExt::uid(&mut cmd, PROBE_UID);
    spawn(cmd, ops, cgroup)
}

/// Like [`run_in`], but inside network namespace `ns` (as root: entering a namespace needs it).
pub fn run_in_netns(
    probe: &Path,
    ns: &crate::netns::NetNs,
    cgroup: &ChildCgroup,
    ops: &[(&str, String)],
) -> ProbeRun {
    // `ip netns exec` enters the namespace and execs the probe: the pid stays the same.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name()]).arg(probe);
    spawn(cmd, ops, cgroup)
}

/// Like [`run_in`], but as root (raw sockets need CAP_NET_RAW).
pub fn run_as_root_in(probe: &Path, cgroup: &ChildCgroup, ops: &[(&str, String)]) -> ProbeRun {
    spawn(Command::new(probe), ops, cgroup)
}

/// Adds the ops to `cmd` (a probe command line), starts it and runs it in `cgroup`.
fn spawn(mut cmd: Command, ops: &[(&str, String)], cgroup: &ChildCgroup) -> ProbeRun {
    for (op, addr) in ops {
        cmd.arg(op).arg(addr);
    }
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {cmd:?}: {err}"));
    finish(child, cgroup)
}

fn finish(mut child: Child, cgroup: &ChildCgroup) -> ProbeRun {
    let pid = child.id();
    cgroup.add(pid);
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(b"go\n").expect("tell probe to go");
    drop(stdin);
    let stdout = child.stdout.take().expect("stdout piped");
    let attempts = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .map(|line| {
            let v: Value = serde_json::from_str(&line).expect("probe prints JSON");
            Attempt {
                op: v["op"].as_str().unwrap_or_default().to_owned(),
                addr: v["addr"].as_str().unwrap_or_default().to_owned(),
                ok: v["ok"].as_bool().unwrap_or(false),
                errno: v["errno"].as_i64().and_then(|e| i32::try_from(e).ok()),
            }
        })
        .collect();
    let status = child.wait().expect("wait for probe");
    assert!(status.success(), "vw-probe failed: {status}");
    ProbeRun { pid, attempts }
}

/// A `vw-probe listen ADDR` process started by `cmd` (e.g. inside a namespace); killed on drop.
pub struct Listener(Child);

impl Listener {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn vw-probe listen");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listener output");
        assert_eq!(line.trim(), "listening", "listener did not start");
        Self(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Counts from a hammer run.
#[derive(Debug, Clone, Copy, Default)]
pub struct HammerCounts {
    /// Connections that got through.
    pub ok: u64,
    /// Attempts refused with EPERM.
    pub refused: u64,
    /// Other failures (timeouts, resets).
    pub other: u64,
}

/// A probe in the test cgroup connecting to one address in a loop until stopped.
pub struct Hammer {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Hammer {
    /// Starts hammering `addr` from inside `cgroup`; returns once the loop runs. Stops by itself
    /// after `max` even if never told to.
    pub fn start(probe: &Path, cgroup: &ChildCgroup, addr: &str, max: std::time::Duration) -> Self {
        let mut cmd = Command::new(probe);
        cmd.args(["hammer", addr, &max.as_millis().to_string()]);
        Self::spawn(cmd, |pid| cgroup.add(pid))
    }

    /// Starts `cmd`, which runs `vw-probe hammer ADDR MILLIS` in the end (maybe through a
    /// wrapper that enters a container and its cgroup itself); `place` gets the spawned pid
    /// before the loop is told to go.
    pub fn spawn(mut cmd: Command, place: impl FnOnce(u32)) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn vw-probe hammer");
        place(child.id());
        let mut stdin = child.stdin.take().expect("stdin piped");
        stdin.write_all(b"go\n").expect("tell hammer to go");
        child.stdin = Some(stdin);
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("hammer started");
        assert_eq!(line.trim(), "hammering");
        Self { child, stdout }
    }

    /// The counts so far (the loop goes on).
    pub fn mark(&mut self) -> HammerCounts {
        if let Some(stdin) = self.child.stdin.as_mut() {
            stdin
                .write_all(b"mark\n")
                .expect("ask the hammer for its counts");
        }
        self.read_counts()
    }

    /// Waits until the loop has made `attempts` more attempts than `since` shows (at most
    /// 30 s); returns the counts then. A phase of a test thus provably overlaps the loop.
    pub fn wait_for(&mut self, since: HammerCounts, attempts: u64) -> HammerCounts {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = self.mark();
            if now.total() >= since.total() + attempts {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the hammer made too few attempts: {since:?} then {now:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the loop and returns its counts.
    pub fn stop(mut self) -> HammerCounts {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"stop\n");
        }
        let counts = self.read_counts();
        let _ = self.child.wait();
        counts
    }

    fn read_counts(&mut self) -> HammerCounts {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("hammer counts");
        let v: Value = serde_json::from_str(&line).expect("hammer prints JSON");
        HammerCounts {
            ok: v["ok"].as_u64().unwrap_or(u64::MAX),
            refused: v["refused"].as_u64().unwrap_or(0),
            other: v["other"].as_u64().unwrap_or(0),
        }
    }
}

impl HammerCounts {
    pub fn total(&self) -> u64 {
        self.ok
            .saturating_add(self.refused)
            .saturating_add(self.other)
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: HammerCounts) -> HammerCounts {
        HammerCounts {
            ok: self.ok.saturating_sub(earlier.ok),
            refused: self.refused.saturating_sub(earlier.refused),
            other: self.other.saturating_sub(earlier.other),
        }
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A probe holding one TCP connection open from inside a cgroup.
pub struct Holder {
    child: Child,
    /// Taken by [`Holder::ended`], which reads on a thread to bound the wait.
    stdout: Option<BufReader<std::process::ChildStdout>>,
    pub pid: u32,
}

impl Holder {
    /// Connects to `addr` from inside `cgroup` (as root, so no privilege matters) and returns
    /// once the connection is established.
    pub fn connect(probe: &Path, cgroup: &ChildCgroup, addr: &str) -> Self {
        let mut child = Command::new(probe)
            .args(["hold", addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn vw-probe hold");
        let pid = child.id();
        // A socket belongs to the cgroup its creator was in: move the probe in before it
        // connects, then let it go.
        cgroup.add(pid);
        child
            .stdin
            .take()
            .expect("stdin piped")
            .write_all(b"go\n")
            .expect("tell holder to go");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("hold output");
        assert_eq!(line.trim(), "connected", "the connection failed: {line}");
        Self {
            child,
            stdout: Some(stdout),
            pid,
        }
    }

    /// Waits (at most 10 s) until the connection ends; returns the errno it ended with (None on
    /// EOF). Panics when it is still open.
    pub fn ended(self) -> Option<i32> {
        let pid = self.pid;
        self.ended_within(std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("the connection of pid {pid} is still open"))
    }

    /// Like [`Self::ended`], but `None` when the connection is still open after `wait`.
    pub fn ended_within(mut self, wait: std::time::Duration) -> Option<Option<i32>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stdout = self.stdout.take().expect("ended() is called once");
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(wait).ok()?;
        let v: Value = serde_json::from_str(&line).expect("hold prints JSON");
        Some(v["errno"].as_i64().and_then(|e| i32::try_from(e).ok()))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
