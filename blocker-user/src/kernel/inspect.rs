//! Reading what is pinned, without loading anything: for `vendorwall status`, `unload` and the
//! daemon's integrity check.

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as BpfHashMap, LpmTrie, Map, MapData, PerCpuArray, lpm_trie::Key};
use blocker_common::{Dense24Chunk, ListRef, map_names};
use serde::Serialize;

use super::{Counters, KernelError, linkinfo, pins};

/// One pinned link as the kernel reports it.
#[derive(Debug, Serialize)]
pub struct LinkState {
    pub program: &'static str,
    pub path: PathBuf,
    /// `None` when the pin is missing or unreadable.
    pub kernel: Option<linkinfo::CgroupLink>,
}

impl LinkState {
    /// Attached (not detached by someone) and pinned.
    pub fn attached(&self) -> bool {
        self.kernel.is_some_and(|k| k.cgroup_id != 0)
    }
}

/// The links of one generation: the address hooks always, optional guards when pinned.
pub fn links(generation_dir: &Path) -> Vec<LinkState> {
    let optional = pins::OPTIONAL_PROGRAMS
        .iter()
        .filter(|p| generation_dir.join(pins::link_file(p)).exists());
    pins::PROGRAMS
        .iter()
        .chain(optional)
        .map(|&program| {
            let path = generation_dir.join(pins::link_file(program));
            LinkState {
                program,
                kernel: linkinfo::read(&path).ok(),
                path,
            }
        })
        .collect()
}

/// Entry counts of the pinned maps that hold prefixes.
#[derive(Debug, Default, Serialize)]
pub struct Fill {
    pub block_v4: usize,
    pub block_v6: usize,
    pub allow_v4: usize,
    pub allow_v6: usize,
}

fn count<const N: usize>(path: &Path, name: &'static str) -> Result<usize, KernelError> {
    Ok(trie::<N>(path, name)?.keys().count())
}

fn hash_v4(
    path: &Path,
    name: &'static str,
) -> Result<BpfHashMap<MapData, [u8; 4], ListRef>, KernelError> {
    let data = MapData::from_pin(path).map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    BpfHashMap::try_from(map).map_err(|source| KernelError::Map { name, source })
}

/// The pinned sorted hosts.
fn hosts_v4(generation_dir: &Path) -> Result<Array<MapData, u64>, KernelError> {
    let name = map_names::BLOCK_HOSTS_V4;
    let data = MapData::from_pin(generation_dir.join(name))
        .map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    Array::try_from(map).map_err(|source| KernelError::Map { name, source })
}

/// The pinned dense /24 array when this generation keeps /24s there (more than one chunk);
/// `None` too for a generation from before it existed.
fn dense24(generation_dir: &Path) -> Option<Array<MapData, Dense24Chunk>> {
    let data = MapData::from_pin(generation_dir.join(map_names::BLOCK_DENSE24_V4)).ok()?;
    let array = Array::try_from(Map::from_map_data(data).ok()?).ok()?;
    (array.len() > 1).then_some(array)
}

fn trie<const N: usize>(
    path: &Path,
    name: &'static str,
) -> Result<LpmTrie<MapData, [u8; N], ListRef>, KernelError> {
    let data = MapData::from_pin(path).map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    LpmTrie::try_from(map).map_err(|source| KernelError::Map { name, source })
}

/// The pinned block maps' answer for an IPv4 address, with the programs' precedence (host,
/// then a trie match longer than /24, then the /24, then the trie's shorter match).
pub fn block_v4(generation_dir: &Path, addr: [u8; 4]) -> Result<Option<ListRef>, KernelError> {
    let map = |name: &'static str| hash_v4(&generation_dir.join(name), name);
    if let Some(host) = super::hosts::lookup(&hosts_v4(generation_dir)?, addr.into()) {
        return Ok(Some(host));
    }
    let name = map_names::BLOCK_TRIE_V4;
    let found = trie::<4>(&generation_dir.join(name), name)?
        .get(&Key::new(32, addr), 0)
        .ok();
    if let Some(longer) = found.filter(|t| t.prefix_len > 24) {
        return Ok(Some(longer));
    }
    if let Some(dense) = dense24(generation_dir) {
        let (chunk, byte) = blocker_common::dense24_slot(addr);
        let value = dense
            .get(&chunk, 0)
            .ok()
            .and_then(|c| blocker_common::dense24_value(c[byte]));
        return Ok(value.or(found));
    }
    let net24 = [addr[0], addr[1], addr[2], 0];
    if let Ok(net) = map(map_names::BLOCK_NETS24_V4)?.get(&net24, 0) {
        return Ok(Some(net));
    }
    Ok(found)
}

/// The pinned IPv6 block pieces.
fn sorted_v6(
    generation_dir: &Path,
) -> Result<Array<MapData, blocker_common::V6Piece>, KernelError> {
    let name = map_names::BLOCK_V6;
    let data = MapData::from_pin(generation_dir.join(name))
        .map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    Array::try_from(map).map_err(|source| KernelError::Map { name, source })
}

/// The pinned IPv6 block pieces' answer for an address (the programs' search).
pub fn block_v6(generation_dir: &Path, addr: [u8; 16]) -> Result<Option<ListRef>, KernelError> {
    Ok(super::sorted_v6::lookup(
        &sorted_v6(generation_dir)?,
        addr.into(),
    ))
}

pub fn fill(generation_dir: &Path) -> Result<Fill, KernelError> {
    let hashed =
        |name: &'static str| hash_v4(&generation_dir.join(name), name).map(|h| h.keys().count());
    Ok(Fill {
        block_v4: count::<4>(
            &generation_dir.join(map_names::BLOCK_TRIE_V4),
            map_names::BLOCK_TRIE_V4,
        )? + super::hosts::count(&hosts_v4(generation_dir)?)
            + match dense24(generation_dir) {
                Some(dense) => dense
                    .iter()
                    .skip(1)
                    .filter_map(Result::ok)
                    .map(|chunk| chunk.iter().filter(|&&b| b != 0).count())
                    .sum(),
                None => hashed(map_names::BLOCK_NETS24_V4)?,
            },
        block_v6: super::sorted_v6::count(&sorted_v6(generation_dir)?),
        allow_v4: count::<4>(
            &generation_dir.join(map_names::ALLOW_V4),
            map_names::ALLOW_V4,
        )?,
        allow_v6: count::<16>(
            &generation_dir.join(map_names::ALLOW_V6),
            map_names::ALLOW_V6,
        )?,
    })
}

pub fn counters(generation_dir: &Path) -> Result<Counters, KernelError> {
    let name = map_names::COUNTERS;
    let data = MapData::from_pin(generation_dir.join(name))
        .map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    let array: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(map).map_err(|source| KernelError::Map { name, source })?;
    super::read_counters(&array)
}

/// Kernel memory charged to each pinned map of a generation (`memlock` in its fdinfo), bytes.
pub fn memlock(generation_dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(generation_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("link_") {
            continue;
        }
        let Ok(data) = MapData::from_pin(entry.path()) else {
            continue;
        };
        use std::os::fd::AsFd as _;
        use std::os::fd::AsRawFd as _;
        let fd = data.fd().as_fd().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        if let Some(bytes) = info
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
        {
            out.push((name, bytes));
        }
    }
    out.sort();
    out
}

/// The id of the map pinned at `path` (to show a map was reused, not recreated).
pub fn map_id(path: &Path) -> Option<u32> {
    aya::maps::MapInfo::from_pin(path).ok().map(|i| i.id())
}

/// The capacity (`max_entries`) of the map pinned at `path`.
pub fn capacity(path: &Path) -> Option<u32> {
    aya::maps::MapInfo::from_pin(path)
        .ok()
        .map(|i| i.max_entries())
}

fn pinned<K: aya::Pod, V: aya::Pod>(
    generation_dir: &Path,
    name: &'static str,
) -> Result<BpfHashMap<MapData, K, V>, KernelError> {
    let data = MapData::from_pin(generation_dir.join(name))
        .map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    BpfHashMap::try_from(map).map_err(|source| KernelError::Map { name, source })
}

/// The pinned learned addresses, expired ones included.
pub fn learned(generation_dir: &Path) -> Result<Vec<super::learned::LearnedEntry>, KernelError> {
    let v4 = pinned(generation_dir, map_names::LEARNED_V4)?;
    let v6 = pinned(generation_dir, map_names::LEARNED_V6)?;
    super::learned::read_all(&v4, &v6)
}

/// The pinned `DOMAINS` map, by number.
pub fn domains(generation_dir: &Path) -> Result<super::domains::DomainTable, KernelError> {
    super::domains::read_table(&pinned(generation_dir, map_names::DOMAINS)?)
}
