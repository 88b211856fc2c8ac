//! The cgroup the bench attaches to and moves its probes into, removed on drop.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;

/// A child cgroup for the bench, removed on drop; never the root.
/// The cgroup the bench attaches to, and an empty sibling for the kernel-hook-only row.
pub(super) struct BenchCgroup {
    pub(super) path: PathBuf,
    pub(super) sibling: PathBuf,
    /// A second attach point, for a configuration measured against the first in one run.
    pub(super) other: PathBuf,
}

impl BenchCgroup {
    pub(super) fn new() -> anyhow::Result<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let root = mounts
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
            })
            .context("no cgroup2 mount")?;
        let id = std::process::id();
        let path = root.join(format!("vendorwall-bench-{id}"));
        let sibling = root.join(format!("vendorwall-bench-{id}-empty"));
        let other = root.join(format!("vendorwall-bench-{id}-other"));
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        let cgroup = Self {
            path,
            sibling: sibling.clone(),
            other: other.clone(),
        };
        std::fs::create_dir(&sibling).with_context(|| format!("mkdir {}", sibling.display()))?;
        std::fs::create_dir(&other).with_context(|| format!("mkdir {}", other.display()))?;
        Ok(cgroup)
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        for dir in [&self.path, &self.sibling, &self.other] {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
