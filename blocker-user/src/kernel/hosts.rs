//! The blocked IPv4 hosts (`BLOCK_HOSTS_SORTED_V4`): element 0 says where the active half
//! starts, then two halves, each a length and that many entries sorted by address, which the
//! programs binary-search. A change of the hosts rewrites the inactive half whole and then
//! points element 0 at it (one aligned 8-byte write), so the programs see the old set or the
//! new one, never a mix: a host listed in both is found throughout. Before the first write
//! element 0 is 0, which points at itself: a length of 0. Why not a hash: 8 bytes a host instead of about 90,
//! and a rewrite of a few MiB in one batch instead of one insert per host.
//!
//! The half rewritten was last active one sync ago; a program run that started in it then
//! (they take microseconds) has long finished.

use std::{borrow::Borrow, collections::HashMap, net::Ipv4Addr, os::fd::RawFd};

use aya::maps::{Array, MapData, MapError};
use blocker_common::{ListRef, host_v4_entry, host_v4_value, map_names};
use ipnet::{IpNet, Ipv4Net};

use super::KernelError;

const SORTED: &str = map_names::BLOCK_HOSTS_V4;

/// Elements per BPF_MAP_UPDATE_BATCH call.
const BATCH: usize = 1 << 16;

/// The array's length for `capacity` hosts a half.
pub const fn array_len(capacity: u32) -> u32 {
    1 + 2 * (capacity + 1)
}

/// The hosts a half of an array of `len` elements holds.
pub const fn capacity_of(len: u32) -> u32 {
    (len.saturating_sub(1) / 2).saturating_sub(1)
}

/// Where the half other than the one at `base` starts.
const fn other_half(base: u32, capacity: u32) -> u32 {
    if base == 1 { capacity + 2 } else { 1 }
}

fn err(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

pub struct HostsV4<'a> {
    pub sorted: Array<&'a mut MapData, u64>,
    pub fd: RawFd,
}

impl HostsV4<'_> {
    fn capacity(&self) -> u32 {
        capacity_of(self.sorted.len())
    }

    /// Adds every host of the active half to `out`.
    pub fn read_all(&self, out: &mut HashMap<IpNet, ListRef>) -> Result<(), KernelError> {
        let (base, len) = active_half(&self.sorted).map_err(err(SORTED))?;
        for i in 0..len {
            let entry = self.sorted.get(&(base + 1 + i), 0).map_err(err(SORTED))?;
            let addr = Ipv4Addr::from((entry >> 32) as u32);
            out.insert(IpNet::V4(Ipv4Net::from(addr)), host_v4_value(entry));
        }
        Ok(())
    }

    /// Makes the hosts exactly `hosts` (address and value): written into the inactive half,
    /// which then becomes the active one.
    pub fn write_all(
        &mut self,
        hosts: impl Iterator<Item = (Ipv4Addr, ListRef)>,
    ) -> Result<(), KernelError> {
        let capacity = self.capacity();
        let (base, _) = active_half(&self.sorted).map_err(err(SORTED))?;
        let next = other_half(base, capacity);
        let mut entries: Vec<u64> = std::iter::once(0)
            .chain(hosts.map(|(addr, value)| host_v4_entry(u32::from(addr), value)))
            .collect();
        entries[1..].sort_unstable();
        let count = entries.len() - 1;
        if count > capacity as usize {
            return Err(KernelError::TooManyEntries {
                name: "IPv4 hosts map",
                key: "block_v4",
                capacity,
                needed: count,
            });
        }
        entries[0] = count as u64;
        let indices: Vec<u32> = (next..next + entries.len() as u32).collect();
        for (keys, values) in indices.chunks(BATCH).zip(entries.chunks(BATCH)) {
            self.write(keys, values)?;
        }
        self.sorted.set(0, u64::from(next), 0).map_err(err(SORTED))
    }

    fn write(&mut self, keys: &[u32], values: &[u64]) -> Result<(), KernelError> {
        super::batch::write_array(self.fd, &mut self.sorted, keys, values, SORTED)
    }
}

/// Where the active half starts and how many hosts it holds (none before the first write).
fn active_half<T: Borrow<MapData>>(sorted: &Array<T, u64>) -> Result<(u32, u32), MapError> {
    let base = u32::try_from(sorted.get(&0, 0)?).unwrap_or(0);
    if base == 0 {
        return Ok((0, 0));
    }
    let len = u32::try_from(sorted.get(&base, 0)?).unwrap_or(0);
    Ok((base, len.min(capacity_of(sorted.len()))))
}

/// The pinned hosts' answer for `addr` (for `check` without a daemon): the same binary search
/// the programs make.
pub fn lookup(sorted: &Array<MapData, u64>, addr: Ipv4Addr) -> Option<ListRef> {
    let (base, len) = active_half(sorted).ok()?;
    let want = u64::from(u32::from(addr));
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let entry = sorted.get(&(base + 1 + mid), 0).ok()?;
        match (entry >> 32).cmp(&want) {
            std::cmp::Ordering::Equal => return Some(host_v4_value(entry)),
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    None
}

/// The number of hosts the active half of a pinned array holds.
pub fn count(sorted: &Array<MapData, u64>) -> usize {
    active_half(sorted).map_or(0, |(_, len)| len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_trip_their_capacity_and_alternate() {
        for capacity in [1, 4096, 1 << 22] {
            assert_eq!(capacity_of(array_len(capacity)), capacity);
            let second = other_half(0, capacity);
            assert_eq!(second, 1, "the first write goes to the first half");
            assert_eq!(other_half(1, capacity), capacity + 2);
            assert_eq!(other_half(capacity + 2, capacity), 1);
            // The second half ends at the array's end.
            assert_eq!(capacity + 2 + capacity + 1, array_len(capacity));
        }
    }
}
