//! `vendorwall run`: start the daemon and drive it: events, kernel log, signals, refresh timer,
//! list-file watch, integrity check, systemd notifications. Exiting (for any reason) leaves the
//! pinned enforcement in place.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    cli::{GlobalArgs, RunArgs},
    daemon::{self, Daemon, notify::notify, state},
    events::{
        self,
        pipeline::Pipeline,
        sinks::{http, metrics::Metrics, socket},
    },
    kernel::Counters,
    lists::selection,
};

/// How often list files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Events handled per wake-up: under a flood the ring never empties, and an unbounded drain
/// would starve signals, reloads and the integrity check.
const DRAIN_BATCH: usize = 256;
/// How often the state file's heartbeat is refreshed and lost events are checked.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a stopping daemon (or one replacing its ring at a migration) keeps delivering
/// queued events.
const STOP_DRAIN_BUDGET: Duration = Duration::from_secs(1);
/// Events handled between looks at that budget: a batch of [`DRAIN_BATCH`] takes seconds on
/// a slow machine (seen under emulation), which would overrun it.
const STOP_DRAIN_BATCH: usize = 64;

pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = daemon::effective_config(global, args)?;
    if let Some(limit) = daemon::limits::raise_open_files() {
        tracing::debug!("open-file limit: {limit}");
    }
    let specs = selection::specs(&config, &args.lists).context("failed to select the lists")?;
    // Before anything is loaded: a second daemon on the same pins must change nothing.
    let _lock = daemon::lock::acquire(&config.run_dir, &config.pin_dir)?;
    let run_dir = config.run_dir.clone();
    let mut daemon = Daemon::start(config, specs, args.verbose)?;
    let pid_file = state::write_pid(&run_dir)
        .with_context(|| format!("failed to write the pid file in {}", run_dir.display()))?;
    // The daemon's own loop runs on this thread (block_on); socket subscribers and the metrics
    // endpoint are spawned onto worker threads so they drain in parallel with it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let metrics = Metrics::new();
    let history = daemon
        .config
        .history
        .enabled
        .then(|| crate::history::sink::HistorySink {
            path: daemon.config.history.path_in(&daemon.config.cache_dir),
            keep: daemon.config.history.keep,
            max_bytes: daemon.config.history.max_mib.saturating_mul(1 << 20),
        });
    let mut pipeline = Pipeline::start(&daemon.config.events, history, metrics)?;
    pipeline.set_exemptions(exemption_ids(&daemon));
    let result = runtime.block_on(serve(&mut daemon, &mut pipeline, global, args));
    // Dropping the runtime drops the socket clients' hub handles, so the sinks can finish. A
    // reload still waiting on a URL is abandoned, not waited for: it has touched nothing.
    runtime.shutdown_timeout(Duration::from_millis(100));
    pipeline.finish();
    let _ = std::fs::remove_file(pid_file);
    let _ = std::fs::remove_file(run_dir.join(socket::SOCKET_FILE));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Registers an fd-owning object with the runtime for readability.
fn readable<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` (aya's RingBuf or EbpfLogger) owns its map fd for its whole lifetime and
    // always returns that same fd, and the AsyncFd owns `inner`.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|err| err.into_parts().1)
}

type Logger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The event ring buffer and kernel log of the current generation.
struct Streams {
    ring: AsyncFd<RingBuf<MapData>>,
    logger: Option<AsyncFd<Logger>>,
}

impl Streams {
    fn open(daemon: &mut Daemon) -> anyhow::Result<Self> {
        let ring = daemon
            .enforcer
            .take_events()
            .context("failed to open the event ring buffer")?;
        let ring = readable(ring).context("failed to poll the event ring buffer")?;
        let logger = match daemon.enforcer.logger() {
            Ok(logger) => Some(readable(logger).context("failed to poll the kernel log")?),
            Err(err) => {
                tracing::debug!("kernel log forwarding off: {err}");
                None
            }
        };
        Ok(Self { ring, logger })
    }
}

async fn serve(
    daemon: &mut Daemon,
    pipeline: &mut Pipeline,
    global: &GlobalArgs,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let listener = socket::bind(&daemon.config.run_dir).with_context(|| {
        format!(
            "failed to create the events socket in {}",
            daemon.config.run_dir.display()
        )
    })?;
    tokio::spawn(socket::serve(
        listener,
        pipeline.hub.clone(),
        daemon.config.events.format,
    ));
    if let Some(addr) = daemon.config.metrics.listen {
        // A taken port costs the operator the endpoint, never the enforcement: logged, not fatal.
        match http::bind(addr).await {
            Ok(listener) => {
                tokio::spawn(http::serve(listener, pipeline.metrics.clone()));
            }
            Err(err) => tracing::error!("metrics endpoint on {addr} failed: {err}"),
        }
    }
    observe(daemon, pipeline);
    report_terminations(daemon, pipeline);
    // Events the kernel queued while no daemon was reading (the ring buffer is pinned) make the
    // ring readable: the loop below delivers them first.
    let mut streams = Streams::open(daemon)?;
    let final_drain = ring_records(daemon.config.maps.events_bytes);

    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("failed to watch SIGHUP")?;
    // READY only now: before the handlers exist, a SIGHUP (systemctl reload) would kill us.
    let status = daemon.status_line();
    info!("{status}");
    notify(&[
        crate::daemon::notify::NotifyState::Ready,
        crate::daemon::notify::NotifyState::Status(&status),
    ]);
    let mut refresh = tokio::time::interval(daemon.config.refresh_interval);
    refresh.tick().await; // the first tick is immediate; the lists were just loaded
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let mut integrity = tokio::time::interval(daemon.config.integrity_check_interval);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    let watchdog_period = daemon::watchdog_period();
    let mut watchdog = tokio::time::interval(watchdog_period.unwrap_or(Duration::from_secs(3600)));
    let mut windows = tokio::time::interval(Duration::from_secs(1));
    let mut last = daemon.enforcer.counters().unwrap_or_default();
    pipeline.metrics.observe_kernel(&Counters::default(), &last);
    let mut reloads = Reloads::default();

    loop {
        let mut new_generation = false;
        tokio::select! {
            // Control before logging: under a flood of events, signals, the integrity check and
            // the watchdog must still run promptly, so the ring buffer is polled last.
            biased;
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                reloads.request(daemon, "SIGHUP", Some((global, args)));
            }
            _ = refresh.tick() => {
                // The periodic refresh also re-reads the maps, so edits made behind our back
                // are found and undone.
                daemon.enforcer.verify_next_sync();
                reloads.request(daemon, "refresh interval", None);
            }
            _ = watch.tick() => {
                if daemon.lists_changed() {
                    reloads.request(daemon, "list file changed", None);
                }
            }
            built = reloads.finished() => {
                new_generation = reloads.apply(daemon, built, global, args);
                pipeline.set_exemptions(exemption_ids(daemon));
            }
            _ = integrity.tick() => {
                new_generation = daemon.check_integrity();
            }
            _ = windows.tick() => pipeline.tick(Instant::now()),
            _ = watchdog.tick(), if watchdog_period.is_some() => {
                notify(&[crate::daemon::notify::NotifyState::Watchdog]);
            }
            _ = heartbeat.tick() => {
                daemon.write_state();
                let now = daemon.enforcer.counters().unwrap_or(last);
                pipeline.metrics.observe_kernel(&last, &now);
                observe(daemon, pipeline);
                if now.events_dropped > last.events_dropped {
                    warn!(
                        "{} events lost because the ring buffer was full ({} in total)",
                        now.events_dropped - last.events_dropped,
                        now.events_dropped
                    );
                }
                last = now;
            }
            guard = async { streams.logger.as_mut()?.readable_mut().await.ok() }, if streams.logger.is_some() => {
                if let Some(mut guard) = guard {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            }
            guard = streams.ring.readable_mut() => {
                let mut guard = guard.context("event ring buffer poll failed")?;
                // Leave readiness set when the batch filled up: the next turn comes back here,
                // after select! has given the other branches their chance.
                if drain(guard.get_inner_mut(), daemon, pipeline, DRAIN_BATCH)? < DRAIN_BATCH {
                    guard.clear_ready();
                }
            }
        }
        report_terminations(daemon, pipeline);
        if new_generation {
            // A new generation that reused the ring reads on where this one stopped. One with
            // a ring of its own: deliver what the old one holds within a budget (a flood
            // during the migration can fill it, and the loop must get back to signals), then
            // read the new one.
            let reused = daemon
                .enforcer
                .adoption()
                .reused
                .contains(&blocker_common::map_names::EVENTS);
            if !reused {
                drain_within(streams.ring.get_mut(), daemon, pipeline, final_drain)?;
            }
            streams = Streams::open(daemon)?;
            observe(daemon, pipeline);
        }
    }

    notify(&[crate::daemon::notify::NotifyState::Stopping]);
    // Deliver what is queued, within a time budget: under a flood the ring refills as fast as
    // it is read, and a stop must not wait for the flood to end. What is left stays in the
    // pinned ring for the next daemon.
    drain_within(streams.ring.get_mut(), daemon, pipeline, final_drain)?;
    let totals: Counters = daemon.enforcer.counters().unwrap_or_default();
    info!(
        "daemon stopping: {} checked, {} blocked, {} audited, {} events dropped; \
         enforcement stays pinned in {} (remove it with `vendorwall unload`)",
        totals.checked,
        totals.blocked,
        totals.audited,
        totals.events_dropped,
        daemon.config.pin_dir.display()
    );
    Ok(())
}

/// The reload in progress (built on a blocking thread) and the one requested meanwhile.
/// Requests made while one runs are coalesced into one that follows it: a reload reads
/// everything again, so one is as good as many, and none is queued forever.
#[derive(Default)]
struct Reloads {
    running: Option<tokio::task::JoinHandle<daemon::Built>>,
    /// The next reload's reason, and whether it re-reads the config file (a SIGHUP does).
    next: Option<(String, bool)>,
}

impl Reloads {
    /// Starts a reload, or, while one runs, makes sure another follows it.
    fn request(
        &mut self,
        daemon: &Daemon,
        reason: &str,
        from_args: Option<(&GlobalArgs, &RunArgs)>,
    ) {
        if self.running.is_some() {
            info!("reload requested ({reason}) while one runs: another follows it");
            let rereads = from_args.is_some();
            match &mut self.next {
                Some((_, reread)) => *reread |= rereads,
                None => self.next = Some((reason.to_owned(), rereads)),
            }
            return;
        }
        info!("reloading ({reason})");
        notify(&[
            crate::daemon::notify::NotifyState::Reloading,
            crate::daemon::notify::NotifyState::monotonic_usec_now()
                .unwrap_or(crate::daemon::notify::NotifyState::Status("reloading")),
        ]);
        let (config, specs) = match from_args {
            Some((global, args)) => {
                let config = daemon::effective_config(global, args);
                let specs = config
                    .as_ref()
                    .ok()
                    .map(|c| selection::specs(c, &args.lists));
                (Some(config), specs)
            }
            None => (None, None),
        };
        let job = daemon.begin_reload(config, specs);
        self.running = Some(tokio::task::spawn_blocking(move || job.build()));
    }

    /// Resolves when the running reload is built; never while none runs.
    async fn finished(&mut self) -> Result<daemon::Built, tokio::task::JoinError> {
        match self.running.as_mut() {
            Some(handle) => handle.await,
            None => std::future::pending().await,
        }
    }

    /// Applies a built reload (the kernel part, on the loop), tells systemd, and starts the
    /// reload requested meanwhile. Returns true when a new generation replaced the old one.
    fn apply(
        &mut self,
        daemon: &mut Daemon,
        built: Result<daemon::Built, tokio::task::JoinError>,
        global: &GlobalArgs,
        args: &RunArgs,
    ) -> bool {
        self.running = None;
        let new_generation = match built {
            Ok(built) => daemon.finish_reload(built),
            // A panic while parsing: nothing was applied, what is in force stays.
            Err(err) => {
                tracing::error!("reload failed, the previous lists stay in force: {err}");
                false
            }
        };
        let status = daemon.status_line();
        info!("{status}");
        notify(&[
            crate::daemon::notify::NotifyState::Ready,
            crate::daemon::notify::NotifyState::Status(&status),
        ]);
        if let Some((reason, reread)) = self.next.take() {
            self.request(daemon, &reason, reread.then_some((global, args)));
        }
        new_generation
    }
}

/// Hands up to `max` pending kernel events to the pipeline; returns how many it read.
fn drain(
    ring: &mut RingBuf<MapData>,
    daemon: &Daemon,
    pipeline: &mut Pipeline,
    max: usize,
) -> anyhow::Result<usize> {
    let now = Instant::now();
    let mut read = 0;
    while read < max
        && let Some(item) = ring.next()
    {
        read += 1;
        match events::decode(&item) {
            Some(event) => pipeline.ingest(
                &event,
                &daemon.lists,
                &daemon.domain_table,
                crate::verdict::Translations::of(&daemon.config),
                now,
            ),
            None => warn!("ignoring a short event record ({} bytes)", item.len()),
        }
    }
    Ok(read)
}

/// Hands up to `max` pending events to the pipeline within [`STOP_DRAIN_BUDGET`], looking at
/// the clock every [`STOP_DRAIN_BATCH`]; what is left stays in the ring.
fn drain_within(
    ring: &mut RingBuf<MapData>,
    daemon: &Daemon,
    pipeline: &mut Pipeline,
    max: usize,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + STOP_DRAIN_BUDGET;
    let mut delivered = 0;
    while Instant::now() < deadline && delivered < max {
        let n = drain(ring, daemon, pipeline, STOP_DRAIN_BATCH)?;
        delivered += n;
        if n < STOP_DRAIN_BATCH {
            break;
        }
    }
    Ok(delivered)
}

/// How many records a ring of `bytes` holds at most: the bound for the drains at a generation
/// change and at exit, which must end even while a flood keeps refilling the ring.
fn ring_records(bytes: u32) -> usize {
    // Each record carries an 8-byte header and is padded to 8 bytes.
    bytes as usize / (size_of::<blocker_common::BlockEvent>() + 8)
}

/// Publishes the connections the last sweep terminated.
fn report_terminations(daemon: &mut Daemon, pipeline: &mut Pipeline) {
    for termination in std::mem::take(&mut daemon.terminated) {
        pipeline.terminated(&termination);
    }
}

/// Updates the list and map metrics and the daemon's reattachment count.
fn observe(daemon: &mut Daemon, pipeline: &Pipeline) {
    let metrics = &pipeline.metrics;
    metrics.observe_lists(&daemon.lists);
    metrics.set_reattachments(daemon.state.reattachments);
    metrics.set_enforcing(daemon.links_attached, daemon.config.refresh_interval);
    let (v4, v6) = daemon.kernel_counts;
    metrics.observe_map("block_v4", v4, daemon.config.maps.block_v4);
    metrics.observe_map("block_v6", v6, daemon.config.maps.block_v6);
    let names = &daemon.state.names;
    metrics.set_names(names.learning, names.domains);
    metrics.observe_map("learned_v4", names.learned_v4, daemon.config.maps.learned);
    metrics.observe_map("learned_v6", names.learned_v6, daemon.config.maps.learned);
    metrics.observe_map("domains", names.domains, daemon.config.maps.domains);
    let expiries: Vec<(String, i64)> = daemon
        .config
        .exemptions
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                crate::history::store::micros(e.expires.at) / 1_000_000,
            )
        })
        .collect();
    metrics.observe_exemptions(
        &expiries,
        std::mem::take(&mut daemon.exemptions.newly_expired),
    );
}

/// The exemption ids events name, in slot order.
fn exemption_ids(daemon: &Daemon) -> Vec<String> {
    daemon
        .config
        .exemptions
        .iter()
        .map(|e| e.id.clone())
        .collect()
}
