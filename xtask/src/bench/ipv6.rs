//! IPv6 lists at scale: a realistic mix of allocations and hosts (`prefixes::generate_v6`)
//! loaded at 1k and 1M prefixes, and what an unlisted IPv6 destination then costs: A/B
//! interleaved between a cgroup with no program (A) and the enforced cgroup (B), to ::1.

use std::{net::TcpListener, path::Path};

use super::{
    ab::{Ratio, interleaved},
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
}

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
    let pairs = (probe.runs * 2).max(10);
    let mut rows = Vec::new();
    for &size in sizes {
        let list = out.join(format!("bench-v6-{size}.netset"));
        prefixes::write(&list, &prefixes::generate_v6(size, 0x6eed + size as u64))?;
        let vw = Vendorwall::start_v6(root, &cgroup.path, &list, out)?;
        probe.settle()?;
        let state = vw.state()?;
        let mut unlisted = Vec::new();
        for (kind, target) in &targets {
            unlisted.push(interleaved(
                pairs,
                || probe.once(&cgroup.sibling, kind, target),
                || probe.once(&cgroup.path, kind, target),
            )?);
        }
        rows.push(V6Row {
            prefixes: size,
            kernel_prefixes: state.kernel_prefixes,
            parse_ms: state.lists_ms,
            aggregate_ms: state.aggregate_ms,
            sync_ms: state.sync_ms,
            unlisted: [unlisted[0], unlisted[1]],
        });
        drop(vw);
    }
    Ok(rows)
}
