//! One isolated vendorwall installation for a test: its own child cgroup, pin directory, run
//! directory, cache and config file. Dropping it runs `vendorwall unload` (which also stops a
//! daemon still running), so nothing stays attached or pinned after the test, even on failure.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{TempDir, cgroup::ChildCgroup, daemon::Daemon};

/// Every test config starts with this: aggregation and the line budget off, so each attempt is
/// one event line.
pub const BASE_CONFIG: &str = "[events]\naggregate_window = \"0s\"\nmax_lines_per_second = 0\nmax_lines_per_second_per_uid = 0\n";

pub struct Instance {
    pub cgroup: ChildCgroup,
    pub pin_dir: PathBuf,
    dir: TempDir,
}

impl Instance {
    pub fn new(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        dir.write(
            "config.toml",
            &format!("{}{BASE_CONFIG}", cache_line(dir.path())),
        );
        let pin_dir = PathBuf::from(format!(
            "/sys/fs/bpf/vendorwall-test-{}",
            crate::unique(tag)
        ));
        Self {
            cgroup: ChildCgroup::new(tag),
            pin_dir,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in the instance's directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(name, text)
    }

    /// Replaces the config file (read by the next start or SIGHUP). Top-level keys must come
    /// first: this text is placed before [`BASE_CONFIG`] unless it has its own `[events]`.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let text = if text.contains("[events]") {
            text.to_owned()
        } else {
            format!("{text}\n{BASE_CONFIG}")
        };
        // The instance's own state directory (history, cache), so CLI commands that read it
        // (`events`, `report`) find what this daemon wrote.
        let text = if text.contains("cache_dir") {
            text
        } else {
            format!("{}{text}", cache_line(self.dir.path()))
        };
        self.dir.write("config.toml", &text)
    }

    /// The instance's state directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The global options that point vendorwall at this instance.
    pub fn global_args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.dir.path().join("config.toml").display().to_string(),
            "--pin-dir".into(),
            self.pin_dir.display().to_string(),
            "--run-dir".into(),
            self.run_dir().display().to_string(),
        ]
    }

    /// `vendorwall run` on this instance's cgroup with `lists` (as --list) and `extra` options.
    pub fn start(&self, lists: &[PathBuf], extra: &[&str]) -> Daemon {
        let mut args = self.run_args(lists);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Daemon::start(&args)
    }

    /// The arguments of `vendorwall run` for this instance.
    pub fn run_args(&self, lists: &[PathBuf]) -> Vec<String> {
        let mut args = self.global_args();
        args.extend([
            "run".into(),
            "--cgroup".into(),
            self.cgroup.path().display().to_string(),
            "--cache-dir".into(),
            self.dir.path().join("cache").display().to_string(),
        ]);
        for list in lists {
            args.push("--list".into());
            args.push(list.display().to_string());
        }
        args
    }

    /// Runs another vendorwall command on this instance: (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(crate::vendorwall_bin())
            .args(self.global_args())
            .args(args)
            .output()
            .expect("run vendorwall");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `vendorwall status --json`, parsed, and its exit code.
    pub fn status(&self) -> (i32, serde_json::Value) {
        let (code, stdout, stderr) = self.cli(&["status", "--json"]);
        let value = serde_json::from_str(&stdout)
            .unwrap_or_else(|err| panic!("status --json is not JSON ({err}): {stdout}{stderr}"));
        (code, value)
    }
}

fn cache_line(dir: &Path) -> String {
    format!(
        "cache_dir = {:?}\n",
        dir.join("cache").display().to_string()
    )
}

impl Drop for Instance {
    fn drop(&mut self) {
        let (code, stdout, stderr) = self.cli(&["unload"]);
        if code != 0 {
            eprintln!(
                "warning: unload of {} failed: {stdout}{stderr}",
                self.pin_dir.display()
            );
        }
    }
}
