//! Making the generation's maps hold what the lists say: the settings slot, the block maps
//! (IPv4 tiers, IPv6 sorted pieces, the /24 bitmap), the exception tries and the exempt cgroups, each
//! written as a diff through [`super::diff`].

use std::collections::HashMap;

use aya::maps::{Array, HashMap as BpfHashMap, LpmTrie};
use blocker_common::{ListRef, Settings, map_names};
use ipnet::IpNet;

use super::{
    Enforcer, KernelError,
    diff::{self, SyncStats, SyncTarget as _},
    seen, shadow,
    targets::{self, KeyedHash, PrefixMaps},
};
use crate::lists::aggregate::KernelSet;

impl Enforcer {
    /// Writes `settings` into the kernel's settings slot.
    pub fn set_settings(&mut self, settings: Settings) -> Result<(), KernelError> {
        let name = map_names::SETTINGS;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(KernelError::MissingMap(name))?;
        let mut array: Array<_, Settings> =
            Array::try_from(map).map_err(|source| KernelError::Map { name, source })?;
        array
            .set(0, settings, 0)
            .map_err(|source| KernelError::Map { name, source })
    }

    /// Makes the block tries hold exactly `desired`, writing only the difference.
    ///
    /// Entries the maps hold for a list id in `keep` (lists that failed to load and have no
    /// content of their own in force) are kept as they are: a failure never removes
    /// protection.
    pub fn sync_block(
        &mut self,
        mut desired: KernelSet,
        keep: &[u16],
    ) -> Result<SyncStats, KernelError> {
        // Taken now: if the apply fails halfway, the next sync reads the maps back.
        let shadow = self
            .block_shadow
            .take()
            .filter(|_| !std::mem::take(&mut self.verify_block));
        // The copy of the new set, made before the writes when the diff is taken from it.
        let mut next_shadow = None;
        let diff = match shadow {
            // The common case: diff against the copy of what this generation last wrote.
            Some(shadow) if keep.is_empty() => {
                self.check_block_capacity(&desired)?;
                let next = next_shadow.insert(shadow::Shadow::of(&desired));
                Some(shadow.diff(next))
            }
            shadow => {
                let current: KernelSet = match shadow {
                    Some(shadow) => shadow.iter().collect(),
                    // Maps this generation created and has not written yet hold nothing: only
                    // others are read back (a million entries, or 65,537 dense chunks, take a
                    // while).
                    None if !self.block_written && !self.reuses_block_maps() => KernelSet::new(),
                    None => {
                        let mut current: KernelSet =
                            self.block_maps()?.read_all()?.into_iter().collect();
                        current.sort_unstable_by_key(|(net, _)| *net);
                        current
                    }
                };
                if !keep.is_empty() {
                    desired = with_kept(desired, &current, keep);
                }
                self.check_block_capacity(&desired)?;
                // Empty maps (a start, a new generation) take `desired` as it is: a diff
                // would be a second copy of a million entries at the daemon's peak.
                (!current.is_empty()).then(|| diff::diff_sorted(current, desired.iter().copied()))
            }
        };
        let seen_bits = seen::bits_of(desired.iter().filter_map(|(net, _)| match net {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        }));
        self.seen.widen(&seen_bits);
        // From here the maps may hold something this sync wrote, even if it fails halfway.
        self.block_written = true;
        let mut maps = self.block_maps()?;
        // The hosts (and the IPv6 pieces) switch from the old set to the new one in one write,
        // once every other tier holds its new entries and before any old one is deleted: an
        // address that moves between a host and a wider prefix is covered throughout.
        let stats = match diff {
            Some(diff) => {
                diff::write_diff_then(&mut maps, &diff, |maps| maps.write_sorted(&desired))?
            }
            None => {
                maps.known_empty = true;
                maps.upsert_many(&desired)?;
                maps.write_sorted(&desired)?;
                SyncStats {
                    inserted: desired.len(),
                    ..SyncStats::default()
                }
            }
        };
        self.seen.narrow(&seen_bits);
        drop(seen_bits);
        self.block_shadow = Some(next_shadow.unwrap_or_else(|| shadow::Shadow::of(&desired)));
        Ok(stats)
    }

    /// Whether any block map was carried over from the previous generation (with content).
    fn reuses_block_maps(&self) -> bool {
        const BLOCK_MAPS: [&str; 5] = [
            map_names::BLOCK_TRIE_V4,
            map_names::BLOCK_V6,
            map_names::BLOCK_HOSTS_V4,
            map_names::BLOCK_NETS24_V4,
            map_names::BLOCK_DENSE24_V4,
        ];
        self.adoption
            .reused
            .iter()
            .any(|name| BLOCK_MAPS.contains(name))
    }

    /// Refuses a block set this generation's maps cannot hold, before anything is written.
    fn check_block_capacity(&self, desired: &KernelSet) -> Result<(), KernelError> {
        check_block_capacity(
            desired,
            self.sizes.block_v4,
            self.sizes.block_v6,
            self.hash_capacity,
            self.dense24,
        )
    }

    /// Makes the next sync read the block tries back from the kernel instead of trusting the
    /// copy of the last sync: catches entries someone edited with `bpftool map`.
    pub fn verify_next_sync(&mut self) {
        self.verify_block = true;
    }

    /// What the block tries hold after the last successful sync (`None` after a failed one):
    /// the set the userspace verdict (`crate::verdict`) decides against.
    pub fn block_set(&self) -> Option<&shadow::Shadow> {
        self.block_shadow.as_ref()
    }

    /// Makes the exception tries hold exactly `desired`.
    pub fn sync_allow(
        &mut self,
        desired: &HashMap<IpNet, ListRef>,
    ) -> Result<SyncStats, KernelError> {
        let (v4_cap, v6_cap) = (self.sizes.allow_v4, self.sizes.allow_v6);
        check_capacity(
            desired.keys(),
            v4_cap,
            v6_cap,
            ("maps.allow_v4", "maps.allow_v6"),
        )?;
        let mut tries = self.tries(map_names::ALLOW_V4, map_names::ALLOW_V6)?;
        diff::apply(&mut tries, desired)
    }

    /// Makes the exempt-cgroup map hold exactly `ids`.
    pub fn sync_exempt(&mut self, ids: &[u64]) -> Result<SyncStats, KernelError> {
        let desired: HashMap<u64, u8> = ids.iter().map(|&id| (id, 1)).collect();
        let capacity = (self.sizes.exempt_cgroups, "maps.exempt_cgroups");
        self.sync_hash(map_names::EXEMPT_CGROUPS, capacity, &desired)
    }

    /// Makes the exemptions map hold exactly `desired` (upserts before deletes, so a key
    /// covered before and after stays covered).
    pub fn sync_exemptions(
        &mut self,
        desired: &HashMap<blocker_common::ExemptionKey, blocker_common::Grant>,
    ) -> Result<SyncStats, KernelError> {
        let capacity = (self.sizes.exemptions, "maps.exemptions");
        self.sync_hash(map_names::EXEMPTIONS, capacity, desired)
    }

    /// Makes the plain hash `name` hold exactly `desired`, refused beyond its capacity (the
    /// size and the config key that sets it).
    fn sync_hash<K, V>(
        &mut self,
        name: &'static str,
        (capacity, key): (u32, &'static str),
        desired: &HashMap<K, V>,
    ) -> Result<SyncStats, KernelError>
    where
        K: aya::Pod + Eq + std::hash::Hash,
        V: aya::Pod + PartialEq,
    {
        if desired.len() > capacity as usize {
            return Err(KernelError::TooManyEntries {
                name,
                key,
                capacity,
                needed: desired.len(),
            });
        }
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(KernelError::MissingMap(name))?;
        let hash = BpfHashMap::try_from(map).map_err(|source| KernelError::Map { name, source })?;
        diff::apply(&mut KeyedHash { map: hash, name }, desired)
    }

    /// The block maps: the IPv4 trie and hash tiers, the IPv6 pieces.
    fn block_maps(&mut self) -> Result<PrefixMaps<'_>, KernelError> {
        let names = [
            map_names::BLOCK_TRIE_V4,
            map_names::BLOCK_V6,
            map_names::BLOCK_HOSTS_V4,
            map_names::BLOCK_NETS24_V4,
            map_names::BLOCK_DENSE24_V4,
        ];
        let dense24 = self.dense24;
        let [v4, v6, hosts, nets24, dense] = self.ebpf.maps_disjoint_mut(names);
        let missing = |i: usize| KernelError::MissingMap(names[i]);
        let (v4, v6) = (v4.ok_or(missing(0))?, v6.ok_or(missing(1))?);
        let (hosts, nets24) = (hosts.ok_or(missing(2))?, nets24.ok_or(missing(3))?);
        let dense = match dense24 {
            true => {
                let dense = dense.ok_or(missing(4))?;
                let fd = raw_fd(dense);
                let array = Array::try_from(dense).map_err(|source| KernelError::Map {
                    name: names[4],
                    source,
                })?;
                Some((array, fd))
            }
            false => None,
        };
        let (hosts_fd, nets24_fd) = (raw_fd(hosts), raw_fd(nets24));
        let hashes = targets::V4Hashes {
            hosts: super::hosts::HostsV4 {
                sorted: Array::try_from(hosts).map_err(|source| KernelError::Map {
                    name: names[2],
                    source,
                })?,
                fd: hosts_fd,
            },
            nets24: BpfHashMap::try_from(nets24).map_err(|source| KernelError::Map {
                name: names[3],
                source,
            })?,
            nets24_name: names[3],
            nets24_fd,
            dense,
        };
        let v6_fd = raw_fd(v6);
        let sorted = targets::V6Map::Sorted(super::sorted_v6::SortedV6 {
            array: Array::try_from(v6).map_err(|source| KernelError::Map {
                name: names[1],
                source,
            })?,
            fd: v6_fd,
        });
        let mut maps = Self::prefix_maps(v4, (sorted, v6_fd), (names[0], names[1]))?;
        maps.hashes = Some(hashes);
        Ok(maps)
    }

    fn tries(&mut self, v4: &'static str, v6: &'static str) -> Result<PrefixMaps<'_>, KernelError> {
        let [v4_map, v6_map] = self.ebpf.maps_disjoint_mut([v4, v6]);
        let v4_map = v4_map.ok_or(KernelError::MissingMap(v4))?;
        let v6_map = v6_map.ok_or(KernelError::MissingMap(v6))?;
        let v6_fd = raw_fd(v6_map);
        let trie = targets::V6Map::Trie(
            LpmTrie::try_from(v6_map).map_err(|source| KernelError::Map { name: v6, source })?,
        );
        Self::prefix_maps(v4_map, (trie, v6_fd), (v4, v6))
    }

    /// The IPv4 trie `v4_map` and the IPv6 map `v6` (with its fd) as one prefix map.
    fn prefix_maps<'a>(
        v4_map: &'a mut aya::maps::Map,
        (v6, v6_fd): (targets::V6Map<'a>, std::os::fd::RawFd),
        (v4, v6_name): (&'static str, &'static str),
    ) -> Result<PrefixMaps<'a>, KernelError> {
        let v4_fd = raw_fd(v4_map);
        Ok(PrefixMaps {
            v4: LpmTrie::try_from(v4_map)
                .map_err(|source| KernelError::Map { name: v4, source })?,
            v6,
            hashes: None,
            names: (v4, v6_name),
            fds: (v4_fd, v6_fd),
            known_empty: false,
            hosts_changed: false,
            v6_changed: false,
        })
    }
}

/// The raw fd of a loaded map (for the batch syscall aya does not wrap); -1 for other kinds.
fn raw_fd(map: &aya::maps::Map) -> std::os::fd::RawFd {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    match map {
        aya::maps::Map::LpmTrie(data)
        | aya::maps::Map::HashMap(data)
        | aya::maps::Map::Array(data) => data.fd().as_fd().as_raw_fd(),
        _ => -1,
    }
}

/// `desired` plus the entries of `current` held for a list in `keep` that `desired` does not
/// name, sorted by prefix.
fn with_kept(desired: KernelSet, current: &KernelSet, keep: &[u16]) -> KernelSet {
    let mut merged = desired;
    let before = merged.len();
    for &(net, value) in current {
        if keep.contains(&value.list_id)
            && merged[..before]
                .binary_search_by_key(&net, |(n, _)| *n)
                .is_err()
        {
            merged.push((net, value));
        }
    }
    if merged.len() > before {
        merged.sort_unstable_by_key(|(net, _)| *net);
    }
    merged
}

fn check_block_capacity(
    desired: &KernelSet,
    v4: u32,
    v6: u32,
    (hosts, nets24, pieces_v6): (u32, u32, u32),
    dense24: bool,
) -> Result<(), KernelError> {
    check_capacity(
        desired.iter().map(|(n, _)| n),
        v4,
        v6,
        ("maps.block_v4", "maps.block_v6"),
    )?;
    // Each map is fitted to its content; more than it holds takes a new generation, which
    // the daemon makes before it syncs (this refuses a sync that would fail halfway). Dense
    // /24s need no room, but a byte form: a value without one takes the hash.
    let tiers = super::sizing::TierCounts::of(desired);
    let nets24_needed = match (dense24, tiers.without_byte_form) {
        (true, Some((net, value))) => {
            return Err(KernelError::NoDenseForm {
                net,
                list_id: value.list_id,
            });
        }
        (true, None) => 0,
        (false, _) => tiers.nets24,
    };
    for (name, key, capacity, needed) in [
        ("IPv4 hosts map", "maps.block_v4", hosts, tiers.hosts),
        ("IPv4 /24 map", "maps.block_v4", nets24, nets24_needed),
        (
            "IPv6 map (pieces)",
            "maps.block_v6",
            pieces_v6,
            tiers.pieces_v6,
        ),
    ] {
        if needed > capacity as usize {
            return Err(KernelError::TooManyEntries {
                name,
                key,
                capacity,
                needed,
            });
        }
    }
    Ok(())
}

/// Refuses a set that does not fit before anything is written.
fn check_capacity<'a>(
    desired: impl Iterator<Item = &'a IpNet>,
    v4_capacity: u32,
    v6_capacity: u32,
    keys: (&'static str, &'static str),
) -> Result<(), KernelError> {
    let (mut v4, mut v6) = (0, 0);
    for net in desired {
        match net {
            IpNet::V4(_) => v4 += 1,
            IpNet::V6(_) => v6 += 1,
        }
    }
    for (name, key, capacity, needed) in [
        ("IPv4 map", keys.0, v4_capacity, v4),
        ("IPv6 map", keys.1, v6_capacity, v6),
    ] {
        if needed > capacity as usize {
            return Err(KernelError::TooManyEntries {
                name,
                key,
                capacity,
                needed,
            });
        }
    }
    Ok(())
}
