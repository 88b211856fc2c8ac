//! What vendorwall keeps on bpffs so enforcement outlives the daemon, organised in generations:
//!
//! ```text
//! <pin root>/g7/BLOCK_TRIE_V4 ... COUNTERS maps (a reused map is pinned in every generation using it)
//! <pin root>/g7/link_vw_connect4 ...       links: attached as long as these pins exist
//! ```
//!
//! A start (or a re-attach) builds generation N+1 next to the newest complete one, attaches it,
//! and only then unpins the older generations. A crash at any step leaves at least one complete
//! generation attached; the next start finishes the clean-up.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::maps::{MapInfo, MapType};
use blocker_common::{map_names, program_names};

use super::sizing::{Fitted, HashSizes};
use crate::config::MapsConfig;

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is conventionally mounted (systemd mounts it there at boot).
const BPF_FS_ROOT: &str = "/sys/fs/bpf";
/// `BPF_F_NO_PREALLOC`: LPM tries and the IPv4 block hashes are created with it.
const NO_PREALLOC: u32 = 1;
/// `BPF_F_MMAPABLE`: arrays the daemon writes through a mapping (the /24 bitmap, the dense
/// /24s, the sorted halves of the hosts and the IPv6 pieces).
const MMAPABLE: u32 = 1 << 10;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{} is not on a bpffs, and bpffs cannot be mounted there", path.display())]
    NotBpffs { path: PathBuf },
    #[error("failed to mount bpffs at {BPF_FS_ROOT}")]
    Mount(#[source] std::io::Error),
    #[error("failed to {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PinError {
    let path = path.to_owned();
    move |source| PinError::Io {
        action,
        path,
        source,
    }
}

/// The programs every generation attaches, in attach order.
pub const PROGRAMS: [&str; 4] = [
    program_names::CONNECT4,
    program_names::CONNECT6,
    program_names::SENDMSG4,
    program_names::SENDMSG6,
];

/// Programs attached only when the config enables them.
pub const OPTIONAL_PROGRAMS: [&str; 3] = [
    program_names::SOCK_CREATE,
    program_names::EGRESS,
    program_names::DNS_INGRESS,
];

pub fn link_file(program: &str) -> String {
    format!("link_{program}")
}

/// What a map must look like to be reused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapSpec {
    pub name: &'static str,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    /// The capacity a new map is made with.
    pub max_entries: u32,
    pub flags: u32,
    /// The capacities an existing map may have and be reused (just `max_entries`, except for
    /// the hashes fitted to their content).
    pub reuse_entries: (u32, u32),
}

/// Every pinned map and its expected shape for `sizes`, the hosts and /24 maps sized by
/// `hashes`.
pub fn map_specs(sizes: &MapsConfig, hashes: &HashSizes) -> [MapSpec; 17] {
    let trie = |name, key_size, max_entries| MapSpec {
        name,
        map_type: MapType::LpmTrie,
        key_size,
        value_size: size_of::<blocker_common::ListRef>() as u32,
        max_entries,
        flags: NO_PREALLOC,
        reuse_entries: (max_entries, max_entries),
    };
    let hash4 = |name, fitted: Fitted| MapSpec {
        name,
        map_type: MapType::Hash,
        key_size: 4,
        value_size: size_of::<blocker_common::ListRef>() as u32,
        max_entries: fitted.capacity,
        flags: NO_PREALLOC,
        reuse_entries: (fitted.needed, fitted.keep_up_to),
    };
    [
        MapSpec {
            name: map_names::BLOCK_SEEN_V4,
            map_type: MapType::Array,
            key_size: 4,
            value_size: 8,
            max_entries: blocker_common::SEEN_V4_WORDS,
            flags: MMAPABLE,
            reuse_entries: (blocker_common::SEEN_V4_WORDS, blocker_common::SEEN_V4_WORDS),
        },
        MapSpec {
            name: map_names::BLOCK_HOSTS_V4,
            map_type: MapType::Array,
            key_size: 4,
            value_size: 8,
            max_entries: super::halves::array_len(hashes.hosts_v4.capacity),
            flags: MMAPABLE,
            reuse_entries: (
                super::halves::array_len(hashes.hosts_v4.needed),
                super::halves::array_len(hashes.hosts_v4.keep_up_to),
            ),
        },
        hash4(map_names::BLOCK_NETS24_V4, hashes.nets24_v4),
        MapSpec {
            name: map_names::BLOCK_DENSE24_V4,
            map_type: MapType::Array,
            key_size: 4,
            value_size: size_of::<blocker_common::Dense24Chunk>() as u32,
            max_entries: hashes.dense24_chunks(),
            flags: MMAPABLE,
            reuse_entries: (hashes.dense24_chunks(), hashes.dense24_chunks()),
        },
        trie(map_names::BLOCK_TRIE_V4, 8, sizes.block_v4),
        MapSpec {
            name: map_names::BLOCK_V6,
            map_type: MapType::Array,
            key_size: 4,
            value_size: size_of::<blocker_common::V6Piece>() as u32,
            max_entries: super::halves::array_len(hashes.sorted_v6.capacity),
            flags: MMAPABLE,
            reuse_entries: (
                super::halves::array_len(hashes.sorted_v6.needed),
                super::halves::array_len(hashes.sorted_v6.keep_up_to),
            ),
        },
        trie(map_names::ALLOW_V4, 8, sizes.allow_v4),
        trie(map_names::ALLOW_V6, 20, sizes.allow_v6),
        MapSpec {
            name: map_names::EXEMPT_CGROUPS,
            map_type: MapType::Hash,
            key_size: 8,
            value_size: 1,
            max_entries: sizes.exempt_cgroups,
            flags: 0,
            reuse_entries: (sizes.exempt_cgroups, sizes.exempt_cgroups),
        },
        MapSpec {
            name: map_names::EXEMPTIONS,
            map_type: MapType::Hash,
            key_size: size_of::<blocker_common::ExemptionKey>() as u32,
            value_size: size_of::<blocker_common::Grant>() as u32,
            max_entries: sizes.exemptions,
            flags: 0,
            reuse_entries: (sizes.exemptions, sizes.exemptions),
        },
        MapSpec {
            name: map_names::SETTINGS,
            map_type: MapType::Array,
            key_size: 4,
            value_size: size_of::<blocker_common::Settings>() as u32,
            max_entries: 1,
            flags: 0,
            reuse_entries: (1, 1),
        },
        MapSpec {
            name: map_names::EVENTS,
            map_type: MapType::RingBuf,
            key_size: 0,
            value_size: 0,
            max_entries: sizes.events_bytes,
            flags: 0,
            reuse_entries: (sizes.events_bytes, sizes.events_bytes),
        },
        MapSpec {
            name: map_names::COUNTERS,
            map_type: MapType::PerCpuArray,
            key_size: 4,
            value_size: 8,
            max_entries: blocker_common::COUNTER_SLOTS,
            flags: 0,
            reuse_entries: (blocker_common::COUNTER_SLOTS, blocker_common::COUNTER_SLOTS),
        },
        MapSpec {
            name: map_names::DOMAINS,
            map_type: MapType::Hash,
            key_size: blocker_common::DOMAIN_KEY_LEN as u32,
            value_size: size_of::<blocker_common::DomainRef>() as u32,
            max_entries: sizes.domains,
            flags: NO_PREALLOC,
            reuse_entries: (sizes.domains, sizes.domains),
        },
        learned(map_names::LEARNED_V4, 4, sizes.learned),
        learned(map_names::LEARNED_V6, 16, sizes.learned),
        MapSpec {
            name: map_names::LEARNED_SEEN,
            map_type: MapType::Array,
            key_size: 4,
            value_size: 8,
            max_entries: blocker_common::LEARNED_SEEN_WORDS,
            flags: MMAPABLE,
            reuse_entries: (
                blocker_common::LEARNED_SEEN_WORDS,
                blocker_common::LEARNED_SEEN_WORDS,
            ),
        },
    ]
}

fn learned(name: &'static str, key_size: u32, max_entries: u32) -> MapSpec {
    MapSpec {
        name,
        map_type: MapType::LruHash,
        key_size,
        value_size: size_of::<blocker_common::Learned>() as u32,
        max_entries,
        flags: 0,
        reuse_entries: (max_entries, max_entries),
    }
}

impl MapSpec {
    /// Why the pinned map at `path` cannot be reused, or `None` when it can.
    pub fn mismatch(&self, path: &Path) -> Option<String> {
        let info = match MapInfo::from_pin(path) {
            Ok(info) => info,
            Err(err) => return Some(format!("cannot open: {err}")),
        };
        let map_type = info.map_type().ok();
        let actual = (
            map_type,
            info.key_size(),
            info.value_size(),
            info.max_entries(),
            info.map_flags(),
        );
        let (low, high) = self.reuse_entries;
        let fits = (low..=high).contains(&actual.3);
        let wanted = (
            Some(self.map_type),
            self.key_size,
            self.value_size,
            if fits { actual.3 } else { self.max_entries },
            self.flags,
        );
        (actual != wanted).then(|| {
            format!(
                "type/key/value/capacity/flags {:?}/{}/{}/{}/{:#x}, wanted {:?}/{}/{}/{}/{:#x}",
                actual.0,
                actual.1,
                actual.2,
                actual.3,
                actual.4,
                wanted.0,
                wanted.1,
                wanted.2,
                wanted.3,
                wanted.4
            )
        })
    }
}

/// The generations under a pin root.
#[derive(Debug)]
pub struct PinRoot {
    root: PathBuf,
}

impl PinRoot {
    /// Opens (creating it if needed) a pin root, mounting bpffs at /sys/fs/bpf first when the
    /// root lives there and nothing is mounted, as systemd would.
    pub fn open(root: &Path) -> Result<Self, PinError> {
        if !on_bpffs(root) {
            if root.starts_with(BPF_FS_ROOT) && !on_bpffs(Path::new(BPF_FS_ROOT)) {
                mount_bpffs()?;
            }
            if !on_bpffs(root) {
                return Err(PinError::NotBpffs {
                    path: root.to_owned(),
                });
            }
        }
        fs::create_dir_all(root).map_err(io_err("create", root))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Opens an existing pin root without creating or mounting anything.
    pub fn existing(root: &Path) -> Option<Self> {
        root.is_dir().then(|| Self {
            root: root.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Generation numbers present, ascending.
    pub fn generations(&self) -> Vec<u64> {
        let mut gens: Vec<u64> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_prefix('g')?.parse().ok())
            .collect();
        gens.sort_unstable();
        gens
    }

    pub fn generation_dir(&self, generation: u64) -> PathBuf {
        self.root.join(format!("g{generation}"))
    }

    /// A generation is complete once all its links are pinned.
    pub fn is_complete(&self, generation: u64) -> bool {
        let dir = self.generation_dir(generation);
        PROGRAMS.iter().all(|p| dir.join(link_file(p)).exists())
    }

    /// The newest generation whose links are all pinned.
    pub fn current(&self) -> Option<u64> {
        self.generations()
            .into_iter()
            .rev()
            .find(|&g| self.is_complete(g))
    }

    /// Creates the directory of the next generation (after every existing one).
    /// Whether the generation in force keeps IPv4 /24s dense (its `BLOCK_DENSE24_V4` has more
    /// than one chunk), so a new generation keeps them so until they shrink to half.
    pub fn dense24_in_force(&self) -> bool {
        self.current().is_some_and(|g| {
            MapInfo::from_pin(self.generation_dir(g).join(map_names::BLOCK_DENSE24_V4))
                .is_ok_and(|info| info.max_entries() > 1)
        })
    }

    pub fn create_next(&self) -> Result<u64, PinError> {
        let next = self.generations().last().map_or(1, |g| g + 1);
        let dir = self.generation_dir(next);
        fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        Ok(next)
    }

    /// Unpins every generation except `keep`: their links detach, and their maps go away unless
    /// `keep` pins them too. Returns the files removed.
    pub fn retire_all_but(&self, keep: u64) -> Result<Vec<PathBuf>, PinError> {
        let mut removed = Vec::new();
        for generation in self.generations().into_iter().filter(|&g| g != keep) {
            removed.extend(self.remove_generation(generation)?);
        }
        Ok(removed)
    }

    /// Unpins everything and removes the root: the only way enforcement ends.
    pub fn remove_all(&self) -> Result<Vec<PathBuf>, PinError> {
        let mut removed = Vec::new();
        for generation in self.generations() {
            removed.extend(self.remove_generation(generation)?);
        }
        // Anything else someone left here is ours too.
        for entry in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("unpin", &path))?;
            removed.push(path);
        }
        fs::remove_dir(&self.root).map_err(io_err("remove", &self.root))?;
        Ok(removed)
    }

    /// Links first, so a generation stops enforcing before its maps disappear.
    fn remove_generation(&self, generation: u64) -> Result<Vec<PathBuf>, PinError> {
        let dir = self.generation_dir(generation);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io_err("read", &dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
        });
        for file in &files {
            fs::remove_file(file).map_err(io_err("unpin", file))?;
        }
        fs::remove_dir(&dir).map_err(io_err("remove", &dir))?;
        Ok(files)
    }
}

/// Whether `path` (or its nearest existing ancestor) is on a bpffs.
fn on_bpffs(path: &Path) -> bool {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
    rustix::fs::statfs(existing).is_ok_and(|stat| stat.f_type == BPF_FS_MAGIC)
}

fn mount_bpffs() -> Result<(), PinError> {
    fs::create_dir_all(BPF_FS_ROOT).map_err(PinError::Mount)?;
    rustix::mount::mount(
        "bpf",
        BPF_FS_ROOT,
        "bpf",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .map_err(|errno| PinError::Mount(errno.into()))?;
    tracing::info!("mounted bpffs at {BPF_FS_ROOT}");
    Ok(())
}
