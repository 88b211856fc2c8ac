//! `cargo xtask`: the project's developer tasks. Each subcommand lives in its own module.

mod bench;
mod bootstrap;
mod deb;
mod generated;
mod install;
mod kernels;
mod run;
mod shell;
mod test;
mod testbed;
mod tools;
mod vm;

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
    /// Measure vendorwall against no filter, nftables and iptables+ipset (docs/BENCHMARKS.md).
    Bench(bench::Args),
    /// Install the binary, systemd unit, default config and shipped lists (under --root).
    Install(install::Args),
    /// Remove what `install` put in place (running `vendorwall unload` first when on /).
    Uninstall(install::UninstallArgs),
    /// Build a Debian package (target/debian/*.deb) with cargo-deb.
    Deb(deb::Args),
    /// Run a program on another kernel in QEMU (the kernel matrix's cargo runner).
    VmRun(vm::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bootstrap(args) => bootstrap::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Install(args) => install::install(&args),
        Command::Uninstall(args) => install::uninstall(&args),
        Command::Deb(args) => deb::run(&args),
        Command::VmRun(args) => vm::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
