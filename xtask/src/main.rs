//! `cargo xtask`: the project's developer tasks. Each subcommand lives in its own module.

mod bootstrap;
mod run;
mod shell;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "vendorwall developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the eBPF build needs: nightly with rust-src, and bpf-linker. Idempotent.
    Bootstrap(bootstrap::Args),
    /// Bootstrap, build in release mode, and run the daemon in the foreground with the shipped
    /// lists (attached to the host's cgroup v2 root unless `-- --cgroup PATH` says otherwise).
    Run(run::Args),
    /// Bootstrap, build, and run every test, including the end-to-end tests on the real kernel.
    Test(test::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bootstrap(args) => bootstrap::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
