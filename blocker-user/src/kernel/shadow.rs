//! A compact copy of what the block tries hold: the set the daemon last wrote, which reloads
//! diff against instead of reading a million entries back. Packed because it lives as long as
//! the daemon: an IPv4 entry is one u64 (address, length, list, action), 8 bytes where a
//! `(IpNet, ListRef)` takes 22.

use std::net::{Ipv4Addr, Ipv6Addr};

use blocker_common::ListRef;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

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
        let mut shadow = Self::default();
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

    /// The entries in `IpNet` order (IPv4 first, then by address and length).
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, ListRef)> + '_ {
        let v4 = self.v4.iter().filter_map(|&bits| {
            let (len, value) = unpack(bits as u32);
            let net = Ipv4Net::new(Ipv4Addr::from((bits >> 32) as u32), len).ok()?;
            Some((IpNet::V4(net), value))
        });
        let v6 = self.v6.iter().filter_map(|&(addr, bits)| {
            let (len, value) = unpack(bits);
            let net = Ipv6Net::new(Ipv6Addr::from(addr), len).ok()?;
            Some((IpNet::V6(net), value))
        });
        v4.chain(v6)
    }
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
}
