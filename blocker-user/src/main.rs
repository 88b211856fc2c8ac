//! The `vendorwall` binary: parse arguments, set up logging, dispatch, and map errors to the exit
//! status documented in `--help` (0 ok, 1 "no" answer, 2 error).

use std::process::ExitCode;

use blocker_user::{
    cli::{Cli, Command},
    cmd,
};
use clap::Parser as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = matches!(&cli.command, Command::Run(args) if args.verbose);
    init_logging(verbose);
    let result = match &cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Check(args) => cmd::check::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vendorwall: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Diagnostics go to stderr (stdout carries events). `RUST_LOG` overrides the level.
fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
