//! From parsed lists to the exact set the kernel must hold: per action, duplicates, overlaps and
//! adjacent prefixes are merged (ipnet's aggregation), audit prefixes covered by an enforce prefix
//! are dropped (otherwise the longer audit prefix would win the LPM lookup and let a connection
//! through that an enforce list refuses), and each kernel prefix is tagged with a list id.

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

/// Merges `nets` into the fewest prefixes covering exactly the same addresses.
pub fn aggregate(nets: &[IpNet]) -> Vec<IpNet> {
    IpNet::aggregate(&nets.to_vec())
}

/// The kernel's block set: each list's prefixes aggregated on their own (so every kernel
/// prefix names a list that really covers each of its addresses, and an event names the list
/// the address is in), enforce winning over audit, and the first list in configuration order
/// keeping a prefix two lists of the same action both hold.
pub fn kernel_set(entries: &[Tagged]) -> KernelSet {
    let mut groups: std::collections::BTreeMap<(u8, u16), Vec<IpNet>> = Default::default();
    for e in entries {
        groups
            .entry((action_rank(e.action), e.list_id))
            .or_default()
            .push(e.net);
    }
    let per_list: Vec<((u8, u16), Vec<IpNet>)> = groups
        .into_iter()
        .map(|(key, nets)| (key, aggregate(&nets)))
        .collect();
    // Every address some enforce list covers, as disjoint prefixes: an audit prefix inside one
    // of them would win the longest-prefix match and let through what enforce refuses.
    let enforced: Vec<IpNet> = sorted(aggregate(
        &per_list
            .iter()
            .filter(|((rank, _), _)| *rank == 0)
            .flat_map(|(_, nets)| nets.iter().copied())
            .collect::<Vec<_>>(),
    ));
    let mut set: Vec<(IpNet, u8, ListRef)> = Vec::with_capacity(entries.len());
    for ((rank, list_id), nets) in per_list {
        let action = if rank == 0 {
            Action::Enforce
        } else {
            Action::Audit
        };
        set.extend(
            nets.into_iter()
                .filter(|net| action == Action::Enforce || containing(&enforced, net).is_none())
                .map(|net| (net, rank, ListRef::new(list_id, action))),
        );
    }
    // Enforce before audit, then the lower list id: the entry kept for a prefix held twice.
    set.sort_unstable_by_key(|(net, rank, value)| (*net, *rank, value.list_id));
    set.dedup_by_key(|(net, _, _)| *net);
    set.into_iter()
        .map(|(net, _, value)| (net, value))
        .collect()
}

fn action_rank(action: Action) -> u8 {
    match action {
        Action::Enforce => 0,
        // Lists never carry Exempted (an event-only action); rank it last.
        Action::Audit | Action::Exempted => 1,
    }
}

/// The position in `prefixes` (sorted, disjoint) of the prefix containing `net`.
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

/// IPv4 before IPv6, then by network address: the order the lookups above rely on.
fn sorted(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.sort_by_key(|n| (family_rank(n), n.network(), n.prefix_len()));
    nets
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

    proptest! {
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
