//! Test harness for vendorwall's end-to-end tests: guards that create and always remove a child
//! cgroup, a network namespace with a veth pair, and a running daemon; and a probe process the
//! tests move into the cgroup to make real connection attempts.
//!
//! Helpers panic with a message instead of returning errors, so a failure keeps its location.
//! These tests need root, cgroup v2 and BPF; `cargo xtask test` runs them.

pub mod bpf;
pub mod cgroup;
pub mod container;
pub mod daemon;
pub mod dns;
pub mod http;
pub mod instance;
pub mod netns;
pub mod probe;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// A name unique to this test process and call, for cgroups, namespaces and files.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh scratch directory for one test; removed by the caller's [`TempDir`] guard.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("vendorwall-test-{}", unique(tag)));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `vendorwall` binary under test: `$VENDORWALL_BIN`, or the one cargo built next to this
/// test binary (target/<profile>/vendorwall).
pub fn vendorwall_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("VENDORWALL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("vendorwall");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p blocker-user`; `cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// The repository root (for the shipped blocklists).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The `vw-probe` helper binary, as a path every user can execute.
///
/// Tests run the probe as [`probe::PROBE_UID`], who cannot reach a checkout in a 0700
/// directory such as root's home; so the binary cargo built is copied, once per build, into a
/// directory under the temporary directory that every user may traverse.
pub fn probe_bin() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| world_executable(&vendorwall_bin().with_file_name("vw-probe")))
        .clone()
}

/// The `vendorwall` binary under test, as a path every user can execute (see [`probe_bin`]).
pub fn vendorwall_bin_for_users() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| world_executable(&vendorwall_bin()))
        .clone()
}

/// A copy of `built` in a directory every user may traverse, made once per build.
fn world_executable(built: &Path) -> PathBuf {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let name = built.file_name().expect("a binary has a file name");
    let meta = std::fs::metadata(built)
        .unwrap_or_else(|err| panic!("{}: {err} (build it first)", built.display()));
    // Named by the build's size and time: a rebuilt binary gets a new copy, and test
    // processes running at once share one without racing (rename is atomic).
    let dir = std::env::temp_dir().join(format!(
        "vendorwall-{}-{}-{}.{}",
        name.to_string_lossy(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ));
    let copy = dir.join(name);
    if !copy.exists() {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("mkdir {}: {err}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod copy dir");
        let partial = dir.join(format!("{}.{}", name.to_string_lossy(), std::process::id()));
        // Copied by another process: a file this process held open for writing would be
        // inherited by children other test threads fork meanwhile, and their exec of the copy
        // would fail with ETXTBSY ("Text file busy").
        let copied = std::process::Command::new("cp")
            .arg(built)
            .arg(&partial)
            .status()
            .unwrap_or_else(|err| panic!("run cp: {err}"));
        assert!(copied.success(), "cp {} failed", built.display());
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .expect("chmod copy");
        std::fs::rename(&partial, &copy).expect("move copy into place");
    }
    copy
}

/// Writes `<name>.netset` holding `lines` (after a comment line) into `dir`.
pub fn list_file(dir: &TempDir, name: &str, lines: &[&str]) -> PathBuf {
    dir.write(
        &format!("{name}.netset"),
        &format!("# test list\n{}\n", lines.join("\n")),
    )
}

/// A TCP listener on `addr` (port 0 for any) and its port.
pub fn listen(addr: &str) -> (std::net::TcpListener, u16) {
    let listener =
        std::net::TcpListener::bind(addr).unwrap_or_else(|err| panic!("listen on {addr}: {err}"));
    let port = listener.local_addr().expect("local addr").port();
    (listener, port)
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The kernel link ids `vendorwall status --json` reports.
pub fn link_ids(status: &serde_json::Value) -> Vec<u32> {
    status["links"]
        .as_array()
        .expect("links array")
        .iter()
        .filter_map(|l| l["kernel"]["link_id"].as_u64())
        .map(|id| u32::try_from(id).expect("link id"))
        .collect()
}
