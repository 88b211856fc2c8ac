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
