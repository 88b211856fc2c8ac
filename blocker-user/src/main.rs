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
    if !matches!(cli.command, Command::Run(_)) {
        // Like other Unix tools, end quietly when the reader goes away (`vendorwall status |
        // head`). The daemon keeps SIGPIPE ignored: its sinks handle a closed pipe themselves.
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let verbose = matches!(&cli.command, Command::Run(args) if args.verbose);
    init_logging(verbose);
    let global = &cli.global;
    let result = match &cli.command {
        Command::Run(args) => cmd::run::run(global, args),
        Command::Check(args) => cmd::check::run(global, args),
        Command::Status(args) => cmd::status::run(global, args),
        Command::Lists(args) => cmd::lists::run(global, args),
        Command::Events(args) => cmd::events::run(global, args),
        Command::Exemptions(args) => cmd::exemptions::run(global, args),
        Command::Scan(args) => cmd::scan::run(global, args),
        Command::Report(args) => cmd::report::run(global, args),
        Command::Reload(args) => cmd::reload::run(global, args),
        Command::Unload => cmd::unload::run(global),
        Command::Manpage(args) => cmd::manpage::run(args),
        Command::Completions(args) => cmd::manpage::completions(args),
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
