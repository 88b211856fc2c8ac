//! Driving the real daemon for a configuration: start, wait until enforcing, read its numbers,
//! stop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::prefixes;
use anyhow::{Context as _, bail};

/// vendorwall running on the bench cgroup with its own pin and run directories.
pub(super) struct Vendorwall {
    pub(super) bin: PathBuf,
    pub(super) child: Child,
    pub(super) dir: PathBuf,
}

/// One reload: (lists, aggregate, sync) ms as the daemon timed them, and the wall time of
/// `vendorwall reload`, ms.
pub(super) type Reload = ((f64, f64, f64), f64);

pub(super) struct DaemonNumbers {
    pub(super) lists_ms: f64,
    pub(super) aggregate_ms: f64,
    pub(super) sync_ms: f64,
    pub(super) kernel_prefixes: f64,
    /// Map writes of the last sync (inserted, updated and deleted).
    pub(super) writes: f64,
}

impl Vendorwall {
    pub(super) fn start(
        root: &Path,
        cgroup: &Path,
        list: &Path,
        out: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_list(root, cgroup, list, out, "main", "--max-v4")
    }

    /// The daemon with an IPv6 list as its only list, room for a million IPv6 prefixes.
    pub(super) fn start_v6(
        root: &Path,
        cgroup: &Path,
        list: &Path,
        out: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_list(root, cgroup, list, out, "v6", "--max-v6")
    }

    /// The daemon with `list` as its only list and 2M entries of room in the family `max`
    /// (`--max-v4` or `--max-v6`) sizes.
    fn start_list(
        root: &Path,
        cgroup: &Path,
        list: &Path,
        out: &Path,
        tag: &str,
        max: &str,
    ) -> anyhow::Result<Self> {
        let list = list.display().to_string();
        Self::spawn(
            root,
            cgroup,
            out,
            tag,
            "[events]\nstdout = false\n",
            &["--list", &list, max, "2097152"],
        )
    }

    /// A daemon with its own config text (its lists, names and settings), tagged `tag` so
    /// several can run at once on different cgroups.
    pub(super) fn start_configured(
        root: &Path,
        cgroup: &Path,
        out: &Path,
        tag: &str,
        config: &str,
    ) -> anyhow::Result<Self> {
        Self::spawn(root, cgroup, out, tag, config, &[])
    }

    fn spawn(
        root: &Path,
        cgroup: &Path,
        out: &Path,
        tag: &str,
        config: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = out.join(format!("vw-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // Its own state directory: the history and the list cache stay out of this machine's.
        let config = format!(
            "cache_dir = {:?}\n{config}",
            dir.join("cache").display().to_string()
        );
        std::fs::write(dir.join("config.toml"), config)?;
        let bin = root.join("target/release/vendorwall");
        let mut vw = Self {
            child: Command::new(&bin)
                .args(global(&dir))
                .arg("run")
                .arg("--cgroup")
                .arg(cgroup)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
            bin,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        while !vw.dir.join("run/vendorwall.pid").exists() {
            if Instant::now() > deadline || vw.child.try_wait()?.is_some() {
                bail!("vendorwall did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(vw)
    }

    pub(super) fn status(&self) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.bin)
            .args(global(&self.dir))
            .args(["status", "--json"])
            .output()?;
        serde_json::from_slice(&out.stdout).context("vendorwall status --json")
    }

    pub(super) fn state(&self) -> anyhow::Result<DaemonNumbers> {
        let status = self.status()?;
        let timings = &status["daemon"]["timings"];
        let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        Ok(DaemonNumbers {
            lists_ms: number(&timings["lists_ms"]),
            aggregate_ms: number(&timings["aggregate_ms"]),
            sync_ms: number(&timings["sync_ms"]),
            kernel_prefixes: number(&status["daemon"]["kernel_prefixes"]),
            writes: ["inserted", "updated", "deleted"]
                .iter()
                .map(|k| number(&status["daemon"]["last_sync_stats"][k]))
                .sum(),
        })
    }

    /// The address hooks' program ids (the connect/sendmsg programs the rows time).
    pub(super) fn program_ids(&self) -> anyhow::Result<Vec<u32>> {
        self.programs(|name| name.starts_with("vw_connect") || name.starts_with("vw_sendmsg"))
    }

    /// Ids of the attached programs whose name passes `wanted`.
    pub(super) fn programs(&self, wanted: impl Fn(&str) -> bool) -> anyhow::Result<Vec<u32>> {
        let status = self.status()?;
        Ok(status["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["program"].as_str().is_some_and(&wanted))
            .filter_map(|l| l["kernel"]["program_id"].as_u64())
            .filter_map(|id| u32::try_from(id).ok())
            .collect())
    }

    /// The kernel memory of each map (`memlock`), MiB, largest first.
    pub(super) fn map_memory(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let mut maps: Vec<(String, f64)> = self.status()?["map_memory"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| {
                Some((
                    pair[0].as_str()?.to_owned(),
                    pair[1].as_f64()? / (1024.0 * 1024.0),
                ))
            })
            .collect();
        maps.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(maps)
    }

    /// Daemon RSS and kernel map memory, in MiB.
    pub(super) fn memory(&self) -> anyhow::Result<(f64, f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let memlock: f64 = self.status()?["map_memory"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| pair[1].as_f64())
            .sum();
        Ok((
            kb("VmRSS:") / 1024.0,
            kb("VmHWM:") / 1024.0,
            memlock / (1024.0 * 1024.0),
        ))
    }

    /// Replaces another 1% of the list and reloads, `rounds` times; returns each reload's
    /// (lists, aggregate, sync) ms as the daemon timed them and the wall time of `vendorwall
    /// reload` (signal to reply). Each round changes lines the earlier ones left alone, so
    /// every reload is a change of 1% against the set in force.
    pub(super) fn one_percent_changes(
        &self,
        list: &Path,
        prefixes: &[String],
        rounds: usize,
    ) -> anyhow::Result<Vec<Reload>> {
        let step = 100;
        let mut changed = prefixes.to_vec();
        let mut samples = Vec::new();
        // A round the daemon's own file watch picked up first (it looks every second) leaves
        // `reload` nothing to do: it is not a sample, and another round is made.
        for round in 0..rounds * 2 {
            if samples.len() == rounds {
                break;
            }
            let replacements =
                prefixes::generate(prefixes.len() / step, 0x00c4_a96e + round as u64);
            for (i, replacement) in replacements.into_iter().enumerate() {
                if let Some(slot) = changed.get_mut(i * step + round % step) {
                    *slot = replacement;
                }
            }
            // Written beside and renamed over, as list updaters do: the daemon's file watch
            // never sees half a file.
            let staged = list.with_extension("staged");
            prefixes::write(&staged, &changed)?;
            std::fs::rename(&staged, list)?;
            let start = Instant::now();
            let out = Command::new(&self.bin)
                .args(global(&self.dir))
                .arg("reload")
                .output()?;
            let total = start.elapsed().as_secs_f64() * 1000.0;
            if !out.status.success() {
                bail!("reload failed: {}", String::from_utf8_lossy(&out.stdout));
            }
            let state = self.state()?;
            if state.writes > 0.0 {
                samples.push(((state.lists_ms, state.aggregate_ms, state.sync_ms), total));
            }
        }
        if samples.is_empty() {
            bail!("no reload applied a change (the file watch took every one)");
        }
        Ok(samples)
    }
}

pub(super) fn global(dir: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        dir.join("config.toml").display().to_string(),
        "--pin-dir".into(),
        format!(
            "/sys/fs/bpf/vendorwall-bench-{}",
            dir.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
        "--run-dir".into(),
        dir.join("run").display().to_string(),
    ]
}

impl Drop for Vendorwall {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin)
            .args(global(&self.dir))
            .arg("unload")
            .stdout(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
