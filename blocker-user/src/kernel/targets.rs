//! The kernel maps as [`SyncTarget`]s: the prefix maps (IPv4 + IPv6) keyed by prefix, and the
//! exempt-cgroup hash keyed by cgroup id.
//!
//! Blocked IPv4 prefixes are spread over three tiers by length: /32 hosts in a sorted array
//! (`hosts.rs`, rewritten whole when they change), /24 networks in a hash or the dense array
//! (`dense24.rs`), everything else in the LPM trie. The tier is a function of the prefix
//! alone, so the sync engine's diff (keyed by prefix) stays exact. Why: a trie insert walks
//! the trie and costs about a microsecond at a million entries, and hosts and /24s are most
//! of every large list. Blocked IPv6 prefixes are all in one sorted array of disjoint pieces
//! (`sorted_v6.rs`), rewritten whole when any changes. The exception tries keep everything in
//! one trie per family.

use std::{collections::HashMap, os::fd::RawFd};

use aya::maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, MapError};
use blocker_common::ListRef;
use ipnet::{IpNet, Ipv4Net};

use super::{KernelError, dense24::Dense24, hosts::HostsV4, keys, sorted_v6::SortedV6};
use crate::kernel::diff::SyncTarget;

/// Where an IPv4 prefix lives among the block maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4Tier {
    Hosts,
    Nets24,
    Trie,
}

impl V4Tier {
    pub fn of(net: &Ipv4Net) -> Self {
        match net.prefix_len() {
            32 => Self::Hosts,
            24 => Self::Nets24,
            _ => Self::Trie,
        }
    }
}

/// The host and /24 tiers of the IPv4 block maps.
pub struct V4Hashes<'a> {
    /// Rewritten whole by [`PrefixMaps::write_hosts`] when the hosts change: upserts and
    /// deletes of hosts only mark them changed.
    pub hosts: HostsV4<'a>,
    pub nets24: BpfHashMap<&'a mut MapData, [u8; 4], ListRef>,
    /// The name and fd of the /24 hash.
    pub nets24_name: &'static str,
    pub nets24_fd: RawFd,
    /// The dense /24 array, when this generation keeps /24s there instead of in `nets24`.
    pub dense: Option<(Array<&'a mut MapData, blocker_common::Dense24Chunk>, RawFd)>,
}

/// Where IPv6 prefixes live: the exceptions' trie, or the block set's sorted pieces.
pub enum V6Map<'a> {
    Trie(LpmTrie<&'a mut MapData, [u8; 16], ListRef>),
    /// Rewritten whole by [`PrefixMaps::write_sorted`] when an IPv6 prefix changed: upserts
    /// and deletes only mark them changed.
    Sorted(SortedV6<'a>),
}

/// One trie per family (for the block maps: IPv4 tiers and IPv6 pieces), addressed as one
/// prefix map.
pub struct PrefixMaps<'a> {
    pub v4: LpmTrie<&'a mut MapData, [u8; 4], ListRef>,
    pub v6: V6Map<'a>,
    /// `None` for the exception tries, which hold every length in the trie.
    pub hashes: Option<V4Hashes<'a>>,
    pub names: (&'static str, &'static str),
    /// Raw fds of the two tries, for batch updates.
    pub fds: (RawFd, RawFd),
    /// The maps are known to hold nothing (a start, a new generation): dense chunks are
    /// written without being read back.
    pub known_empty: bool,
    /// A host was upserted or deleted: the hosts are to be rewritten.
    pub hosts_changed: bool,
    /// An IPv6 prefix was upserted or deleted: the sorted pieces are to be rewritten.
    pub v6_changed: bool,
}

/// Entries per BPF_MAP_UPDATE_BATCH call.
const BATCH: usize = 8192;

/// Below this many entries one thread writes them all: threads cost more than they save.
const PARALLEL_MIN: usize = 1 << 16;

/// Whether the kernel took the batch or has no batch support for the map.
enum Batched {
    Written,
    Unsupported,
}

/// Writes `keys`/`values` with BPF_MAP_UPDATE_BATCH, `BATCH` entries per call.
fn batch_write<K>(
    fd: RawFd,
    keys: &[K],
    values: &[ListRef],
    name: &'static str,
) -> Result<Batched, KernelError> {
    let mut at = 0;
    while at < keys.len() {
        let count = (keys.len() - at).min(BATCH);
        // SAFETY: `count` initialized keys and values start at `at`; K is the key layout the
        // map was created with (a packed bpf_lpm_trie_key or plain address bytes) and ListRef
        // the value layout.
        let (_done, result) = unsafe {
            super::batch::update(
                fd,
                keys[at..].as_ptr().cast(),
                values[at..].as_ptr().cast(),
                count as u32,
            )
        };
        match result {
            Ok(()) => at += count,
            // A kernel without the operation (5.10's LPM trie: ENOTSUPP; before 5.6 the command
            // itself: EINVAL) fails before it reads `count`, which then still holds what we
            // asked for: so `done` cannot tell. Falling back is safe whatever was written:
            // single upserts rewrite it all, and report a genuinely bad element themselves.
            Err(err) if at == 0 && matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(524)) => {
                return Ok(Batched::Unsupported);
            }
            Err(err) => {
                return Err(KernelError::Map {
                    name,
                    source: MapError::SyscallError(aya::sys::SyscallError {
                        call: "bpf_map_update_batch",
                        io_error: err,
                    }),
                });
            }
        }
    }
    Ok(Batched::Written)
}

/// Writes `keys`/`values` in batches; falls back to single updates (`single(i)`) when the
/// kernel has no batch support for the map (EINVAL/ENOTSUPP on a first call).
///
/// With `parallel`, large sets are split over the CPUs: the kernel's hash maps lock per
/// bucket, so concurrent batches into one hash scale, where a trie takes one lock per insert
/// and gains nothing.
fn batch_upsert<K: Sync>(
    fd: RawFd,
    keys: &[K],
    values: &[ListRef],
    mut single: impl FnMut(usize) -> Result<(), KernelError>,
    name: &'static str,
    parallel: bool,
) -> Result<(), KernelError> {
    let threads = if parallel && keys.len() >= PARALLEL_MIN {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    } else {
        1
    };
    let chunk = keys.len().div_ceil(threads).max(1);
    let outcomes: Vec<Result<Batched, KernelError>> = if threads == 1 {
        vec![batch_write(fd, keys, values, name)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = keys
                .chunks(chunk)
                .zip(values.chunks(chunk))
                .map(|(k, v)| scope.spawn(move || batch_write(fd, k, v, name)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    };
    let mut unsupported = false;
    for outcome in outcomes {
        unsupported |= matches!(outcome?, Batched::Unsupported);
    }
    if unsupported {
        // Upserts are idempotent: rewriting what a batch already wrote is harmless.
        return (0..keys.len()).try_for_each(&mut single);
    }
    Ok(())
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

/// Trie values carry the prefix length (the program compares it with /24); the sync engine
/// compares values without it.
fn untagged(value: ListRef) -> ListRef {
    value.with_prefix_len(0)
}

/// Keys and values bound for one map, collected before one batch write.
struct Batch<K> {
    keys: Vec<K>,
    values: Vec<ListRef>,
}

impl<K> Batch<K> {
    fn with_capacity(count: usize) -> Self {
        Self {
            keys: Vec::with_capacity(count),
            values: Vec::with_capacity(count),
        }
    }

    fn push(&mut self, key: K, value: ListRef) {
        self.keys.push(key);
        self.values.push(value);
    }
}

impl PrefixMaps<'_> {
    /// Makes the hosts tier hold exactly the /32s of `set`, and the IPv6 pieces exactly its
    /// IPv6 prefixes, where one of them was upserted or deleted since the maps were opened
    /// (see [`HostsV4::write_all`], [`SortedV6::write_all`]).
    pub fn write_sorted(&mut self, set: &[(IpNet, ListRef)]) -> Result<(), KernelError> {
        if let V6Map::Sorted(sorted) = &mut self.v6
            && self.v6_changed
        {
            sorted.write_all(set)?;
            self.v6_changed = false;
        }
        let Some(h) = self.hashes.as_mut().filter(|_| self.hosts_changed) else {
            return Ok(());
        };
        h.hosts
            .write_all(set.iter().filter_map(|(net, value)| match net {
                IpNet::V4(n) if n.prefix_len() == 32 => Some((n.network(), untagged(*value))),
                _ => None,
            }))?;
        self.hosts_changed = false;
        Ok(())
    }

    /// The hash tier an IPv4 prefix belongs in, if this is the block set and it has one.
    fn hash_tier(&self, net: &Ipv4Net) -> Option<V4Tier> {
        let tier = V4Tier::of(net);
        (self.hashes.is_some() && tier != V4Tier::Trie).then_some(tier)
    }
}

impl SyncTarget for PrefixMaps<'_> {
    type Key = IpNet;
    type Value = ListRef;
    type Error = KernelError;

    fn read_all(&self) -> Result<HashMap<IpNet, ListRef>, KernelError> {
        let mut all = HashMap::new();
        for item in self.v4.iter() {
            let (key, value) = item.map_err(map_err(self.names.0))?;
            if let Some(net) = keys::decode_v4(&key) {
                all.insert(net, untagged(value));
            }
        }
        match &self.v6 {
            V6Map::Trie(trie) => {
                for item in trie.iter() {
                    let (key, value) = item.map_err(map_err(self.names.1))?;
                    if let Some(net) = keys::decode_v6(&key) {
                        all.insert(net, untagged(value));
                    }
                }
            }
            V6Map::Sorted(sorted) => sorted.read_all(&mut all)?,
        }
        if let Some(h) = &self.hashes {
            // What the program reads: dense /24s replace the /24 hash.
            if h.dense.is_none() {
                for item in h.nets24.iter() {
                    let (addr, value) = item.map_err(map_err(h.nets24_name))?;
                    if let Ok(net) = Ipv4Net::new(addr.into(), 24) {
                        all.insert(IpNet::V4(net), untagged(value));
                    }
                }
            }
            h.hosts.read_all(&mut all)?;
        }
        if let Some((dense, _)) = self.hashes.as_ref().and_then(|h| h.dense.as_ref()) {
            super::dense24::read_all(dense, &mut all)?;
        }
        Ok(all)
    }

    fn upsert(&mut self, net: &IpNet, value: &ListRef) -> Result<(), KernelError> {
        self.upsert_many(&[(*net, *value)])
    }

    fn note_deletes(&mut self, nets: &[IpNet]) {
        self.v6_changed |=
            matches!(self.v6, V6Map::Sorted(_)) && nets.iter().any(|n| matches!(n, IpNet::V6(_)));
        self.hosts_changed |= nets
            .iter()
            .any(|net| matches!(net, IpNet::V4(n) if self.hash_tier(n) == Some(V4Tier::Hosts)));
    }

    fn delete_many(&mut self, nets: &[IpNet]) -> Result<(), KernelError> {
        // Dense /24s are cleared a chunk per /16 at once; the rest one by one.
        if let Some(dense) = self.hashes.as_mut().and_then(|h| h.dense.as_mut()) {
            let is_dense =
                |net: &IpNet| matches!(net, IpNet::V4(n) if V4Tier::of(n) == V4Tier::Nets24);
            Dense24::of(dense).clear(nets.iter().filter_map(|net| match net {
                IpNet::V4(n) if is_dense(net) => Some(n.network().octets()),
                _ => None,
            }))?;
            return nets
                .iter()
                .filter(|net| !is_dense(net))
                .try_for_each(|net| self.delete(net));
        }
        nets.iter().try_for_each(|net| self.delete(net))
    }

    fn delete(&mut self, net: &IpNet) -> Result<(), KernelError> {
        match net {
            IpNet::V4(n) => match (self.hash_tier(n), self.hashes.as_mut()) {
                (Some(V4Tier::Hosts), Some(_)) => {
                    self.hosts_changed = true;
                    Ok(())
                }
                (Some(_), Some(h)) => match h.dense.as_mut() {
                    Some(dense) => Dense24::of(dense).delete(n.network().octets()),
                    None => h
                        .nets24
                        .remove(&n.network().octets())
                        .map_err(map_err(h.nets24_name)),
                },
                _ => self.v4.remove(&keys::v4(*n)).map_err(map_err(self.names.0)),
            },
            IpNet::V6(n) => match &mut self.v6 {
                V6Map::Trie(trie) => trie.remove(&keys::v6(*n)).map_err(map_err(self.names.1)),
                V6Map::Sorted(_) => {
                    self.v6_changed = true;
                    Ok(())
                }
            },
        }
    }

    fn upsert_many(&mut self, items: &[(IpNet, ListRef)]) -> Result<(), KernelError> {
        // Sized exactly first: grown by doubling, a million-entry batch costs up to twice its
        // size at the daemon's peak.
        let mut counts = [0usize; 4];
        for (net, _) in items {
            counts[match net {
                IpNet::V4(n) => match self.hash_tier(n) {
                    Some(V4Tier::Hosts) => 0,
                    Some(_) => 1,
                    None => 2,
                },
                IpNet::V6(_) => 3,
            }] += 1;
        }
        self.hosts_changed |= counts[0] > 0;
        let v6_trie = matches!(self.v6, V6Map::Trie(_));
        if !v6_trie {
            self.v6_changed |= counts[3] > 0;
            counts[3] = 0;
        }
        let mut nets24 = Batch::with_capacity(counts[1]);
        let (mut trie4, mut trie6) = (
            Batch::with_capacity(counts[2]),
            Batch::with_capacity(counts[3]),
        );
        for (net, value) in items {
            match net {
                IpNet::V4(n) => match self.hash_tier(n) {
                    Some(V4Tier::Hosts) => {}
                    Some(_) => nets24.push(n.network().octets(), *value),
                    None => trie4.push(keys::v4(*n), value.with_prefix_len(n.prefix_len())),
                },
                IpNet::V6(n) if v6_trie => {
                    trie6.push(keys::v6(*n), value.with_prefix_len(n.prefix_len()))
                }
                IpNet::V6(_) => {}
            }
        }
        let names = self.names;
        let known_empty = self.known_empty;
        if let Some(h) = self.hashes.as_mut() {
            if let Some(dense) = h.dense.as_mut() {
                let items = nets24.keys.drain(..).zip(nets24.values.drain(..)).collect();
                Dense24::of(dense).write(items, known_empty)?;
            }
            let (map, name) = (&mut h.nets24, h.nets24_name);
            batch_upsert(
                h.nets24_fd,
                &nets24.keys,
                &nets24.values,
                |i| {
                    map.insert(nets24.keys[i], nets24.values[i], 0)
                        .map_err(map_err(name))
                },
                name,
                true,
            )?;
        }
        let v4 = &mut self.v4;
        batch_upsert(
            self.fds.0,
            &trie4.keys,
            &trie4.values,
            |i| {
                v4.insert(&trie4.keys[i], trie4.values[i], 0)
                    .map_err(map_err(names.0))
            },
            names.0,
            false,
        )?;
        let V6Map::Trie(v6) = &mut self.v6 else {
            return Ok(());
        };
        batch_upsert(
            self.fds.1,
            &trie6.keys,
            &trie6.values,
            |i| {
                v6.insert(&trie6.keys[i], trie6.values[i], 0)
                    .map_err(map_err(names.1))
            },
            names.1,
            false,
        )
    }
}

/// A plain hash map as a sync target: the exempt cgroups (cgroup id -> 1) and the exemptions
/// (`ExemptionKey` -> `Grant`).
pub struct KeyedHash<'a, K, V> {
    pub map: BpfHashMap<&'a mut MapData, K, V>,
    pub name: &'static str,
}

impl<K, V> SyncTarget for KeyedHash<'_, K, V>
where
    K: aya::Pod + Eq + std::hash::Hash,
    V: aya::Pod + PartialEq,
{
    type Key = K;
    type Value = V;
    type Error = KernelError;

    fn read_all(&self) -> Result<HashMap<K, V>, KernelError> {
        self.map
            .iter()
            .map(|item| item.map_err(map_err(self.name)))
            .collect()
    }

    fn upsert(&mut self, key: &K, value: &V) -> Result<(), KernelError> {
        self.map.insert(key, value, 0).map_err(map_err(self.name))
    }

    fn delete(&mut self, key: &K) -> Result<(), KernelError> {
        self.map.remove(key).map_err(map_err(self.name))
    }
}
