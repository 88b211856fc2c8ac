//! What can go wrong between the daemon and the kernel: loading, attaching, pinning, and map
//! access, each naming the program, map or path involved.

use std::path::PathBuf;

use aya::{
    EbpfError,
    maps::MapError,
    programs::{ProgramError, links::LinkError},
};

use super::pins::PinError;

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
    #[error("failed to put the new link pin in place at {}", path.display())]
    ReplacePin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
    /// A sync in place into dense /24s met one they cannot hold (the daemon migrates to the
    /// hash before such a sync; this refuses it before anything is written if it did not).
    #[error(
        "the /24 {net} of list {list_id} has no dense form (list ids above {} or an action \
         other than enforce and audit); the /24s must move to the hash first",
        blocker_common::DENSE24_MAX_LIST
    )]
    NoDenseForm { net: ipnet::IpNet, list_id: u16 },
}
