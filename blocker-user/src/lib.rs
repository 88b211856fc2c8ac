//! vendorwall's daemon and CLI as a library, so tests and the thin `main.rs` share one code path.

pub mod aggregate;
pub mod cgroup;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod events;
pub mod exempt;
pub mod index;
pub mod kernel;
pub mod lists;
pub mod manifest;
pub mod metrics;
pub mod notify;
pub mod prefix;
pub mod selection;
pub mod sockdiag;
pub mod source;
pub mod state;
pub mod sync;
