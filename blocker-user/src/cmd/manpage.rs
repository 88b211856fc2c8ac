//! `vendorwall manpage` and `vendorwall completions` (hidden): the manual pages and the shell
//! completions, generated from the same clap definitions as `--help` (clap_mangen,
//! clap_complete), so none of them can disagree. `cargo xtask install` and the .deb ship them.

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs, ManpageArgs};

/// Section 8: a daemon and administration commands, run as root.
const SECTION: &str = "8";

pub fn run(args: &ManpageArgs) -> anyhow::Result<ExitCode> {
    let cli = Cli::command();
    match &args.dir {
        None => clap_mangen::Man::new(cli)
            .section(SECTION)
            .render(&mut std::io::stdout().lock())
            .context("failed to write the manual page")?,
        Some(dir) => write_all(cli, dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// vendorwall.8, and vendorwall-COMMAND.8 for every subcommand an operator sees.
fn write_all(cli: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let write = |name: &str, command: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.{SECTION}"));
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        clap_mangen::Man::new(command)
            .section(SECTION)
            .render(&mut file)
            .with_context(|| format!("failed to write {}", path.display()))
    };
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vendorwall-{}", sub.get_name());
        // The page's NAME and SYNOPSIS read `vendorwall-check`, as git's pages do.
        write(&name, sub.clone().name(name.clone()).bin_name(name.clone()))?;
    }
    write("vendorwall", cli)
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cli = Cli::command();
    clap_complete::generate(args.shell, &mut cli, "vendorwall", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
