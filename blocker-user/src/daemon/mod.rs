//! The running daemon: its state and the operations that keep enforcement in force. It is
//! established once (`establish`), reloaded as a diff (`reload`), kept attached (`integrity`),
//! told when list files change (`watch`), and sweeps established connections to newly enforced
//! ranges (`sweep`, through `sockdiag`). `state`, `notify` and `exempt` are what it writes for
//! the CLI, tells systemd, and leaves out of enforcement. The event loop that drives all of this
//! lives in `cmd/run.rs`.
//!
//! Fail-closed rules kept here:
//! - everything is validated before the kernel is touched; a bad config or list on reload keeps
//!   what is in force and is reported;
//! - a new generation is attached before older ones are unpinned;
//! - syncs write inserts and updates before deletes.

pub mod establish;
pub mod exempt;
pub mod exemptions;
pub mod identity;
pub mod integrity;
pub mod limits;
pub mod lock;
pub mod names;
pub mod notify;
pub mod overrides;
pub mod reload;
pub mod report;
pub mod sockdiag;
pub mod state;
pub mod sweep;
pub mod watch;

use std::{
    collections::HashMap,
    fs::File,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use ipnet::IpNet;
use tracing::{info, warn};

use crate::{
    config::Config,
    kernel::{Enforcer, cgroup, diff::SyncStats},
    lists::{ListSet, ListSpec, aggregate::KernelSet, error_chain, selection},
};
pub use establish::establish;
pub use overrides::effective_config;
pub use reload::{Built, ReloadError, ReloadJob};
use state::{DaemonState, ListState, Timings};
pub use sweep::Termination;

/// The running daemon.
pub struct Daemon {
    pub config: Config,
    pub specs: Vec<ListSpec>,
    /// Shared with a reload being built off the loop, whose failing lists keep this content.
    pub lists: Arc<ListSet>,
    pub enforcer: Enforcer,
    pub state: DaemonState,
    cgroup_path: PathBuf,
    cgroup_file: File,
    cgroup_id: u64,
    log_level: u8,
    /// (modified time, length) of every local list file, to notice edits.
    watched: watch::Snapshot,
    exempt_ids: Vec<u64>,
    /// What the exemptions map holds, and which expiries were logged.
    pub exemptions: exemptions::ExemptionWatch,
    /// Prefixes in the block tries after the last sync (IPv4, IPv6).
    pub kernel_counts: (usize, usize),
    /// Whether every link was attached to our cgroup at the last integrity check (or since a
    /// generation was attached): what the `vendorwall_enforcing` metric reports, without a
    /// second scan of the links.
    pub links_attached: bool,
    /// Connections terminated by the last sweep, for the event pipeline to report.
    pub terminated: Vec<Termination>,
    /// Every list's domain names (shared with a reload being built).
    pub names: Arc<crate::names::DomainSet>,
    /// What `DOMAINS` holds, by number: names events and `check` show.
    pub domain_table: crate::kernel::domains::DomainTable,
    last_prune: Instant,
}

/// (IPv4, IPv6) prefixes in a desired set.
fn family_counts(desired: &KernelSet) -> (usize, usize) {
    let v4 = desired
        .iter()
        .filter(|(n, _)| matches!(n, IpNet::V4(_)))
        .count();
    (v4, desired.len() - v4)
}

impl Daemon {
    /// Loads everything, then establishes a new generation. On any error before the attach,
    /// whatever was pinned before stays in force untouched.
    pub fn start(config: Config, specs: Vec<ListSpec>, verbose: bool) -> anyhow::Result<Self> {
        let started = Instant::now();
        let (mut lists, list_errors) = ListSet::load(
            &specs,
            &selection::fetcher(&config),
            &selection::guards(&config),
        )
        .context("failed to load the lists")?;
        let mut timings = Timings {
            lists_ms: ms(started.elapsed()),
            ..Timings::default()
        };
        report::log_lists(&lists);
        let names_built = names::build(&config, &specs, &crate::names::DomainSet::default());
        let cgroup_path = match &config.cgroup {
            Some(path) => path.clone(),
            None => cgroup::default_root().context("failed to find the cgroup v2 root")?,
        };
        let cgroup_file = cgroup::open(&cgroup_path)?;
        let cgroup_id = cgroup::id(&cgroup_path)?;
        let exempt_ids = exempt::resolve(&config.exempt);
        let grants = exemptions::resolve(&config, &lists);
        // aya-log level 4 is `debug`; 0 turns the kernel-side log statements into no-ops.
        let log_level = if verbose { 4 } else { 0 };
        let phase = Instant::now();
        let desired = lists.kernel_set_counted();
        let kernel_counts = family_counts(&desired);
        timings.aggregate_ms = ms(phase.elapsed());
        let lists = Arc::new(lists);
        // On the second core while the maps are written and the programs verified.
        lists.index_in_background();
        let phase = Instant::now();
        let (enforcer, stats) = establish(
            &config,
            desired,
            &lists.failed_ids(),
            &exempt_ids,
            &grants.desired,
            &cgroup_file,
            log_level,
        )?;
        timings.sync_ms = ms(phase.elapsed());
        let now = state::rfc3339(SystemTime::now());
        let mut daemon = Self {
            state: DaemonState {
                pid: std::process::id(),
                identity: identity::Identity::of_self()
                    .context("cannot read this process's start time in /proc")?,
                version: env!("CARGO_PKG_VERSION").into(),
                started: now.clone(),
                heartbeat: now,
                cgroup: cgroup_path.display().to_string(),
                timings,
                ..DaemonState::default()
            },
            config,
            specs,
            lists,
            enforcer,
            cgroup_path,
            cgroup_file,
            cgroup_id,
            log_level,
            watched: HashMap::new(),
            exempt_ids,
            exemptions: exemptions::ExemptionWatch::holding(grants.desired.clone()),
            kernel_counts,
            links_attached: true,
            terminated: Vec::new(),
            names: Arc::default(),
            domain_table: Default::default(),
            last_prune: Instant::now(),
        };
        daemon.apply_names(names_built);
        // Establish wrote these grants; this only logs expiries and records the state.
        daemon.apply_exemptions(&grants);
        daemon.record_learner();
        daemon.sweep_established();
        daemon.watched = daemon.snapshot_watched();
        let errors = list_errors.into_iter().map(ReloadError::List).collect();
        daemon.record_sync(stats, errors);
        Ok(daemon)
    }

    /// One line describing what is enforced, for logs and systemd's STATUS.
    pub fn status_line(&self) -> String {
        let failed = self.lists.failed();
        let degraded = if failed.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = failed.iter().map(|f| f.spec.name.as_str()).collect();
            format!(
                "; DEGRADED: {} list(s) not enforced: {}",
                failed.len(),
                names.join(", ")
            )
        };
        format!(
            "enforcing {} prefixes ({} listed) from {} lists on {} (generation {}){}{degraded}",
            self.state.kernel_prefixes,
            self.lists.entry_count(),
            self.lists.lists().len(),
            self.cgroup_path.display(),
            self.state.generation,
            if self.config.dry_run {
                ", dry run: audit only"
            } else {
                ""
            }
        )
    }

    fn record_sync(&mut self, stats: SyncStats, errors: Vec<ReloadError>) {
        release_freed_memory();
        let adoption = self.enforcer.adoption();
        self.state.generation = adoption.generation;
        self.state.dry_run = self.config.dry_run;
        self.state.kernel_prefixes = self.kernel_counts.0 + self.kernel_counts.1;
        self.state.last_sync = Some(state::rfc3339(SystemTime::now()));
        self.state.last_sync_stats = Some(stats);
        self.state.errors = errors.iter().map(|e| error_chain(e)).collect();
        self.state.lists = ListState::all(&self.lists);
        let t = self.state.timings;
        info!(
            "kernel sync: {stats} (lists {:.1} ms, aggregation {:.1} ms, sync {:.1} ms)",
            t.lists_ms, t.aggregate_ms, t.sync_ms
        );
        self.write_state();
    }

    pub fn write_state(&mut self) {
        self.state.heartbeat = state::rfc3339(SystemTime::now());
        if let Err(err) = state::write_state(&self.config.run_dir, &self.state) {
            warn!(
                "cannot write state in {}: {err}",
                self.config.run_dir.display()
            );
        }
    }
}

/// Hands memory freed after a load (the list texts, aggregation scratch space, the previous
/// set) back to the kernel: glibc keeps freed heap for reuse, and after a million-prefix load
/// that is most of the process's RSS.
fn release_freed_memory() {
    // SAFETY: malloc_trim has no preconditions; it only returns free pages to the system.
    unsafe { libc::malloc_trim(0) };
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// How long to wait between watchdog pings, when systemd asked for them.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().and_then(ping_period)
}

/// Half the watchdog timeout, but at least 1 ms (a zero period would panic the timer); no
/// pings for a zero timeout, which systemd never sets but a hand-written environment might.
fn ping_period(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then(|| (timeout / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_ping_periods_are_never_zero() {
        assert_eq!(ping_period(Duration::ZERO), None);
        assert_eq!(
            ping_period(Duration::from_micros(1)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            ping_period(Duration::from_secs(30)),
            Some(Duration::from_secs(15))
        );
    }
}
