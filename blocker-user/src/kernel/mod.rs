//! The daemon's handle on the kernel side. A generation is loaded (`load`), filled (`sync`,
//! writing the difference through `diff` into the maps as sync `targets`), attached and pinned
//! (`attach`), and later inspected read-only (`inspect`) by `status` and `check`. The IPv4
//! hashes are made for their content (`sizing`).

pub mod attach;
pub mod batch;
pub mod cgroup;
pub mod counters;
pub mod dense24;
pub mod diff;
pub mod domains;
pub mod error;
pub mod halves;
pub mod hosts;
pub mod inspect;
pub mod keys;
pub mod learned;
pub mod linkinfo;
pub mod load;
pub mod mapping;
pub mod optional;
pub mod pins;
pub mod seen;
pub mod shadow;
pub mod sizing;
pub mod sorted_v6;
pub mod sync;
pub mod targets;

pub use counters::{Counters, read_counters};
pub use error::KernelError;
pub use load::{Adoption, Enforcer};
pub use optional::OptionalPrograms;

/// The eBPF object built by build.rs from the blocker-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blocker"));
