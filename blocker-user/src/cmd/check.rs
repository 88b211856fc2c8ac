//! `vendorwall check ADDR`: which list, prefix and source line would refuse an address.

use std::process::ExitCode;

use anyhow::Context as _;
use blocker_common::Action;
use serde::Serialize;

use crate::{cli::CheckArgs, lists::ListSet};

#[derive(Serialize)]
struct Verdict<'a> {
    addr: String,
    blocked: bool,
    list: Option<&'a str>,
    prefix: Option<String>,
    source: Option<String>,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let files = args.lists.files().context("failed to find the lists")?;
    let lists = ListSet::load(&files, Action::Enforce).context("failed to load the lists")?;
    let matched = lists.lookup(args.addr);
    let verdict = Verdict {
        addr: args.addr.to_string(),
        blocked: matched.is_some(),
        list: matched.map(|m| m.list.name.as_str()),
        prefix: matched.map(|m| m.prefix.to_string()),
        source: matched.map(|m| m.source()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&verdict)?);
    } else if let Some(m) = matched {
        println!(
            "{} is blocked by list {}: {} ({})",
            args.addr,
            m.list.name,
            m.prefix,
            m.source()
        );
    } else {
        println!(
            "{} is not blocked ({} lists checked)",
            args.addr,
            lists.lists().len()
        );
    }
    Ok(if matched.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
