//! From parsed lists to the exact set the kernel must hold: per action, duplicates, overlaps and
//! adjacent prefixes are merged (ipnet's aggregation), audit prefixes covered by an enforce prefix
//! are dropped (otherwise the longer audit prefix would win the LPM lookup and let a connection
//! through that an enforce list refuses), and each kernel prefix is tagged with a list id.

mod blocks;

use blocker_common::{Action, ListRef};
use ipnet::IpNet;

/// The kernel's block set: unique prefixes sorted by `IpNet`'s order, each with its list.
/// A sorted vector rather than a hash map: a third of the memory at a million prefixes, and
/// two of them diff in one linear merge (see `sync::diff_sorted`).
pub type KernelSet = Vec<(IpNet, ListRef)>;

/// One raw entry as the aggregation sees it: prefix, list id and action, in load order.
#[derive(Clone, Copy, Debug)]
pub struct Tagged {
    pub net: IpNet,
    pub list_id: u16,
    pub action: Action,
}

/// Merges `nets` into the fewest prefixes covering exactly the same addresses, IPv4 before
/// IPv6, each family sorted by address (the same result as `ipnet`'s aggregation).
///
/// Written here as one sort and one linear pass over integer intervals because this is the
/// largest share of a reload at a million prefixes: `ipnet`'s version sorts and merges
/// `IpNet` values through several intermediate vectors, several times slower. Input that is
/// already sorted (most published lists) makes the sort itself linear; a large list's IPv4
/// prefixes of /24 or shorter skip it (`blocks`).
pub fn aggregate(nets: &[IpNet]) -> Vec<IpNet> {
    aggregate_iter(nets.iter().copied())
}

/// [`aggregate`] over any source of prefixes, so a list's entries need no copy first.
pub fn aggregate_iter(nets: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let nets = nets.into_iter();
    // Never more prefixes than went in (the fewest covering a union of prefixes are at most
    // those prefixes): one allocation, no doubling.
    let mut out = Vec::with_capacity(nets.size_hint().0);
    each_aggregated(nets, |net| out.push(net));
    out
}

/// One list's prefixes aggregated, each tagged with the list's kernel value: what
/// [`from_lists`] takes. Tagged as they are made, so one list's set is the kernel set itself
/// (a copy of a million prefixes less).
pub fn list_set(list_id: u16, action: Action, nets: impl IntoIterator<Item = IpNet>) -> KernelSet {
    let nets = nets.into_iter();
    let value = ListRef::new(list_id, action);
    let mut out = Vec::with_capacity(nets.size_hint().0);
    each_aggregated(nets, |net| out.push((net, value)));
    out
}

/// From this many prefixes on, a list's IPv4 prefixes of /24 or shorter are gathered in a
/// bitmap of /24 blocks instead of sorted (`blocks`): its 2 MiB is not worth it for a few.
const BLOCKS_FROM: usize = 1 << 16;

fn each_aggregated(nets: impl IntoIterator<Item = IpNet>, emit: impl FnMut(IpNet)) {
    each_aggregated_with(nets, BLOCKS_FROM, emit);
}

/// [`each_aggregated`], with the bitmap of /24 blocks used when there are at least
/// `blocks_from` prefixes (the tests run both ways on the same input).
fn each_aggregated_with(
    nets: impl IntoIterator<Item = IpNet>,
    blocks_from: usize,
    mut emit: impl FnMut(IpNet),
) {
    let nets = nets.into_iter();
    let mut blocks = (nets.size_hint().0 >= blocks_from).then(blocks::Blocks::new);
    // IPv4 ranges packed as first << 32 | last in one u64: a sort of 8-byte integers is about
    // twice as fast as one of pairs, and orders by first address the same way.
    let mut v4: Vec<u64> = Vec::new();
    let mut v6: Vec<(u128, u128)> = Vec::new();
    for net in nets {
        match net {
            IpNet::V4(n) => {
                let (first, last) = (u32::from(n.network()), u32::from(n.broadcast()));
                match blocks.as_mut() {
                    Some(blocks) if n.prefix_len() <= 24 => blocks.mark(first, last),
                    _ => v4.push((u64::from(first) << 32) | u64::from(last)),
                }
            }
            IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
        }
    }
    v4.sort_unstable();
    let v4 = v4.into_iter().map(|r| (r >> 32, r & u64::from(u32::MAX)));
    let mut emit_v4 = |lo: u64, hi: u64| {
        split(lo.into(), hi.into(), 32, &mut |addr, len| {
            // `split` yields addresses below 2^32 and lengths up to 32 for a 32-bit family.
            let net = ipnet::Ipv4Net::new((addr as u32).into(), len).expect("length <= 32");
            emit(IpNet::V4(net));
        });
    };
    let after = |a: u64| a.checked_add(1);
    match &blocks {
        Some(blocks) => merge(blocks::interleave(blocks.runs(), v4), after, &mut emit_v4),
        None => merge(v4, after, &mut emit_v4),
    }
    drop(blocks);
    v6.sort_unstable();
    merge(
        v6.into_iter(),
        |a| a.checked_add(1),
        |lo, hi| {
            split(lo, hi, 128, &mut |addr, len| {
                let net = ipnet::Ipv6Net::new(addr.into(), len).expect("length <= 128");
                emit(IpNet::V6(net));
            });
        },
    );
}

/// Merges inclusive intervals, sorted by first address, that overlap or touch, handing each
/// merged one to `emit` in order; `after` is the address following one (`None` past the
/// family's last). Streamed: a table of the merged intervals was 16 MiB more at a
/// million-prefix reload, written into freshly faulted pages.
fn merge<T: Copy + Ord>(
    ranges: impl Iterator<Item = (T, T)>,
    after: fn(T) -> Option<T>,
    mut emit: impl FnMut(T, T),
) {
    let mut open: Option<(T, T)> = None;
    for (lo, hi) in ranges {
        match open.as_mut() {
            // Overlapping or touching (this one starts at most right after the previous ends);
            // a range ending at the last address swallows everything after it.
            Some((_, end)) if after(*end).is_none_or(|next| lo <= next) => {
                *end = (*end).max(hi);
            }
            _ => {
                if let Some((first, last)) = open.replace((lo, hi)) {
                    emit(first, last);
                }
            }
        }
    }
    if let Some((first, last)) = open {
        emit(first, last);
    }
}

/// Emits the fewest aligned prefixes covering `lo..=hi` of a `bits`-wide family, in order.
fn split(mut lo: u128, hi: u128, bits: u32, emit: &mut impl FnMut(u128, u8)) {
    loop {
        // The largest block starting at `lo`: limited by `lo`'s alignment and by what is left.
        let aligned = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        let left = hi - lo;
        let fits = match left.checked_add(1) {
            Some(count) => 127 - count.leading_zeros(),
            None => 128,
        };
        let k = aligned.min(fits);
        // k <= bits <= 128, so the length fits a u8.
        emit(lo, (bits - k) as u8);
        if k >= 128 {
            return;
        }
        let last = lo + ((1u128 << k) - 1);
        if last >= hi {
            return;
        }
        lo = last + 1;
    }
}

/// The kernel's block set: each list's prefixes aggregated on their own (so every kernel
/// prefix names a list that really covers each of its addresses, and an event names the list
/// the address is in), enforce winning over audit, and the first list in configuration order
/// keeping a prefix two lists of the same action both hold.
pub fn kernel_set(entries: &[Tagged]) -> KernelSet {
    kernel_set_counted(entries).0
}

/// [`kernel_set`], and how many prefixes each list aggregates to on its own (list id, count):
/// the aggregation the set is built from anyway, so the counts cost nothing more.
pub fn kernel_set_counted(entries: &[Tagged]) -> (KernelSet, Vec<(u16, usize)>) {
    let mut groups: std::collections::BTreeMap<(u16, u8), (Action, Vec<IpNet>)> =
        Default::default();
    for e in entries {
        groups
            .entry((e.list_id, action_rank(e.action)))
            .or_insert_with(|| (e.action, Vec::new()))
            .1
            .push(e.net);
    }
    from_lists(
        groups.into_iter().map(|((list_id, _), (action, nets))| {
            (list_id, action, list_set(list_id, action, nets))
        }),
    )
}

/// The kernel set from each list's own aggregation (list id, action, its [`list_set`]), and
/// each list's count.
pub fn from_lists(
    lists: impl IntoIterator<Item = (u16, Action, KernelSet)>,
) -> (KernelSet, Vec<(u16, usize)>) {
    let mut per_list: Vec<((u8, u16), KernelSet)> = lists
        .into_iter()
        .map(|(list_id, action, nets)| ((action_rank(action), list_id), nets))
        .collect();
    per_list.sort_unstable_by_key(|(key, _)| *key);
    let counts = per_list
        .iter()
        .map(|((_, list_id), nets)| (*list_id, nets.len()))
        .collect();
    // Every address some enforce list covers, as disjoint prefixes in order: an audit prefix
    // inside one of them would win the longest-prefix match and let through what enforce
    // refuses. Only needed when there are audit lists to filter.
    let any_audit = per_list.iter().any(|((rank, _), _)| *rank != 0);
    let enforced: Vec<IpNet> = if any_audit {
        aggregate(
            &per_list
                .iter()
                .filter(|((rank, _), _)| *rank == 0)
                .flat_map(|(_, nets)| nets.iter().map(|(net, _)| *net))
                .collect::<Vec<_>>(),
        )
    } else {
        Vec::new()
    };
    if let [((0, _), _)] = per_list.as_slice() {
        // One enforce list (the common large case): its aggregation is the set, in order.
        let (_, nets) = per_list.swap_remove(0);
        return (nets, counts);
    }
    let mut set: Vec<(IpNet, u8, ListRef)> =
        Vec::with_capacity(per_list.iter().map(|(_, nets)| nets.len()).sum());
    for ((rank, _), nets) in per_list {
        set.extend(
            nets.into_iter()
                .filter(|(net, value)| {
                    value.action == Action::Enforce as u8 || containing(&enforced, net).is_none()
                })
                .map(|(net, value)| (net, rank, value)),
        );
    }
    // Enforce before audit, then the lower list id: the entry kept for a prefix held twice.
    set.sort_unstable_by_key(|(net, rank, value)| (*net, *rank, value.list_id));
    set.dedup_by_key(|(net, _, _)| *net);
    let set = set
        .into_iter()
        .map(|(net, _, value)| (net, value))
        .collect();
    (set, counts)
}

fn action_rank(action: Action) -> u8 {
    match action {
        Action::Enforce => 0,
        // Lists never carry Exempted (an event-only action); rank it last.
        Action::Audit | Action::Exempted => 1,
    }
}

/// The position in `prefixes` (disjoint, IPv4 before IPv6, by address: [`aggregate`]'s
/// order) of the prefix containing `net`.
fn containing(prefixes: &[IpNet], net: &IpNet) -> Option<usize> {
    let i = prefixes.partition_point(|c| {
        family_rank(c) < family_rank(net)
            || (family_rank(c) == family_rank(net) && c.network() <= net.network())
    });
    let i = i.checked_sub(1)?;
    prefixes[i].contains(net).then_some(i)
}

fn family_rank(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("valid test prefix")
    }

    fn get(set: &KernelSet, prefix: &str) -> ListRef {
        let key = net(prefix);
        set.iter()
            .find(|(n, _)| *n == key)
            .map(|(_, v)| *v)
            .expect("prefix in set")
    }

    fn tagged(s: &str, list_id: u16, action: Action) -> Tagged {
        Tagged {
            net: net(s),
            list_id,
            action,
        }
    }

    #[test]
    fn merges_duplicates_overlaps_and_neighbours() {
        let merged = aggregate(&[
            net("10.0.0.0/25"),
            net("10.0.0.128/25"),
            net("10.0.0.7/32"),
            net("10.0.0.0/24"),
            net("2001:db8::/33"),
            net("2001:db8:8000::/33"),
        ]);
        assert_eq!(merged, [net("10.0.0.0/24"), net("2001:db8::/32")]);
    }

    #[test]
    fn enforce_wins_over_a_more_specific_audit_prefix() {
        let set = kernel_set(&[
            tagged("10.0.0.0/8", 1, Action::Enforce),
            tagged("10.1.0.0/16", 2, Action::Audit),
            tagged("192.0.2.0/24", 2, Action::Audit),
        ]);
        assert_eq!(set.len(), 2, "{set:?}");
        assert_eq!(get(&set, "10.0.0.0/8"), ListRef::new(1, Action::Enforce));
        assert_eq!(get(&set, "192.0.2.0/24"), ListRef::new(2, Action::Audit));
        assert!(set.windows(2).all(|w| w[0].0 < w[1].0), "sorted and unique");
    }

    #[test]
    fn lists_are_aggregated_apart_and_the_first_keeps_a_shared_prefix() {
        let set = kernel_set(&[
            tagged("10.0.0.128/25", 3, Action::Enforce),
            tagged("10.0.0.0/25", 4, Action::Enforce),
            tagged("10.0.1.0/25", 4, Action::Enforce),
            tagged("10.0.1.128/25", 4, Action::Enforce),
            tagged("10.0.1.0/24", 5, Action::Enforce),
            tagged("10.0.1.0/24", 6, Action::Audit),
        ]);
        // Neighbours of two lists stay apart: 10.0.0.200 is list 3's, not list 4's.
        assert_eq!(get(&set, "10.0.0.128/25").list_id, 3);
        assert_eq!(get(&set, "10.0.0.0/25").list_id, 4);
        // Within one list they merge; the same prefix in two lists goes to the first.
        assert_eq!(get(&set, "10.0.1.0/24"), ListRef::new(4, Action::Enforce));
        assert_eq!(set.len(), 3, "{set:?}");
    }

    #[test]
    fn each_list_is_counted_as_it_aggregates_on_its_own() {
        let (set, counts) = kernel_set_counted(&[
            tagged("10.0.0.0/25", 1, Action::Enforce),
            tagged("10.0.0.128/25", 1, Action::Enforce),
            tagged("10.0.0.0/24", 2, Action::Enforce),
            tagged("192.0.2.1/32", 2, Action::Enforce),
            tagged("192.0.2.9/32", 3, Action::Audit),
        ]);
        assert_eq!(counts, [(1, 1), (2, 2), (3, 1)]);
        // List 2's /24 is list 1's too: the set holds it once.
        assert_eq!(set.len(), 3, "{set:?}");
    }

    /// Strategy: small IPv4 prefixes clustered in 10.0.0.0/16 so overlaps are common.
    fn v4_prefix() -> impl Strategy<Value = IpNet> {
        (0u32..65536, 16u8..=32).prop_map(|(host, len)| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | host);
            IpNet::V4(ipnet::Ipv4Net::new(addr, len).expect("len <= 32").trunc())
        })
    }

    fn covers(nets: &[IpNet], addr: std::net::Ipv4Addr) -> bool {
        nets.iter().any(|n| n.contains(&std::net::IpAddr::V4(addr)))
    }

    /// Strategy: prefixes of either family, from the whole space down to hosts, clustered near
    /// the edges of the space and of one network so overlaps and neighbours are common.
    fn any_prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (
                prop_oneof![
                    0u32..64,
                    0x0a00_0000u32..0x0a00_0100,
                    u32::MAX - 64..=u32::MAX
                ],
                0u8..=32
            )
                .prop_map(|(a, len)| IpNet::V4(
                    ipnet::Ipv4Net::new(a.into(), len)
                        .expect("len <= 32")
                        .trunc()
                )),
            (
                prop_oneof![0u128..64, u128::MAX - 64..=u128::MAX],
                0u8..=128
            )
                .prop_map(|(a, len)| {
                    IpNet::V6(
                        ipnet::Ipv6Net::new(a.into(), len)
                            .expect("len <= 128")
                            .trunc(),
                    )
                }),
        ]
    }

    #[test]
    fn the_whole_space_and_its_edges_aggregate() {
        assert_eq!(
            aggregate(&[
                net("0.0.0.0/1"),
                net("128.0.0.0/1"),
                net("::/0"),
                net("::/1")
            ]),
            [net("0.0.0.0/0"), net("::/0")]
        );
        assert_eq!(
            aggregate(&[net("255.255.255.255/32"), net("255.255.255.254/32")]),
            [net("255.255.255.254/31")]
        );
        assert_eq!(
            aggregate(&[net("10.0.0.1/32"), net("10.0.0.2/32")]),
            [net("10.0.0.1/32"), net("10.0.0.2/32")],
            "neighbours that do not align stay apart"
        );
    }

    proptest! {
        /// The linear aggregation gives exactly `ipnet`'s (the reference) result.
        #[test]
        fn aggregation_equals_the_reference(input in proptest::collection::vec(any_prefix(), 0..60)) {
            prop_assert_eq!(aggregate(&input), IpNet::aggregate(&input));
            let mut with_blocks = Vec::new();
            each_aggregated_with(input.iter().copied(), 0, |net| with_blocks.push(net));
            prop_assert_eq!(with_blocks, IpNet::aggregate(&input), "with the /24 blocks");
        }

        /// The aggregated set covers exactly the same addresses as the input.
        #[test]
        fn aggregation_preserves_coverage(
            input in proptest::collection::vec(v4_prefix(), 0..40),
            probes in proptest::collection::vec(0u32..65536, 64),
        ) {
            let output = aggregate(&input);
            prop_assert!(output.len() <= input.len());
            // Disjoint: no output prefix contains another.
            for (i, a) in output.iter().enumerate() {
                for b in &output[i + 1..] {
                    prop_assert!(!a.contains(b) && !b.contains(a), "{a} overlaps {b}");
                }
            }
            // Same coverage on random addresses and on every edge of every input prefix.
            let mut addrs: Vec<std::net::Ipv4Addr> =
                probes.iter().map(|h| std::net::Ipv4Addr::from(0x0a00_0000 | h)).collect();
            for n in &input {
                if let IpNet::V4(n) = n {
                    addrs.extend([n.network(), n.broadcast()]);
                    addrs.push(std::net::Ipv4Addr::from(u32::from(n.broadcast()).wrapping_add(1)));
                    addrs.push(std::net::Ipv4Addr::from(u32::from(n.network()).wrapping_sub(1)));
                }
            }
            for addr in addrs {
                prop_assert_eq!(covers(&input, addr), covers(&output, addr), "{}", addr);
            }
        }

        /// Every address an enforce entry covers is enforced by the kernel set's longest match.
        #[test]
        fn enforce_coverage_survives_audit_lists(
            enforce in proptest::collection::vec(v4_prefix(), 1..20),
            audit in proptest::collection::vec(v4_prefix(), 0..20),
            probes in proptest::collection::vec(0u32..65536, 64),
        ) {
            let mut entries: Vec<Tagged> = enforce.iter().map(|n| Tagged { net: *n, list_id: 1, action: Action::Enforce }).collect();
            entries.extend(audit.iter().map(|n| Tagged { net: *n, list_id: 2, action: Action::Audit }));
            let set = kernel_set(&entries);
            for h in probes {
                let addr = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 | h));
                let longest = set.iter().filter(|(n, _)| n.contains(&addr)).max_by_key(|(n, _)| n.prefix_len());
                let in_enforce = enforce.iter().any(|n| n.contains(&addr));
                let in_audit = audit.iter().any(|n| n.contains(&addr));
                match longest {
                    Some((_, v)) => {
                        prop_assert!(in_enforce || in_audit);
                        prop_assert_eq!(v.action == Action::Enforce as u8, in_enforce, "{}", addr);
                    }
                    None => prop_assert!(!in_enforce && !in_audit, "{} lost", addr),
                }
            }
        }
    }
}
