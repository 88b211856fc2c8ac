//! `cargo xtask deb`: a Debian package of the same files `install` puts in place, built by
//! cargo-deb from the `[package.metadata.deb]` section of blocker-user/Cargo.toml.

use std::process::Command;

use anyhow::Context as _;

use crate::{bootstrap, shell};

/// The cargo-deb release this was written against.
const CARGO_DEB_VERSION: &str = "3";

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> anyhow::Result<()> {
    bootstrap::ensure()?;
    ensure_cargo_deb()?;
    shell::run(shell::cargo().args(["build", "--release", "--package", "blocker-user"]))?;
    shell::run(shell::cargo().args(["deb", "--no-build", "--package", "blocker-user"]))
        .context("cargo deb failed")?;
    Ok(())
}

fn ensure_cargo_deb() -> anyhow::Result<()> {
    if shell::output(Command::new("cargo").args(["deb", "--version"])).is_some() {
        return Ok(());
    }
    shell::run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--version",
        &format!("^{CARGO_DEB_VERSION}"),
        "--locked",
    ]))
    .context("failed to install cargo-deb")
}
