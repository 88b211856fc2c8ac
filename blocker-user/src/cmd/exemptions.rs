//! `vendorwall exemptions`: each justified exemption, what it covers, its time left and uses.

use std::{collections::HashMap, process::ExitCode, time::SystemTime};

use serde::Serialize;

use crate::{
    cli::{GlobalArgs, JsonArgs},
    history::Filter,
};

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    exemption: &'a crate::exemptions::Exemption,
    /// RFC 3339.
    expires_at: String,
    /// Seconds left (0 once expired).
    seconds_left: u64,
    expired: bool,
    /// What the running daemon found it covering at its last check.
    cgroups: Option<usize>,
    processes: Option<usize>,
    /// Attempts it let through, from the history.
    uses: Option<u64>,
}

pub fn run(global: &GlobalArgs, args: &JsonArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    let state = crate::daemon::state::read_state(&config.run_dir);
    let covered: HashMap<&str, (usize, usize)> = state
        .as_ref()
        .map(|s| {
            s.exemptions
                .iter()
                .map(|e| (e.id.as_str(), (e.cgroups, e.processes)))
                .collect()
        })
        .unwrap_or_default();
    let uses: Option<HashMap<String, u64>> = super::open_history(&config)?
        .map(|store| store.totals(&Filter::default(), &["exemption"]))
        .transpose()?
        .map(|rows| {
            rows.into_iter()
                .filter_map(|(k, n)| k.into_iter().next().map(|k| (k, n)))
                .collect()
        });
    let now = SystemTime::now();
    let rows: Vec<Row<'_>> = config
        .exemptions
        .iter()
        .map(|e| {
            let left = e.expires.at.duration_since(now).unwrap_or_default();
            let cover = covered.get(e.id.as_str());
            Row {
                exemption: e,
                expires_at: crate::daemon::state::rfc3339(e.expires.at),
                seconds_left: left.as_secs(),
                expired: e.expires.passed(now),
                cgroups: cover.map(|c| c.0),
                processes: cover.map(|c| c.1),
                uses: uses.as_ref().map(|u| u.get(&e.id).copied().unwrap_or(0)),
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no exemptions configured");
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let e = r.exemption;
                let scope: Vec<String> = e
                    .units
                    .iter()
                    .cloned()
                    .chain(e.cgroups.iter().map(|c| c.display().to_string()))
                    .chain(e.executables.iter().map(|x| x.display().to_string()))
                    .collect();
                let left = if r.expired {
                    "EXPIRED".to_owned()
                } else {
                    humantime::format_duration(std::time::Duration::from_secs(r.seconds_left))
                        .to_string()
                };
                let opt = |v: Option<usize>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
                vec![
                    e.id.clone(),
                    scope.join(","),
                    if e.lists.is_empty() {
                        "all".to_owned()
                    } else {
                        e.lists.join(",")
                    },
                    r.expires_at.clone(),
                    left,
                    format!("{}/{}", opt(r.cgroups), opt(r.processes)),
                    r.uses.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    e.reason.clone(),
                ]
            })
            .collect();
        super::print_table(
            &[
                "ID",
                "SCOPE",
                "LISTS",
                "EXPIRES",
                "LEFT",
                "CGROUPS/PROCS",
                "USES",
                "REASON",
            ],
            &table,
        );
    }
    Ok(if rows.iter().any(|r| r.expired) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
