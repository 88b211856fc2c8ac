//! `cargo xtask run`: bootstrap, build the release binary, run the daemon with the shipped lists.

use anyhow::Context as _;

use crate::{bootstrap, shell};

#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments for `vendorwall run` (after `--`), e.g. `-- --cgroup PATH -v`.
    #[arg(last = true)]
    pub daemon_args: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    bootstrap::ensure()?;
    shell::run(shell::cargo().args(["build", "--release", "--package", "blocker-user"]))?;
    let root = shell::workspace_root();
    let binary = root.join("target/release/vendorwall");
    let mut cmd = std::process::Command::new(&binary);
    cmd.arg("run")
        .arg("--blocklists")
        .arg(root.join("blocklists"))
        .args(&args.daemon_args);
    // Replace xtask with the daemon so signals (Ctrl-C, SIGTERM) reach it directly.
    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
    Err(err).with_context(|| format!("failed to run {}", binary.display()))
}
