//! `vendorwall run`: start the daemon and drive it: events, kernel log, signals, refresh timer,
//! list-file watch, integrity check, systemd notifications. Exiting (for any reason) leaves the
//! pinned enforcement in place.

use std::{io::Write as _, process::ExitCode, time::Duration};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    cli::{GlobalArgs, RunArgs},
    daemon::{self, Daemon},
    events,
    kernel::Counters,
    lists::ListSet,
    selection, state,
};

/// How often list files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Events handled per wake-up: under a flood the ring never empties, and an unbounded drain
/// would starve signals, reloads and the integrity check.
const DRAIN_BATCH: usize = 4096;
/// How often the state file's heartbeat is refreshed and lost events are checked.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = daemon::effective_config(global, args)?;
    let specs = selection::specs(&config, &args.lists).context("failed to select the lists")?;
    let run_dir = config.run_dir.clone();
    let mut daemon = Daemon::start(config, specs, args.verbose)?;
    let pid_file = state::write_pid(&run_dir)
        .with_context(|| format!("failed to write the pid file in {}", run_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(serve(&mut daemon, global, args));
    let _ = std::fs::remove_file(pid_file);
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

async fn serve(daemon: &mut Daemon, global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<()> {
    let mut streams = Streams::open(daemon)?;
    // Events the kernel queued while no daemon was reading (the ring buffer is pinned).
    drain(streams.ring.get_mut(), &daemon.lists, usize::MAX)?;

    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("failed to watch SIGHUP")?;
    // READY only now: before the handlers exist, a SIGHUP (systemctl reload) would kill us.
    let status = daemon.status_line();
    info!("{status}");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    let mut refresh = tokio::time::interval(daemon.config.refresh_interval);
    refresh.tick().await; // the first tick is immediate; the lists were just loaded
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let mut integrity = tokio::time::interval(daemon.config.integrity_check_interval);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    let watchdog_period = daemon::watchdog_period();
    let mut watchdog = tokio::time::interval(watchdog_period.unwrap_or(Duration::from_secs(3600)));
    let mut last = daemon.enforcer.counters().unwrap_or_default();

    loop {
        let mut new_generation = false;
        tokio::select! {
            guard = streams.ring.readable_mut() => {
                let mut guard = guard.context("event ring buffer poll failed")?;
                // Leave readiness set when the batch filled up: the next turn comes back here,
                // after select! has given the other branches their chance.
                if drain(guard.get_inner_mut(), &daemon.lists, DRAIN_BATCH)? < DRAIN_BATCH {
                    guard.clear_ready();
                }
            }
            guard = async { streams.logger.as_mut()?.readable_mut().await.ok() }, if streams.logger.is_some() => {
                if let Some(mut guard) = guard {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            }
            _ = sighup.recv() => {
                new_generation = reload(daemon, "SIGHUP", Some((global, args)));
            }
            _ = refresh.tick() => {
                new_generation = reload(daemon, "refresh interval", None);
            }
            _ = watch.tick() => {
                if daemon.lists_changed() {
                    new_generation = reload(daemon, "list file changed", None);
                }
            }
            _ = integrity.tick() => {
                new_generation = daemon.check_integrity();
            }
            _ = watchdog.tick(), if watchdog_period.is_some() => {
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
            _ = heartbeat.tick() => {
                daemon.write_state();
                let now = daemon.enforcer.counters().unwrap_or(last);
                if now.events_dropped > last.events_dropped {
                    warn!(
                        "{} events lost because the ring buffer was full ({} in total)",
                        now.events_dropped - last.events_dropped,
                        now.events_dropped
                    );
                }
                last = now;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        if new_generation {
            // The old ring may be a different map after a migration: deliver what it holds,
            // then read the new generation's.
            drain(streams.ring.get_mut(), &daemon.lists, usize::MAX)?;
            streams = Streams::open(daemon)?;
        }
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    drain(streams.ring.get_mut(), &daemon.lists, usize::MAX)?;
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

/// Reloads, telling systemd; `from_args` re-reads the config file too (SIGHUP).
fn reload(daemon: &mut Daemon, reason: &str, from_args: Option<(&GlobalArgs, &RunArgs)>) -> bool {
    info!("reloading ({reason})");
    notify(&[
        sd_notify::NotifyState::Reloading,
        sd_notify::NotifyState::monotonic_usec_now()
            .unwrap_or(sd_notify::NotifyState::Status("reloading")),
    ]);
    let (config, specs) = match from_args {
        Some((global, args)) => {
            let config = daemon::effective_config(global, args);
            let specs = config
                .as_ref()
                .ok()
                .map(|c| selection::specs(c, &args.lists).map_err(anyhow::Error::from));
            (Some(config), specs)
        }
        None => (None, None),
    };
    let new_generation = daemon.reload(config, specs);
    let status = daemon.status_line();
    info!("{status}");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    new_generation
}

/// Writes up to `max` pending events as JSON lines on stdout; returns how many it read.
fn drain(ring: &mut RingBuf<MapData>, lists: &ListSet, max: usize) -> anyhow::Result<usize> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut read = 0;
    while read < max
        && let Some(item) = ring.next()
    {
        read += 1;
        let Some(event) = events::decode(&item) else {
            warn!("ignoring a short event record ({} bytes)", item.len());
            continue;
        };
        let record = events::describe(&event, lists);
        serde_json::to_writer(&mut out, &record).context("failed to encode an event")?;
        out.write_all(b"\n").context("failed to write an event")?;
    }
    // One flush per batch: consumers (journald, pipes) see events promptly.
    out.flush().context("failed to flush events")?;
    Ok(read)
}

/// Tells systemd (or a test's NOTIFY_SOCKET) about our state; a missing socket is not an error.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!("sd_notify failed: {err}");
    }
}
