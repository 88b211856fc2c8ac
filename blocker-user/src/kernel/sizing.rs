//! How big the IPv4 host array, /24 hash and IPv6 pieces' array are made (the host array takes the same fitted
//! capacity, per half). A hash's bucket array is sized by its capacity (16 bytes a bucket,
//! whatever it holds), so a capacity fixed at the configured limit cost a million-prefix
//! install 64 MiB of empty buckets. Each is made for what it holds plus a quarter, and a reload that needs more moves to a new generation
//! with bigger hashes (the migration that any change of map shape takes, without a gap).
//! The IPv6 pieces' array is fitted the same way. The IPv4 trie allocates per entry, so its
//! capacity stays the limit.
//! Past [`DENSE24_AT`] /24s the /24 hash gives way to a dense array of one byte per /24.

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

/// How many IPv4 hosts and /24s a set holds, its first /24 with no dense byte form, and the
/// pieces its IPv6 prefixes take (`sorted_v6::count_pieces`).
pub struct TierCounts {
    pub hosts: usize,
    pub nets24: usize,
    pub without_byte_form: Option<(IpNet, blocker_common::ListRef)>,
    pub pieces_v6: usize,
}

impl TierCounts {
    pub fn of(desired: &KernelSet) -> Self {
        let mut counts = Self {
            hosts: 0,
            nets24: 0,
            without_byte_form: None,
            pieces_v6: super::sorted_v6::count_pieces(desired),
        };
        for &(net, value) in desired {
            if let IpNet::V4(v4) = net {
                match V4Tier::of(&v4) {
                    V4Tier::Hosts => counts.hosts += 1,
                    V4Tier::Nets24 => {
                        counts.nets24 += 1;
                        if counts.without_byte_form.is_none()
                            && blocker_common::dense24_byte(value).is_none()
                        {
                            counts.without_byte_form = Some((net, value));
                        }
                    }
                    V4Tier::Trie => {}
                }
            }
        }
        counts
    }
}

/// A set with this many /24s keeps them in the dense array (16 MiB, one byte each) instead
/// of the /24 hash: a no-prealloc hash costs about 90 bytes an entry (element, bucket and
/// headroom), so from here on the array is smaller, and its sync is one write per /16.
pub const DENSE24_AT: usize = 3 << 16;

/// A dense set goes back to the hash only below half of [`DENSE24_AT`], so a list that
/// hovers at the threshold does not migrate at every reload.
pub const DENSE24_UNTIL: usize = DENSE24_AT / 2;

/// The sizing of the hosts' array, the /24 hash and the IPv6 pieces' array, and whether /24s
/// are kept dense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSizes {
    pub hosts_v4: Fitted,
    pub nets24_v4: Fitted,
    /// Pieces a half of `BLOCK_V6` holds (`sorted_v6::count_pieces`).
    pub sorted_v6: Fitted,
    /// /24s in `BLOCK_DENSE24_V4` (the /24 hash then holds none).
    pub dense24: bool,
}

impl HashSizes {
    /// Sized for `desired`, each at most its family's limit (`maps.block_v4`,
    /// `maps.block_v6`); `dense_now` is whether the maps in force keep /24s dense.
    pub fn fit(desired: &KernelSet, (limit, v6_limit): (u32, u32), dense_now: bool) -> Self {
        let tiers = TierCounts::of(desired);
        let at = if dense_now { DENSE24_UNTIL } else { DENSE24_AT };
        let dense24 = tiers.without_byte_form.is_none() && tiers.nets24 >= at;
        Self {
            hosts_v4: Fitted::of(tiers.hosts, limit.min(blocker_common::HOSTS_V4_MAX)),
            nets24_v4: Fitted::of(if dense24 { 0 } else { tiers.nets24 }, limit),
            sorted_v6: Fitted::of(tiers.pieces_v6, v6_limit.min(blocker_common::V6_PIECES_MAX)),
            dense24,
        }
    }

    /// Both at `limit`, any existing size kept, /24s kept as they are (`dense_now`): for when
    /// the maps also hold entries the daemon does not know (those of lists that failed to
    /// load, kept as they are), which a map fitted to the known content might not hold.
    pub fn at_limit((limit, v6_limit): (u32, u32), dense_now: bool) -> Self {
        let fitted = Fitted {
            needed: 0,
            capacity: limit,
            keep_up_to: limit,
        };
        let hosts = Fitted {
            capacity: limit.min(blocker_common::HOSTS_V4_MAX),
            keep_up_to: limit.min(blocker_common::HOSTS_V4_MAX),
            ..fitted
        };
        let v6_limit = v6_limit.min(blocker_common::V6_PIECES_MAX);
        Self {
            hosts_v4: hosts,
            nets24_v4: fitted,
            sorted_v6: Fitted {
                needed: 0,
                capacity: v6_limit,
                keep_up_to: v6_limit,
            },
            dense24: dense_now,
        }
    }

    /// [`Self::fit`] when nothing is kept for failed lists, else [`Self::at_limit`].
    pub fn for_sync(
        desired: &KernelSet,
        keep: &[u16],
        limits: (u32, u32),
        dense_now: bool,
    ) -> Self {
        if keep.is_empty() {
            Self::fit(desired, limits, dense_now)
        } else {
            Self::at_limit(limits, dense_now)
        }
    }

    /// Chunks of `BLOCK_DENSE24_V4`: every /16's, or one (a miss for every address).
    pub fn dense24_chunks(&self) -> u32 {
        if self.dense24 {
            blocker_common::DENSE24_CHUNKS + 1
        } else {
            1
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
        let sizes = HashSizes::fit(&set(200_000, 100_000), (1 << 21, 1 << 19), false);
        assert_eq!(sizes.hosts_v4.capacity, 1 << 18);
        assert_eq!(sizes.nets24_v4.capacity, 1 << 17);
        let small = HashSizes::fit(&set(3, 0), (1 << 21, 1 << 19), false);
        assert_eq!(small.hosts_v4.capacity, MIN_CAPACITY);
        assert_eq!(
            HashSizes::fit(&set(3, 0), (1000, 1000), false)
                .hosts_v4
                .capacity,
            1000
        );
    }

    #[test]
    fn an_existing_map_is_kept_while_it_holds_the_content_and_is_not_four_times_too_big() {
        let sizes = HashSizes::fit(&set(5000, 0), (1 << 21, 1 << 19), false);
        assert_eq!(sizes.hosts_v4.capacity, 8192);
        // Kept from 5000 (what it must hold) up to four times the fitted capacity.
        assert_eq!(sizes.hosts_v4.needed, 5000);
        assert_eq!(sizes.hosts_v4.keep_up_to, 1 << 15);
        let at_limit = HashSizes::at_limit((1 << 21, 1 << 19), false).hosts_v4;
        assert_eq!((at_limit.needed, at_limit.keep_up_to), (0, 1 << 21));
    }

    #[test]
    fn many_24s_go_dense_and_stay_dense_until_half_as_many() {
        let many = HashSizes::fit(&set(10, DENSE24_AT as u32), (1 << 21, 1 << 19), false);
        assert!(many.dense24);
        assert_eq!(
            (many.nets24_v4.needed, many.dense24_chunks()),
            (0, (1 << 16) + 1)
        );
        let fewer = set(10, DENSE24_AT as u32 - 1);
        assert!(!HashSizes::fit(&fewer, (1 << 21, 1 << 19), false).dense24);
        assert!(HashSizes::fit(&fewer, (1 << 21, 1 << 19), true).dense24);
        let half = set(10, DENSE24_UNTIL as u32 - 1);
        let sparse = HashSizes::fit(&half, (1 << 21, 1 << 19), true);
        assert!(!sparse.dense24);
        assert_eq!(sparse.dense24_chunks(), 1);
        assert_eq!(sparse.nets24_v4.needed, DENSE24_UNTIL as u32 - 1);
    }

    #[test]
    fn a_24_without_a_byte_form_keeps_the_set_in_the_hash() {
        let mut many = set(0, DENSE24_AT as u32);
        many[0].1 = ListRef::new(200, Action::Enforce);
        assert!(!HashSizes::fit(&many, (1 << 21, 1 << 19), false).dense24);
    }
}
