//! The blocked IPv4 hosts (`BLOCK_HOSTS_SORTED_V4`) in the two halves of `halves.rs`, sorted by
//! address, which the programs binary-search. A change of the hosts rewrites the inactive half
//! whole and then switches to it: a host listed before and after is found throughout. Why not
//! a hash: 8 bytes a host instead of about 90, and a rewrite of a few MiB in one batch instead
//! of one insert per host.
//!
//! The half rewritten was last active one sync ago; a program run that started in it then
//! (they take microseconds) has long finished.

use std::{borrow::Borrow, collections::HashMap, net::Ipv4Addr, os::fd::RawFd};

use super::halves;

use aya::maps::{Array, MapData, MapError};
use blocker_common::{ListRef, host_v4_entry, host_v4_value, map_names};
use ipnet::{IpNet, Ipv4Net};

use super::KernelError;

const SORTED: &str = map_names::BLOCK_HOSTS_V4;

/// Elements per BPF_MAP_UPDATE_BATCH call.
const BATCH: usize = 1 << 16;

fn err(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

pub struct HostsV4<'a> {
    pub sorted: Array<&'a mut MapData, u64>,
    pub fd: RawFd,
}

impl HostsV4<'_> {
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
        let mut entries: Vec<u64> = std::iter::once(0)
            .chain(hosts.map(|(addr, value)| host_v4_entry(u32::from(addr), value)))
            .collect();
        entries[1..].sort_unstable();
        halves::write_all(self.fd, &mut self.sorted, &LAYOUT, &mut entries)
    }
}

fn header(n: u64) -> u64 {
    n
}

fn number(n: &u64) -> u64 {
    *n
}

const LAYOUT: halves::Layout<u64> = halves::Layout {
    name: SORTED,
    what: "IPv4 hosts map",
    key: "maps.block_v4",
    header,
    number,
    batch: BATCH,
};

/// Where the active half starts and how many hosts it holds.
fn active_half<T: Borrow<MapData>>(sorted: &Array<T, u64>) -> Result<(u32, u32), MapError> {
    halves::active_half(sorted, number)
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
