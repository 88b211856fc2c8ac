//! One module per subcommand, each exposing `run`.
pub mod check;
pub mod events;
pub mod exemptions;
pub mod lists;
pub mod manpage;
pub mod reload;
pub mod report;
pub mod run;
pub mod scan;
pub mod status;
pub mod unload;

/// Prints `rows` as an aligned table under `header`.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row.iter().cloned());
    }
    println!("{table}");
}

/// The durable history of `config`, opened for reading; `None` when it is off or empty.
pub fn open_history(
    config: &crate::config::Config,
) -> anyhow::Result<Option<crate::history::Store>> {
    if !config.history.enabled {
        return Ok(None);
    }
    let path = config.history.path_in(&config.cache_dir);
    crate::history::Store::open_read_only(&path).map_err(|err| match err {
        crate::history::StoreError::PermissionDenied { .. } => anyhow::anyhow!(err),
        other => anyhow::anyhow!(other)
            .context(format!("cannot read the event history {}", path.display())),
    })
}

/// The manifests in the config's blocklists directory.
pub fn manifests(
    config: &crate::config::Config,
) -> anyhow::Result<Vec<(std::path::PathBuf, crate::lists::manifest::Manifest)>> {
    use anyhow::Context as _;
    crate::lists::manifest::Manifest::all(&config.blocklists_dir).with_context(|| {
        format!(
            "cannot read the vendor manifests in {}",
            config.blocklists_dir.display()
        )
    })
}
