//! Reading what is pinned, without loading anything: for `vendorwall status`, `unload` and the
//! daemon's integrity check.

use std::path::{Path, PathBuf};

use aya::maps::{LpmTrie, Map, MapData, PerCpuArray};
use blocker_common::{ListRef, map_names};
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
    let data = MapData::from_pin(path).map_err(|source| KernelError::Map { name, source })?;
    let map = Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })?;
    let trie: LpmTrie<MapData, [u8; N], ListRef> =
        LpmTrie::try_from(map).map_err(|source| KernelError::Map { name, source })?;
    Ok(trie.keys().count())
}

pub fn fill(generation_dir: &Path) -> Result<Fill, KernelError> {
    Ok(Fill {
        block_v4: count::<4>(
            &generation_dir.join(map_names::BLOCK_V4),
            map_names::BLOCK_V4,
        )?,
        block_v6: count::<16>(
            &generation_dir.join(map_names::BLOCK_V6),
            map_names::BLOCK_V6,
        )?,
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
