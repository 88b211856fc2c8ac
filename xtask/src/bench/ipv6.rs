//! IPv6 lists at scale: a realistic mix of allocations and hosts (`prefixes::generate_v6`)
//! loaded at 1k and 1M prefixes, and what an unlisted IPv6 destination then costs: A/B
//! interleaved between a cgroup with no program (A) and the enforced cgroup (B), to ::1, and
//! the programs' own time per call from the kernel's statistics (what B adds to A, measured
//! to the nanosecond where the A/B interval is as wide as the machine's noise).

use std::{net::TcpListener, path::Path};

use super::{
    ab::{Ratio, turns},
    bpf_stats::{BpfStats, prog_stats},
    cgroup::BenchCgroup,
    prefixes,
    probe::Probe,
    vendorwall::Vendorwall,
};

pub(super) struct V6Row {
    pub(super) prefixes: usize,
    pub(super) kernel_prefixes: f64,
    pub(super) parse_ms: f64,
    pub(super) aggregate_ms: f64,
    pub(super) sync_ms: f64,
    /// TCP connect to a closed port and UDP sendto, both to `::1` (listed nowhere).
    pub(super) unlisted: [Ratio; 2],
    /// The connect6 and sendmsg6 programs' own run time per call in those runs, ns.
    pub(super) program_ns: [Option<f64>; 2],
}

/// The programs each probe kind runs: connect6 for TCP, sendmsg6 for UDP.
const PROGRAMS: [&str; 2] = ["vw_connect6", "vw_sendmsg6"];

pub(super) fn measure(
    root: &Path,
    cgroup: &BenchCgroup,
    out: &Path,
    probe: &Probe,
    sizes: &[usize],
) -> anyhow::Result<Vec<V6Row>> {
    let closed = {
        let l = TcpListener::bind("[::1]:0")?;
        l.local_addr()?.port()
    };
    let targets = [
        ("tcp-closed", format!("[::1]:{closed}")),
        ("udp", "[::1]:9".to_owned()),
    ];
    let pairs = super::ab_pairs(probe.runs);
    let mut rows = Vec::new();
    for &size in sizes {
        let list = out.join(format!("bench-v6-{size}.netset"));
        prefixes::write(&list, &prefixes::generate_v6(size, 0x6eed + size as u64))?;
        let vw = Vendorwall::start_v6(root, &cgroup.path, &list, out)?;
        probe.settle()?;
        let state = vw.state()?;
        let mut unlisted = Vec::new();
        for (kind, target) in &targets {
            let mut a = probe.turns(&cgroup.sibling, kind, target, super::AB_CPU)?;
            let mut b = probe.turns(&cgroup.path, kind, target, super::AB_CPU)?;
            unlisted.push(turns(pairs, &mut a, &mut b)?);
        }
        // Statistics on only for separate runs: timing every call slows every call.
        let mut program_ns = [None, None];
        {
            let _stats = BpfStats::enable()?;
            for (i, (kind, target)) in targets.iter().enumerate() {
                let ids = vw.programs(|name| name.starts_with(PROGRAMS[i]))?;
                let totals = || {
                    ids.iter()
                        .filter_map(|&id| prog_stats(id))
                        .fold((0.0, 0.0), |(t, c), (dt, dc)| (t + dt, c + dc))
                };
                let before = totals();
                probe.once(&cgroup.path, kind, target)?;
                let after = totals();
                let calls = after.1 - before.1;
                program_ns[i] = (calls > 0.0).then(|| (after.0 - before.0) / calls);
            }
        }
        rows.push(V6Row {
            prefixes: size,
            kernel_prefixes: state.kernel_prefixes,
            parse_ms: state.lists_ms,
            aggregate_ms: state.aggregate_ms,
            sync_ms: state.sync_ms,
            unlisted: [unlisted[0], unlisted[1]],
            program_ns,
        });
        drop(vw);
    }
    Ok(rows)
}

impl V6Row {
    /// What the program adds to an unlisted call of kind `i`, as a share of the call with no
    /// program (A's median).
    pub(super) fn program_share(&self, i: usize) -> Option<f64> {
        Some(self.program_ns[i]? / self.unlisted[i].a_ns)
    }
}

/// Whether the programs' time per call stays flat from the smallest size to the largest:
/// at most 20% more, with 10 ns of slack for the statistics' own jitter at tens of ns.
pub(super) fn flat(rows: &[V6Row]) -> Option<bool> {
    let (first, last) = (rows.first()?, rows.last()?);
    (0..2).try_fold(true, |all, i| {
        Some(all && last.program_ns[i]? <= first.program_ns[i]? * 1.2 + 10.0)
    })
}
