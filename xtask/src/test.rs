//! `cargo xtask test`: bootstrap, build the daemon, run unit and end-to-end tests.
//!
//! The end-to-end tests load real BPF programs and create cgroups and network namespaces, so they
//! need root; they never attach to the host's root cgroup.

use anyhow::bail;

use crate::{bootstrap, deb, install, shell, testbed};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the end-to-end tests load BPF programs and create cgroups: run as root");
    }
    bootstrap::ensure()?;
    // The e2e tests run the real binary; build it first so they never test a stale one.
    shell::run(shell::cargo().args(["build", "--package", "blocker-user", "--bins"]))?;
    // The packaging tests inspect a .deb and a staging install made from the same files.
    deb::run(&deb::Args {})?;
    let root = shell::workspace_root();
    let staging = root.join("target/xtask-install-root");
    let _ = std::fs::remove_dir_all(&staging);
    install::install(&install::Args {
        root: staging.clone(),
    })?;
    let deb = std::fs::read_dir(root.join("target/debian"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| anyhow::anyhow!("cargo deb produced no .deb in target/debian"))?;
    // The systemd tests boot the installed unit in a container on this cached rootfs.
    let rootfs = testbed::ensure()?;
    shell::run(
        shell::cargo()
            .args(["test", "--no-fail-fast", "--"])
            .args(&args.test_args)
            .env("VENDORWALL_DEB", deb)
            .env("VENDORWALL_INSTALL_ROOT", staging)
            .env("VENDORWALL_TESTBED_ROOTFS", rootfs),
    )
}
