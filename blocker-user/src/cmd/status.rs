//! `vendorwall status`: what the kernel holds (read from the pins, not from the daemon) and what
//! the daemon reports. Exit status 1 when enforcement is not in place, or when the running
//! daemon is degraded (a configured list is not enforced).

use std::process::ExitCode;

use serde::Serialize;

use crate::{
    cli::{GlobalArgs, JsonArgs},
    daemon::{
        identity::RunningDaemon,
        state::{self, DaemonState},
    },
    kernel::{Counters, inspect, pins::PinRoot},
};

#[derive(Serialize)]
struct LearnedCounts {
    v4: usize,
    v6: usize,
    /// Listed names in the kernel's DOMAINS map.
    domains: usize,
}

#[derive(Serialize)]
struct Status {
    enforcing: bool,
    /// Configured lists the running daemon does not enforce (it is degraded while any).
    not_enforced: Vec<String>,
    pin_dir: String,
    generation: Option<u64>,
    links: Vec<inspect::LinkState>,
    fill: Option<inspect::Fill>,
    counters: Option<Counters>,
    /// Kernel memory of each map, bytes (fdinfo `memlock`).
    map_memory: Vec<(String, u64)>,
    /// Unexpired addresses the DNS learner holds, per family.
    learned: Option<LearnedCounts>,
    daemon_running: bool,
    daemon: Option<DaemonState>,
}

pub fn run(global: &GlobalArgs, args: &JsonArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    readable(&config.pin_dir)?;
    let root = PinRoot::existing(&config.pin_dir);
    let generation = root.as_ref().and_then(PinRoot::current);
    let dir = root
        .as_ref()
        .zip(generation)
        .map(|(root, g)| root.generation_dir(g));
    if let Some(dir) = &dir {
        readable(&dir.join(blocker_common::map_names::COUNTERS))?;
    }
    let links = dir.as_deref().map(inspect::links).unwrap_or_default();
    let daemon_running = match RunningDaemon::find(&config.run_dir) {
        Ok(_) => true,
        Err(err) if err.is_permission() => return Err(err.into()),
        Err(_) => false,
    };
    let daemon = state::read_state(&config.run_dir);
    let not_enforced = daemon
        .as_ref()
        .filter(|_| daemon_running)
        .map(|d| d.not_enforced().iter().map(|l| l.name.clone()).collect())
        .unwrap_or_default();
    let status = Status {
        enforcing: !links.is_empty() && links.iter().all(inspect::LinkState::attached),
        not_enforced,
        pin_dir: config.pin_dir.display().to_string(),
        generation,
        fill: dir.as_deref().and_then(|d| inspect::fill(d).ok()),
        counters: dir.as_deref().and_then(|d| inspect::counters(d).ok()),
        map_memory: dir.as_deref().map(inspect::memlock).unwrap_or_default(),
        learned: dir.as_deref().and_then(learned_counts),
        links,
        daemon_running,
        daemon,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_human(&status);
    }
    Ok(if status.enforcing && status.not_enforced.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reading the pins takes root: a user who may not read them hears that, instead of a wrong
/// "NOT in place" (exit 2, not 1).
fn readable(path: &std::path::Path) -> anyhow::Result<()> {
    use rustix::{
        fs::{Access, AtFlags, CWD, accessat},
        io::Errno,
    };
    match accessat(CWD, path, Access::READ_OK, AtFlags::EACCESS) {
        Err(Errno::ACCESS | Errno::PERM) => anyhow::bail!(
            "permission denied: cannot read {}: run as root",
            path.display()
        ),
        // Missing is an answer (nothing loaded), not an error.
        _ => Ok(()),
    }
}

fn print_human(s: &Status) {
    println!(
        "enforcement: {}",
        if s.enforcing {
            "in place"
        } else {
            "NOT in place"
        }
    );
    println!(
        "pinned in:   {} (generation {})",
        s.pin_dir,
        s.generation.map_or("-".into(), |g| g.to_string())
    );
    let rows: Vec<Vec<String>> = s
        .links
        .iter()
        .map(|l| {
            vec![
                l.program.to_owned(),
                if l.attached() {
                    "attached".into()
                } else {
                    "DETACHED".into()
                },
                l.kernel.map_or("-".into(), |k| k.link_id.to_string()),
                l.kernel.map_or("-".into(), |k| k.program_id.to_string()),
                l.kernel.map_or("-".into(), |k| k.cgroup_id.to_string()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        super::print_table(
            &["PROGRAM", "STATE", "LINK ID", "PROG ID", "CGROUP ID"],
            &rows,
        );
    }
    if let Some(f) = &s.fill {
        println!(
            "maps:        {} IPv4 + {} IPv6 blocked prefixes, {} + {} exceptions",
            f.block_v4, f.block_v6, f.allow_v4, f.allow_v6
        );
    }
    if !s.map_memory.is_empty() {
        let total: u64 = s.map_memory.iter().map(|(_, b)| b).sum();
        println!(
            "map memory:  {:.1} MiB in the kernel",
            total as f64 / (1024.0 * 1024.0)
        );
        // Each map's share, largest first, so an operator sees what a capacity costs.
        let mut maps = s.map_memory.clone();
        maps.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let parts: Vec<String> = maps
            .iter()
            .filter(|(_, b)| *b >= 1 << 20)
            .map(|(name, b)| format!("{name} {:.1} MiB", *b as f64 / (1024.0 * 1024.0)))
            .collect();
        if !parts.is_empty() {
            println!("             {}", parts.join(", "));
        }
    }
    if let Some(c) = &s.counters {
        println!(
            "counters:    {} checked, {} blocked, {} audited, {} events dropped, \
             {} raw sockets refused, {} egress packets dropped",
            c.checked,
            c.blocked,
            c.audited,
            c.events_dropped,
            c.raw_sockets_refused,
            c.egress_dropped
        );
    }
    if let Some(l) = &s.learned {
        println!(
            "names:       {} listed names; {} IPv4 and {} IPv6 addresses learned from their DNS answers",
            l.domains, l.v4, l.v6
        );
    }
    match (&s.daemon, s.daemon_running) {
        (Some(d), true) => {
            println!("learner:     {}", d.names.learner);
            for err in &d.names.errors {
                println!("names:       error: {err}");
            }
            if d.names.skipped_lines > 0 {
                println!(
                    "names:       {} malformed lines skipped in domain files, first: {}",
                    d.names.skipped_lines,
                    d.names.skipped.first().map_or("-", String::as_str)
                );
            }
            for e in &d.exemptions {
                let state = if e.expired { "EXPIRED" } else { "active" };
                println!(
                    "exemption:   {} {state} until {}, covering {} cgroups and {} processes",
                    e.id, e.expires, e.cgroups, e.processes
                );
            }
            println!(
                "daemon:      pid {} running since {}, heartbeat {}, cgroup {}",
                d.pid, d.started, d.heartbeat, d.cgroup
            );
            println!(
                "last sync:   {} ({})",
                d.last_sync.as_deref().unwrap_or("-"),
                d.last_sync_stats.map(|s| s.to_string()).unwrap_or_default()
            );
            for l in &d.lists {
                if !l.enforced {
                    println!(
                        "list:        {} ({}) NOT ENFORCED: {}",
                        l.name,
                        l.action,
                        l.last_error.as_deref().unwrap_or("failed to load")
                    );
                    continue;
                }
                println!(
                    "list:        {} ({}) {} entries, refreshed {}{}{}",
                    l.name,
                    l.action,
                    l.raw_entries,
                    l.last_refresh.as_deref().unwrap_or("never"),
                    if l.skipped_lines > 0 {
                        format!(", {} malformed lines skipped", l.skipped_lines)
                    } else {
                        String::new()
                    },
                    l.last_error
                        .as_deref()
                        .map(|e| format!(", error: {e}"))
                        .unwrap_or_default()
                );
            }
            if !s.not_enforced.is_empty() {
                println!(
                    "DEGRADED:    {} configured list(s) not enforced: {}",
                    s.not_enforced.len(),
                    s.not_enforced.join(", ")
                );
            }
            for err in &d.errors {
                println!("error:       {err}");
            }
            if d.reattachments > 0 {
                println!(
                    "WARNING:     links were found detached and re-attached {} times",
                    d.reattachments
                );
            }
        }
        _ => println!(
            "daemon:      not running (enforcement stays pinned; events queue in the ring buffer)"
        ),
    }
}

fn learned_counts(dir: &std::path::Path) -> Option<LearnedCounts> {
    let now = crate::events::clock::boottime_ns();
    let entries = inspect::learned(dir).ok()?;
    let live = entries.iter().filter(|e| e.expires_ns > now);
    let v4 = live.clone().filter(|e| e.addr.is_ipv4()).count();
    Some(LearnedCounts {
        v4,
        v6: live.count() - v4,
        domains: inspect::domains(dir).map(|t| t.len()).unwrap_or(0),
    })
}
