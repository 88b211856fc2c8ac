//! Command-line interface: the argument types of every subcommand, with the help text operators
//! read (`vendorwall --help`, `vendorwall run --help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Default place of the shipped lists once installed (`cargo xtask install`).
pub const DEFAULT_BLOCKLISTS_DIR: &str = "/usr/local/share/vendorwall/blocklists";

#[derive(Debug, Parser)]
#[command(
    name = "vendorwall",
    version,
    about = "Refuse outbound connections to prohibited vendors' IP ranges, in the kernel",
    long_about = "vendorwall refuses, at connect() and sendmsg(), every outbound connection from \
processes in a cgroup v2 subtree to the IP ranges of prohibited vendors (for example \
Kaspersky, or the vendors on the US FCC Covered List). eBPF programs attached to the cgroup \
return EPERM to the caller; the daemon keeps the kernel's prefix maps in sync with the block \
lists and writes one JSON line per refused connection to standard output.",
    after_long_help = "EXIT STATUS:\n  0  success (check: the address is blocked)\n  \
1  check: the address is not blocked\n  2  error (bad list, missing cgroup, kernel refused \
the programs, ...)\n\nEXAMPLES:\n  vendorwall run\n  \
vendorwall run --cgroup /sys/fs/cgroup/system.slice --list /etc/vendorwall/extra.netset\n  \
vendorwall check 77.74.176.10\n\nNOTE:\n  Enforcement currently lasts as long as `vendorwall \
run`: when the daemon exits, the kernel detaches its programs."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the lists, attach the programs and stream blocked events (runs in the foreground).
    #[command(
        long_about = "Load the block lists, attach the programs to the cgroup and \
write one JSON line per blocked connection to standard output until SIGINT or SIGTERM. \
Diagnostics go to standard error. Every list is validated before the kernel is touched: a \
malformed line stops the start-up with file, line and text."
    )]
    Run(RunArgs),
    /// Say whether an address is blocked, by which list and entry.
    #[command(
        long_about = "Say whether ADDR would be refused by the lists, naming the list, \
the matching prefix and the file and line it came from. Exit status 0 when blocked, 1 when \
not, 2 on error. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are checked as IPv4, as the \
kernel does."
    )]
    Check(CheckArgs),
}

/// Which list files to use.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// A prefix file (one address, CIDR or range per line; `#` and `;` comments). Repeatable.
    /// When given, only these files are used.
    #[arg(long = "list", value_name = "FILE")]
    pub lists: Vec<PathBuf>,

    /// Directory whose `*.netset` files are used when no --list is given.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BLOCKLISTS_DIR, env = "VENDORWALL_BLOCKLISTS")]
    pub blocklists: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub lists: ListArgs,

    /// cgroup v2 directory to attach to. Default: the root of the cgroup v2 hierarchy (found in
    /// /proc/self/mounts), which covers every process on the host.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Log matches instead of refusing them (every list in audit mode).
    #[arg(long)]
    pub dry_run: bool,

    /// Also refuse IPv6 destinations in 64:ff9b::/96 (NAT64) whose embedded IPv4 is blocked.
    #[arg(long)]
    pub nat64: bool,

    /// Also refuse IPv6 destinations in 2002::/16 (6to4) whose embedded IPv4 is blocked.
    #[arg(long = "6to4")]
    pub six_to_four: bool,

    /// Capacity of the IPv4 block map (prefixes).
    #[arg(long, value_name = "N", default_value_t = 1 << 21)]
    pub max_v4: u32,

    /// Capacity of the IPv6 block map (prefixes).
    #[arg(long, value_name = "N", default_value_t = 1 << 19)]
    pub max_v6: u32,

    /// More diagnostics on standard error; includes the kernel programs' debug log.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The address to check (IPv4 or IPv6).
    pub addr: std::net::IpAddr,

    #[command(flatten)]
    pub lists: ListArgs,

    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

impl ListArgs {
    /// The list files to load.
    pub fn files(&self) -> Result<Vec<PathBuf>, crate::lists::ListError> {
        if self.lists.is_empty() {
            crate::lists::files_in(&self.blocklists)
        } else {
            Ok(self.lists.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
