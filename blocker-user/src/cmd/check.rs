//! `vendorwall check ADDR`: which list, vendor, prefix and source line would refuse an address,
//! and what the pinned kernel maps answer when vendorwall is loaded.

use std::{net::IpAddr, process::ExitCode};

use anyhow::Context as _;
use blocker_common::Action;
use serde::Serialize;

use crate::{
    cli::{CheckArgs, GlobalArgs},
    kernel::{inspect, pins::PinRoot},
    lists::{ListSet, selection},
};

#[derive(Serialize)]
struct Verdict<'a> {
    addr: String,
    blocked: bool,
    list: Option<&'a str>,
    vendor: Option<&'a str>,
    action: Option<String>,
    prefix: Option<String>,
    source: Option<String>,
    /// The pinned kernel maps' answer: the list id matched, `null` when not loaded.
    kernel: Option<KernelAnswer>,
}

#[derive(Serialize)]
struct KernelAnswer {
    blocked: bool,
    list_id: Option<u16>,
    /// The list that id names in the configuration read here.
    list: Option<String>,
    action: Option<&'static str>,
}

pub fn run(global: &GlobalArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = global.config()?;
    if let Some(dir) = &args.lists.blocklists {
        config.blocklists_dir = dir.clone();
    }
    let specs = selection::specs(&config, &args.lists).context("failed to select the lists")?;
    let (lists, errors) = ListSet::load(
        &specs,
        &selection::fetcher(&config),
        &selection::guards(&config),
    )
    .context("failed to load the lists")?;
    // The answer covers the lists that loaded; say which did not, on stderr.
    for err in &errors {
        eprintln!("vendorwall: warning: {}", crate::lists::error_chain(err));
    }
    let matched = lists.lookup(args.addr);
    let kernel = PinRoot::existing(&config.pin_dir)
        .and_then(|root| Some(root.generation_dir(root.current()?)))
        .map(|dir| kernel_answer(&dir, args.addr, &lists));
    let verdict = Verdict {
        addr: args.addr.to_string(),
        blocked: matched.is_some(),
        list: matched.map(|m| m.list.spec.name.as_str()),
        vendor: matched.and_then(|m| m.list.spec.vendor.as_deref()),
        action: matched.map(|m| format!("{:?}", m.list.spec.action).to_lowercase()),
        prefix: matched.map(|m| m.prefix().to_string()),
        source: matched.map(|m| m.source()),
        kernel,
    };
    if args.json {
        println!("{}", serde_json::to_string(&verdict)?);
    } else {
        match matched {
            Some(m) => println!(
                "{} is blocked by list {}{}: {} ({}){}",
                args.addr,
                m.list.spec.name,
                m.list
                    .spec
                    .vendor
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default(),
                m.prefix(),
                m.source(),
                if verdict.action.as_deref() == Some("audit") {
                    " [audit only]"
                } else {
                    ""
                }
            ),
            None => println!(
                "{} is not blocked ({} lists checked)",
                args.addr,
                lists.lists().len()
            ),
        }
        if let Some(k) = &verdict.kernel {
            println!(
                "kernel: {}",
                if k.blocked {
                    format!(
                        "matches list id {} ({})",
                        k.list_id.unwrap_or(0),
                        k.action.unwrap_or("?")
                    )
                } else {
                    "no match in the pinned maps".to_owned()
                }
            );
        }
    }
    Ok(if matched.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Longest-prefix lookup in the pinned tries: the kernel's own answer.
fn kernel_answer(dir: &std::path::Path, addr: IpAddr, lists: &ListSet) -> KernelAnswer {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let value = match addr {
        IpAddr::V4(v4) => inspect::block_v4(dir, v4.octets()),
        IpAddr::V6(v6) => inspect::block_v6(dir, v6.octets()),
    }
    .ok()
    .flatten();
    KernelAnswer {
        blocked: value.is_some(),
        list_id: value.map(|v| v.list_id),
        list: value
            .and_then(|v| lists.by_id(v.list_id))
            .map(|l| l.spec.name.clone()),
        action: value.map(|v| match Action::from_u8(v.action) {
            Some(Action::Audit) => "audit",
            _ => "enforce",
        }),
    }
}
