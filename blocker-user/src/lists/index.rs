//! A userspace longest-prefix-match index, to explain a verdict: which list entry (and so which
//! file and line) covers an address. The kernel's LPM trie answers "blocked or not" but cannot
//! name the matching prefix, so the daemon and `vendorwall check` keep this beside it.
//!
//! Written by hand because the crates that do LPM (e.g. `ip_network_table`, `treebitmap`) store
//! a node per prefix and cost several times the memory of these sorted arrays, which matters at a
//! million prefixes; a lookup here is at most 33 (IPv4) or 129 (IPv6) binary searches.

use std::net::IpAddr;

use ipnet::IpNet;

/// Maps prefixes to a payload (an index into the caller's own table).
#[derive(Debug)]
pub struct PrefixIndex {
    /// `v4[len]` holds (network, payload) sorted by network, for prefixes of length `len`.
    v4: Vec<Vec<(u32, u32)>>,
    v6: Vec<Vec<(u128, u32)>>,
}

impl Default for PrefixIndex {
    fn default() -> Self {
        Self {
            v4: vec![Vec::new(); 33],
            v6: vec![Vec::new(); 129],
        }
    }
}

impl PrefixIndex {
    /// Builds the index. A prefix listed more than once keeps every payload, in order, so a
    /// lookup restricted to one list still finds it.
    pub fn build<I>(items: I) -> Self
    where
        I: IntoIterator<Item = (IpNet, u32)>,
        I::IntoIter: Clone,
    {
        let items = items.into_iter();
        let mut index = Self::default();
        // Counted first, so each bucket is allocated once at its size: grown by doubling, a
        // million prefixes cost up to twice their size, at the load's peak and after it.
        let (mut v4, mut v6) = ([0usize; 33], [0usize; 129]);
        for (net, _) in items.clone() {
            match net {
                IpNet::V4(n) => v4[usize::from(n.prefix_len())] += 1,
                IpNet::V6(n) => v6[usize::from(n.prefix_len())] += 1,
            }
        }
        for (bucket, count) in index.v4.iter_mut().zip(v4) {
            bucket.reserve_exact(count);
        }
        for (bucket, count) in index.v6.iter_mut().zip(v6) {
            bucket.reserve_exact(count);
        }
        for (net, payload) in items {
            match net {
                IpNet::V4(n) => {
                    index.v4[usize::from(n.prefix_len())].push((n.network().into(), payload))
                }
                IpNet::V6(n) => {
                    index.v6[usize::from(n.prefix_len())].push((n.network().into(), payload))
                }
            }
        }
        for bucket in &mut index.v4 {
            bucket.sort_unstable();
        }
        for bucket in &mut index.v6 {
            bucket.sort_unstable();
        }
        index
    }

    /// The most specific prefix covering `addr` with a payload in `payloads`, and the first
    /// such payload.
    pub fn longest_match_in(
        &self,
        addr: IpAddr,
        payloads: std::ops::Range<u32>,
    ) -> Option<(IpNet, u32)> {
        match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                (0..=32u8).rev().find_map(|len| {
                    let net = bits & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    let payload = first_in(&self.v4[usize::from(len)], net, &payloads)?;
                    let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(net), len).ok()?;
                    Some((IpNet::V4(net), payload))
                })
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                (0..=128u8).rev().find_map(|len| {
                    let net = bits & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    let payload = first_in(&self.v6[usize::from(len)], net, &payloads)?;
                    let net = ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(net), len).ok()?;
                    Some((IpNet::V6(net), payload))
                })
            }
        }
    }

    /// The most specific prefix covering `addr`, and its first payload.
    pub fn longest_match(&self, addr: IpAddr) -> Option<(IpNet, u32)> {
        self.longest_match_in(addr, 0..u32::MAX)
    }
}

/// The first payload in `payloads` stored for network `net` in a bucket sorted by (network,
/// payload).
fn first_in<T: Ord + Copy>(
    bucket: &[(T, u32)],
    net: T,
    payloads: &std::ops::Range<u32>,
) -> Option<u32> {
    let i = bucket.partition_point(|&(n, p)| (n, p) < (net, payloads.start));
    bucket
        .get(i)
        .filter(|&&(n, p)| n == net && payloads.contains(&p))
        .map(|&(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("valid test prefix")
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().expect("valid test address")
    }

    #[test]
    fn most_specific_prefix_wins() {
        let index = PrefixIndex::build([(net("10.0.0.0/8"), 1), (net("10.1.0.0/16"), 2)]);
        assert_eq!(
            index.longest_match(addr("10.1.2.3")),
            Some((net("10.1.0.0/16"), 2))
        );
        assert_eq!(
            index.longest_match(addr("10.2.0.1")),
            Some((net("10.0.0.0/8"), 1))
        );
        assert_eq!(index.longest_match(addr("11.0.0.1")), None);
    }

    #[test]
    fn hosts_and_default_routes() {
        let index = PrefixIndex::build([
            (net("192.0.2.7/32"), 1),
            (net("::/0"), 2),
            (net("2001:db8::1/128"), 3),
        ]);
        assert_eq!(
            index.longest_match(addr("192.0.2.7")),
            Some((net("192.0.2.7/32"), 1))
        );
        assert_eq!(index.longest_match(addr("192.0.2.8")), None);
        assert_eq!(
            index.longest_match(addr("2001:db8::1")),
            Some((net("2001:db8::1/128"), 3))
        );
        assert_eq!(index.longest_match(addr("fd00::1")), Some((net("::/0"), 2)));
    }

    #[test]
    fn duplicates_keep_every_payload() {
        let index = PrefixIndex::build([
            (net("10.0.0.0/8"), 2),
            (net("10.0.0.0/8"), 1),
            (net("10.1.0.0/16"), 3),
        ]);
        assert_eq!(
            index.longest_match(addr("10.0.0.1")),
            Some((net("10.0.0.0/8"), 1))
        );
        assert_eq!(
            index.longest_match_in(addr("10.0.0.1"), 2..3),
            Some((net("10.0.0.0/8"), 2))
        );
        // Restricted to payload 1's range, the /16 of payload 3 does not count.
        assert_eq!(
            index.longest_match_in(addr("10.1.0.1"), 1..2),
            Some((net("10.0.0.0/8"), 1))
        );
        assert_eq!(index.longest_match_in(addr("10.1.0.1"), 4..9), None);
    }
}
