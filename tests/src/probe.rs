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
    for (op, addr) in ops {
        cmd.arg(op).arg(addr);
    }
    std::os::unix::process::CommandExt::uid(&mut cmd, PROBE_UID);
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn vw-probe");
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
