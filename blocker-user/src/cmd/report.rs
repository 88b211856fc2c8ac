//! `vendorwall report`: the compliance report from the history.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    cli::{GlobalArgs, ReportArgs, ReportFormat},
    report::{data::Inputs, gather, html, text},
};

pub fn run(global: &GlobalArgs, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    let since = super::events::parse_since(&args.since)?;
    let Some(store) = super::open_history(&config)? else {
        anyhow::bail!(
            "no event history at {} (is `[history] enabled` and has the daemon run?)",
            config.history.path_in(&config.cache_dir).display()
        );
    };
    // Without the manifests the report lacks data dates and the scan, but the history is
    // still worth reporting: said on stderr, not fatal.
    let manifests = super::manifests(&config).unwrap_or_else(|err| {
        eprintln!("vendorwall: warning: {err:#}; the report has no data dates and no scan");
        Vec::new()
    });
    let state = crate::daemon::state::read_state(&config.run_dir);
    let findings = crate::software::scan(&manifests, std::path::Path::new("/"));
    let report = gather(
        &config,
        Inputs {
            store: &store,
            since,
            state: state.as_ref(),
            manifests: &manifests,
            findings,
        },
    )?;
    let body = match args.format {
        ReportFormat::Text => text::render(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Html => html::render(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, body)
            .with_context(|| format!("failed to write the report to {}", path.display()))?,
        None => print!("{body}"),
    }
    Ok(ExitCode::SUCCESS)
}
