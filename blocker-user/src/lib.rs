//! vendorwall's daemon and CLI as a library, so tests and the thin `main.rs` share one code path.

pub mod cgroup;
pub mod cli;
pub mod cmd;
pub mod events;
pub mod index;
pub mod kernel;
pub mod lists;
pub mod prefix;
