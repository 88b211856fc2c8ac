//! Event delivery under a flood of refused connects.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::probe::{Probe, field};
use anyhow::{Context as _, bail};

/// Sustained event delivery under a flood of refused connects.
pub(super) struct Throughput {
    pub(super) seconds: f64,
    pub(super) attempts: u64,
    pub(super) lines: u64,
    pub(super) dropped_kernel: u64,
    pub(super) missed_sink: u64,
    /// The same flood into the history database (the daemon's default sink beside the file).
    pub(super) history_stored: u64,
    pub(super) history_missed: u64,
    /// The database's size afterwards (with its write-ahead log).
    pub(super) history_bytes: u64,
}

/// Floods refused connects from two probes for a few seconds with aggregation off, and counts
/// what reached the JSON sink (a file), what the kernel dropped, and what the sink missed.
pub(super) fn event_throughput(
    root: &Path,
    cgroup: &Path,
    out: &Path,
    probe: &Probe,
) -> anyhow::Result<Throughput> {
    let dir = out.join(format!("vw-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sink = dir.join("events.jsonl");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "cache_dir = {:?}\n[events]\nstdout = false\naggregate_window = \"0s\"\n\
             max_lines_per_second = 0\nmax_lines_per_second_per_uid = 0\nfile = {:?}\n",
            dir.join("cache").display().to_string(),
            sink.display().to_string()
        ),
    )?;
    let list = dir.join("flood.netset");
    std::fs::write(&list, "127.0.0.66\n")?;
    let bin = root.join("target/release/vendorwall");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--config".to_owned(),
            dir.join("config.toml").display().to_string(),
            "--pin-dir".to_owned(),
            format!("/sys/fs/bpf/vendorwall-bench-events-{}", std::process::id()),
            "--run-dir".to_owned(),
            dir.join("run").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let mut daemon = Command::new(&bin)
        .args(args(&[
            "run",
            "--cgroup",
            &cgroup.display().to_string(),
            "--list",
            &list.display().to_string(),
        ]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let unload = || {
        let _ = Command::new(&bin)
            .args(args(&["unload"]))
            .stdout(Stdio::null())
            .status();
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("run/vendorwall.pid").exists() {
        if Instant::now() > deadline || daemon.try_wait()?.is_some() {
            unload();
            bail!("vendorwall did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = 5.0;
    let mut hammers = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(&probe.bin)
            .args([
                "hammer",
                "127.0.0.66:9",
                &((seconds * 1000.0) as u64).to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        std::fs::write(probe.cgroup.join("cgroup.procs"), child.id().to_string())?;
        child.stdin.as_mut().context("stdin")?.write_all(b"go\n")?;
        hammers.push(child);
    }
    // Closing a hammer's stdin stops it, so let them run first, then stop them explicitly.
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let mut attempts = 0u64;
    for mut child in hammers {
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(b"stop\n");
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        attempts += text
            .lines()
            .filter_map(|l| field(l, "refused"))
            .map(|n| n as u64)
            .sum::<u64>();
    }
    // Let the daemon finish writing, then stop it so the file sink flushes.
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new(&bin)
        .args(args(&["status", "--json"]))
        .output()?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let dropped_kernel = status["counters"]["events_dropped"].as_u64().unwrap_or(0);
    // SAFETY: SIGTERM to the daemon we started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    daemon.wait()?;
    let report = Command::new(&bin)
        .args(args(&["report", "--since", "1h", "--format", "json"]))
        .stderr(Stdio::null())
        .output()?;
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap_or_default();
    let history_bytes = ["history.sqlite", "history.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join("cache").join(f)).ok())
        .map(|m| m.len())
        .sum();
    unload();
    let text = std::fs::read_to_string(&sink).unwrap_or_default();
    let lines = text
        .lines()
        .filter(|l| l.contains("\"type\":\"event\""))
        .count() as u64;
    let missed_sink = text
        .lines()
        .filter(|l| l.contains("\"type\":\"missed\""))
        .filter_map(|l| field(l, "count"))
        .map(|n| n as u64)
        .sum();
    Ok(Throughput {
        seconds,
        attempts,
        lines,
        dropped_kernel,
        missed_sink,
        history_stored: report["totals"]["blocked"].as_u64().unwrap_or(0),
        history_missed: report["missed_lines"].as_u64().unwrap_or(0),
        history_bytes,
    })
}
