//! Names: the domain names lists block by, beside their prefixes. The kernel's DNS learner
//! (`blocker-ebpf/src/dns.rs`) matches DNS answers against them and learns the addresses;
//! this module holds what userspace needs for that: `domain` a validated name and its kernel
//! key, `parse` domain files, `set` every list's names and what the `DOMAINS` map must hold,
//! `warm` the daemon's own look-ups at start and reload, `learned` the learned entries read
//! back for `check`, `status` and expiry.

pub mod domain;
pub mod parse;
pub mod set;
pub mod warm;

pub use domain::{Domain, DomainError};
pub use set::{DomainEntry, DomainSet};
