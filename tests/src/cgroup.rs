//! A child cgroup v2 directory that lives as long as its guard; never the host's root cgroup.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub struct ChildCgroup {
    path: PathBuf,
}

impl ChildCgroup {
    /// Creates `<cgroup2 root>/vendorwall-test-<unique>`.
    pub fn new(tag: &str) -> Self {
        let root = blocker_user::kernel::cgroup::default_root().expect("cgroup v2 is mounted");
        let path = root.join(format!("vendorwall-test-{}", crate::unique(tag)));
        assert_ne!(path, root, "tests must never use the root cgroup");
        std::fs::create_dir(&path).unwrap_or_else(|err| panic!("mkdir {}: {err}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` into this cgroup: one write(2) of the pid to `cgroup.procs`.
    pub fn add(&self, pid: u32) {
        let procs = self.path.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .unwrap_or_else(|err| panic!("move {pid} into {}: {err}", procs.display()));
    }

    /// The cgroup's id as the kernel reports it (its inode number).
    pub fn id(&self) -> u64 {
        blocker_user::kernel::cgroup::id(&self.path).expect("cgroup id")
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for ChildCgroup {
    /// Kills what is left inside, then removes the directory (also after a failed test).
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            for &pid in &pids {
                // SAFETY: kill(2) with a pid read from cgroup.procs; a stale pid just fails.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if (pids.is_empty() && std::fs::remove_dir(&self.path).is_ok())
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.path.exists() {
            eprintln!(
                "warning: could not remove test cgroup {}",
                self.path.display()
            );
        }
    }
}

impl ChildCgroup {
    /// A cgroup nested inside this one, removed with its own guard (drop it first).
    pub fn child(&self, name: &str) -> ChildCgroup {
        let path = self.path.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|err| panic!("mkdir {}: {err}", path.display()));
        ChildCgroup { path }
    }
}
