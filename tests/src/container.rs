//! A Debian 12 system booted with its own systemd as PID 1 (systemd-nspawn), for the tests that
//! run the installed unit as an operator would. The root file system is an overlay on the
//! rootfs `cargo xtask test` caches (`$VENDORWALL_TESTBED_ROOTFS`), so every container starts
//! from the same clean system and leaves nothing behind.
//!
//! The container runs in a child cgroup of the host's cgroup2 mount and in its own network
//! namespace (`--private-network`: loopback only). It sees its cgroup as `/sys/fs/cgroup`, so
//! the daemon attaching at "the root" inside it attaches to a child of the host's root, and
//! bpffs is mounted inside it, so pins live and die with the container.

use std::{
    ffi::CString,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{TempDir, eventually};

/// How long a boot may take to reach `running` (or `degraded`).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Container {
    nspawn: Child,
    /// Host path of the container's cgroup (nspawn's, holding `payload/` and `supervisor/`).
    cgroup: PathBuf,
    root: PathBuf,
    pid1: u32,
    dir: TempDir,
}

impl Container {
    /// Boots a container with the files under `$VENDORWALL_INSTALL_ROOT` (what `cargo xtask
    /// install --root` put there) copied into it, plus the test probe at
    /// `/usr/local/bin/vw-probe`, and bpffs mounted at `/sys/fs/bpf`.
    pub fn boot(tag: &str) -> Self {
        Self::boot_with(tag, true)
    }

    /// A clean Debian 12 with only the probe added (for installing the .deb in it).
    pub fn boot_clean(tag: &str) -> Self {
        Self::boot_with(tag, false)
    }

    fn boot_with(tag: &str, installed: bool) -> Self {
        let rootfs = std::env::var_os("VENDORWALL_TESTBED_ROOTFS").map(PathBuf::from);
        let rootfs = rootfs.unwrap_or_else(|| {
            panic!("VENDORWALL_TESTBED_ROOTFS is not set: run the suite with `cargo xtask test`")
        });
        let install = std::env::var_os("VENDORWALL_INSTALL_ROOT")
            .map(PathBuf::from)
            .expect("VENDORWALL_INSTALL_ROOT is set by `cargo xtask test`");
        let dir = TempDir::new(tag);
        let (upper, work, root) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("root"),
        );
        for d in [&upper, &work, &root] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        run_ok(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!(
                    "lowerdir={},upperdir={},workdir={}",
                    rootfs.display(),
                    upper.display(),
                    work.display()
                ))
                .arg(&root),
        );
        if installed {
            run_ok(
                Command::new("cp")
                    .arg("-a")
                    .arg(install.join("."))
                    .arg(&root),
            );
        }
        std::fs::create_dir_all(root.join("usr/local/bin")).expect("mkdir /usr/local/bin");
        std::fs::copy(crate::probe_bin(), root.join("usr/local/bin/vw-probe"))
            .expect("copy vw-probe into the container");

        let host_cgroup = blocker_user::kernel::cgroup::default_root().expect("cgroup v2");
        let cgroup = host_cgroup.join(format!("vendorwall-bed-{}", crate::unique(tag)));
        std::fs::create_dir(&cgroup).unwrap_or_else(|e| panic!("mkdir {}: {e}", cgroup.display()));
        let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes())
            .expect("cgroup path has no NUL");
        let log = std::fs::File::create(dir.path().join("console.log")).expect("console log");
        let mut cmd = Command::new("systemd-nspawn");
        cmd.env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            // No machined on the host: nspawn neither registers nor makes a scope of its own.
            .args([
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--private-network",
            ])
            .args([
                "--capability=CAP_BPF,CAP_PERFMON",
                "--system-call-filter=bpf",
            ])
            .arg("--console=read-only")
            .args(["-b", "-D"])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: between fork and exec only async-signal-safe calls (open, write, close) on
        // memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let nspawn = cmd.spawn().expect("start systemd-nspawn");
        let mut container = Self {
            nspawn,
            cgroup,
            root,
            pid1: 0,
            dir,
        };
        let init = container.cgroup.join("payload/init.scope/cgroup.procs");
        let found = eventually(BOOT_TIMEOUT, || {
            container.pid1 = std::fs::read_to_string(&init)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
                .unwrap_or(0);
            container.pid1 != 0
        });
        assert!(found, "no PID 1 in the container: {}", container.console());
        let booted = eventually(BOOT_TIMEOUT, || {
            let state = container.sh("systemctl is-system-running");
            let state = String::from_utf8_lossy(&state.stdout);
            matches!(state.trim(), "running" | "degraded")
        });
        assert!(
            booted,
            "the container did not boot: {}",
            container.console()
        );
        // nspawn gives the container a read-only /sys without bpffs; systemd does not mount it
        // in a container, so do what a host's boot does.
        container.ok("mount -o remount,rw /sys && mkdir -p /sys/fs/bpf \
             && mount -t bpf -o mode=0700 bpf /sys/fs/bpf && mount -o remount,ro /sys");
        container
    }

    /// Runs `script` with `sh -c` inside all of the container's namespaces, as root.
    pub fn sh(&self, script: &str) -> Output {
        self.command(script).output().expect("run nsenter")
    }

    /// A command running `script` inside the container (for callers that need pipes).
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid1.to_string())
            .args(["-a", "--", "sh", "-c", script]);
        cmd
    }

    /// Runs `script` and returns its stdout; panics with its output when it fails.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the container, `{script}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The container's root directory seen from the host (the overlay's merged view).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `text` to `path` (absolute inside the container).
    pub fn write(&self, path: &str, text: &str) {
        let host = self.root.join(path.trim_start_matches('/'));
        if let Some(dir) = host.parent() {
            std::fs::create_dir_all(dir).expect("mkdir in the container");
        }
        std::fs::write(&host, text).unwrap_or_else(|e| panic!("write {}: {e}", host.display()));
    }

    /// A `systemctl show` property of a unit.
    /// One TCP connect from inside the container's cgroup tree (a cgroup of its own under the
    /// container's root): whether it was refused (EPERM).
    pub fn refused(&self, addr: &str) -> bool {
        let out = self.ok(&format!(
            "mkdir -p /sys/fs/cgroup/vw-probe && echo $$ > /sys/fs/cgroup/vw-probe/cgroup.procs \
             && echo go | vw-probe tcp {addr}"
        ));
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("probe output {out:?}: {e}"));
        line["errno"].as_i64() == Some(i64::from(libc::EPERM))
    }

    pub fn property(&self, unit: &str, property: &str) -> String {
        self.ok(&format!("systemctl show -p {property} --value {unit}"))
            .trim()
            .to_owned()
    }

    /// What the container printed on its console so far (for failure messages).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for Container {
    /// Powers the container off (SIGTERM to nspawn halts it), kills whatever is left after a
    /// grace period, and removes the overlay and the cgroups, also after a failed test.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::write(self.cgroup.join("cgroup.kill"), "1");
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.root).status();
        remove_tree(&self.cgroup);
    }
}

/// Removes a cgroup directory and its children, deepest first, once they are empty.
fn remove_tree(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut dirs = Vec::new();
        collect_dirs(path, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in &dirs {
            let _ = std::fs::remove_dir(dir);
        }
        if !path.exists() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if path.exists() {
        eprintln!(
            "warning: could not remove the container cgroup {}",
            path.display()
        );
    }
}

fn collect_dirs(path: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
    out.push(path.to_owned());
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
