//! The loopback peer and the probe process that times connects and sends.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::KINDS;
use super::firewalls::BENCH_UID;

/// The probe binary copied where [`BENCH_UID`] can execute it: a checkout in a 0700 directory
/// (root's home) is out of that user's reach. Removed when dropped.
pub(super) struct ProbeCopy {
    dir: std::path::PathBuf,
    pub(super) bin: std::path::PathBuf,
}

impl ProbeCopy {
    pub(super) fn new(built: &std::path::Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("vendorwall-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let bin = dir.join("vw-probe");
        std::fs::copy(built, &bin)
            .with_context(|| format!("failed to copy {} to {}", built.display(), bin.display()))?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { dir, bin })
    }
}

impl Drop for ProbeCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Accepts and drops connections so the listener's backlog never fills.
pub(super) struct Acceptor {
    pub(super) port: u16,
}

impl Acceptor {
    pub(super) fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        // std listens with a backlog of 128: a few milliseconds without the accepting threads
        // on a CPU overflow it, and one dropped handshake costs a 1 s SYN retransmit, 100 µs
        // per operation averaged over a run. Listening again raises it (capped by somaxconn).
        use std::os::fd::AsRawFd as _;
        // SAFETY: listen(2) on a socket we own.
        if unsafe { libc::listen(listener.as_raw_fd(), 65535) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // Two accepting threads, so the backlog never overflows into SYN retransmits.
        for _ in 0..2 {
            let listener = listener.try_clone()?;
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    drop(stream);
                }
            });
        }
        Ok(Self { port })
    }
}

/// Runs the probe in the bench cgroup as the bench uid.
pub(super) struct Probe {
    pub(super) bin: PathBuf,
    pub(super) cgroup: PathBuf,
    pub(super) targets: [String; 3],
    pub(super) runs: usize,
    pub(super) ops: u32,
}

impl Probe {
    /// Median ns per operation for each of [`KINDS`], run in the bench cgroup.
    pub(super) fn measure(&self) -> anyhow::Result<[f64; 3]> {
        self.settle()?;
        self.measure_in(&self.cgroup, self.runs)
    }

    /// Lets the kernel finish what the last set-up or tear-down left behind before measuring:
    /// freeing a million map entries or set elements runs in RCU callbacks for a while after
    /// the command returns, and a baseline measured meanwhile came out up to 3x slower.
    pub(super) fn settle(&self) -> anyhow::Result<()> {
        std::thread::sleep(Duration::from_millis(1500));
        // One discarded run warms caches and the listener's accept path.
        self.measure_in(&self.cgroup, 1).map(drop)
    }

    /// Median ns per operation for each of [`KINDS`] over `runs` runs in `cgroup`.
    pub(super) fn measure_in(&self, cgroup: &Path, runs: usize) -> anyhow::Result<[f64; 3]> {
        let mut medians = [0.0; 3];
        for (i, kind) in KINDS.iter().enumerate() {
            let mut samples = Vec::new();
            for _ in 0..runs.max(1) {
                samples.push(self.once(cgroup, kind, &self.targets[i])?);
            }
            samples.sort_by(f64::total_cmp);
            medians[i] = samples[samples.len() / 2];
        }
        Ok(medians)
    }

    pub(super) fn once(&self, cgroup: &Path, kind: &str, target: &str) -> anyhow::Result<f64> {
        // A UDP send is a few microseconds: five times the operations give its runs about the
        // length of a TCP run, so one scheduling hiccup weighs as little.
        let ops = if kind == "udp" {
            self.ops.saturating_mul(5)
        } else {
            self.ops
        };
        self.once_with(cgroup, kind, target, ops, None)
    }

    /// One run of `ops` operations of `kind`, on CPU `cpu` when given; ns per operation.
    pub(super) fn once_with(
        &self,
        cgroup: &Path,
        kind: &str,
        target: &str,
        ops: u32,
        cpu: Option<usize>,
    ) -> anyhow::Result<f64> {
        let mut child = self.spawn(
            ["bench", kind, target, &ops.to_string()],
            BENCH_UID,
            cgroup,
            cpu,
        )?;
        child.stdin.take().context("stdin")?.write_all(b"go\n")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        child.wait()?;
        ns_per_op(&line, &format!("{kind} to {target}"))
    }

    /// The probe with `args`, as `uid`, on CPU `cpu` when given, moved into `cgroup` before it
    /// is told to go (it waits for `go` on stdin).
    fn spawn(
        &self,
        args: [&str; 4],
        uid: u32,
        cgroup: &Path,
        cpu: Option<usize>,
    ) -> anyhow::Result<std::process::Child> {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .uid(uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(cpu) = cpu {
            // SAFETY: between fork and exec only sched_setaffinity, async-signal-safe, on a
            // set built on this stack.
            unsafe {
                command.pre_exec(move || {
                    super::names::pin(cpu);
                    Ok(())
                });
            }
        }
        let child = command.spawn()?;
        std::fs::write(cgroup.join("cgroup.procs"), child.id().to_string())?;
        Ok(child)
    }
}

/// A probe that stays in one cgroup and times a burst of operations each time it is told to
/// (`vw-probe turns`): two of them, in two cgroups, compare burst against neighbouring burst.
pub(super) struct Turns {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    what: String,
}

/// Operations per burst: a few tens of milliseconds each, so neighbouring bursts of A and B
/// see the same machine.
pub(super) fn burst_ops(kind: &str, ops: u32) -> u32 {
    if kind == "udp" { ops / 2 } else { ops / 10 }.max(1)
}

impl Probe {
    /// A [`Turns`] probe of `kind` to `target` in `cgroup`, on CPU `cpu`, as the bench uid.
    pub(super) fn turns(
        &self,
        cgroup: &Path,
        kind: &str,
        target: &str,
        cpu: usize,
    ) -> anyhow::Result<Turns> {
        self.turns_as(BENCH_UID, cgroup, kind, target, cpu)
    }

    /// [`Self::turns`] as `uid`.
    pub(super) fn turns_as(
        &self,
        uid: u32,
        cgroup: &Path,
        kind: &str,
        target: &str,
        cpu: usize,
    ) -> anyhow::Result<Turns> {
        let ops = burst_ops(kind, self.ops);
        let mut child = self.spawn(
            ["turns", kind, target, &ops.to_string()],
            uid,
            cgroup,
            Some(cpu),
        )?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        stdin.write_all(b"go\n")?;
        Ok(Turns {
            child,
            stdin,
            stdout,
            what: format!("{kind} to {target} from {} as uid {uid}", cgroup.display()),
        })
    }
}

impl Turns {
    /// One burst; ns per operation.
    pub(super) fn turn(&mut self) -> anyhow::Result<f64> {
        self.stdin.write_all(b"next\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        ns_per_op(&line, &self.what)
    }
}

impl Drop for Turns {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"stop\n");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// The ns per operation of a probe's result line; any failed operation is an error: the
/// bench traffic must never be refused.
fn ns_per_op(line: &str, what: &str) -> anyhow::Result<f64> {
    let ns = field(line, "ns_per_op").with_context(|| format!("{what}: probe output"))?;
    let errors = field(line, "errors").unwrap_or(0.0);
    if errors > 0.0 {
        bail!("{what}: {errors} operations failed: the bench traffic was refused");
    }
    Ok(ns)
}

/// A number field from a JSON line.
pub(super) fn field(line: &str, name: &str) -> Option<f64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?[name].as_f64()
}
