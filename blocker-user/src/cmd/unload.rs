//! `vendorwall unload`: stop the daemon if one runs, detach and unpin everything, say what was
//! removed. The only way enforcement ends.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{cli::GlobalArgs, daemon::state, kernel::pins::PinRoot};

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    if let Some(pid) = state::running_pid(&config.run_dir) {
        println!("stopping daemon pid {pid}");
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            // A daemon that exits meanwhile is what we want; the wait below tells the rest.
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while state::running_pid(&config.run_dir).is_some() {
            if Instant::now() > deadline {
                bail!(
                    "daemon pid {pid} did not stop; stop it (systemctl stop vendorwall) and retry"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
