//! `cargo xtask test`: bootstrap, build the daemon, run unit and end-to-end tests.
//!
//! The end-to-end tests load real BPF programs and create cgroups and network namespaces, so they
//! need root; they never attach to the host's root cgroup.

use anyhow::bail;

use crate::{bootstrap, shell};

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
    shell::run(
        shell::cargo()
            .args(["test", "--no-fail-fast", "--"])
            .args(&args.test_args),
    )
}
