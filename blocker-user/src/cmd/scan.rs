//! `vendorwall scan`: the listed vendors' software on this host.

use std::process::ExitCode;

use crate::cli::{GlobalArgs, ScanArgs};

pub fn run(global: &GlobalArgs, args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    let manifests = super::manifests(&config)?;
    let findings = crate::software::scan(&manifests, &args.root);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else if findings.is_empty() {
        let with_software = manifests
            .iter()
            .filter(|(_, m)| m.software.is_some())
            .count();
        println!(
            "no vendor software found ({with_software} manifests with a [software] section, \
             root {})",
            args.root.display()
        );
    } else {
        let rows: Vec<Vec<String>> = findings
            .iter()
            .map(|f| {
                vec![
                    f.vendor.clone(),
                    f.kind.to_owned(),
                    f.name.clone(),
                    f.detail.clone(),
                ]
            })
            .collect();
        super::print_table(&["VENDOR", "KIND", "NAME", "DETAIL"], &rows);
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
