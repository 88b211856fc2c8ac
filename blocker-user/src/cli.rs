//! Command-line interface: the argument types of every subcommand, with the help text operators
//! read (`vendorwall --help`, `vendorwall <command> --help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

#[derive(Debug, Parser)]
#[command(
    name = "vendorwall",
    version,
    about = "Refuse outbound connections to prohibited vendors' IP ranges, in the kernel",
    long_about = "vendorwall refuses, at connect() and sendmsg(), every outbound connection from \
processes in a cgroup v2 subtree to the IP ranges of prohibited vendors (for example Kaspersky, \
or the vendors on the US FCC Covered List). eBPF programs attached to the cgroup return EPERM \
to the caller. The programs and their maps are pinned on bpffs, so enforcement stays in place \
when the daemon stops, crashes or is upgraded; only `vendorwall unload` removes it. The daemon \
keeps the kernel's prefix maps in sync with the block lists and writes one JSON line per \
refused connection to standard output.",
    after_long_help = "FILES:\n  /etc/vendorwall/config.toml          configuration (optional)\n  \
/usr/local/share/vendorwall/blocklists  shipped vendor manifests and lists (source install)\n  \
/usr/share/vendorwall/blocklists     the same, installed by the Debian package\n  \
/sys/fs/bpf/vendorwall               pinned programs, links and maps\n  \
/run/vendorwall                      pid and state of the running daemon\n  \
/var/lib/vendorwall                  last good copies of remote lists\n\n\
EXIT STATUS:\n  0  success (check: blocked; status: enforcing)\n  \
1  check: not blocked; status: enforcement not in place\n  \
2  error (bad config or list, missing cgroup, kernel refused the programs, ...)\n\n\
EXAMPLES:\n  vendorwall run\n  vendorwall run --cgroup /sys/fs/cgroup/system.slice --dry-run\n  \
vendorwall check 77.74.176.10\n  vendorwall status --json\n  vendorwall reload\n  \
systemctl stop vendorwall && vendorwall unload"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands: where the config and the daemon's files are.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file. Without this option /etc/vendorwall/config.toml is read when it
    /// exists; with it, the file must exist.
    #[arg(long, global = true, value_name = "FILE", env = "VENDORWALL_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where programs, links and maps are pinned (overrides `pin_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,

    /// Runtime directory for the pid and state files (overrides `run_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

impl GlobalArgs {
    /// The configuration with the command-line overrides applied.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path, true)?,
            None => Config::load(std::path::Path::new(DEFAULT_CONFIG_PATH), false)?,
        };
        if let Some(dir) = &self.pin_dir {
            config.pin_dir = dir.clone();
        }
        if let Some(dir) = &self.run_dir {
            config.run_dir = dir.clone();
        }
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the lists, attach the programs and stream blocked events (runs in the foreground).
    #[command(
        long_about = "Load and validate the lists, fill the pinned kernel maps (only the \
difference to what they already hold), attach the programs to the cgroup, and write one JSON \
line per blocked connection to standard output. Diagnostics go to standard error. \
A malformed list line is skipped and reported with file, line and text (with --strict it \
fails its list); a list that fails keeps whatever the kernel enforced for it, and the others \
load all the same. SIGHUP (or `vendorwall reload`) re-reads the config \
and the lists; lists are also refreshed on `refresh_interval` and when a local list file \
changes. SIGINT/SIGTERM stop the daemon; enforcement stays."
    )]
    Run(RunArgs),
    /// Say whether addresses are blocked, by which list, prefix, file and line.
    #[command(
        long_about = "Say what the kernel programs would do with a connection to each ADDR \
under the configured lists, exceptions, exemptions and dry run: blocked, audited, excepted, \
exempt or allowed, naming the list, vendor, matching prefix and the source file (or URL) and \
line it came from, and what the pinned kernel maps answer when vendorwall is loaded. An \
address learned from a DNS answer names the listed domain it was learned from; a NAME is \
answered with the listed domain covering it, its list, and the addresses learned for it. The \
verdict is the kernel's, step by step: IPv6 addresses that embed an IPv4 address \
(::ffff:a.b.c.d, ::a.b.c.d, and 64:ff9b::/96 and 2002::/16 when nat64 and 6to4 are on) are \
looked up as that address first; the longest prefix decides; an enforce list wins over an \
audit one. Exit status 0 when every address is blocked or audited, 1 when one is not, 2 on \
error."
    )]
    Check(CheckArgs),
    /// Show what is attached, map fill levels, counters, lists and daemon health.
    #[command(
        long_about = "Show what the kernel holds (generations, links and the cgroup they \
are attached to, map fill levels, counters) and what the daemon reports (pid, lists and their \
ages, last sync, errors). Exit status 0 when enforcement is in place, 1 when it is not."
    )]
    Status(JsonArgs),
    /// Per list: sources, action, raw and aggregated entries, last refresh, last error.
    Lists(JsonArgs),
    /// Show past blocked events from the history, or follow new ones from the running daemon.
    #[command(
        long_about = "Without --follow, read events from the durable history (`[history]`, an \
SQLite database in the state directory, kept across restarts for `history.keep`): the most \
recent `events.keep` lines, or every line since --since. With the history off, the running \
daemon's in-memory lines instead. With --follow, print new events from the running daemon's \
socket (<run dir>/events.sock, root only) as they come; a reader that falls behind gets a \
line saying how many events it missed, and never slows the daemon. Filters apply to both."
    )]
    Events(EventsArgs),
    /// List the justified exemptions: scope, expiry, time left, and how often each was used.
    #[command(
        long_about = "Show each `[[exemptions]]` entry of the config: id, reason, approver, \
ticket, scope (units, cgroups, executables) and what it covers now (from the running daemon), \
lists, expiry and time left, and how many attempts it let through (from the history). Exit \
status 0; 1 when an exemption has expired and is still in the config."
    )]
    Exemptions(JsonArgs),
    /// Find the listed vendors' software on this host: packages, units, paths, processes.
    #[command(
        long_about = "Look for the products of every vendor manifest with a `[software]` \
section: installed Debian and RPM packages, systemd unit files and running units, install \
paths, and running processes. Exit status 0 when nothing is found, 1 when something is, 2 on \
error."
    )]
    Scan(ScanArgs),
    /// A compliance report from the history: per vendor, process and day, exemptions, lists.
    #[command(
        long_about = "Summarise the durable history for a period: attempts per vendor and \
list (blocked, audited, exempted, terminated), per process, unit and package, per day; the \
exemptions and their uses; the lists in force with the dates of their data; and what `scan` \
finds on this host. As text, JSON, or one self-contained HTML file (a timeline chart per \
vendor) to hand to an auditor."
    )]
    Report(ReportArgs),
    /// Ask the running daemon to re-read its config and lists (SIGHUP) and wait for the result.
    Reload(ReloadArgs),
    /// Detach the programs and unpin everything: the only way enforcement is removed.
    #[command(
        long_about = "Stop the running daemon (if any), detach every program and remove \
every pinned map and link, then say what was removed. Under systemd, stop the unit first so \
it is not restarted: `systemctl stop vendorwall && vendorwall unload`."
    )]
    Unload,
    /// Print the vendorwall(8) manual page (roff), or write every page to a directory: for
    /// packagers.
    #[command(hide = true)]
    Manpage(ManpageArgs),
    /// Print the shell completion script for bash, zsh or fish: for packagers.
    #[command(hide = true)]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// Write vendorwall.8 and one vendorwall-COMMAND.8 per subcommand into DIR.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Which list files to use instead of the configured lists.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// A list file (any supported format: netset, ipset, DShield, CSV, Spamhaus DROP, gzip),
    /// enforced as a list named after the file. Repeatable. When given, it replaces the
    /// configured lists.
    #[arg(long = "list", value_name = "FILE")]
    pub lists: Vec<PathBuf>,

    /// Directory of the vendor manifests (overrides `blocklists_dir`).
    #[arg(long, value_name = "DIR", env = "VENDORWALL_BLOCKLISTS")]
    pub blocklists: Option<PathBuf>,

    /// Treat every list as `strict = true`: a malformed line fails its list instead of being
    /// skipped.
    #[arg(long)]
    pub strict: bool,
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

    /// Refuse raw sockets (SOCK_RAW) in non-exempt cgroups (sets `guard_raw_sockets`).
    #[arg(long)]
    pub guard_raw_sockets: bool,

    /// Drop egress packets to enforced ranges from any socket (sets `egress_backstop`).
    #[arg(long)]
    pub egress_backstop: bool,

    /// A cgroup whose own processes are never refused (repeatable; adds to `exempt.cgroups`).
    #[arg(long, value_name = "PATH")]
    pub exempt_cgroup: Vec<PathBuf>,

    /// The most IPv4 prefixes the kernel holds (overrides `maps.block_v4`); the hosts' and
    /// /24s' maps are sized for the lists' content within it.
    #[arg(long, value_name = "N")]
    pub max_v4: Option<u32>,

    /// Most IPv6 pieces the block map may hold (overrides `maps.block_v6`): a prefix is one
    /// piece unless a longer listed prefix is cut out of it. The map is sized for the lists
    /// within it.
    #[arg(long, value_name = "N")]
    pub max_v6: Option<u32>,

    /// Cache directory for remote lists (overrides `cache_dir`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// More diagnostics on standard error; includes the kernel programs' debug log.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The addresses (IPv4 or IPv6) or domain names to check. For a name: the listed name
    /// covering it, its list, and the addresses learned for it.
    #[arg(required = true, value_name = "ADDR|NAME")]
    pub addrs: Vec<String>,

    /// Decide for a process in this cgroup (exempt cgroups are let through).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub lists: ListArgs,

    /// Print one JSON object per address (one a line) instead of sentences.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep printing new events as they happen.
    #[arg(short, long)]
    pub follow: bool,

    /// Only events of this list.
    #[arg(long, value_name = "LIST")]
    pub list: Option<String>,

    /// Only events from processes of this systemd unit (e.g. `nginx.service`).
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,

    /// Only events of this vendor (substring, case-insensitive).
    #[arg(long, value_name = "VENDOR")]
    pub vendor: Option<String>,

    /// Only events at or after this time: RFC 3339 (`2026-11-28T10:00:00Z`) or an age (`15m`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Print the JSON lines as the daemon writes them instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Look at the system under this root instead (its package database, unit files and
    /// paths; processes only for `/`).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// The report's forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The period: an age (`30d`) or an RFC 3339 time.
    #[arg(long, value_name = "TIME", default_value = "30d")]
    pub since: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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

#[derive(Args, Debug)]
pub struct ReloadArgs {
    /// How long to wait for the daemon to finish the reload, in seconds (lists from slow URLs,
    /// or a migration of millions of prefixes to bigger maps, can take longer than the
    /// default). The reload itself goes on either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}
