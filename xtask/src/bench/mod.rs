//! `cargo xtask bench`: vendorwall measured side by side with no filter, nftables and
//! iptables+ipset, in one run, written to docs/BENCHMARKS.md.
//!
//! Rules kept: everything attaches only to a cgroup the bench creates, every peer rule matches
//! only the bench uid's traffic, all of it is removed afterwards (guards, also on failure), and
//! the only destinations are loopback addresses.

mod ab;
mod bpf_stats;
mod cgroup;
mod firewalls;
mod formats;
mod ipv6;
mod names;
mod prefixes;
mod probe;
mod report;
mod throughput;
mod vendorwall;

use std::net::TcpListener;

use anyhow::{Context as _, bail};

use crate::{bootstrap, shell};
use bpf_stats::BpfStats;
use cgroup::BenchCgroup;
use firewalls::{Ipset, Nft};
use probe::{Acceptor, Probe, ProbeCopy};
use report::{Load, Report, Row};
use throughput::event_throughput;
use vendorwall::Vendorwall;

#[derive(clap::Args)]
pub struct Args {
    /// Smaller sets (1k, 10k, 100k) and fewer runs: a couple of minutes.
    #[arg(long)]
    pub quick: bool,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Operations per run.
    #[arg(long, default_value_t = 10_000)]
    pub ops: u32,
}

/// 1% reloads measured at the largest size; the report gives the median and the range (one
/// reload is a single sample of a machine that is shared).
const RELOAD_ROUNDS: usize = 5;

/// The CPU both probes of an A/B comparison run on: the same core for both sides.
const AB_CPU: usize = 1;

/// Burst pairs per A/B comparison (a few tens of milliseconds a burst).
pub(super) fn ab_pairs(runs: usize) -> usize {
    (runs * 14).max(40)
}

/// The three operations measured per configuration.
const KINDS: [&str; 3] = ["tcp", "tcp-closed", "udp"];

pub fn run(args: &Args) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench loads BPF programs and firewall rules: run as root");
    }
    bootstrap::ensure()?;
    ensure_packages()?;
    shell::run(shell::cargo().args([
        "build",
        "--release",
        "--package",
        "blocker-user",
        "--package",
        "vendorwall-e2e",
        "--bin",
        "vendorwall",
        "--bin",
        "vw-probe",
        "--example",
        "parse_speed",
    ]))?;
    let root = shell::workspace_root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let sizes: &[usize] = if args.quick {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    let runs = if args.quick {
        args.runs.min(3)
    } else {
        args.runs
    };

    let cgroup = BenchCgroup::new()?;
    let acceptor = Acceptor::start()?;
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let targets = [
        format!("127.0.0.1:{}", acceptor.port),
        format!("127.0.0.1:{closed_port}"),
        "127.0.0.1:9".to_owned(),
    ];
    let probe_copy = ProbeCopy::new(&root.join("target/release/vw-probe"))?;
    let probe = Probe {
        bin: probe_copy.bin.clone(),
        cgroup: cgroup.path.clone(),
        targets,
        runs,
        ops: args.ops,
    };
    let mut report = Report::default();

    // Every configuration is measured between two no-filter baselines and compared with their
    // mean, so slow drift of the machine (it is shared) cancels out of the ratios.
    eprintln!("bench: baseline");
    report.baseline(&probe)?;
    for &size in sizes {
        let prefixes = prefixes::generate(size, 0x5eed + size as u64);
        let list = out_dir.join(format!("bench-{size}.netset"));
        prefixes::write(&list, &prefixes)?;
        let label = human(size);
        let largest = size == *sizes.last().unwrap_or(&0);

        eprintln!("bench: vendorwall, {label} prefixes");
        let vw = Vendorwall::start(&root, &cgroup.path, &list, &out_dir)?;
        let costs = probe.measure()?;
        // The kernel's share: the hook runs for every process once any program is attached,
        // so a process in a cgroup with no program still pays its fixed part.
        let hook_only = if largest {
            Some(probe.measure_in(&cgroup.sibling, runs)?)
        } else {
            None
        };
        // Statistics on only for a separate run: timing every call slows every call.
        let run_ns = {
            let stats = BpfStats::enable()?;
            probe.measure_in(&cgroup.path, 1)?;
            stats.run_time_per_call(&vw.program_ids()?)
        };
        let state = vw.state()?;
        report.loads.push(Load {
            tool: format!("vendorwall, {label}"),
            seconds: state.sync_ms / 1000.0,
            extra: format!(
                "kernel sync; before it: parse {:.0} ms, aggregate {:.0} ms; {} kernel prefixes",
                state.lists_ms, state.aggregate_ms, state.kernel_prefixes
            ),
        });
        if largest {
            report.memory = Some(vw.memory()?);
            report.map_memory = vw.map_memory()?;
            report.start = Some((state.lists_ms, state.aggregate_ms, state.sync_ms));
            report.set_changes(vw.one_percent_changes(&list, &prefixes, RELOAD_ROUNDS)?);
        }
        // The same cost A/B interleaved: a cgroup with no program (the kernel's hook runs, no
        // program does) against the enforced cgroup, burst after burst.
        let mut ab_row = Vec::new();
        for (i, kind) in KINDS.iter().enumerate() {
            let target = &probe.targets[i];
            let mut a = probe.turns(&cgroup.sibling, kind, target, AB_CPU)?;
            let mut b = probe.turns(&cgroup.path, kind, target, AB_CPU)?;
            ab_row.push(ab::turns(ab_pairs(runs), &mut a, &mut b)?);
        }
        report.interleaved.push((
            format!("vendorwall, {label}"),
            [ab_row[0], ab_row[1], ab_row[2]],
        ));
        report
            .rows
            .push(Row::config(&format!("vendorwall, {label}"), costs, run_ns));
        if let Some(costs) = hook_only {
            report.rows.push(Row::config(
                &format!("kernel hook only (vendorwall, {label}, attached to another cgroup)"),
                costs,
                None,
            ));
        }
        drop(vw);
        report.baseline(&probe)?;

        // The guards (`_rules`) keep each peer's rules in place while it is measured.
        let nft = Nft::load(&prefixes).map(|n| (n.load_time, n));
        report.peer(
            &probe,
            nft,
            [
                &format!("nft -f, {label}"),
                "interval set",
                &format!("nftables set, {label}"),
            ],
            ab_pairs(runs),
        )?;
        let ipset = Ipset::load(&prefixes).map(|i| (i.load_time, i));
        if largest && let Ok((_, set)) = &ipset {
            report.ipset_memory = set.memory.map(|b| b as f64 / (1024.0 * 1024.0));
        }
        report.peer(
            &probe,
            ipset,
            [
                &format!("ipset restore, {label}"),
                "hash:net",
                &format!("iptables + ipset, {label}"),
            ],
            ab_pairs(runs),
        )?;
    }
    eprintln!("bench: IPv6 lists");
    let v6_sizes = [sizes[0], *sizes.last().unwrap_or(&1_000)];
    match ipv6::measure(&root, &cgroup, &out_dir, &probe, &v6_sizes) {
        Ok(rows) => report.ipv6 = rows,
        Err(err) => report.notes.push(format!("IPv6 lists: {err:#}")),
    }
    eprintln!("bench: the DNS learner");
    match names::measure(&root, &cgroup, &out_dir, &probe) {
        Ok(n) => report.names = Some(n),
        Err(err) => report.notes.push(format!("DNS learner: {err:#}")),
    }
    eprintln!("bench: parse speed per format");
    match formats::measure(&root) {
        Ok(f) => report.formats = f,
        Err(err) => report.notes.push(format!("parse speed: {err:#}")),
    }
    eprintln!("bench: event throughput");
    match event_throughput(&root, &cgroup.path, &out_dir, &probe) {
        Ok(t) => report.throughput = Some(t),
        Err(err) => report.notes.push(format!("event throughput: {err:#}")),
    }

    let text = report.render(args, runs)?;
    let path = root.join("docs/BENCHMARKS.md");
    std::fs::write(&path, &text).with_context(|| format!("failed to write {}", path.display()))?;
    println!("{text}");
    eprintln!("bench: written to {}", path.display());
    Ok(())
}

fn ensure_packages() -> anyhow::Result<()> {
    shell::ensure_packages(&[
        ("nft", "nftables"),
        ("ipset", "ipset"),
        ("iptables", "iptables"),
    ])
}

pub(super) fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
