//! The learned-address maps (`LEARNED_V4`, `LEARNED_V6`, LRU hashes the DNS learner fills)
//! and their bucket bytes (`LEARNED_SEEN`): read back for `check` and `status`, written by the
//! daemon's own warm-start look-ups, and pruned of expired entries.
//!
//! Expiry itself is the kernel's: the programs ignore an entry past `expires_ns` (boot clock),
//! so it ends on time with the daemon down; the daemon only deletes what has ended, or what
//! belongs to a name no longer listed.

use std::{
    borrow::Borrow,
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicU8, Ordering},
};

use aya::maps::{HashMap as BpfHashMap, MapData, MapError};
use blocker_common::{LEARNED_SEEN_WORDS, Learned, learned_slot_v4, learned_slot_v6, map_names};
use serde::Serialize;

use super::{Enforcer, KernelError, mapping::ArrayMapping};

/// One learned address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LearnedEntry {
    pub addr: IpAddr,
    pub list_id: u16,
    pub action: u8,
    pub domain_id: u32,
    /// Boot-clock nanoseconds.
    pub learned_ns: u64,
    pub expires_ns: u64,
}

pub type LearnedV4<T> = BpfHashMap<T, [u8; 4], Learned>;
pub type LearnedV6<T> = BpfHashMap<T, [u8; 16], Learned>;

fn entry(addr: IpAddr, l: Learned) -> LearnedEntry {
    LearnedEntry {
        addr,
        list_id: l.list_id,
        action: l.action,
        domain_id: l.domain_id,
        learned_ns: l.learned_ns,
        expires_ns: l.expires_ns,
    }
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

/// Every entry of both maps, expired ones included (the caller compares with the clock).
pub fn read_all<A: Borrow<MapData>, B: Borrow<MapData>>(
    v4: &LearnedV4<A>,
    v6: &LearnedV6<B>,
) -> Result<Vec<LearnedEntry>, KernelError> {
    let mut out = Vec::new();
    for item in v4.iter() {
        let (key, value) = item.map_err(map_err(map_names::LEARNED_V4))?;
        out.push(entry(IpAddr::V4(Ipv4Addr::from(key)), value));
    }
    for item in v6.iter() {
        let (key, value) = item.map_err(map_err(map_names::LEARNED_V6))?;
        out.push(entry(IpAddr::V6(Ipv6Addr::from(key)), value));
    }
    Ok(out)
}

/// What a prune did and left.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pruned {
    /// Entries deleted because they expired.
    pub expired: u64,
    /// Entries deleted because their name is no longer listed.
    pub unlisted: u64,
    /// Unexpired entries of listed names left, per family.
    pub kept_v4: usize,
    pub kept_v6: usize,
}

/// A shared mapping of `LEARNED_SEEN`, one byte per bucket.
pub struct LearnedBuckets {
    mapping: ArrayMapping,
}

impl LearnedBuckets {
    pub fn map(map: &MapData) -> std::io::Result<Self> {
        ArrayMapping::map(map, LEARNED_SEEN_WORDS as usize * 8).map(|mapping| Self { mapping })
    }

    /// Sets the bucket of `addr` (the kernel sets its own the same way: a byte store).
    pub fn mark(&self, addr: IpAddr) {
        let (word, byte) = match addr {
            IpAddr::V4(a) => learned_slot_v4(a.octets()),
            IpAddr::V6(a) => learned_slot_v6(a.octets()),
        };
        let index = word as usize * 8 + byte as usize;
        if index >= self.mapping.len() {
            return;
        }
        // SAFETY: index is inside the mapping, which lives as long as self; the byte is only
        // accessed atomically here (and by single-byte stores in the kernel).
        unsafe { &*self.mapping.as_ptr().add(index).cast::<AtomicU8>() }
            .store(1, Ordering::Release);
    }
}

impl Enforcer {
    fn learned_maps(
        &mut self,
    ) -> Result<(LearnedV4<&mut MapData>, LearnedV6<&mut MapData>), KernelError> {
        let names = [map_names::LEARNED_V4, map_names::LEARNED_V6];
        let [v4, v6] = self.ebpf.maps_disjoint_mut(names);
        let v4 = v4.ok_or(KernelError::MissingMap(names[0]))?;
        let v6 = v6.ok_or(KernelError::MissingMap(names[1]))?;
        Ok((
            BpfHashMap::try_from(v4).map_err(map_err(names[0]))?,
            BpfHashMap::try_from(v6).map_err(map_err(names[1]))?,
        ))
    }

    /// Every learned entry.
    pub fn learned(&mut self) -> Result<Vec<LearnedEntry>, KernelError> {
        let (v4, v6) = self.learned_maps()?;
        read_all(&v4, &v6)
    }

    /// Writes an address the daemon learned itself (warm start), unless the kernel already
    /// holds it for longer. The bucket first, as the learner does.
    pub fn learn(&mut self, addr: IpAddr, value: Learned) -> Result<(), KernelError> {
        self.learned_seen.mark(addr);
        let (mut v4, mut v6) = self.learned_maps()?;
        match addr {
            IpAddr::V4(a) => {
                let key = a.octets();
                if v4
                    .get(&key, 0)
                    .is_ok_and(|held| held.expires_ns >= value.expires_ns)
                {
                    return Ok(());
                }
                v4.insert(key, value, 0)
                    .map_err(map_err(map_names::LEARNED_V4))
            }
            IpAddr::V6(a) => {
                let key = a.octets();
                if v6
                    .get(&key, 0)
                    .is_ok_and(|held| held.expires_ns >= value.expires_ns)
                {
                    return Ok(());
                }
                v6.insert(key, value, 0)
                    .map_err(map_err(map_names::LEARNED_V6))
            }
        }
    }

    /// Deletes the entries that expired before `now_ns` or whose name is not in `listed`.
    pub fn prune_learned(
        &mut self,
        now_ns: u64,
        listed: &HashSet<u32>,
    ) -> Result<Pruned, KernelError> {
        let entries = self.learned()?;
        let (mut expired, mut unlisted) = (0, 0);
        let kept = |v4: bool| {
            entries
                .iter()
                .filter(|e| {
                    e.addr.is_ipv4() == v4 && e.expires_ns > now_ns && listed.contains(&e.domain_id)
                })
                .count()
        };
        let (kept_v4, kept_v6) = (kept(true), kept(false));
        let (mut v4, mut v6) = self.learned_maps()?;
        for e in entries {
            let gone = if e.expires_ns <= now_ns {
                &mut expired
            } else if !listed.contains(&e.domain_id) {
                &mut unlisted
            } else {
                continue;
            };
            // The learner may have refreshed it since it was read: only delete what is still
            // the entry that was read.
            let removed = match e.addr {
                IpAddr::V4(a) => {
                    let key = a.octets();
                    match v4.get(&key, 0) {
                        Ok(held) if held.learned_ns == e.learned_ns => v4.remove(&key).is_ok(),
                        _ => false,
                    }
                }
                IpAddr::V6(a) => {
                    let key = a.octets();
                    match v6.get(&key, 0) {
                        Ok(held) if held.learned_ns == e.learned_ns => v6.remove(&key).is_ok(),
                        _ => false,
                    }
                }
            };
            if removed {
                *gone += 1;
            }
        }
        Ok(Pruned {
            expired,
            unlisted,
            kept_v4,
            kept_v6,
        })
    }
}
