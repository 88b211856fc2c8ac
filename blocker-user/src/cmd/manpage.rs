//! `vendorwall manpage` (hidden): the vendorwall(8) page, generated from the same clap
//! definitions as `--help` (clap_mangen), so the two never disagree. `cargo xtask deb` ships it.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;

pub fn run() -> anyhow::Result<ExitCode> {
    // Section 8: a daemon and administration command, run as root.
    let man = clap_mangen::Man::new(Cli::command()).section("8");
    man.render(&mut std::io::stdout().lock())
        .context("failed to write the manual page")?;
    Ok(ExitCode::SUCCESS)
}
