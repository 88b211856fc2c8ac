//! The daemon's handle on the kernel side: loads the embedded eBPF object into a new pinned
//! generation (reusing compatible maps of the previous one), syncs the maps, attaches and pins
//! the links, then retires older generations.

pub mod batch;
pub mod inspect;
pub mod keys;
pub mod linkinfo;
pub mod pins;
pub mod seen;
pub mod shadow;
pub mod tries;

use std::{collections::HashMap, fs::File, path::PathBuf};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, ProgramError,
        links::{FdLink, LinkError},
    },
};
use blocker_common::{Counter, ListRef, Settings, map_names, program_names};
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    aggregate::KernelSet,
    config::MapsConfig,
    sync::{self, SyncStats, SyncTarget as _},
};
use pins::{PinError, PinRoot};
use tries::{ExemptCgroups, PrefixTries};

/// The eBPF object built by build.rs from the blocker-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blocker"));

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Pin(#[from] PinError),
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
    #[error("failed to map {name} into memory")]
    MapMemory {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("attachment of {name} is not a BPF link")]
    NotALink {
        name: &'static str,
        #[source]
        source: LinkError,
    },
    #[error("failed to pin the link of {name} at {}", path.display())]
    PinLink {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("failed to pin map {name} at {}", path.display())]
    PinMap {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("{name} holds at most {capacity} entries but {needed} are needed; raise maps.{key}")]
    TooManyEntries {
        name: &'static str,
        key: &'static str,
        capacity: u32,
        needed: usize,
    },
}

/// Totals of the per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub checked: u64,
    pub blocked: u64,
    pub audited: u64,
    pub events_dropped: u64,
    pub raw_sockets_refused: u64,
    pub egress_dropped: u64,
}

/// The optional programs to attach besides the address hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guards {
    /// Refuse raw sockets in non-exempt cgroups (`vw_sock_create`).
    pub raw_sockets: bool,
    /// Drop egress packets to enforced ranges (`vw_egress`).
    pub egress: bool,
}

impl Guards {
    /// The optional programs these guards attach.
    pub fn programs(&self) -> Vec<&'static str> {
        let mut programs = Vec::new();
        if self.raw_sockets {
            programs.push(blocker_common::program_names::SOCK_CREATE);
        }
        if self.egress {
            programs.push(blocker_common::program_names::EGRESS);
        }
        programs
    }
}

/// How the new generation relates to what was pinned before.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Adoption {
    /// The generation being replaced, if any was attached.
    pub previous: Option<u64>,
    pub generation: u64,
    /// Maps carried over from the previous generation, contents intact.
    pub reused: Vec<&'static str>,
    /// Maps created new (first start, or the old one did not match: size, type, ...).
    pub created: Vec<&'static str>,
}

/// A loaded generation. Its links stay attached after the daemon exits.
pub struct Enforcer {
    ebpf: Ebpf,
    pins: PinRoot,
    sizes: MapsConfig,
    adoption: Adoption,
    /// What the block tries hold after the last successful sync. Only this generation writes
    /// them, so reloads diff against this copy instead of reading a million entries back; it is
    /// dropped (forcing a read-back) whenever a sync fails halfway.
    block_shadow: Option<shadow::Shadow>,
    /// The mapped `BLOCK_SEEN_V4` bitmap.
    seen: seen::SeenBitmap,
}

impl Enforcer {
    /// Loads the object into a new generation under `pin_root`, reusing every map of the
    /// current generation whose shape matches `sizes`. Nothing is attached yet.
    /// `log_level` is aya-log's level for the kernel programs (0 = off, 4 = debug).
    pub fn prepare(
        pin_root: &std::path::Path,
        sizes: MapsConfig,
        log_level: u8,
    ) -> Result<Self, KernelError> {
        let pins = PinRoot::open(pin_root)?;
        let previous = pins.current();
        let generation = pins.create_next()?;
        let dir = pins.generation_dir(generation);
        let mut adoption = Adoption {
            previous,
            generation,
            ..Adoption::default()
        };

        let mut loader = EbpfLoader::new();
        loader
            // Each IPv4 tier can take the whole capacity; `sync_block` bounds their sum.
            .map_max_entries(map_names::BLOCK_TRIE_V4, sizes.block_v4)
            .map_max_entries(map_names::BLOCK_HOSTS_V4, sizes.block_v4)
            .map_max_entries(map_names::BLOCK_NETS24_V4, sizes.block_v4)
            .map_max_entries(map_names::BLOCK_V6, sizes.block_v6)
            .map_max_entries(map_names::ALLOW_V4, sizes.allow_v4)
            .map_max_entries(map_names::ALLOW_V6, sizes.allow_v6)
            .map_max_entries(map_names::EXEMPT_CGROUPS, sizes.exempt_cgroups)
            .map_max_entries(map_names::EVENTS, sizes.events_bytes)
            .override_global(aya_log::LEVEL, &log_level, true);
        for spec in pins::map_specs(&sizes) {
            let old = previous.map(|g| pins.generation_dir(g).join(spec.name));
            match old.as_ref().map(|path| (path, spec.mismatch(path))) {
                Some((path, None)) => {
                    loader.map_pin_path(spec.name, path.clone());
                    adoption.reused.push(spec.name);
                }
                other => {
                    if let Some((path, Some(why))) = other {
                        tracing::info!("not reusing {}: {why}", path.display());
                    }
                    loader.map_pin_path(spec.name, dir.join(spec.name));
                    adoption.created.push(spec.name);
                }
            }
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(KernelError::Load)?;
        // A reused map is pinned in the new generation too, so retiring the old one keeps it.
        for &name in &adoption.reused {
            let path = dir.join(name);
            ebpf.map(name)
                .ok_or(KernelError::MissingMap(name))?
                .pin(&path)
                .map_err(|source| KernelError::PinMap { name, path, source })?;
        }
        let failed = |name| move |source| KernelError::LoadProgram { name, source };
        for name in pins::PROGRAMS {
            program::<CgroupSockAddr>(&mut ebpf, name)?
                .load()
                .map_err(failed(name))?;
        }
        // The optional guards are loaded always (cheap) and attached only when enabled.
        let (sock, skb) = (program_names::SOCK_CREATE, program_names::EGRESS);
        program::<CgroupSock>(&mut ebpf, sock)?
            .load()
            .map_err(failed(sock))?;
        program::<CgroupSkb>(&mut ebpf, skb)?
            .load()
            .map_err(failed(skb))?;
        let seen = {
            let name = map_names::BLOCK_SEEN_V4;
            let map = ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
            let data = match map {
                aya::maps::Map::Array(data) => data,
                _ => return Err(KernelError::MissingMap(name)),
            };
            seen::SeenBitmap::map(data).map_err(|source| KernelError::MapMemory { name, source })?
        };
        Ok(Self {
            ebpf,
            pins,
            sizes,
            adoption,
            block_shadow: None,
            seen,
        })
    }

    pub fn adoption(&self) -> &Adoption {
        &self.adoption
    }

    pub fn generation_dir(&self) -> PathBuf {
        self.pins.generation_dir(self.adoption.generation)
    }

    /// Attaches every hook to `cgroup` and pins the links in this generation. BPF links are
    /// always multi-attach: programs attached below run too, and any refusal refuses.
    pub fn attach(&mut self, cgroup: &File, guards: Guards) -> Result<(), KernelError> {
        let dir = self.generation_dir();
        // Optional guards first: when the address hooks are attached, everything is in place.
        // `Single` means "no flags": the kernel refuses any flag on a cgroup bpf_link_create
        // (EINVAL, seen on 6.18) because links are implicitly BPF_F_ALLOW_MULTI. aya only falls
        // back to flag-based prog_attach before 5.7, older than we support.
        const NO_FLAGS: CgroupAttachMode = CgroupAttachMode::Single;
        if guards.raw_sockets {
            let name = program_names::SOCK_CREATE;
            let p = program::<CgroupSock>(&mut self.ebpf, name)?;
            let link = p.attach(cgroup, NO_FLAGS).and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        if guards.egress {
            let name = program_names::EGRESS;
            let p = program::<CgroupSkb>(&mut self.ebpf, name)?;
            let link = p
                .attach(cgroup, CgroupSkbAttachType::Egress, NO_FLAGS)
                .and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        for name in pins::PROGRAMS {
            let p = program::<CgroupSockAddr>(&mut self.ebpf, name)?;
            let link = p.attach(cgroup, NO_FLAGS).and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        Ok(())
    }

    /// Unpins every other generation (after [`Self::attach`]): their links detach now that this
    /// generation enforces. Returns the files removed.
    pub fn retire_others(&self) -> Result<Vec<PathBuf>, KernelError> {
        Ok(self.pins.retire_all_but(self.adoption.generation)?)
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

    /// Makes the block tries hold exactly `desired`, writing only the difference.
    pub fn sync_block(&mut self, desired: KernelSet) -> Result<SyncStats, KernelError> {
        let (v4_cap, v6_cap) = (self.sizes.block_v4, self.sizes.block_v6);
        check_capacity(
            desired.iter().map(|(n, _)| n),
            v4_cap,
            v6_cap,
            ("maps.block_v4", "maps.block_v6"),
        )?;
        // Taken now: if the apply fails halfway, the next sync reads the maps back.
        let diff = match self.block_shadow.take() {
            Some(shadow) => sync::diff_sorted(shadow.iter(), desired.iter().copied()),
            None => {
                let mut current: KernelSet = self.block_maps()?.read_all()?.into_iter().collect();
                current.sort_unstable_by_key(|(net, _)| *net);
                sync::diff_sorted(current, desired.iter().copied())
            }
        };
        let seen_bits = seen::bits_of(desired.iter().filter_map(|(net, _)| match net {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        }));
        self.seen.widen(&seen_bits);
        let stats = sync::write_diff(&mut self.block_maps()?, &diff)?;
        self.seen.narrow(&seen_bits);
        self.block_shadow = Some(shadow::Shadow::of(&desired));
        Ok(stats)
    }

    /// Makes the next sync read the block tries back from the kernel instead of trusting the
    /// copy of the last sync: catches entries someone edited with `bpftool map`.
    pub fn verify_next_sync(&mut self) {
        self.block_shadow = None;
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
        sync::apply(&mut tries, desired)
    }

    /// Makes the exempt-cgroup map hold exactly `ids`.
    pub fn sync_exempt(&mut self, ids: &[u64]) -> Result<SyncStats, KernelError> {
        let name = map_names::EXEMPT_CGROUPS;
        if ids.len() > self.sizes.exempt_cgroups as usize {
            return Err(KernelError::TooManyEntries {
                name,
                key: "maps.exempt_cgroups",
                capacity: self.sizes.exempt_cgroups,
                needed: ids.len(),
            });
        }
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(KernelError::MissingMap(name))?;
        let hash = BpfHashMap::try_from(map).map_err(|source| KernelError::Map { name, source })?;
        let desired: HashMap<u64, u8> = ids.iter().map(|&id| (id, 1)).collect();
        sync::apply(&mut ExemptCgroups(hash), &desired)
    }

    /// The block maps: both tries and the IPv4 hash tiers.
    fn block_maps(&mut self) -> Result<PrefixTries<'_>, KernelError> {
        let names = [
            map_names::BLOCK_TRIE_V4,
            map_names::BLOCK_V6,
            map_names::BLOCK_HOSTS_V4,
            map_names::BLOCK_NETS24_V4,
        ];
        let [v4, v6, hosts, nets24] = self.ebpf.maps_disjoint_mut(names);
        let missing = |i: usize| KernelError::MissingMap(names[i]);
        let (v4, v6) = (v4.ok_or(missing(0))?, v6.ok_or(missing(1))?);
        let (hosts, nets24) = (hosts.ok_or(missing(2))?, nets24.ok_or(missing(3))?);
        let hash_fds = (raw_fd(hosts), raw_fd(nets24));
        let hashes = tries::V4Hashes {
            hosts: BpfHashMap::try_from(hosts).map_err(|source| KernelError::Map {
                name: names[2],
                source,
            })?,
            nets24: BpfHashMap::try_from(nets24).map_err(|source| KernelError::Map {
                name: names[3],
                source,
            })?,
            names: (names[2], names[3]),
            fds: hash_fds,
        };
        let mut maps = Self::prefix_tries(v4, v6, (names[0], names[1]))?;
        maps.hashes = Some(hashes);
        Ok(maps)
    }

    fn tries(
        &mut self,
        v4: &'static str,
        v6: &'static str,
    ) -> Result<PrefixTries<'_>, KernelError> {
        let [v4_map, v6_map] = self.ebpf.maps_disjoint_mut([v4, v6]);
        let v4_map = v4_map.ok_or(KernelError::MissingMap(v4))?;
        let v6_map = v6_map.ok_or(KernelError::MissingMap(v6))?;
        Self::prefix_tries(v4_map, v6_map, (v4, v6))
    }

    fn prefix_tries<'a>(
        v4_map: &'a mut aya::maps::Map,
        v6_map: &'a mut aya::maps::Map,
        (v4, v6): (&'static str, &'static str),
    ) -> Result<PrefixTries<'a>, KernelError> {
        let fds = (raw_fd(v4_map), raw_fd(v6_map));
        Ok(PrefixTries {
            v4: LpmTrie::try_from(v4_map)
                .map_err(|source| KernelError::Map { name: v4, source })?,
            v6: LpmTrie::try_from(v6_map)
                .map_err(|source| KernelError::Map { name: v6, source })?,
            hashes: None,
            names: (v4, v6),
            fds,
        })
    }

    /// Hands over the event ring buffer; call once per generation.
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
        read_counters(&array)
    }
}

/// Sums each counter over the CPUs.
pub fn read_counters<T: std::borrow::Borrow<MapData>>(
    array: &PerCpuArray<T, u64>,
) -> Result<Counters, KernelError> {
    let name = map_names::COUNTERS;
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
        raw_sockets_refused: total(Counter::RawSocketsRefused)?,
        egress_dropped: total(Counter::EgressDropped)?,
    })
}

/// The raw fd of a loaded map (for the batch syscall aya does not wrap); -1 for other kinds.
fn raw_fd(map: &aya::maps::Map) -> std::os::fd::RawFd {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    match map {
        aya::maps::Map::LpmTrie(data) | aya::maps::Map::HashMap(data) => {
            data.fd().as_fd().as_raw_fd()
        }
        _ => -1,
    }
}

/// Pins a freshly attached link in the generation directory, so it outlives this process.
fn pin_link<L>(
    link: Result<L, ProgramError>,
    name: &'static str,
    dir: &std::path::Path,
) -> Result<(), KernelError>
where
    FdLink: TryFrom<L, Error = LinkError>,
{
    let link = link.map_err(|source| KernelError::Attach { name, source })?;
    let link = FdLink::try_from(link).map_err(|source| KernelError::NotALink { name, source })?;
    let path = dir.join(pins::link_file(name));
    link.pin(&path)
        .map_err(|source| KernelError::PinLink { name, path, source })?;
    Ok(())
}

/// The program `name` of the object, as program type `P`.
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, KernelError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(KernelError::MissingProgram(name))?
        .try_into()
        .map_err(|source| KernelError::LoadProgram { name, source })
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
