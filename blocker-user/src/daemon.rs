//! The daemon's state and the operations on it: establishing a pinned generation, reloading
//! config and lists as a diff, watching list files, and checking that the links are still
//! attached. The event loop that drives these lives in `cmd/run.rs`.
//!
//! Fail-closed rules kept here:
//! - everything is validated before the kernel is touched; a bad config or list on reload keeps
//!   what is in force and is reported;
//! - a new generation is attached before older ones are unpinned;
//! - syncs write inserts and updates before deletes.

use std::{
    collections::HashMap,
    fs::File,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use blocker_common::{Action, ListRef, SETTING_6TO4, SETTING_DRY_RUN, SETTING_NAT64, Settings};
use ipnet::IpNet;
use tracing::{error, info, warn};

use crate::{
    aggregate::KernelSet,
    cgroup,
    cli::{GlobalArgs, RunArgs},
    config::Config,
    exempt,
    kernel::{Enforcer, Guards, inspect},
    lists::{ListSet, ListSpec},
    selection,
    state::{self, DaemonState, ListState, Timings},
    sync::SyncStats,
};

/// The running daemon.
pub struct Daemon {
    pub config: Config,
    pub specs: Vec<ListSpec>,
    pub lists: ListSet,
    pub enforcer: Enforcer,
    pub state: DaemonState,
    cgroup_path: PathBuf,
    cgroup_file: File,
    cgroup_id: u64,
    log_level: u8,
    /// (modified time, length) of every local list file, to notice edits.
    watched: HashMap<PathBuf, Option<(SystemTime, u64)>>,
    exempt_ids: Vec<u64>,
    /// Prefixes in the block tries after the last sync (IPv4, IPv6).
    pub kernel_counts: (usize, usize),
    /// Connections terminated by the last sweep, for the event pipeline to report.
    pub terminated: Vec<Termination>,
}

/// An established connection to an enforced range that the daemon terminated.
#[derive(Clone, Debug)]
pub struct Termination {
    pub socket: crate::sockdiag::DiagSocket,
    /// A process holding the socket when it was destroyed, if one was found.
    pub pid: Option<u32>,
    pub list: String,
    pub vendor: Option<String>,
    pub prefix: String,
    pub source: String,
}

/// (IPv4, IPv6) prefixes in a desired set.
fn family_counts(desired: &KernelSet) -> (usize, usize) {
    let v4 = desired
        .iter()
        .filter(|(n, _)| matches!(n, IpNet::V4(_)))
        .count();
    (v4, desired.len() - v4)
}

/// Reads the config and applies `run`'s command-line overrides.
pub fn effective_config(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = global.config()?;
    if let Some(cgroup) = &args.cgroup {
        config.cgroup = Some(cgroup.clone());
    }
    if let Some(dir) = &args.lists.blocklists {
        config.blocklists_dir = dir.clone();
    }
    if let Some(dir) = &args.cache_dir {
        config.cache_dir = dir.clone();
    }
    if let Some(n) = args.max_v4 {
        config.maps.block_v4 = n;
    }
    if let Some(n) = args.max_v6 {
        config.maps.block_v6 = n;
    }
    config.dry_run |= args.dry_run;
    config.nat64 |= args.nat64;
    config.six_to_four |= args.six_to_four;
    config.guard_raw_sockets |= args.guard_raw_sockets;
    config.egress_backstop |= args.egress_backstop;
    config
        .exempt
        .cgroups
        .extend(args.exempt_cgroup.iter().cloned());
    Ok(config)
}

fn settings(config: &Config) -> Settings {
    let mut flags = 0;
    if config.nat64 {
        flags |= SETTING_NAT64;
    }
    if config.six_to_four {
        flags |= SETTING_6TO4;
    }
    if config.dry_run {
        flags |= SETTING_DRY_RUN;
    }
    Settings { flags, _pad: 0 }
}

/// Exceptions as the allow tries hold them (list id 0: not a list).
fn exceptions(config: &Config) -> HashMap<IpNet, ListRef> {
    config
        .exceptions
        .prefixes
        .iter()
        .map(|net| (net.trunc(), ListRef::new(0, Action::Enforce)))
        .collect()
}

impl Daemon {
    /// Loads everything, then establishes a new generation. On any error before the attach,
    /// whatever was pinned before stays in force untouched.
    pub fn start(config: Config, specs: Vec<ListSpec>, verbose: bool) -> anyhow::Result<Self> {
        let started = Instant::now();
        let lists = ListSet::load(
            &specs,
            &selection::fetcher(&config),
            &selection::guards(&config),
        )
        .context("failed to load the lists")?;
        let mut timings = Timings {
            lists_ms: ms(started.elapsed()),
            ..Timings::default()
        };
        for list in lists.lists() {
            for warning in &list.warnings {
                warn!("{warning}");
            }
            if let Some(err) = &list.last_error {
                warn!("list {}: {err}", list.spec.name);
            }
        }
        let cgroup_path = match &config.cgroup {
            Some(path) => path.clone(),
            None => cgroup::default_root().context("failed to find the cgroup v2 root")?,
        };
        let cgroup_file = cgroup::open(&cgroup_path)?;
        let cgroup_id = cgroup::id(&cgroup_path)?;
        let exempt_ids = exempt::resolve(&config.exempt);
        // aya-log level 4 is `debug`; 0 turns the kernel-side log statements into no-ops.
        let log_level = if verbose { 4 } else { 0 };
        let phase = Instant::now();
        let desired = lists.kernel_set();
        let kernel_counts = family_counts(&desired);
        timings.aggregate_ms = ms(phase.elapsed());
        let phase = Instant::now();
        let (enforcer, stats) = establish(&config, desired, &exempt_ids, &cgroup_file, log_level)?;
        timings.sync_ms = ms(phase.elapsed());
        let now = state::rfc3339(SystemTime::now());
        let mut daemon = Self {
            state: DaemonState {
                pid: std::process::id(),
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
            kernel_counts,
            terminated: Vec::new(),
        };
        daemon.sweep_established();
        daemon.watched = daemon.snapshot_watched();
        daemon.record_sync(stats, Vec::new());
        Ok(daemon)
    }

    /// One line describing what is enforced, for logs and systemd's STATUS.
    pub fn status_line(&self) -> String {
        format!(
            "enforcing {} prefixes ({} listed) from {} lists on {} (generation {}){}",
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

    /// Re-reads the lists (and the config when `config` is given) and applies the difference.
    /// Errors leave the previous content in force; they are logged and kept in the state.
    /// Returns true when a new generation replaced the old one (the caller re-opens events).
    pub fn reload(
        &mut self,
        config: Option<anyhow::Result<Config>>,
        specs: Option<anyhow::Result<Vec<ListSpec>>>,
    ) -> bool {
        let mut errors = Vec::new();
        let mut new_generation = false;
        if let Some(result) = config {
            match result {
                Ok(config) => self.config = self.keep_fixed(config, &mut errors),
                Err(err) => errors.push(format!("config not reloaded: {err:#}")),
            }
        }
        if let Some(result) = specs {
            match result {
                Ok(specs) => self.specs = specs,
                Err(err) => errors.push(format!("list selection not reloaded: {err:#}")),
            }
        }
        let fetcher = selection::fetcher(&self.config);
        let guards = selection::guards(&self.config);
        let phase = Instant::now();
        let refreshed = self.lists.refresh(&self.specs, &fetcher, &guards);
        self.state.timings.lists_ms = ms(phase.elapsed());
        match refreshed {
            Ok((lists, list_errors)) => {
                errors.extend(list_errors);
                self.lists = lists;
            }
            Err(err) => errors.push(err.to_string()),
        }
        self.exempt_ids = exempt::resolve(&self.config.exempt);
        let sizes_changed = crate::kernel::pins::map_specs(&self.config.maps)
            .iter()
            .any(|spec| {
                spec.mismatch(&self.enforcer.generation_dir().join(spec.name))
                    .is_some()
            });
        let phase = Instant::now();
        let desired = self.lists.kernel_set();
        let counts = family_counts(&desired);
        self.state.timings.aggregate_ms = ms(phase.elapsed());
        self.state.reloads += 1;
        let phase = Instant::now();
        let result = if sizes_changed {
            info!("map sizes changed: migrating to a new generation");
            self.reestablish(desired).inspect(|_| new_generation = true)
        } else {
            self.sync_in_place(desired)
        };
        self.state.timings.sync_ms = ms(phase.elapsed());
        if result.is_ok() {
            self.kernel_counts = counts;
            self.sweep_established();
        }
        match result {
            Ok(stats) => self.record_sync(stats, errors),
            Err(err) => {
                errors.push(format!("kernel sync failed: {err:#}"));
                self.state.errors = errors;
                self.write_state();
            }
        }
        for err in &self.state.errors {
            error!("{err}");
        }
        self.watched = self.snapshot_watched();
        new_generation
    }

    /// Where the daemon is attached and pinned only changes with a restart: a reload keeps the
    /// running values (re-pinning elsewhere would strand the old generation out of `unload`'s
    /// reach) and says so.
    fn keep_fixed(&self, mut new: Config, errors: &mut Vec<String>) -> Config {
        let running = &self.config;
        if new.cgroup != running.cgroup {
            errors.push("`cgroup` changed: takes effect on restart".into());
            new.cgroup.clone_from(&running.cgroup);
        }
        if new.pin_dir != running.pin_dir {
            errors.push("`pin_dir` changed: takes effect on restart".into());
            new.pin_dir.clone_from(&running.pin_dir);
        }
        if new.run_dir != running.run_dir {
            errors.push("`run_dir` changed: takes effect on restart".into());
            new.run_dir.clone_from(&running.run_dir);
        }
        new
    }

    fn sync_in_place(&mut self, desired: KernelSet) -> anyhow::Result<SyncStats> {
        self.enforcer.set_settings(settings(&self.config))?;
        let mut stats = self.enforcer.sync_block(desired)?;
        stats += self.enforcer.sync_allow(&exceptions(&self.config))?;
        stats += self.enforcer.sync_exempt(&self.exempt_ids)?;
        Ok(stats)
    }

    /// Terminates established TCP connections and connected UDP sockets of covered processes
    /// whose peer is in an enforced range: the hooks only stop new connections, so a connection
    /// made before its range was listed (or before vendorwall started) would otherwise live on.
    fn sweep_established(&mut self) {
        if self.config.dry_run {
            return;
        }
        let mut covered = Vec::new();
        collect_cgroup_ids(&self.cgroup_path, &mut covered);
        covered.retain(|id| !self.exempt_ids.contains(id));
        covered.sort_unstable();
        let exceptions = &self.config.exceptions.prefixes;
        let mut diag = match crate::sockdiag::SockDiag::open() {
            Ok(diag) => diag,
            Err(err) => {
                warn!("cannot inspect established connections (sock_diag): {err}");
                return;
            }
        };
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            for protocol in [libc::IPPROTO_TCP as u8, libc::IPPROTO_UDP as u8] {
                let sockets = match diag.dump(family, protocol) {
                    Ok(sockets) => sockets,
                    Err(err) => {
                        warn!("sock_diag dump failed: {err}");
                        continue;
                    }
                };
                for socket in sockets {
                    let in_scope = socket
                        .cgroup_id
                        .is_some_and(|id| covered.binary_search(&id).is_ok());
                    if !in_scope {
                        continue;
                    }
                    let peer = socket.peer.ip();
                    let Some(m) = self.lists.lookup(peer) else {
                        continue;
                    };
                    if m.list.spec.action != crate::config::ListAction::Enforce
                        || exceptions.iter().any(|e| e.contains(&peer))
                    {
                        continue;
                    }
                    let pid = crate::sockdiag::owner_of(socket.inode);
                    match diag.destroy(&socket) {
                        Ok(()) => {
                            warn!(
                                "terminated {} connection {} -> {} (list {}, {})",
                                if protocol == libc::IPPROTO_TCP as u8 {
                                    "tcp"
                                } else {
                                    "udp"
                                },
                                socket.local,
                                socket.peer,
                                m.list.spec.name,
                                m.prefix()
                            );
                            self.terminated.push(Termination {
                                pid,
                                list: m.list.spec.name.clone(),
                                vendor: m.list.spec.vendor.clone(),
                                prefix: m.prefix().to_string(),
                                source: m.source(),
                                socket,
                            });
                        }
                        Err(err) => error!(
                            "cannot terminate {} -> {}: {err}",
                            socket.local, socket.peer
                        ),
                    }
                }
            }
        }
    }

    /// Builds a new generation (new programs, maps reused where they fit) and retires the old.
    fn reestablish(&mut self, desired: KernelSet) -> anyhow::Result<SyncStats> {
        let (enforcer, stats) = establish(
            &self.config,
            desired,
            &self.exempt_ids,
            &self.cgroup_file,
            self.log_level,
        )?;
        self.enforcer = enforcer;
        Ok(stats)
    }

    fn record_sync(&mut self, stats: SyncStats, errors: Vec<String>) {
        release_freed_memory();
        let adoption = self.enforcer.adoption();
        self.state.generation = adoption.generation;
        self.state.dry_run = self.config.dry_run;
        self.state.kernel_prefixes = self.kernel_counts.0 + self.kernel_counts.1;
        self.state.last_sync = Some(state::rfc3339(SystemTime::now()));
        self.state.last_sync_stats = Some(stats);
        self.state.errors = errors;
        self.state.lists = self.lists.lists().iter().map(ListState::of).collect();
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

    /// Local list files whose content may have changed since the last load.
    fn snapshot_watched(&self) -> HashMap<PathBuf, Option<(SystemTime, u64)>> {
        self.specs
            .iter()
            .flat_map(|s| s.sources.iter().flat_map(|src| src.local_paths()))
            .map(|path| {
                let meta = std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (path, meta)
            })
            .collect()
    }

    /// Whether a watched list file changed (written, replaced, removed) since the last load.
    pub fn lists_changed(&self) -> bool {
        self.snapshot_watched() != self.watched
    }

    /// Checks that this generation's links are attached to our cgroup; re-attaches (a new
    /// generation) when someone detached them. Also re-resolves exempt units, whose cgroups are
    /// recreated when they restart. Returns true when a new generation was established.
    pub fn check_integrity(&mut self) -> bool {
        let links = inspect::links(&self.enforcer.generation_dir());
        let broken: Vec<&str> = links
            .iter()
            .filter(|l| l.kernel.is_none_or(|k| k.cgroup_id != self.cgroup_id))
            .map(|l| l.program)
            .collect();
        let mut new_generation = false;
        if !broken.is_empty() {
            error!(
                "ENFORCEMENT TAMPERED WITH: links of {} are detached or missing; re-attaching",
                broken.join(", ")
            );
            match self.reestablish(self.lists.kernel_set()) {
                Ok(stats) => {
                    self.state.reattachments += 1;
                    new_generation = true;
                    self.record_sync(stats, Vec::new());
                    info!("re-attached: {}", self.status_line());
                }
                Err(err) => error!("re-attaching failed: {err:#}"),
            }
        }
        let ids = exempt::resolve(&self.config.exempt);
        if ids != self.exempt_ids {
            self.exempt_ids = ids;
            match self.enforcer.sync_exempt(&self.exempt_ids) {
                Ok(stats) => info!("exempt cgroups re-resolved: {stats}"),
                Err(err) => error!("cannot update exempt cgroups: {err:#}"),
            }
        }
        new_generation
    }
}

/// Prepares a new generation, fills it as a diff against what it reuses, attaches it, then
/// unpins every older generation.
fn establish(
    config: &Config,
    desired: KernelSet,
    exempt_ids: &[u64],
    cgroup_file: &File,
    log_level: u8,
) -> anyhow::Result<(Enforcer, SyncStats)> {
    let mut enforcer =
        Enforcer::prepare(&config.pin_dir, config.maps, log_level).with_context(|| {
            format!(
                "failed to load the programs into {}",
                config.pin_dir.display()
            )
        })?;
    let adoption = enforcer.adoption().clone();
    if let Some(previous) = adoption.previous {
        info!(
            "adopting generation {previous} as {}: reused {:?}, created {:?}",
            adoption.generation, adoption.reused, adoption.created
        );
    }
    enforcer.set_settings(settings(config))?;
    let mut stats = enforcer
        .sync_block(desired)
        .context("failed to fill the block maps")?;
    stats += enforcer.sync_allow(&exceptions(config))?;
    stats += enforcer.sync_exempt(exempt_ids)?;
    let guards = Guards {
        raw_sockets: config.guard_raw_sockets,
        egress: config.egress_backstop,
    };
    enforcer
        .attach(cgroup_file, guards)
        .context("failed to attach")?;
    let retired = enforcer.retire_others()?;
    if !retired.is_empty() {
        info!("retired {} pins of older generations", retired.len());
    }
    Ok((enforcer, stats))
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

/// The ids of `dir` and every cgroup below it.
fn collect_cgroup_ids(dir: &std::path::Path, ids: &mut Vec<u64>) {
    if let Ok(id) = cgroup::id(dir) {
        ids.push(id);
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_cgroup_ids(&entry.path(), ids);
        }
    }
}

/// How long to wait between watchdog pings, when systemd asked for them.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}
