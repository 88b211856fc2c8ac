//! Which package owns an executable, for events: an index of the package databases'
//! executable paths (under `bin/`, `sbin/`, `libexec/`, `/opt` and `/usr/games`: a few thousand
//! of a system's hundred thousand files), built on its own thread at start and again when the
//! database changes. Looking a path up never reads a file, so the event loop never waits for a
//! package database; until the first index is built, events carry no package.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

/// How often the database's modification time is compared.
const RECHECK: Duration = Duration::from_secs(30);

/// Whether `path` is one an executable is kept at.
fn executable_like(path: &str) -> bool {
    path.contains("/bin/")
        || path.contains("/sbin/")
        || path.contains("/libexec/")
        || path.starts_with("/opt/")
        || path.starts_with("/usr/games/")
}

/// The same path as merged /usr names it (`/bin/bash` is `/usr/bin/bash` there).
fn merged(path: &str) -> Option<String> {
    ["/bin/", "/sbin/", "/lib/", "/lib64/"]
        .iter()
        .any(|p| path.starts_with(p))
        .then(|| format!("/usr{path}"))
}

#[derive(Default)]
struct Index {
    owners: HashMap<String, String>,
    /// The databases' modification times when it was built.
    stamp: Vec<Option<SystemTime>>,
}

/// The shared index; clones share it.
#[derive(Clone, Default)]
pub struct Owners {
    index: Arc<RwLock<Option<Index>>>,
    root: PathBuf,
    building: Arc<std::sync::atomic::AtomicBool>,
    last_check: Arc<RwLock<Option<Instant>>>,
}

impl Owners {
    /// Starts building the index of the databases under `root` on a thread of its own.
    pub fn start(root: &Path) -> Self {
        let owners = Self {
            root: root.to_owned(),
            ..Self::default()
        };
        owners.rebuild();
        owners
    }

    /// The owner of `exe`, when the index is built and has it.
    pub fn lookup(&self, exe: &str) -> Option<String> {
        self.recheck();
        let index = self.index.read().ok()?;
        index.as_ref()?.owners.get(exe).cloned()
    }

    fn stamps(root: &Path) -> Vec<Option<SystemTime>> {
        ["var/lib/dpkg/info", "var/lib/rpm", "usr/lib/sysimage/rpm"]
            .iter()
            .map(|d| {
                std::fs::metadata(root.join(d))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .collect()
    }

    /// Rebuilds when a database changed, at most every [`RECHECK`].
    fn recheck(&self) {
        let due = self
            .last_check
            .read()
            .map(|t| t.is_none_or(|t| t.elapsed() >= RECHECK))
            .unwrap_or(false);
        if !due {
            return;
        }
        if let Ok(mut t) = self.last_check.write() {
            *t = Some(Instant::now());
        }
        let current = Self::stamps(&self.root);
        let changed = self
            .index
            .read()
            .map(|i| i.as_ref().is_some_and(|i| i.stamp != current))
            .unwrap_or(false);
        if changed {
            self.rebuild();
        }
    }

    fn rebuild(&self) {
        use std::sync::atomic::Ordering;
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("vw-packages".into())
            .spawn(move || {
                crate::daemon::limits::lower_priority();
                let started = Instant::now();
                let stamp = Self::stamps(&this.root);
                let owners = build(&this.root);
                tracing::info!(
                    "package index: {} executables from the package database ({} ms)",
                    owners.len(),
                    started.elapsed().as_millis()
                );
                if let Ok(mut index) = this.index.write() {
                    *index = Some(Index { owners, stamp });
                }
                // The file lists were read on this thread's own malloc arena: give its free
                // pages back, as the daemon does after each sync.
                // SAFETY: malloc_trim has no preconditions.
                unsafe { libc::malloc_trim(0) };
                this.building.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.building.store(false, Ordering::Release);
        }
    }
}

/// Every executable-like path of every installed package (dpkg, else rpm), under both its
/// listed and its merged-/usr name.
fn build(root: &Path) -> HashMap<String, String> {
    let mut owners = HashMap::new();
    let mut add = |path: &str, package: &str| {
        if executable_like(path) {
            if let Some(alias) = merged(path) {
                owners.entry(alias).or_insert_with(|| package.to_owned());
            }
            owners
                .entry(path.to_owned())
                .or_insert_with(|| package.to_owned());
        }
    };
    for (path, package) in super::dpkg::files(root, executable_like) {
        add(&path, &package);
    }
    for (path, package) in super::rpm::files(root, executable_like) {
        add(&path, &package);
    }
    owners.shrink_to_fit();
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_executables_under_both_names() {
        let root = std::env::temp_dir().join(format!("vw-owners-{}", std::process::id()));
        let info = root.join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).expect("dirs");
        std::fs::write(
            info.join("bash.list"),
            "/.\n/bin/bash\n/usr/share/doc/bash\n",
        )
        .expect("list");
        std::fs::write(
            info.join("kesl:amd64.list"),
            "/opt/kaspersky/kesl/bin/kesl\n",
        )
        .expect("list");
        let owners = build(&root);
        assert_eq!(
            owners.get("/usr/bin/bash").map(String::as_str),
            Some("bash")
        );
        assert_eq!(owners.get("/bin/bash").map(String::as_str), Some("bash"));
        assert_eq!(
            owners
                .get("/opt/kaspersky/kesl/bin/kesl")
                .map(String::as_str),
            Some("kesl")
        );
        assert!(
            !owners.contains_key("/usr/share/doc/bash"),
            "not an executable's place"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
