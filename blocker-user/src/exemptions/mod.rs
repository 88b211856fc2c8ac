//! Justified exemptions (`[[exemptions]]`): who may still reach a listed vendor, why, on whose
//! approval, and until when. `spec` is the configured record and its expiry, `grants` what the
//! kernel's `EXEMPTIONS` map must hold for them (the expiry as a boot-clock time the programs
//! compare themselves, so an exemption ends on time with the daemon down), `processes` the
//! running processes of an exempted executable.

pub mod grants;
pub mod processes;
pub mod spec;

pub use grants::{Grants, Resolved};
pub use spec::{Exemption, Expiry};
