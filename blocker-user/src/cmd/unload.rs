//! `vendorwall unload`: stop the daemon if one runs, detach and unpin everything, say what was
//! removed. The only way enforcement ends.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    cli::GlobalArgs,
    daemon::{
        identity::{DaemonError, RunningDaemon},
        state,
    },
    kernel::pins::PinRoot,
};

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    match RunningDaemon::find(&config.run_dir) {
        Ok(daemon) => stop(&daemon)?,
        // Signalling nothing is better than signalling a stranger: a stale pid file is only
        // reported, and the pins are removed all the same.
        Err(err) if err.is_permission() => return Err(err.into()),
        Err(DaemonError::NoPidFile(_)) => {}
        Err(err) => println!("{err}"),
    }
    let Some(root) = PinRoot::existing(&config.pin_dir) else {
        println!(
            "nothing pinned in {}: vendorwall is not loaded",
            config.pin_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let removed = root
        .remove_all()
        .with_context(|| format!("failed to unpin {}", config.pin_dir.display()))?;
    for path in &removed {
        println!("removed {}", path.display());
    }
    println!(
        "unloaded: {} pins removed from {}; nothing is enforced any more",
        removed.len(),
        config.pin_dir.display()
    );
    let _ = std::fs::remove_file(config.run_dir.join(state::STATE_FILE));
    Ok(ExitCode::SUCCESS)
}

/// Stops the daemon (SIGTERM through its pidfd) and waits for it to exit.
fn stop(daemon: &RunningDaemon) -> anyhow::Result<()> {
    let pid = daemon.pid;
    println!("stopping daemon pid {pid}");
    daemon.signal(rustix::process::Signal::TERM)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.exited() {
        if Instant::now() > deadline {
            bail!("daemon pid {pid} did not stop; stop it (systemctl stop vendorwall) and retry");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
