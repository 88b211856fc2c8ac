//! How big the two IPv4 hashes (hosts and /24 networks) are made. A hash's bucket array is
//! sized by its capacity (16 bytes a bucket, whatever it holds), so a capacity fixed at the
//! configured limit cost a million-prefix install 64 MiB of empty buckets. Each hash is made
//! for what it holds plus a quarter, and a reload that needs more moves to a new generation
//! with bigger hashes (the migration that any change of map shape takes, without a gap).
//! The tries and the IPv6 trie allocate per entry, so their capacity stays the limit.

use ipnet::IpNet;

use super::targets::V4Tier;
use crate::lists::aggregate::KernelSet;

/// The smallest capacity a hash is made with: small lists grow without a migration.
pub const MIN_CAPACITY: u32 = 1 << 12;

/// One hash's sizing for a given content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// Entries it must hold.
    pub needed: u32,
    /// The capacity a new map is made with.
    pub capacity: u32,
    /// The largest capacity an existing map may have and still be kept: a list that shrank
    /// to a quarter moves to smaller maps at its next migration, not at every small change.
    pub keep_up_to: u32,
}

impl Fitted {
    fn of(needed: usize, limit: u32) -> Self {
        let needed = u32::try_from(needed).unwrap_or(u32::MAX);
        let room = needed
            .saturating_add(needed / 4)
            .max(MIN_CAPACITY)
            .checked_next_power_of_two()
            .unwrap_or(u32::MAX);
        let capacity = room.min(limit);
        Self {
            needed,
            capacity,
            keep_up_to: capacity.saturating_mul(4).min(limit).max(capacity),
        }
    }
}

/// The sizing of both IPv4 hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSizes {
    pub hosts_v4: Fitted,
    pub nets24_v4: Fitted,
}

impl HashSizes {
    /// Sized for `desired`, each at most `limit` (`maps.block_v4`).
    pub fn fit(desired: &KernelSet, limit: u32) -> Self {
        let (mut hosts, mut nets24) = (0, 0);
        for (net, _) in desired {
            if let IpNet::V4(net) = net {
                match V4Tier::of(net) {
                    V4Tier::Hosts => hosts += 1,
                    V4Tier::Nets24 => nets24 += 1,
                    V4Tier::Trie => {}
                }
            }
        }
        Self {
            hosts_v4: Fitted::of(hosts, limit),
            nets24_v4: Fitted::of(nets24, limit),
        }
    }

    /// Both at `limit`, any existing size kept: for when the maps also hold entries the
    /// daemon does not know (those of lists that failed to load, kept as they are), which a
    /// map fitted to the known content might not hold.
    pub fn at_limit(limit: u32) -> Self {
        let fitted = Fitted {
            needed: 0,
            capacity: limit,
            keep_up_to: limit,
        };
        Self {
            hosts_v4: fitted,
            nets24_v4: fitted,
        }
    }

    /// [`Self::fit`] when nothing is kept for failed lists, else [`Self::at_limit`].
    pub fn for_sync(desired: &KernelSet, keep: &[u16], limit: u32) -> Self {
        if keep.is_empty() {
            Self::fit(desired, limit)
        } else {
            Self::at_limit(limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use blocker_common::{Action, ListRef};

    use super::*;

    fn set(hosts: u32, nets: u32) -> KernelSet {
        let value = ListRef::new(1, Action::Enforce);
        let mut set: KernelSet = (0..hosts)
            .map(|i| {
                (
                    IpNet::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()),
                    value,
                )
            })
            .collect();
        set.extend((0..nets).map(|i| {
            let net = ipnet::Ipv4Net::new((0x2000_0000 + (i << 8)).into(), 24).expect("/24");
            (IpNet::V4(net), value)
        }));
        set
    }

    #[test]
    fn hashes_get_a_quarter_of_headroom_in_powers_of_two_within_the_limit() {
        let sizes = HashSizes::fit(&set(200_000, 800_000), 1 << 21);
        assert_eq!(sizes.hosts_v4.capacity, 1 << 18);
        assert_eq!(sizes.nets24_v4.capacity, 1 << 20);
        let small = HashSizes::fit(&set(3, 0), 1 << 21);
        assert_eq!(small.hosts_v4.capacity, MIN_CAPACITY);
        assert_eq!(HashSizes::fit(&set(3, 0), 1000).hosts_v4.capacity, 1000);
    }

    #[test]
    fn an_existing_map_is_kept_while_it_holds_the_content_and_is_not_four_times_too_big() {
        let sizes = HashSizes::fit(&set(5000, 0), 1 << 21);
        assert_eq!(sizes.hosts_v4.capacity, 8192);
        // Kept from 5000 (what it must hold) up to four times the fitted capacity.
        assert_eq!(sizes.hosts_v4.needed, 5000);
        assert_eq!(sizes.hosts_v4.keep_up_to, 1 << 15);
        let at_limit = HashSizes::at_limit(1 << 21).hosts_v4;
        assert_eq!((at_limit.needed, at_limit.keep_up_to), (0, 1 << 21));
    }
}
