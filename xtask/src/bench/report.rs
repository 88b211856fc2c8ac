//! The rows measured and their rendering as docs/BENCHMARKS.md.

use std::{fmt::Write as _, process::Command, time::Duration};

use super::{Args, formats::FormatSpeed, probe::Probe, throughput::Throughput};
use crate::shell;

/// How to read the tables; the numbers above are this run's, the reasons hold across runs.
pub(super) const COST_NOTES: &str = "
## Where the cost goes

- The programs' own run time (last column) comes from the kernel's statistics
  (`kernel.bpf_stats_enabled`), switched on only for a separate run after the measured ones:
  timing every call slows every call. For an unlisted IPv4 destination the program reads one
  word of the /24 bitmap (`BLOCK_SEEN_V4`) and stops, so its time does not grow with the
  number of prefixes; hashes and trie are consulted only inside a listed /24. The unlisted
  path is the same at every size, so the differences between the vendorwall rows of one run
  are this machine's noise: read their spread as the uncertainty of each figure.
- The rest of vendorwall's added cost on an unconnected UDP send is the kernel's cgroup
  `sendmsg` hook itself. Once any cgroup `sock_addr` program is attached anywhere, every
  unconnected UDP send locks its socket, runs its cgroup's program array and releases the
  socket again (`lock_sock`, `__cgroup_bpf_run_filter_sock_addr`, `release_sock` with
  `ip4_datagram_release_cb`, seen with `perf record -e cpu-clock -g`). The \"kernel hook only\"
  row measures that part alone: a process in a cgroup with no program, while vendorwall is
  attached to another. It is the floor for any tool that refuses unconnected UDP at the
  socket (the alternative, a per-packet egress filter, is what nftables and ipset pay).
  Connected sockets (TCP, connected UDP) pay only at `connect()`.
- Loading: IPv4 /32s go to a sorted array (8 bytes each, binary-searched by the programs,
  rewritten whole into its inactive half through a mapping of the array and switched in one
  write); /24s to a hash written with `BPF_MAP_UPDATE_BATCH` by one thread per CPU (the
  kernel locks hash buckets, not the whole map), or from 196,608 of them (the largest sizes
  here) to a dense array of one byte per /24, stored byte by byte through a mapping; the
  other lengths go to the LPM trie, whose inserts take one lock and walk the trie. IPv6
  prefixes are cut into sorted disjoint pieces, written like the hosts. Most of the IPv4
  sync at a million prefixes is now the trie's inserts and the verifier's check of the
  programs.
  Parsing reads a bare address or CIDR line in one pass and a large file in two halves on
  two threads. Aggregation gathers IPv4 prefixes of /24 or shorter in a bitmap of the 2^24
  /24 blocks and sorts only the longer ones; the index that names an entry's `source:line`
  is built on a second thread beside the kernel sync (only explaining a block needs it).
  Reloads diff against a packed copy of the set last written, in one merge over integers,
  and write only the difference.
- Resident memory holds the parsed lists with the source line of every entry (to explain
  each block), the index `check` and events use, and the set last written to the kernel
  (so reloads need not read a million entries back). Freed load-time memory is returned to
  the system after each sync; the peak while loading is about twice the steady state.
";

pub(super) struct Load {
    pub(super) tool: String,
    pub(super) seconds: f64,
    pub(super) extra: String,
}

/// One line of the per-operation table.
pub(super) struct Row {
    pub(super) name: String,
    /// Median ns per operation, per [`KINDS`].
    pub(super) costs: [f64; 3],
    /// The programs' own run time per call, from kernel statistics.
    pub(super) bpf_ns: Option<f64>,
    /// A no-filter measurement.
    pub(super) baseline: bool,
}

impl Row {
    pub(super) fn config(name: &str, costs: [f64; 3], bpf_ns: Option<f64>) -> Self {
        Self {
            name: name.to_owned(),
            costs,
            bpf_ns,
            baseline: false,
        }
    }

    /// Added cost in percent over `base`, per kind.
    pub(super) fn added(&self, base: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|i| (self.costs[i] / base[i] - 1.0) * 100.0)
    }
}

#[derive(Default)]
pub(super) struct Report {
    /// Per size: the programs' added cost per [`KINDS`], A/B interleaved.
    pub(super) interleaved: Vec<(String, [super::ab::Ratio; 3])>,
    /// IPv6 lists at each size.
    pub(super) ipv6: Vec<super::ipv6::V6Row>,
    pub(super) throughput: Option<Throughput>,
    pub(super) names: Option<super::names::NamesCost>,
    pub(super) formats: Vec<FormatSpeed>,
    pub(super) rows: Vec<Row>,
    pub(super) loads: Vec<Load>,
    pub(super) memory: Option<(f64, f64, f64)>,
    /// The largest size's maps by kernel memory (MiB).
    pub(super) map_memory: Vec<(String, f64)>,
    /// The largest size's ipset `hash:net`, MiB.
    pub(super) ipset_memory: Option<f64>,
    /// The largest size's start: parse (lists), aggregate and sync, ms.
    pub(super) start: Option<(f64, f64, f64)>,
    /// The 1% reload of median total: (lists, aggregate, sync) ms as the daemon timed them,
    /// and the wall time of `vendorwall reload`.
    pub(super) change: Option<super::vendorwall::Reload>,
    /// The totals (lists + aggregate + sync, ms) of every 1% reload measured, in order.
    pub(super) change_totals: Vec<f64>,
    pub(super) notes: Vec<String>,
}

impl Report {
    pub(super) fn render(&self, args: &Args, runs: usize) -> anyhow::Result<String> {
        let machine = machine();
        let command = if args.quick {
            "cargo xtask bench --quick"
        } else {
            "cargo xtask bench"
        };
        let mut s = String::new();
        writeln!(s, "# Benchmarks\n")?;
        writeln!(
            s,
            "Produced by `{command}` ({runs} runs of {} operations each, {} for UDP; medians), on {machine}.",
            args.ops,
            args.ops.saturating_mul(5)
        )?;
        writeln!(
            s,
            "Every figure in a table comes from the same run, so ratios compare like with like. The"
        )?;
        writeln!(
            s,
            "bench traffic goes to 127.0.0.1 (never listed), so these are the costs every unlisted"
        )?;
        writeln!(
            s,
            "connection pays; the peers' rules match only the bench uid, vendorwall is attached to a"
        )?;
        writeln!(
            s,
            "cgroup holding only the bench process. Each configuration is measured between two"
        )?;
        writeln!(
            s,
            "no-filter baselines and its percentage is against their mean, so drift of the machine"
        )?;
        writeln!(s, "between configurations cancels out.\n")?;
        writeln!(s, "## Per-operation cost\n")?;
        writeln!(
            s,
            "| configuration | TCP connect (listener) | TCP connect (closed port) | UDP sendto | BPF program run time |"
        )?;
        writeln!(s, "|---|---|---|---|---|")?;
        let baselines: Vec<&Row> = self.rows.iter().filter(|r| r.baseline).collect();
        if let Some(first) = baselines.first() {
            write!(s, "| no filter (first baseline) |")?;
            for c in first.costs {
                write!(s, " {:.2} µs |", c / 1000.0)?;
            }
            writeln!(s, " - |")?;
        }
        for (index, row) in self.rows.iter().enumerate() {
            if row.baseline {
                continue;
            }
            write!(s, "| {} |", row.name)?;
            let added = row.added(self.paired_base(index));
            for (c, a) in row.costs.iter().zip(added) {
                write!(s, " {:.2} µs ({a:+.1}%) |", c / 1000.0)?;
            }
            writeln!(
                s,
                " {} |",
                row.bpf_ns
                    .map_or("-".into(), |ns| format!("{ns:.0} ns per call"))
            )?;
        }
        if baselines.len() > 1 {
            write!(
                s,
                "\nThe {} no-filter baselines of this run spread by",
                baselines.len()
            )?;
            for (i, kind) in ["TCP (listener)", "TCP (closed)", "UDP"].iter().enumerate() {
                let (lo, hi) = baselines.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
                    (lo.min(r.costs[i]), hi.max(r.costs[i]))
                });
                write!(
                    s,
                    "{} {kind} {:.1}%",
                    if i == 0 { "" } else { "," },
                    (hi / lo - 1.0) * 100.0
                )?;
            }
            writeln!(
                s,
                " (max/min): the size of effect a single unpaired comparison could not see."
            )?;
        }
        self.render_targets(&mut s)?;
        self.render_round_two(&mut s)?;
        writeln!(s, "\n## Loading\n")?;
        writeln!(s, "| what | seconds | notes |")?;
        writeln!(s, "|---|---|---|")?;
        for l in &self.loads {
            writeln!(s, "| {} | {:.3} | {} |", l.tool, l.seconds, l.extra)?;
        }
        if let Some(((lists, aggregate, sync), wall)) = self.change {
            writeln!(
                s,
                "| vendorwall, 1% of the largest list changed (reload) | {:.3} | kernel sync {sync:.0} ms; the whole reload {:.0} ms (lists {lists:.0}, aggregate {aggregate:.0}; {}); `vendorwall reload` replied after {wall:.0} ms |",
                sync / 1000.0,
                lists + aggregate + sync,
                self.change_range()
            )?;
        }
        self.render_formats(&mut s)?;
        if let Some((rss, peak, kernel)) = self.memory {
            writeln!(s, "\n## Memory at the largest size\n")?;
            writeln!(
                s,
                "| daemon RSS | daemon peak RSS | kernel map memory (memlock) |"
            )?;
            writeln!(s, "|---|---|---|")?;
            writeln!(s, "| {rss:.1} MiB | {peak:.1} MiB | {kernel:.1} MiB |")?;
            if !self.map_memory.is_empty() {
                writeln!(
                    s,
                    "\nKernel memory per map (`memlock` in each map's fdinfo, as `vendorwall status` shows it):\n"
                )?;
                writeln!(s, "| map | MiB |")?;
                writeln!(s, "|---|---|")?;
                for (name, mib) in self.map_memory.iter().filter(|(_, m)| *m >= 0.05) {
                    writeln!(s, "| {name} | {mib:.1} |")?;
                }
                if let Some(ipset) = self.ipset_memory {
                    writeln!(
                        s,
                        "| (ipset `hash:net` of the same prefixes: `Size in memory`) | {ipset:.1} |"
                    )?;
                }
            }
        }
        if let Some(t) = &self.throughput {
            writeln!(s, "\n## Event throughput\n")?;
            writeln!(
                s,
                "Two processes refused as fast as they can for {:.0} s, aggregation off, every event a JSON",
                t.seconds
            )?;
            writeln!(
                s,
                "line in the file sink (enrichment from /proc included).\n"
            )?;
            writeln!(
                s,
                "| refused attempts | events written | events/s written | dropped in the kernel (ring full) | missed by the sink | accounted for |"
            )?;
            writeln!(s, "|---|---|---|---|---|---|")?;
            writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} of {} |",
                t.attempts,
                t.lines,
                t.lines as f64 / t.seconds,
                t.dropped_kernel,
                t.missed_sink,
                t.lines + t.dropped_kernel + t.missed_sink,
                t.attempts
            )?;
            writeln!(s, "\n### History ingest\n")?;
            writeln!(
                s,
                "The same flood, as the history database (SQLite, WAL, one transaction per batch) stored it\n\
                 beside the file sink: lines stored a second of flood, lines it could not keep up with\n\
                 (counted, never waited for), and the database's size per million stored lines.\n"
            )?;
            writeln!(
                s,
                "| lines stored | stored/s | missed by the history | database bytes | bytes per million lines |"
            )?;
            writeln!(s, "|---|---|---|---|---|")?;
            let per_million = if t.history_stored == 0 {
                0.0
            } else {
                t.history_bytes as f64 / t.history_stored as f64 * 1e6
            };
            writeln!(
                s,
                "| {} | {:.0} | {} | {} | {:.0} MiB |",
                t.history_stored,
                t.history_stored as f64 / t.seconds,
                t.history_missed,
                t.history_bytes,
                per_million / (1u64 << 20) as f64
            )?;
        }
        if !self.interleaved.is_empty() {
            render_interleaved(&mut s, &self.interleaved)?;
        }
        if !self.ipv6.is_empty() {
            render_ipv6(&mut s, &self.ipv6)?;
        }
        if let Some(n) = &self.names {
            render_names(&mut s, n)?;
        }
        s.push_str(COST_NOTES);
        if !self.notes.is_empty() {
            writeln!(s, "\n## Notes\n")?;
            for n in &self.notes {
                writeln!(s, "- {n}")?;
            }
        }
        Ok(s)
    }
}

impl Report {
    /// Keeps the 1% reloads measured: the one of median total as the figure, every total for
    /// its range.
    pub(super) fn set_changes(&mut self, samples: Vec<super::vendorwall::Reload>) {
        let total = |((l, a, s), _): &super::vendorwall::Reload| l + a + s;
        self.change_totals = samples.iter().map(total).collect();
        let mut sorted = samples;
        sorted.sort_by(|a, b| total(a).total_cmp(&total(b)));
        self.change = sorted.get(sorted.len() / 2).copied();
    }

    /// "median of N reloads, A-B ms" for the reload rows.
    fn change_range(&self) -> String {
        let (min, max) = self
            .change_totals
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| {
                (lo.min(t), hi.max(t))
            });
        format!(
            "median of {} reloads, each 1% more changed; all: {min:.0}-{max:.0} ms",
            self.change_totals.len()
        )
    }

    /// Records a peer: its load time and, while its rules (`_rules`) are in place, its
    /// per-operation costs, unpaired and A/B (`pairs` bursts); a peer that failed to load
    /// becomes a note. `names` are the load row, its note and the cost row.
    pub(super) fn peer<G>(
        &mut self,
        probe: &Probe,
        loaded: anyhow::Result<(Duration, G)>,
        [tool, extra, row]: [&str; 3],
        pairs: usize,
    ) -> anyhow::Result<()> {
        eprintln!("bench: {row}");
        match loaded {
            Ok((load_time, _rules)) => {
                self.loads.push(Load {
                    tool: tool.to_owned(),
                    seconds: load_time.as_secs_f64(),
                    extra: extra.to_owned(),
                });
                self.rows.push(Row::config(row, probe.measure()?, None));
                // A/B with the rules in place: a uid they do not match (A) against the bench
                // uid (B), in the same cgroup, burst after burst.
                let mut ratios = Vec::new();
                for (i, kind) in super::KINDS.iter().enumerate() {
                    let target = &probe.targets[i];
                    let mut a = probe.turns_as(
                        super::firewalls::OTHER_UID,
                        &probe.cgroup,
                        kind,
                        target,
                        super::AB_CPU,
                    )?;
                    let mut b = probe.turns(&probe.cgroup, kind, target, super::AB_CPU)?;
                    ratios.push(super::ab::turns(pairs, &mut a, &mut b)?);
                }
                self.interleaved
                    .push((row.to_owned(), [ratios[0], ratios[1], ratios[2]]));
            }
            Err(err) => {
                self.notes.push(format!("{row}: {err:#}"));
                return Ok(());
            }
        }
        // The rules are gone now (the guard dropped with the match arm).
        self.baseline(probe)
    }

    /// Measures no filter at all and records it as a baseline.
    pub(super) fn baseline(&mut self, probe: &Probe) -> anyhow::Result<()> {
        self.rows.push(Row {
            name: "no filter".into(),
            costs: probe.measure()?,
            bpf_ns: None,
            baseline: true,
        });
        Ok(())
    }

    /// The mean of the baselines measured just before and just after row `index`.
    pub(super) fn paired_base(&self, index: usize) -> [f64; 3] {
        let before = self.rows[..index].iter().rev().find(|r| r.baseline);
        let after = self.rows[index..].iter().find(|r| r.baseline);
        match (before, after) {
            (Some(b), Some(a)) => std::array::from_fn(|i| (b.costs[i] + a.costs[i]) / 2.0),
            (Some(only), None) | (None, Some(only)) => only.costs,
            (None, None) => [f64::NAN; 3],
        }
    }

    /// The issue's targets, judged from this run's numbers.
    pub(super) fn render_targets(&self, s: &mut String) -> anyhow::Result<()> {
        let last = |prefix: &str| {
            self.rows
                .iter()
                .enumerate()
                .rev()
                .find(|(_, r)| !r.baseline && r.name.starts_with(prefix))
                .map(|(i, r)| r.added(self.paired_base(i)))
        };
        let (Some(vw), Some(nft), Some(ipset)) =
            (last("vendorwall"), last("nftables"), last("iptables"))
        else {
            return Ok(());
        };
        let hook = last("kernel hook only");
        let size = self
            .rows
            .iter()
            .rev()
            .find(|r| r.name.starts_with("vendorwall, "))
            .map_or("", |r| r.name.trim_start_matches("vendorwall, "));
        writeln!(s, "\n## Targets at {size} prefixes\n")?;
        writeln!(s, "| target | measured | met |")?;
        writeln!(s, "|---|---|---|")?;
        // The verdicts come from the A/B comparisons at this size (burst against neighbouring
        // burst); the unpaired figures, against no filter, are the context.
        let ab = |tool: &str| {
            self.interleaved
                .iter()
                .find(|(name, _)| name == &format!("{tool}, {size}"))
                .map(|(_, r)| *r)
        };
        let (ab_vw, ab_nft, ab_ipset) =
            (ab("vendorwall"), ab("nftables set"), ab("iptables + ipset"));
        for (i, kind) in [
            "TCP connect (listener)",
            "TCP connect (closed port)",
            "UDP sendto",
        ]
        .iter()
        .enumerate()
        {
            let (measured, met) = match (ab_vw, ab_nft, ab_ipset) {
                (Some(v), Some(n), Some(p)) => {
                    let (v, n, p) = (v[i], n[i], p[i]);
                    let below = v.median < n.median && v.median < p.median;
                    let met = match super::ab::verdict(&v, 0.03) {
                        "yes" if below => "yes",
                        "yes" => "**no** (not below both peers)",
                        verdict => verdict,
                    };
                    (
                        format!(
                            "A/B {} (nftables {}, ipset {})",
                            v.percent(),
                            n.percent(),
                            p.percent()
                        ),
                        met,
                    )
                }
                _ => (String::from("no A/B comparison"), "not shown"),
            };
            writeln!(
                s,
                "| {kind}: added cost ≤ 3% and below nftables and ipset | {measured}; unpaired against no filter {:+.1}% (nftables {:+.1}%, ipset {:+.1}%{}) | {met} |",
                vw[i],
                nft[i],
                ipset[i],
                hook.map_or(String::new(), |h| format!(
                    "; the kernel's hook alone, no program run: {:+.1}%",
                    h[i]
                )),
            )?;
        }
        let find_load = |prefix: &str| {
            self.loads
                .iter()
                .rev()
                .find(|l| l.tool.starts_with(prefix))
                .map(|l| l.seconds)
        };
        if let (Some(vw_load), Some(ipset_load)) =
            (find_load("vendorwall, "), find_load("ipset restore"))
        {
            writeln!(
                s,
                "| full load into the kernel maps ≤ 1 s and faster than `ipset restore` (parsing and aggregation: see Loading) | {vw_load:.3} s (ipset {ipset_load:.3} s) | {} |",
                yes(vw_load <= 1.0 && vw_load < ipset_load)
            )?;
        }
        if let Some(((_, _, sync), _)) = self.change {
            writeln!(
                s,
                "| 1% change applied ≤ 100 ms | {sync:.0} ms | {} |",
                yes(sync <= 100.0)
            )?;
        }
        if let (Some(plain), Some(worst)) = (
            self.formats.first(),
            self.formats
                .iter()
                .max_by(|a, b| a.ms_per_million.total_cmp(&b.ms_per_million)),
        ) {
            let ratio = worst.ms_per_million / plain.ms_per_million;
            writeln!(
                s,
                "| every list format parses in ≤ 1.5x the time of plain CIDR lines | slowest: {} at {ratio:.2}x ({:.0} ms per million lines, plain {:.0} ms) | {} |",
                worst.format,
                worst.ms_per_million,
                plain.ms_per_million,
                yes(ratio <= 1.5)
            )?;
        }
        if let Some((rss, peak, _)) = self.memory {
            writeln!(
                s,
                "| daemon RSS ≤ 64 MiB | {rss:.1} MiB (peak while loading {peak:.1} MiB) | {} |",
                yes(rss <= 64.0)
            )?;
        }
        Ok(())
    }
}

impl Report {
    /// Parse time per million lines per format, against the first (plain CIDR).
    fn render_formats(&self, s: &mut String) -> anyhow::Result<()> {
        let Some(plain) = self.formats.first() else {
            return Ok(());
        };
        writeln!(
            s,
            "\n## Parsing per list format
"
        )?;
        writeln!(
            s,
            "The daemon's parser on one million generated lines per format, in memory (no I/O),"
        )?;
        writeln!(
            s,
            "formats interleaved over 7 rounds, fastest round shown (`target/release/examples/parse_speed`).\n"
        )?;
        writeln!(s, "| format | ms per million lines | vs plain CIDR |")?;
        writeln!(s, "|---|---|---|")?;
        for f in &self.formats {
            writeln!(
                s,
                "| {} | {:.0} | {:.2}x |",
                f.format,
                f.ms_per_million,
                f.ms_per_million / plain.ms_per_million
            )?;
        }
        Ok(())
    }
}

impl Report {
    /// The second round's targets (kernel memory, reload, start, peak RSS, IPv6), each with
    /// the peer figure of this run beside it where there is one.
    fn render_round_two(&self, s: &mut String) -> anyhow::Result<()> {
        let Some((rss, peak, kernel)) = self.memory else {
            return Ok(());
        };
        writeln!(s, "\n## Second-round targets at the largest size\n")?;
        writeln!(s, "| target | measured | peer, same run | met |")?;
        writeln!(s, "|---|---|---|---|")?;
        let ipset = self
            .ipset_memory
            .map_or("ipset: not measured".to_owned(), |m| {
                format!("ipset hash:net {m:.1} MiB")
            });
        // ipset's figure is its set of the prefixes; the comparable maps are those that hold
        // the block set (`BLOCK_*`). The others (event ring, DNS learner, exemptions,
        // exceptions) are features ipset has no counterpart for, shown beside.
        let block: f64 = self
            .map_memory
            .iter()
            .filter(|(name, _)| name.starts_with("BLOCK_"))
            .map(|(_, mib)| mib)
            .sum();
        writeln!(
            s,
            "| kernel map memory at most ipset's | the block-set maps (`BLOCK_*`) {block:.1} MiB; every map {kernel:.1} MiB (with the event ring, DNS learner and exemption maps) | {ipset} | {} |",
            yes(self.ipset_memory.is_some_and(|m| block <= m))
        )?;
        if let Some(((lists, aggregate, sync), wall)) = self.change {
            let total = lists + aggregate + sync;
            writeln!(
                s,
                "| end-to-end reload, 1% of the list changed (read + parse, aggregate, sync) ≤ 250 ms | {total:.0} ms ({lists:.0} + {aggregate:.0} + {sync:.0}; {}; `vendorwall reload` replied after {wall:.0} ms) | - | {} |",
                self.change_range(),
                yes(total <= 250.0)
            )?;
        }
        if let Some((lists, aggregate, sync)) = self.start {
            let total = lists + aggregate + sync;
            let ipset_load = self
                .loads
                .iter()
                .rev()
                .find(|l| l.tool.starts_with("ipset restore"))
                .map_or("-".to_owned(), |l| {
                    format!("ipset restore {:.2} s", l.seconds)
                });
            writeln!(
                s,
                "| full start, parse to enforcing ≤ 0.6 s | {:.2} s (lists {lists:.0} + aggregate {aggregate:.0} + sync {sync:.0} ms) | {ipset_load} | {} |",
                total / 1000.0,
                yes(total <= 600.0)
            )?;
        }
        writeln!(
            s,
            "| daemon peak RSS while loading ≤ 90 MiB (steady ≤ 64 MiB) | peak {peak:.1} MiB, steady {rss:.1} MiB | - | {} |",
            yes(peak <= 90.0 && rss <= 64.0)
        )?;
        if let Some(r) = self.ipv6.iter().max_by_key(|r| r.prefixes) {
            let total = r.parse_ms + r.aggregate_ms + r.sync_ms;
            writeln!(
                s,
                "| IPv6: {} prefixes load ≤ 1 s | {:.2} s | - | {} |",
                human_count(r.prefixes),
                total / 1000.0,
                yes(total <= 1000.0)
            )?;
            // Within 3%: every A/B interval (bursts interleaved, end to end); flat: the
            // programs' own time per call (kernel statistics, to the nanosecond) from the
            // smallest size to the largest.
            let verdicts: Vec<&str> = self
                .ipv6
                .iter()
                .flat_map(|r| r.unlisted.iter().map(|u| super::ab::verdict(u, 0.03)))
                .collect();
            let flat = super::ipv6::flat(&self.ipv6);
            let met = if verdicts.iter().any(|v| v.starts_with("**no")) || flat == Some(false) {
                "**no**"
            } else if verdicts.iter().all(|v| *v == "yes") && flat == Some(true) {
                "yes"
            } else {
                "not shown (an interval spans the target, or no program statistics)"
            };
            writeln!(
                s,
                "| IPv6: unlisted connect within 3% of no program, flat from 1k to 1M | {}; flat: {} | - | {met} |",
                self.ipv6
                    .iter()
                    .map(|r| format!(
                        "{}: TCP {} (A/B {}), UDP {} (A/B {})",
                        human_count(r.prefixes),
                        program_cost(r, 0),
                        r.unlisted[0].percent(),
                        program_cost(r, 1),
                        r.unlisted[1].percent()
                    ))
                    .collect::<Vec<_>>()
                    .join("; "),
                flat.map_or("-", yes)
            )?;
        }
        Ok(())
    }
}

pub(super) fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

pub(super) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = shell::output(Command::new("uname").arg("-r")).unwrap_or_default();
    format!(
        "{} × {cpu}, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )
}

/// The DNS learner's section: receive cost A/B with confidence intervals, per-answer time,
/// connect cost with and without it.
fn render_interleaved(
    s: &mut String,
    rows: &[(String, [super::ab::Ratio; 3])],
) -> anyhow::Result<()> {
    writeln!(s, "\n## Per-connection cost, A/B interleaved\n")?;
    writeln!(
        s,
        "The unpaired rows above compare configurations measured minutes apart, on a machine whose\n\
         no-filter baselines spread by tens of percent. Here two probe processes, pinned to one CPU,\n\
         time bursts of operations in turn (1,000 TCP connects or 5,000 UDP sends, tens of\n\
         milliseconds), to a destination no list holds, so each pair is measured on the same\n\
         machine state. For vendorwall, A is a cgroup with no program (the kernel's hook runs, no\n\
         program does) and B the cgroup vendorwall enforces: B/A − 1 is the programs' own added\n\
         cost; the hook's fixed part, which any cgroup program brings, is the \"kernel hook only\"\n\
         row above. For nftables and ipset, A is a uid their rules do not match (its packets walk\n\
         the output chain's uid test, never the set) and B the bench uid: B/A − 1 is what the\n\
         rules add for the traffic they cover. Median of the per-pair ratios, 95% bootstrap\n\
         interval; the targets above are judged from these. Met (vendorwall): the whole interval\n\
         is at most +3%.\n"
    )?;
    writeln!(
        s,
        "| configuration | TCP (listener) | TCP (closed) | UDP sendto | at most +3%: TCP / TCP closed / UDP |"
    )?;
    writeln!(s, "|---|---|---|---|---|")?;
    let pct = super::ab::Ratio::percent;
    for (name, r) in rows {
        writeln!(
            s,
            "| {name} | {} | {} | {} | {} / {} / {} |",
            pct(&r[0]),
            pct(&r[1]),
            pct(&r[2]),
            super::ab::verdict(&r[0], 0.03),
            super::ab::verdict(&r[1], 0.03),
            super::ab::verdict(&r[2], 0.03),
        )?;
    }
    Ok(())
}

fn render_ipv6(s: &mut String, rows: &[super::ipv6::V6Row]) -> anyhow::Result<()> {
    writeln!(s, "\n## IPv6 lists at scale\n")?;
    writeln!(
        s,
        "A realistic IPv6 mix (20% /32, 15% /40, 10% /44, 20% /48 allocations, 20% /64 networks,\n\
         15% /128 hosts, in 2000::/3), loaded from a file; then an unlisted IPv6 destination (::1),\n\
         A/B interleaved as above (A: a cgroup with no program; B: the enforced cgroup), and the\n\
         program's own time per call from the kernel's statistics (`kernel.bpf_stats_enabled`, on\n\
         for a separate run), also as a share of A's call. Targets: load ≤ 1 s; unlisted IPv6\n\
         connect within 3% (the whole A/B interval); flat from 1k to 1M (the program's time at 1M\n\
         at most 20% + 10 ns above 1k's).\n"
    )?;
    writeln!(
        s,
        "| IPv6 prefixes | kernel prefixes | parse + aggregate + sync | load ≤ 1 s | unlisted TCP connect (closed port): program / A/B | unlisted UDP sendto: program / A/B | within 3%: TCP / UDP |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|")?;
    let pct = super::ab::Ratio::percent;
    let within = |r: &super::ipv6::V6Row, i: usize| super::ab::verdict(&r.unlisted[i], 0.03);
    for r in rows {
        let total_ms = r.parse_ms + r.aggregate_ms + r.sync_ms;
        writeln!(
            s,
            "| {} | {:.0} | {:.0} + {:.0} + {:.0} = {:.0} ms | {} | {}; A/B {} | {}; A/B {} | {} / {} |",
            human_count(r.prefixes),
            r.kernel_prefixes,
            r.parse_ms,
            r.aggregate_ms,
            r.sync_ms,
            total_ms,
            yes(total_ms <= 1000.0),
            program_cost(r, 0),
            pct(&r.unlisted[0]),
            program_cost(r, 1),
            pct(&r.unlisted[1]),
            within(r, 0),
            within(r, 1),
        )?;
    }
    Ok(())
}

/// "program 52 ns = 0.24% of the call": the IPv6 program's own time per unlisted call.
fn program_cost(r: &super::ipv6::V6Row, i: usize) -> String {
    match (r.program_ns[i], r.program_share(i)) {
        (Some(ns), Some(share)) => format!(
            "program {ns:.0} ns = {:.2}% of the {:.1} µs call",
            share * 100.0,
            r.unlisted[i].a_ns / 1000.0
        ),
        _ => "program time not read".to_owned(),
    }
}

fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn render_names(s: &mut String, n: &super::names::NamesCost) -> anyhow::Result<()> {
    let pct = super::ab::Ratio::percent;
    writeln!(s, "\n## The DNS learner\n")?;
    writeln!(
        s,
        "The learner (`cgroup_skb` ingress) runs for every packet a covered socket receives. The"
    )?;
    writeln!(
        s,
        "receiver alternates, run after run, between a cgroup with no program (A) and the cgroup"
    )?;
    writeln!(
        s,
        "vendorwall enforces with the learner attached (B), sender and receiver each pinned to a CPU;"
    )?;
    writeln!(
        s,
        "the table gives the median of the per-pair ratios B/A of the time per chunk or datagram,"
    )?;
    writeln!(
        s,
        "with a 95% bootstrap confidence interval (positive: B slower). The fixed cost of the"
    )?;
    writeln!(
        s,
        "kernel's hook, which A pays too once any ingress program is attached, is not in it.\n"
    )?;
    writeln!(
        s,
        "| receive, loopback | A (no program) | B (vendorwall) | B/A − 1 (time per op) | target: at most 2% lower | met |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|")?;
    let tcp = &n.receive[0];
    let mib = |ns: f64| 65536.0 / ns * 1e9 / (1024.0 * 1024.0);
    writeln!(
        s,
        "| TCP bulk receive | {:.0} MiB/s | {:.0} MiB/s | {} | throughput ≥ 98% of A | {} |",
        mib(tcp.a_ns),
        mib(tcp.b_ns),
        pct(tcp),
        yes(tcp.median <= 1.0 / 0.98)
    )?;
    let udp = &n.receive[1];
    writeln!(
        s,
        "| UDP receive (64-byte datagrams) | {:.0} k/s | {:.0} k/s | {} | rate ≥ 98% of A | {} |",
        1e6 / udp.a_ns,
        1e6 / udp.b_ns,
        pct(udp),
        yes(udp.median <= 1.0 / 0.98)
    )?;
    writeln!(
        s,
        "\nThe learner's own run time on that traffic (kernel statistics): {}.",
        n.per_packet_ns.map_or("not available".into(), |ns| format!(
            "{ns:.0} ns per packet"
        ))
    )?;
    writeln!(
        s,
        "Kernel-measured time per run (`BPF_PROG_TEST_RUN`, 100,000 runs): a DNS answer to a listed name (a CNAME and two A records, both learned) {:.0} ns; an answer to an unlisted name {:.0} ns; a TCP segment that is not DNS {:.0} ns.\n",
        n.test_run_ns[0], n.test_run_ns[1], n.test_run_ns[2]
    )?;
    writeln!(
        s,
        "| unlisted destination | learner off (A) | learner attached (B) | B/A − 1 | within noise |"
    )?;
    writeln!(s, "|---|---|---|---|---|")?;
    for (i, kind) in [
        "TCP connect (listener)",
        "TCP connect (closed port)",
        "UDP sendto",
    ]
    .iter()
    .enumerate()
    {
        let r = &n.connect[i];
        writeln!(
            s,
            "| {kind} | {:.2} µs | {:.2} µs | {} | {} |",
            r.a_ns / 1000.0,
            r.b_ns / 1000.0,
            pct(r),
            yes((r.low <= 1.0 && r.high >= 1.0) || (r.median - 1.0).abs() < 0.01)
        )?;
    }
    writeln!(
        s,
        "\n(\"within noise\": the interval includes no difference, or the median difference is under 1%.)"
    )?;
    Ok(())
}
