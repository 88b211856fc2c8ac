//! The limits a list must respect before it is applied: no default route, no prefix shorter than
//! the configured minimum, and no refresh that removes most of a list at once.

use ipnet::IpNet;

use super::{ListEntry, ListSpec};

/// Limits a list must respect to be applied.
#[derive(Clone, Copy, Debug)]
pub struct ListGuards {
    pub min_prefix_len_v4: u8,
    pub min_prefix_len_v6: u8,
    pub allow_short_prefixes: bool,
    /// Largest fraction of a list's entries one refresh may remove.
    pub max_shrink: f64,
}

impl Default for ListGuards {
    fn default() -> Self {
        Self {
            min_prefix_len_v4: 8,
            min_prefix_len_v6: 16,
            allow_short_prefixes: false,
            max_shrink: 0.5,
        }
    }
}

/// Why a guard refused a list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    #[error("{at}: {net} would block every address (set allow_short_prefixes to accept)")]
    DefaultRoute { at: String, net: IpNet },
    #[error("{at}: {net} is shorter than the minimum /{min} (min_prefix_len_v4/v6)")]
    TooShort { at: String, net: IpNet, min: u8 },
    #[error(
        "it would shrink from {before} to {after} entries ({:.0}% lost, max_shrink is {:.0}%)",
        lost * 100.0,
        max * 100.0
    )]
    Shrink {
        before: usize,
        after: usize,
        lost: f64,
        max: f64,
    },
}

impl ListGuards {
    /// Checks a list's new entries (labelled by `origins`) against the limits; `previous_len` is
    /// the entry count in force, when there is one.
    pub fn check(
        &self,
        spec: &ListSpec,
        entries: &[ListEntry],
        origins: &[String],
        previous_len: Option<usize>,
    ) -> Result<(), GuardError> {
        if !self.allow_short_prefixes {
            for entry in entries {
                let (len, min) = match entry.net {
                    IpNet::V4(n) => (n.prefix_len(), self.min_prefix_len_v4),
                    IpNet::V6(n) => (n.prefix_len(), self.min_prefix_len_v6),
                };
                let at = || {
                    let origin = origins
                        .get(usize::from(entry.origin))
                        .map_or("?", String::as_str);
                    format!("{origin}:{}", entry.line)
                };
                if len == 0 {
                    return Err(GuardError::DefaultRoute {
                        at: at(),
                        net: entry.net,
                    });
                }
                if len < min {
                    return Err(GuardError::TooShort {
                        at: at(),
                        net: entry.net,
                        min,
                    });
                }
            }
        }
        if let Some(before) = previous_len
            && !spec.allow_shrink
            && before > 0
        {
            let after = entries.len();
            let lost = before.saturating_sub(after) as f64 / before as f64;
            if lost > self.max_shrink {
                return Err(GuardError::Shrink {
                    before,
                    after,
                    lost,
                    max: self.max_shrink,
                });
            }
        }
        Ok(())
    }
}
