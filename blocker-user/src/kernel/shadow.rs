//! A compact copy of what the block tries hold: the set the daemon last wrote, which reloads
//! diff against instead of reading a million entries back. Packed because it lives as long as
//! the daemon: an IPv4 entry is one u64 (address, length, list, action), 8 bytes where a
//! `(IpNet, ListRef)` takes 22.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use blocker_common::ListRef;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::diff::{self, Diff};

#[derive(Debug, Default)]
pub struct Shadow {
    /// `addr << 32 | len << 24 | list_id << 8 | action`, sorted like `IpNet` (address, length).
    v4: Vec<u64>,
    /// Address and `len << 24 | list_id << 8 | action`.
    v6: Vec<([u8; 16], u32)>,
}

fn pack(len: u8, value: ListRef) -> u32 {
    u32::from(len) << 24 | u32::from(value.list_id) << 8 | u32::from(value.action)
}

fn unpack(bits: u32) -> (u8, ListRef) {
    let value = ListRef {
        list_id: (bits >> 8) as u16,
        action: bits as u8,
        prefix_len: 0,
    };
    ((bits >> 24) as u8, value)
}

impl Shadow {
    /// From a set sorted by `IpNet` order (as `ListSet::kernel_set` returns it).
    pub fn of(sorted: &[(IpNet, ListRef)]) -> Self {
        let v4 = sorted
            .iter()
            .filter(|(net, _)| net.addr().is_ipv4())
            .count();
        let mut shadow = Self {
            v4: Vec::with_capacity(v4),
            v6: Vec::with_capacity(sorted.len() - v4),
        };
        for (net, value) in sorted {
            match net {
                IpNet::V4(n) => shadow.v4.push(
                    u64::from(u32::from(n.network())) << 32
                        | u64::from(pack(n.prefix_len(), *value)),
                ),
                IpNet::V6(n) => shadow
                    .v6
                    .push((n.network().octets(), pack(n.prefix_len(), *value))),
            }
        }
        shadow
    }

    /// The longest prefix holding `addr`, as the kernel's lookup finds it (its tiers and trie
    /// together are a longest-prefix match): one binary search per prefix length, which is
    /// cheap enough for the sweep, `check` and tests, and costs no memory beside the copy.
    pub fn longest_match(&self, addr: IpAddr) -> Option<(IpNet, ListRef)> {
        match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                (0..=32u8).rev().find_map(|len| {
                    let net = bits & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    // Sorted by address, then length: the top 40 bits order the entries.
                    let key = u64::from(net) << 8 | u64::from(len);
                    let i = self.v4.binary_search_by_key(&key, |&b| b >> 24).ok()?;
                    let (_, value) = unpack(self.v4[i] as u32);
                    let net = Ipv4Net::new(Ipv4Addr::from(net), len).ok()?;
                    Some((IpNet::V4(net), value))
                })
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                (0..=128u8).rev().find_map(|len| {
                    let net = bits & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    let key = (net.to_be_bytes(), len);
                    let i = self
                        .v6
                        .binary_search_by_key(&key, |&(a, b)| (a, (b >> 24) as u8))
                        .ok()?;
                    let (_, value) = unpack(self.v6[i].1);
                    let net = Ipv6Net::new(Ipv6Addr::from(net), len).ok()?;
                    Some((IpNet::V6(net), value))
                })
            }
        }
    }

    /// The entries in `IpNet` order (IPv4 first, then by address and length).
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, ListRef)> + '_ {
        let v4 = self.v4.iter().filter_map(v4_entry);
        let v6 = self.v6.iter().filter_map(v6_entry);
        v4.chain(v6)
    }

    /// What turns the maps from `self` into `next`, in `IpNet` order, as
    /// `diff::diff_sorted` of the two would find it: the same merge, over the packed integers
    /// (comparing a million `IpNet`s was a third of a reload's sync), and only the entries
    /// that change decoded.
    pub fn diff(&self, next: &Self) -> Diff<IpNet, ListRef> {
        let d4 = diff::diff_sorted(v4_pairs(&self.v4), v4_pairs(&next.v4));
        let d6 = diff::diff_sorted(v6_pairs(&self.v6), v6_pairs(&next.v6));
        let e4 = |&(key, value): &(u64, u64)| v4_entry(&(key << 24 | value));
        let e6 =
            |&((addr, len), value): &(([u8; 16], u32), u32)| v6_entry(&(addr, len << 24 | value));
        Diff {
            inserts: d4
                .inserts
                .iter()
                .filter_map(e4)
                .chain(d6.inserts.iter().filter_map(e6))
                .collect(),
            updates: d4
                .updates
                .iter()
                .filter_map(e4)
                .chain(d6.updates.iter().filter_map(e6))
                .collect(),
            deletes: (d4.deletes.iter().filter_map(|&k| e4(&(k, 0))))
                .chain(d6.deletes.iter().filter_map(|&k| e6(&(k, 0))))
                .map(|(net, _)| net)
                .collect(),
            unchanged: d4.unchanged + d6.unchanged,
        }
    }
}

/// An IPv4 entry as (key, value): its top 40 bits are its (address, length), the low 24 its
/// list and action.
fn v4_pairs(packed: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    packed.iter().map(|&bits| (bits >> 24, bits & 0xff_ffff))
}

/// An IPv6 entry as ((address, length), value).
fn v6_pairs(packed: &[([u8; 16], u32)]) -> impl Iterator<Item = (([u8; 16], u32), u32)> + '_ {
    packed
        .iter()
        .map(|&(addr, bits)| ((addr, bits >> 24), bits & 0xff_ffff))
}

fn v4_entry(&bits: &u64) -> Option<(IpNet, ListRef)> {
    let (len, value) = unpack(bits as u32);
    let net = Ipv4Net::new(Ipv4Addr::from((bits >> 32) as u32), len).ok()?;
    Some((IpNet::V4(net), value))
}

fn v6_entry(&(addr, bits): &([u8; 16], u32)) -> Option<(IpNet, ListRef)> {
    let (len, value) = unpack(bits);
    let net = Ipv6Net::new(Ipv6Addr::from(addr), len).ok()?;
    Some((IpNet::V6(net), value))
}

#[cfg(test)]
mod tests {
    use blocker_common::Action;

    use super::*;

    #[test]
    fn round_trips_in_order() {
        let mut set: Vec<(IpNet, ListRef)> = [
            ("2001:db8::/32", ListRef::new(3, Action::Audit)),
            ("10.0.0.0/8", ListRef::new(1, Action::Enforce)),
            ("10.0.0.0/16", ListRef::new(65535, Action::Enforce)),
            ("192.0.2.7/32", ListRef::new(2, Action::Audit)),
        ]
        .into_iter()
        .map(|(n, v)| (n.parse().expect("net"), v))
        .collect();
        set.sort_unstable_by_key(|(n, _)| *n);
        let back: Vec<_> = Shadow::of(&set).iter().collect();
        assert_eq!(back, set);
    }

    #[test]
    fn diff_of_two_shadows_is_the_sorted_diff_of_their_sets() {
        let set = |items: &[(&str, u16, Action)]| -> Vec<(IpNet, ListRef)> {
            let mut set: Vec<_> = items
                .iter()
                .map(|&(n, id, a)| (n.parse().expect("net"), ListRef::new(id, a)))
                .collect();
            set.sort_unstable_by_key(|(n, _)| *n);
            set
        };
        let old = set(&[
            ("10.0.0.0/8", 1, Action::Enforce),
            ("10.0.0.0/16", 1, Action::Enforce),
            ("192.0.2.7/32", 2, Action::Audit),
            ("198.51.100.0/24", 1, Action::Enforce),
            ("2001:db8::/32", 3, Action::Audit),
            ("2001:db8::/48", 3, Action::Audit),
        ]);
        let new = set(&[
            ("10.0.0.0/8", 1, Action::Enforce),
            ("10.0.0.0/17", 1, Action::Enforce),
            ("192.0.2.7/32", 2, Action::Enforce),
            ("203.0.113.0/24", 4, Action::Enforce),
            ("2001:db8::/32", 5, Action::Audit),
            ("2001:db8::1/128", 3, Action::Audit),
        ]);
        let packed = Shadow::of(&old).diff(&Shadow::of(&new));
        assert_eq!(packed, diff::diff_sorted(old.clone(), new.clone()));
        assert_eq!(
            (
                packed.inserts.len(),
                packed.updates.len(),
                packed.deletes.len()
            ),
            (3, 2, 3)
        );
        assert_eq!(packed.unchanged, 1);
    }

    #[test]
    fn longest_match_prefers_the_most_specific_prefix() {
        let mut set: Vec<(IpNet, ListRef)> = [
            ("10.0.0.0/8", ListRef::new(1, Action::Enforce)),
            ("10.1.0.0/16", ListRef::new(2, Action::Audit)),
            ("10.1.2.3/32", ListRef::new(3, Action::Enforce)),
            ("2001:db8::/32", ListRef::new(4, Action::Audit)),
            ("2001:db8::1/128", ListRef::new(5, Action::Enforce)),
        ]
        .into_iter()
        .map(|(n, v)| (n.parse().expect("net"), v))
        .collect();
        set.sort_unstable_by_key(|(n, _)| *n);
        let shadow = Shadow::of(&set);
        let list_of = |a: &str| {
            shadow
                .longest_match(a.parse().expect("addr"))
                .map(|(n, v)| (n.to_string(), v.list_id))
        };
        assert_eq!(list_of("10.1.2.3"), Some(("10.1.2.3/32".into(), 3)));
        assert_eq!(list_of("10.1.2.4"), Some(("10.1.0.0/16".into(), 2)));
        assert_eq!(list_of("10.200.0.1"), Some(("10.0.0.0/8".into(), 1)));
        assert_eq!(list_of("11.0.0.1"), None);
        assert_eq!(list_of("2001:db8::1"), Some(("2001:db8::1/128".into(), 5)));
        assert_eq!(list_of("2001:db8::2"), Some(("2001:db8::/32".into(), 4)));
        assert_eq!(list_of("2001:db9::"), None);
    }
}
