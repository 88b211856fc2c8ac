//! `vendorwall check ADDR...`: what the kernel programs would do with a connection to each
//! address (the shared `verdict`), which list, vendor, prefix and source line decide it, and
//! what the pinned kernel maps answer when vendorwall is loaded.

use std::{collections::HashMap, net::IpAddr, process::ExitCode};

use anyhow::Context as _;
use blocker_common::Action;
use serde::Serialize;

use crate::{
    cli::{CheckArgs, GlobalArgs},
    config::Config,
    daemon::exempt,
    kernel::{cgroup, inspect, learned::LearnedEntry, pins::PinRoot, shadow::Shadow},
    lists::{ListSet, selection},
    names::{Domain, DomainSet},
    verdict::{Policy, Translations, Verdict, lookup_order},
};

#[derive(Serialize)]
struct Answer<'a> {
    addr: String,
    /// `blocked`, `audited`, `excepted`, `exempt` or `allowed`.
    verdict: &'static str,
    /// True when the connection is refused.
    blocked: bool,
    list: Option<&'a str>,
    vendor: Option<&'a str>,
    /// The action after dry run.
    action: Option<&'static str>,
    /// The address looked up (the embedded IPv4 address of an IPv6 form).
    looked_up: Option<String>,
    /// The list entry holding it, and where it came from.
    prefix: Option<String>,
    source: Option<String>,
    /// The kernel prefix (lists are aggregated) that matches.
    kernel_prefix: Option<String>,
    /// When the address was learned from a DNS answer: the listed name, and when.
    domain: Option<String>,
    learned_at: Option<String>,
    /// The pinned kernel maps' answer: the list id matched, `null` when not loaded.
    kernel: Option<KernelAnswer>,
}

/// The answer for a domain name.
#[derive(Serialize)]
struct NameAnswer {
    name: String,
    /// True when a listed name covers it (its answers are learned and blocked or audited).
    listed: bool,
    /// The listed name covering it, and where it is listed.
    domain: Option<String>,
    list: Option<String>,
    action: Option<&'static str>,
    source: Option<String>,
    /// Unexpired addresses the kernel learned for that listed name.
    learned: Vec<String>,
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
    let cgroup_id = match &args.cgroup {
        Some(path) => Some(
            cgroup::id(path)
                .with_context(|| format!("cannot read the cgroup {} (--cgroup)", path.display()))?,
        ),
        None => None,
    };
    let block = Shadow::of(&lists.kernel_set());
    let exempt_ids = exempt::resolve(&config.exempt);
    let generation_dir = PinRoot::existing(&config.pin_dir)
        .and_then(|root| Some(root.generation_dir(root.current()?)));
    let now = crate::events::clock::boottime_ns();
    let pinned_learned: Vec<LearnedEntry> = generation_dir
        .as_deref()
        .and_then(|dir| inspect::learned(dir).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.expires_ns > now)
        .collect();
    let learned: HashMap<IpAddr, LearnedEntry> =
        pinned_learned.iter().map(|e| (e.addr, *e)).collect();
    let table = generation_dir
        .as_deref()
        .and_then(|dir| inspect::domains(dir).ok())
        .unwrap_or_default();
    let policy = Policy::new(&block, &config, &exempt_ids).with_learned(&learned);
    let mut all_listed = true;
    let mut names: Option<DomainSet> = None;
    for target in &args.addrs {
        let Ok(addr) = target.parse::<IpAddr>() else {
            let names = names.get_or_insert_with(|| {
                DomainSet::load(&specs, &selection::fetcher(&config), &DomainSet::default()).0
            });
            let answer = name_answer(target, names, &table, &pinned_learned)?;
            all_listed &= answer.listed;
            if args.json {
                println!("{}", serde_json::to_string(&answer)?);
            } else {
                print_name(&answer);
            }
            continue;
        };
        let verdict = policy.decide(addr, cgroup_id);
        all_listed &= matches!(verdict, Verdict::Listed(_));
        let kernel = generation_dir
            .as_deref()
            .map(|dir| kernel_answer(dir, addr, &config, &lists));
        let mut answer = answer(addr, verdict, &lists, kernel);
        if let Some(listed) = verdict.listed().filter(|l| l.domain_id != 0) {
            answer.domain = Some(
                table
                    .get(&listed.domain_id)
                    .map_or_else(|| format!("#{}", listed.domain_id), |(d, _)| d.to_string()),
            );
            answer.learned_at = learned
                .get(&listed.looked_up)
                .map(|e| crate::events::clock::rfc3339(e.learned_ns));
            answer.prefix = None;
            answer.source = None;
        }
        if args.json {
            println!("{}", serde_json::to_string(&answer)?);
        } else {
            print_sentence(&answer, &config, lists.lists().len());
        }
    }
    Ok(if all_listed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn name_answer(
    name: &str,
    names: &DomainSet,
    table: &crate::kernel::domains::DomainTable,
    learned: &[LearnedEntry],
) -> anyhow::Result<NameAnswer> {
    // Validated as a listed name would be, so a typo is an error, not "not listed".
    Domain::parse(name).with_context(|| format!("{name:?} is neither an address nor a name"))?;
    let entry = names.covering(name);
    let id = entry.and_then(|e| {
        table
            .iter()
            .find(|(_, (d, _))| *d == e.domain)
            .map(|(id, _)| *id)
    });
    let mut addrs: Vec<String> = learned
        .iter()
        .filter(|l| Some(l.domain_id) == id)
        .map(|l| l.addr.to_string())
        .collect();
    addrs.sort();
    Ok(NameAnswer {
        name: name.to_owned(),
        listed: entry.is_some(),
        domain: entry.map(|e| e.domain.to_string()),
        list: entry.map(|e| e.list.clone()),
        action: entry.map(|e| match e.action {
            crate::config::ListAction::Enforce => "enforce",
            crate::config::ListAction::Audit => "audit",
        }),
        source: entry.map(|e| e.source.clone()),
        learned: addrs,
    })
}

fn print_name(a: &NameAnswer) {
    match (&a.domain, &a.list) {
        (Some(domain), Some(list)) => {
            println!(
                "{} is listed as {domain} in list {list} ({}, {}); its DNS answers are learned",
                a.name,
                a.action.unwrap_or("?"),
                a.source.as_deref().unwrap_or("?")
            );
            if a.learned.is_empty() {
                println!("no address learned for {domain} yet");
            } else {
                println!("learned for {domain}: {}", a.learned.join(", "));
            }
        }
        _ => println!("{} is not a listed name", a.name),
    }
}

fn answer<'a>(
    addr: IpAddr,
    verdict: Verdict,
    lists: &'a ListSet,
    kernel: Option<KernelAnswer>,
) -> Answer<'a> {
    let listed = verdict.listed();
    let list = listed.and_then(|l| lists.by_id(l.list_id));
    let entry = listed.and_then(|l| lists.entry(l.list_id, l.looked_up));
    Answer {
        addr: addr.to_string(),
        verdict: verdict.word(),
        blocked: verdict.refused(),
        list: list.map(|l| l.spec.name.as_str()),
        vendor: list.and_then(|l| l.spec.vendor.as_deref()),
        action: listed.map(|l| action_word(l.action)),
        looked_up: listed.map(|l| l.looked_up.to_string()),
        prefix: entry.map(|m| m.prefix().to_string()),
        source: entry.map(|m| m.source()),
        kernel_prefix: listed.map(|l| l.prefix.to_string()),
        domain: None,
        learned_at: None,
        kernel,
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Enforce => "enforce",
        Action::Audit => "audit",
        Action::Exempted => "exempted",
    }
}

fn print_sentence(a: &Answer<'_>, config: &Config, list_count: usize) {
    let by = || {
        if let Some(domain) = &a.domain {
            return format!(
                "list {}{}: learned from a DNS answer for {domain} at {}",
                a.list.unwrap_or("?"),
                a.vendor.map(|v| format!(" ({v})")).unwrap_or_default(),
                a.learned_at.as_deref().unwrap_or("?")
            );
        }
        format!(
            "list {}{}: {} ({})",
            a.list.unwrap_or("?"),
            a.vendor.map(|v| format!(" ({v})")).unwrap_or_default(),
            a.prefix.as_deref().unwrap_or("?"),
            a.source.as_deref().unwrap_or("?"),
        )
    };
    let via = match &a.looked_up {
        Some(v4) if *v4 != a.addr => format!(" (as {v4})"),
        _ => String::new(),
    };
    match a.verdict {
        "blocked" => println!("{}{via} is blocked by {}", a.addr, by()),
        "audited" => println!(
            "{}{via} is audited, not blocked, by {}{}",
            a.addr,
            by(),
            if config.dry_run {
                " [dry run]"
            } else {
                " [audit only]"
            }
        ),
        "excepted" => println!(
            "{}{via} is allowed by an exception; it is listed in {}",
            a.addr,
            by()
        ),
        "exempt" => println!(
            "{}{via} is allowed from this cgroup (exempt); it is listed in {}",
            a.addr,
            by()
        ),
        _ => println!("{} is not blocked ({list_count} lists checked)", a.addr),
    }
    if let Some(k) = &a.kernel {
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

/// The pinned maps' own answer, looked up in the kernel's order (embedded IPv4 first).
fn kernel_answer(
    dir: &std::path::Path,
    addr: IpAddr,
    config: &Config,
    lists: &ListSet,
) -> KernelAnswer {
    let value = lookup_order(addr, Translations::of(config))
        .into_iter()
        .flatten()
        .find_map(|addr| {
            match addr {
                IpAddr::V4(v4) => inspect::block_v4(dir, v4.octets()),
                IpAddr::V6(v6) => inspect::block_v6(dir, v6.octets()),
            }
            .ok()
            .flatten()
        });
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
