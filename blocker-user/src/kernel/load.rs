//! Loading the embedded eBPF object into a new pinned generation, reusing every map of the
//! current generation whose shape still fits, so a restart keeps the maps' contents.

use std::path::PathBuf;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{CgroupSkb, CgroupSock, CgroupSockAddr, ProgramError},
};
use blocker_common::{map_names, program_names};
use serde::Serialize;

use super::{
    EBPF_OBJECT, KernelError, learned, pins, pins::PinRoot, seen, shadow, sizing::HashSizes,
};
use crate::config::MapsConfig;

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
    pub(super) ebpf: Ebpf,
    pub(super) pins: PinRoot,
    pub(super) sizes: MapsConfig,
    /// The capacities of the hosts' array (a half), the /24 hash and the IPv6 pieces' array (a
    /// half) this generation has: fitted when created, whatever they were when reused.
    pub(super) hash_capacity: (u32, u32, u32),
    /// Whether this generation keeps /24s in `BLOCK_DENSE24_V4` (its spec must match to be
    /// reused, so it is what `hashes` asked for).
    pub(super) dense24: bool,
    pub(super) adoption: Adoption,
    /// What the block tries hold after the last successful sync. Only this generation writes
    /// them, so reloads diff against this copy instead of reading a million entries back; it is
    /// dropped (forcing a read-back) whenever a sync fails halfway.
    pub(super) block_shadow: Option<shadow::Shadow>,
    /// The next sync reads the block tries back instead of trusting `block_shadow`.
    pub(super) verify_block: bool,
    /// A block sync has written (or begun to write) this generation's maps.
    pub(super) block_written: bool,
    /// The mapped `BLOCK_SEEN_V4` bitmap.
    pub(super) seen: seen::SeenBitmap,
    /// The DNS learner loaded, or why not.
    pub(super) learner: Result<(), String>,
    /// The mapped `LEARNED_SEEN` buckets.
    pub(super) learned_seen: learned::LearnedBuckets,
}

impl Enforcer {
    /// Loads the object into a new generation under `pin_root`, reusing every map of the
    /// current generation whose shape matches `sizes` (the IPv4 hashes: `hashes`). Nothing is
    /// attached yet. `log_level` is aya-log's level for the kernel programs (0 = off, 4 = debug).
    pub fn prepare(
        pin_root: &std::path::Path,
        sizes: MapsConfig,
        hashes: HashSizes,
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
            // The trie can take the whole capacity (it allocates per entry); the hashes are
            // fitted to their content; `sync_block` bounds the sum and each hash.
            .map_max_entries(map_names::BLOCK_TRIE_V4, sizes.block_v4)
            .map_max_entries(
                map_names::BLOCK_HOSTS_V4,
                super::halves::array_len(hashes.hosts_v4.capacity),
            )
            .map_max_entries(map_names::BLOCK_NETS24_V4, hashes.nets24_v4.capacity)
            .map_max_entries(map_names::BLOCK_DENSE24_V4, hashes.dense24_chunks())
            .map_max_entries(
                map_names::BLOCK_V6,
                super::halves::array_len(hashes.sorted_v6.capacity),
            )
            .map_max_entries(map_names::ALLOW_V4, sizes.allow_v4)
            .map_max_entries(map_names::ALLOW_V6, sizes.allow_v6)
            .map_max_entries(map_names::EXEMPT_CGROUPS, sizes.exempt_cgroups)
            .map_max_entries(map_names::EXEMPTIONS, sizes.exemptions)
            .map_max_entries(map_names::EVENTS, sizes.events_bytes)
            .map_max_entries(map_names::DOMAINS, sizes.domains)
            .map_max_entries(map_names::LEARNED_V4, sizes.learned)
            .map_max_entries(map_names::LEARNED_V6, sizes.learned)
            .override_global(aya_log::LEVEL, &log_level, true);
        let mut hash_capacity = (
            hashes.hosts_v4.capacity,
            hashes.nets24_v4.capacity,
            hashes.sorted_v6.capacity,
        );
        for spec in pins::map_specs(&sizes, &hashes) {
            let old = previous.map(|g| pins.generation_dir(g).join(spec.name));
            match old.as_ref().map(|path| (path, spec.mismatch(path))) {
                Some((path, None)) => {
                    if let Ok(info) = aya::maps::MapInfo::from_pin(path) {
                        match spec.name {
                            map_names::BLOCK_HOSTS_V4 => {
                                hash_capacity.0 = super::halves::capacity_of(info.max_entries())
                            }
                            map_names::BLOCK_NETS24_V4 => hash_capacity.1 = info.max_entries(),
                            map_names::BLOCK_V6 => {
                                hash_capacity.2 = super::halves::capacity_of(info.max_entries())
                            }
                            _ => {}
                        }
                    }
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
        // The learner needs bpf_loop (5.17): on an older kernel the verifier refuses it, and
        // the generation enforces the prefix lists without it.
        let dns = program_names::DNS_INGRESS;
        let learner = match program::<CgroupSkb>(&mut ebpf, dns)?.load() {
            Ok(()) => Ok(()),
            Err(err) => Err(crate::lists::error_chain(&err)),
        };
        let seen = {
            let name = map_names::BLOCK_SEEN_V4;
            let map = ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
            let data = match map {
                aya::maps::Map::Array(data) => data,
                _ => return Err(KernelError::MissingMap(name)),
            };
            seen::SeenBitmap::map(data).map_err(|source| KernelError::MapMemory { name, source })?
        };
        let learned_seen = {
            let name = map_names::LEARNED_SEEN;
            let map = ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
            let data = match map {
                aya::maps::Map::Array(data) => data,
                _ => return Err(KernelError::MissingMap(name)),
            };
            learned::LearnedBuckets::map(data)
                .map_err(|source| KernelError::MapMemory { name, source })?
        };
        Ok(Self {
            ebpf,
            pins,
            sizes,
            hash_capacity,
            dense24: hashes.dense24,
            adoption,
            block_shadow: None,
            verify_block: false,
            block_written: false,
            seen,
            learner,
            learned_seen,
        })
    }

    /// Whether the DNS learner loaded; the verifier's refusal otherwise (kernel older than
    /// 5.17).
    pub fn learner(&self) -> Result<(), &str> {
        self.learner.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// Whether /24s are kept in the dense array (see `sizing::DENSE24_AT`).
    pub fn dense24(&self) -> bool {
        self.dense24
    }

    pub fn adoption(&self) -> &Adoption {
        &self.adoption
    }

    pub fn generation_dir(&self) -> PathBuf {
        self.pins.generation_dir(self.adoption.generation)
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
}

/// The program `name` of the object, as program type `P`.
pub(super) fn program<'a, P>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut P, KernelError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(KernelError::MissingProgram(name))?
        .try_into()
        .map_err(|source| KernelError::LoadProgram { name, source })
}
