//! `vendorwall run`: validate the lists, load and fill the maps, attach, then stream events until
//! SIGINT/SIGTERM.
//!
//! Order matters for failing closed: every list is parsed and the maps are filled *before* the
//! programs are attached, so enforcement starts complete rather than filling up under traffic.

use std::{
    io::Write as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use blocker_common::{Action, SETTING_6TO4, SETTING_DRY_RUN, SETTING_NAT64, Settings};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    cgroup,
    cli::RunArgs,
    events,
    kernel::{Counters, Enforcer, MapSizes},
    lists::ListSet,
};

/// How often the daemon looks at the kernel's dropped-event counter.
const LOSS_CHECK_INTERVAL: Duration = Duration::from_secs(5);

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let files = args.lists.files().context("failed to find the lists")?;
    let lists = ListSet::load(&files, Action::Enforce).context("failed to load the lists")?;
    for warning in lists.warnings() {
        warn!("{warning}");
    }
    let cgroup_path = match &args.cgroup {
        Some(path) => path.clone(),
        None => cgroup::default_root().context("failed to find the cgroup v2 root")?,
    };
    let cgroup = cgroup::open(&cgroup_path)?;

    let desired = lists.desired();
    let sizes = MapSizes {
        block_v4: args.max_v4,
        block_v6: args.max_v6,
        ..MapSizes::default()
    };
    // aya-log level 4 is `debug`; 0 turns the kernel-side log statements into no-ops.
    let log_level = if args.verbose { 4 } else { 0 };
    let mut enforcer = Enforcer::load(sizes, log_level).context("failed to load the programs")?;
    enforcer
        .set_settings(settings(args))
        .context("failed to write settings")?;
    let stats = enforcer
        .fill(&desired)
        .context("failed to fill the block maps")?;
    enforcer
        .attach(&cgroup)
        .with_context(|| format!("failed to attach to {}", cgroup_path.display()))?;

    let status = format!(
        "enforcing {} IPv4 and {} IPv6 prefixes from {} lists on {}{}",
        stats.v4,
        stats.v6,
        lists.lists().len(),
        cgroup_path.display(),
        if args.dry_run {
            " (dry run: audit only)"
        } else {
            ""
        }
    );
    info!("{status}");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(serve(enforcer, &lists))?;
    Ok(ExitCode::SUCCESS)
}

fn settings(args: &RunArgs) -> Settings {
    let mut flags = 0;
    if args.nat64 {
        flags |= SETTING_NAT64;
    }
    if args.six_to_four {
        flags |= SETTING_6TO4;
    }
    if args.dry_run {
        flags |= SETTING_DRY_RUN;
    }
    Settings { flags, _pad: 0 }
}

/// Streams events and kernel log records until a termination signal arrives.
async fn serve(mut enforcer: Enforcer, lists: &ListSet) -> anyhow::Result<()> {
    let ring = enforcer
        .take_events()
        .context("failed to open the event ring buffer")?;
    let mut ring = readable(ring).context("failed to poll the event ring buffer")?;
    let mut logger = match enforcer.logger() {
        Ok(logger) => Some(readable(logger).context("failed to poll the kernel log")?),
        // The object compiled without log statements has no log map; nothing to forward.
        Err(err) => {
            tracing::debug!("kernel log forwarding off: {err}");
            None
        }
    };
    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch SIGINT")?;
    let mut loss_check = tokio::time::interval(LOSS_CHECK_INTERVAL);
    let mut last = Counters::default();
    let started = Instant::now();

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("event ring buffer poll failed")?;
                drain(guard.get_inner_mut(), lists)?;
                guard.clear_ready();
            }
            guard = async { logger.as_mut()?.readable_mut().await.ok() }, if logger.is_some() => {
                if let Some(mut guard) = guard {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            }
            _ = loss_check.tick() => {
                let now = enforcer.counters().context("failed to read counters")?;
                if now.events_dropped > last.events_dropped {
                    warn!(
                        "{} events lost because the ring buffer was full ({} since start)",
                        now.events_dropped - last.events_dropped,
                        now.events_dropped
                    );
                }
                last = now;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    // Deliver what the kernel wrote before the signal.
    drain(ring.get_mut(), lists)?;
    let totals = enforcer.counters().context("failed to read counters")?;
    info!(
        "stopping after {:?}: {} checked, {} blocked, {} audited, {} events dropped; \
         enforcement ends with this process",
        started.elapsed(),
        totals.checked,
        totals.blocked,
        totals.audited,
        totals.events_dropped
    );
    Ok(())
}

/// Registers an fd-owning object with the runtime for readability.
fn readable<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` (aya's RingBuf or EbpfLogger) owns its map fd for its whole lifetime and
    // always returns that same fd, and the AsyncFd owns `inner`.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|err| err.into_parts().1)
}

/// Writes every pending event as a JSON line on stdout.
fn drain(ring: &mut RingBuf<MapData>, lists: &ListSet) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while let Some(item) = ring.next() {
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
    Ok(())
}

/// Tells systemd (or a test's NOTIFY_SOCKET) about our state; a missing socket is not an error.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!("sd_notify failed: {err}");
    }
}
