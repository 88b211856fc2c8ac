//! The daemon's handle on the kernel side: loads the embedded eBPF object with the configured map
//! sizes, fills the tries, attaches the four `cgroup_sock_addr` programs, and reads counters.

pub mod keys;

use std::{collections::HashMap, fs::File};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, LpmTrie, MapData, MapError, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSockAddr, ProgramError},
};
use blocker_common::{Counter, ListRef, Settings, map_names, program_names};
use ipnet::IpNet;

/// The eBPF object built by build.rs from the blocker-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blocker"));

/// All four hooks; the order is the order they are attached in.
const PROGRAMS: [&str; 4] = [
    program_names::CONNECT4,
    program_names::CONNECT6,
    program_names::SENDMSG4,
    program_names::SENDMSG6,
];

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("failed to load the eBPF object")]
    Load(#[source] EbpfError),
    #[error("eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("failed to load program {name} into the kernel")]
    LoadProgram {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("failed to attach program {name} to the cgroup")]
    Attach {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("{name} holds at most {capacity} entries but the lists need {needed}; raise its size")]
    TooManyEntries {
        name: &'static str,
        capacity: u32,
        needed: usize,
    },
}

/// Capacities of the maps, fixed when the object is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    pub block_v4: u32,
    pub block_v6: u32,
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub exempt_cgroups: u32,
    /// Bytes; a power of two and a multiple of the page size.
    pub events_bytes: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            block_v4: 1 << 21,
            block_v6: 1 << 19,
            allow_v4: 1 << 14,
            allow_v6: 1 << 14,
            exempt_cgroups: 1 << 12,
            events_bytes: 1 << 22,
        }
    }
}

/// Totals of the per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub checked: u64,
    pub blocked: u64,
    pub audited: u64,
    pub events_dropped: u64,
}

/// How many prefixes were written per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FillStats {
    pub v4: usize,
    pub v6: usize,
}

/// The loaded object. Dropping it detaches the programs (nothing is pinned yet).
pub struct Enforcer {
    ebpf: Ebpf,
    sizes: MapSizes,
}

impl Enforcer {
    /// Loads the object and the programs into the kernel; nothing is attached yet.
    /// `log_level` is aya-log's level for the kernel programs (0 = off, 4 = debug).
    pub fn load(sizes: MapSizes, log_level: u8) -> Result<Self, KernelError> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(map_names::BLOCK_V4, sizes.block_v4)
            .map_max_entries(map_names::BLOCK_V6, sizes.block_v6)
            .map_max_entries(map_names::ALLOW_V4, sizes.allow_v4)
            .map_max_entries(map_names::ALLOW_V6, sizes.allow_v6)
            .map_max_entries(map_names::EXEMPT_CGROUPS, sizes.exempt_cgroups)
            .map_max_entries(map_names::EVENTS, sizes.events_bytes)
            .override_global(aya_log::LEVEL, &log_level, true);
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(KernelError::Load)?;
        for name in PROGRAMS {
            program(&mut ebpf, name)?
                .load()
                .map_err(|source| KernelError::LoadProgram { name, source })?;
        }
        Ok(Self { ebpf, sizes })
    }

    /// Attaches every hook to `cgroup` as BPF links, which the kernel always attaches with
    /// multi-attach semantics: programs that a child cgroup attaches run in addition to these, and
    /// a refusal from any of them refuses the connection.
    pub fn attach(&mut self, cgroup: &File) -> Result<(), KernelError> {
        for name in PROGRAMS {
            // `Single` means "no flags": the kernel refuses any flag on a cgroup bpf_link_create
            // (EINVAL, seen on 6.18) because links are implicitly BPF_F_ALLOW_MULTI. aya only
            // falls back to flag-based prog_attach before 5.7, older than we support.
            program(&mut self.ebpf, name)?
                .attach(cgroup, CgroupAttachMode::Single)
                .map_err(|source| KernelError::Attach { name, source })?;
        }
        Ok(())
    }

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

    /// Writes every desired prefix into the block tries.
    pub fn fill(&mut self, desired: &HashMap<IpNet, ListRef>) -> Result<FillStats, KernelError> {
        let mut stats = FillStats::default();
        let (v4_name, v6_name) = (map_names::BLOCK_V4, map_names::BLOCK_V6);
        let [v4_map, v6_map] = self.ebpf.maps_disjoint_mut([v4_name, v6_name]);
        let mut v4: LpmTrie<_, [u8; 4], ListRef> = LpmTrie::try_from(
            v4_map.ok_or(KernelError::MissingMap(v4_name))?,
        )
        .map_err(|source| KernelError::Map {
            name: v4_name,
            source,
        })?;
        let mut v6: LpmTrie<_, [u8; 16], ListRef> = LpmTrie::try_from(
            v6_map.ok_or(KernelError::MissingMap(v6_name))?,
        )
        .map_err(|source| KernelError::Map {
            name: v6_name,
            source,
        })?;
        let needed_v4 = desired.keys().filter(|n| matches!(n, IpNet::V4(_))).count();
        check_capacity(v4_name, self.sizes.block_v4, needed_v4)?;
        check_capacity(v6_name, self.sizes.block_v6, desired.len() - needed_v4)?;
        for (net, value) in desired {
            match net {
                IpNet::V4(n) => {
                    v4.insert(&keys::v4(*n), value, 0)
                        .map_err(|source| KernelError::Map {
                            name: v4_name,
                            source,
                        })?;
                    stats.v4 += 1;
                }
                IpNet::V6(n) => {
                    v6.insert(&keys::v6(*n), value, 0)
                        .map_err(|source| KernelError::Map {
                            name: v6_name,
                            source,
                        })?;
                    stats.v6 += 1;
                }
            }
        }
        Ok(stats)
    }

    /// Hands over the event ring buffer; call once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let name = map_names::EVENTS;
        let map = self
            .ebpf
            .take_map(name)
            .ok_or(KernelError::MissingMap(name))?;
        RingBuf::try_from(map).map_err(|source| KernelError::Map { name, source })
    }

    /// Starts forwarding the programs' aya-log records to the `log` facade.
    pub fn logger(&mut self) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>, aya_log::Error> {
        aya_log::EbpfLogger::init(&mut self.ebpf)
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<Counters, KernelError> {
        let name = map_names::COUNTERS;
        let map = self.ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
        let array: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| KernelError::Map { name, source })?;
        let total = |counter: Counter| -> Result<u64, KernelError> {
            let values = array
                .get(&(counter as u32), 0)
                .map_err(|source| KernelError::Map { name, source })?;
            Ok(values.iter().sum())
        };
        Ok(Counters {
            checked: total(Counter::Checked)?,
            blocked: total(Counter::Blocked)?,
            audited: total(Counter::Audited)?,
            events_dropped: total(Counter::EventsDropped)?,
        })
    }
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, KernelError> {
    ebpf.program_mut(name)
        .ok_or(KernelError::MissingProgram(name))?
        .try_into()
        .map_err(|source| KernelError::LoadProgram { name, source })
}

fn check_capacity(name: &'static str, capacity: u32, needed: usize) -> Result<(), KernelError> {
    if needed > capacity as usize {
        return Err(KernelError::TooManyEntries {
            name,
            capacity,
            needed,
        });
    }
    Ok(())
}
