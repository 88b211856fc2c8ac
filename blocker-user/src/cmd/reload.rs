//! `vendorwall reload`: SIGHUP the running daemon (verified first, see `daemon::identity`) and
//! wait until it reports the reload done.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::bail;

use crate::{
    cli::GlobalArgs,
    daemon::{identity::RunningDaemon, state},
};

pub fn run(global: &GlobalArgs, args: &crate::cli::ReloadArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout);
    let config = global.config()?;
    let daemon = RunningDaemon::find(&config.run_dir)?;
    let pid = daemon.pid;
    let before = state::read_state(&config.run_dir).map_or(0, |s| s.reloads);
    // A reload already under way (a watched file changed) may finish after the signal: only
    // one that started after it answers this request.
    let signalled_ns = state::unix_ns();
    daemon.signal(rustix::process::Signal::HUP)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(now) = state::read_state(&config.run_dir)
            && now.reloads > before
            && now.last_reload_started_ns >= signalled_ns
        {
            println!(
                "reloaded: {} lists, {} kernel prefixes, {}",
                now.lists.len(),
                now.kernel_prefixes,
                now.last_sync_stats
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            for err in &now.errors {
                println!("error: {err}");
            }
            return Ok(if now.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        // Often: the state file is small, and the reply should follow the reload closely.
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("pid {pid} did not finish reloading within {timeout:?} (--timeout)")
}
