//! `vendorwall lists`: per list, its sources, action, raw and aggregated entries, last refresh
//! and last error, as the running daemon reports them (or loaded here when none runs).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    cli::{GlobalArgs, JsonArgs, ListArgs},
    daemon::{
        identity::RunningDaemon,
        state::{self, ListState},
    },
    lists::{ListSet, selection},
};

pub fn run(global: &GlobalArgs, args: &JsonArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    let running = match RunningDaemon::find(&config.run_dir) {
        Ok(_) => state::read_state(&config.run_dir),
        Err(err) if err.is_permission() => return Err(err.into()),
        Err(_) => None,
    };
    let (origin, lists) = match running {
        Some(daemon) => (format!("daemon pid {}", daemon.pid), daemon.lists),
        None => (
            "loaded now; no daemon is running".to_owned(),
            load_here(&config)?,
        ),
    };
    if args.json {
        for list in &lists {
            println!("{}", serde_json::to_string(list)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = lists
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.action.clone(),
                if l.enforced { "yes" } else { "NO" }.to_owned(),
                l.raw_entries.to_string(),
                l.aggregated_entries.to_string(),
                l.skipped_lines.to_string(),
                l.last_refresh.clone().unwrap_or_else(|| "-".into()),
                l.last_error.clone().unwrap_or_else(|| "-".into()),
                l.sources.join(", "),
            ]
        })
        .collect();
    super::print_table(
        &[
            "LIST",
            "ACTION",
            "ENFORCED",
            "ENTRIES",
            "AGGREGATED",
            "SKIPPED LINES",
            "LAST REFRESH",
            "LAST ERROR",
            "SOURCES",
        ],
        &rows,
    );
    println!("({origin})");
    Ok(ExitCode::SUCCESS)
}

fn load_here(config: &crate::config::Config) -> anyhow::Result<Vec<ListState>> {
    let no_files = ListArgs {
        lists: Vec::new(),
        blocklists: None,
        strict: false,
    };
    let specs = selection::specs(config, &no_files)?;
    let (set, _errors) = ListSet::load(
        &specs,
        &selection::fetcher(config),
        &selection::guards(config),
    )
    .context("failed to load the lists")?;
    // Failed lists are rows of their own, with their error.
    Ok(ListState::all(&set))
}
