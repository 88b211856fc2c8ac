//! The kernel maps as [`SyncTarget`]s: a pair of LPM tries (IPv4 + IPv6) keyed by prefix, and the
//! exempt-cgroup hash keyed by cgroup id.

use std::collections::HashMap;

use aya::maps::{HashMap as BpfHashMap, LpmTrie, MapData, MapError};
use blocker_common::ListRef;
use ipnet::IpNet;

use super::{KernelError, keys};
use crate::sync::SyncTarget;

/// One trie per family, addressed as one prefix map.
pub struct PrefixTries<'a> {
    pub v4: LpmTrie<&'a mut MapData, [u8; 4], ListRef>,
    pub v6: LpmTrie<&'a mut MapData, [u8; 16], ListRef>,
    pub names: (&'static str, &'static str),
    /// Raw fds of the two maps, for batch updates.
    pub fds: (std::os::fd::RawFd, std::os::fd::RawFd),
}

/// Entries per BPF_MAP_UPDATE_BATCH call.
const BATCH: usize = 8192;

/// Writes `keys`/`values` in batches; falls back to single updates when the kernel has no batch
/// support for the map (EINVAL/ENOTSUPP on the first call).
fn batch_upsert<K: aya::Pod>(
    fd: std::os::fd::RawFd,
    keys: &[aya::maps::lpm_trie::Key<K>],
    values: &[ListRef],
    mut single: impl FnMut(usize) -> Result<(), KernelError>,
    name: &'static str,
) -> Result<(), KernelError> {
    let mut at = 0;
    while at < keys.len() {
        let count = (keys.len() - at).min(BATCH);
        // SAFETY: `count` initialized keys and values start at `at`; Key<K> is the packed
        // bpf_lpm_trie_key layout and ListRef the value layout the map was created with.
        let (done, result) = unsafe {
            super::batch::update(
                fd,
                keys[at..].as_ptr().cast(),
                values[at..].as_ptr().cast(),
                count as u32,
            )
        };
        match result {
            Ok(()) => at += count,
            Err(err)
                if at == 0
                    && done == 0
                    && matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(524)) =>
            {
                // No batch support: one at a time.
                return (0..keys.len()).try_for_each(&mut single);
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
    Ok(())
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

impl SyncTarget for PrefixTries<'_> {
    type Key = IpNet;
    type Value = ListRef;
    type Error = KernelError;

    fn read_all(&self) -> Result<HashMap<IpNet, ListRef>, KernelError> {
        let mut all = HashMap::new();
        for item in self.v4.iter() {
            let (key, value) = item.map_err(map_err(self.names.0))?;
            if let Some(net) = keys::decode_v4(&key) {
                all.insert(net, value);
            }
        }
        for item in self.v6.iter() {
            let (key, value) = item.map_err(map_err(self.names.1))?;
            if let Some(net) = keys::decode_v6(&key) {
                all.insert(net, value);
            }
        }
        Ok(all)
    }

    fn upsert(&mut self, net: &IpNet, value: &ListRef) -> Result<(), KernelError> {
        match net {
            IpNet::V4(n) => self
                .v4
                .insert(&keys::v4(*n), value, 0)
                .map_err(map_err(self.names.0)),
            IpNet::V6(n) => self
                .v6
                .insert(&keys::v6(*n), value, 0)
                .map_err(map_err(self.names.1)),
        }
    }

    fn delete(&mut self, net: &IpNet) -> Result<(), KernelError> {
        match net {
            IpNet::V4(n) => self.v4.remove(&keys::v4(*n)).map_err(map_err(self.names.0)),
            IpNet::V6(n) => self.v6.remove(&keys::v6(*n)).map_err(map_err(self.names.1)),
        }
    }

    fn upsert_many(&mut self, items: &[(IpNet, ListRef)]) -> Result<(), KernelError> {
        let (mut k4, mut v4, mut k6, mut v6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (net, value) in items {
            match net {
                IpNet::V4(n) => {
                    k4.push(keys::v4(*n));
                    v4.push(*value);
                }
                IpNet::V6(n) => {
                    k6.push(keys::v6(*n));
                    v6.push(*value);
                }
            }
        }
        let names = self.names;
        let trie4 = &mut self.v4;
        batch_upsert(
            self.fds.0,
            &k4,
            &v4,
            |i| trie4.insert(&k4[i], v4[i], 0).map_err(map_err(names.0)),
            names.0,
        )?;
        let trie6 = &mut self.v6;
        batch_upsert(
            self.fds.1,
            &k6,
            &v6,
            |i| trie6.insert(&k6[i], v6[i], 0).map_err(map_err(names.1)),
            names.1,
        )
    }
}

/// The exempt-cgroup hash: cgroup id -> 1.
pub struct ExemptCgroups<'a>(pub BpfHashMap<&'a mut MapData, u64, u8>);

impl SyncTarget for ExemptCgroups<'_> {
    type Key = u64;
    type Value = u8;
    type Error = KernelError;

    fn read_all(&self) -> Result<HashMap<u64, u8>, KernelError> {
        let name = blocker_common::map_names::EXEMPT_CGROUPS;
        self.0
            .iter()
            .map(|item| item.map_err(map_err(name)))
            .collect()
    }

    fn upsert(&mut self, id: &u64, value: &u8) -> Result<(), KernelError> {
        let name = blocker_common::map_names::EXEMPT_CGROUPS;
        self.0.insert(id, value, 0).map_err(map_err(name))
    }

    fn delete(&mut self, id: &u64) -> Result<(), KernelError> {
        let name = blocker_common::map_names::EXEMPT_CGROUPS;
        self.0.remove(id).map_err(map_err(name))
    }
}
