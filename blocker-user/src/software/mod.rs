//! The vendors' products on this host: what a manifest's `[software]` section says they look
//! like once installed (packages, units, paths, processes), and `scan` finding them. `dpkg` and
//! `rpm` read the package databases; `owners` indexes them to name the package that owns an
//! executable in events.

pub mod dpkg;
pub mod owners;
pub mod rpm;
pub mod scan;

use serde::{Deserialize, Serialize};

pub use scan::{Finding, scan};

/// A manifest's `[software]`: how the vendor's products show on a Linux host.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Software {
    /// Debian package names.
    #[serde(default)]
    pub deb_packages: Vec<String>,
    /// RPM package names.
    #[serde(default)]
    pub rpm_packages: Vec<String>,
    /// systemd unit names.
    #[serde(default)]
    pub units: Vec<String>,
    /// Install directories and files (absolute).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Process names (`comm`, at most 15 characters, as the kernel keeps them).
    #[serde(default)]
    pub processes: Vec<String>,
    /// Where these facts come from (the vendor's documentation).
    #[serde(default)]
    pub references: Vec<String>,
}
