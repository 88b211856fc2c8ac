//! The `DOMAINS` map: the listed names the DNS learner matches, written as a diff. Each name
//! keeps its number (`domain_id`) for as long as it stays listed, across restarts (the map is
//! pinned and read back), so learned entries and events made before a restart still name it.

use std::collections::{BTreeMap, HashMap, HashSet};

use aya::maps::{HashMap as BpfHashMap, MapData};
use blocker_common::{DomainKey, DomainRef, map_names};

use super::{
    Enforcer, KernelError,
    diff::{self, SyncStats, SyncTarget},
};
use crate::names::{Domain, set::DomainTarget};

/// The names the kernel holds, by number: what events and `check` name.
pub type DomainTable = HashMap<u32, (Domain, u16)>;

struct Domains<'a>(BpfHashMap<&'a mut MapData, DomainKey, DomainRef>);

fn map_err(source: aya::maps::MapError) -> KernelError {
    KernelError::Map {
        name: map_names::DOMAINS,
        source,
    }
}

impl SyncTarget for Domains<'_> {
    type Key = DomainKey;
    type Value = DomainRef;
    type Error = KernelError;

    fn read_all(&self) -> Result<HashMap<DomainKey, DomainRef>, KernelError> {
        self.0.iter().map(|item| item.map_err(map_err)).collect()
    }

    fn upsert(&mut self, key: &DomainKey, value: &DomainRef) -> Result<(), KernelError> {
        self.0.insert(key, value, 0).map_err(map_err)
    }

    fn delete(&mut self, key: &DomainKey) -> Result<(), KernelError> {
        self.0.remove(key).map_err(map_err)
    }
}

/// Reads a `DOMAINS` map (the daemon's, or a pinned one for the CLI) into its table.
pub fn read_table<T: std::borrow::Borrow<MapData>>(
    map: &BpfHashMap<T, DomainKey, DomainRef>,
) -> Result<DomainTable, KernelError> {
    let mut table = DomainTable::new();
    for item in map.iter() {
        let (key, value) = item.map_err(map_err)?;
        if let Some(domain) = Domain::from_key(&key) {
            table.insert(value.domain_id, (domain, value.list_id));
        }
    }
    Ok(table)
}

impl Enforcer {
    /// What `DOMAINS` holds now: the kernel's word, whatever the last sync did.
    pub fn domain_table(&mut self) -> Result<DomainTable, KernelError> {
        let name = map_names::DOMAINS;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(KernelError::MissingMap(name))?;
        read_table(&BpfHashMap::<_, DomainKey, DomainRef>::try_from(map).map_err(map_err)?)
    }

    /// Makes `DOMAINS` hold exactly `targets` (names already there keep their number), and
    /// returns the table of what it holds.
    pub fn sync_domains(
        &mut self,
        targets: &BTreeMap<Domain, DomainTarget>,
    ) -> Result<(SyncStats, DomainTable), KernelError> {
        let name = map_names::DOMAINS;
        if targets.len() > self.sizes.domains as usize {
            return Err(KernelError::TooManyEntries {
                name,
                key: "maps.domains",
                capacity: self.sizes.domains,
                needed: targets.len(),
            });
        }
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(KernelError::MissingMap(name))?;
        let mut target = Domains(BpfHashMap::try_from(map).map_err(map_err)?);
        let current = target.read_all()?;
        let mut used: HashSet<u32> = current.values().map(|v| v.domain_id).collect();
        let mut next = 1u32;
        let mut desired = HashMap::with_capacity(targets.len());
        let mut table = DomainTable::with_capacity(targets.len());
        for (domain, t) in targets {
            let key = domain.key();
            let domain_id = match current.get(&key) {
                Some(held) if held.domain_id != 0 => held.domain_id,
                _ => {
                    while used.contains(&next) {
                        next += 1;
                    }
                    used.insert(next);
                    next
                }
            };
            desired.insert(
                key,
                DomainRef {
                    list_id: t.list_id,
                    action: t.action as u8,
                    flags: t.flags,
                    domain_id,
                },
            );
            table.insert(domain_id, (domain.clone(), t.list_id));
        }
        let stats = diff::write_diff(&mut target, &diff::diff(&current, &desired))?;
        Ok((stats, table))
    }
}
