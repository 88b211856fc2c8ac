//! Keeping `[[exemptions]]` in force: resolved to kernel entries at start, at each reload and
//! at each integrity check (units restart into new cgroups, exempted executables start and
//! stop), with expiries logged and counted as they pass and warnings
//! `exemption_warning` before. The kernel compares the expiry itself; the daemon only removes
//! what it no longer needs.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::SystemTime,
};

use blocker_common::{ExemptionKey, Grant};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::Daemon;
use crate::{
    config::Config,
    exemptions::{Grants, Resolved, grants},
    lists::ListSet,
};

/// One exemption as `status` and `vendorwall exemptions` read it from the state file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExemptionState {
    pub id: String,
    pub expires: String,
    /// cgroups and processes it covered at the last check.
    pub cgroups: usize,
    pub processes: usize,
    pub expired: bool,
}

impl ExemptionWatch {
    /// After a start: the map holds `desired`.
    pub fn holding(desired: HashMap<ExemptionKey, Grant>) -> Self {
        Self {
            desired,
            ..Self::default()
        }
    }
}

/// What the daemon remembers between checks, to log each transition once.
#[derive(Debug, Default)]
pub struct ExemptionWatch {
    pub desired: HashMap<ExemptionKey, Grant>,
    warned: HashSet<String>,
    expired: HashSet<String>,
    /// Expiries not yet counted in the metrics.
    pub newly_expired: u64,
    /// The problems logged last, so each is logged when it appears, not at every check.
    problems: Vec<String>,
}

/// Every configured list's name and kernel id (failed lists keep their id).
fn list_ids(lists: &ListSet) -> HashMap<String, u16> {
    lists
        .lists()
        .iter()
        .map(|l| (l.spec.name.clone(), l.id))
        .chain(lists.failed().iter().map(|f| (f.spec.name.clone(), f.id)))
        .collect()
}

/// The exemptions of `config` as they resolve now.
pub fn resolve(config: &Config, lists: &ListSet) -> Resolved {
    let ids = list_ids(lists);
    Grants {
        list_ids: &ids,
        proc_root: Path::new("/proc"),
        wall_now: SystemTime::now(),
        boot_now_ns: crate::events::clock::boottime_ns(),
    }
    .resolve(&config.exemptions)
}

impl Daemon {
    /// Resolves the exemptions again and writes the map when it changed; logs expiries and
    /// warnings.
    pub fn refresh_exemptions(&mut self) {
        let resolved = resolve(&self.config, &self.lists);
        self.apply_exemptions(&resolved);
    }

    /// Writes `resolved` when it differs from what the map holds; logs expiries and warnings.
    pub(super) fn apply_exemptions(&mut self, resolved: &Resolved) {
        self.exemptions.newly_expired += self.note_transitions(resolved);
        if !grants::same(&resolved.desired, &self.exemptions.desired) {
            match self.enforcer.sync_exemptions(&resolved.desired) {
                Ok(stats) => {
                    info!("exemptions: {stats}");
                    self.exemptions.desired = resolved.desired.clone();
                }
                Err(err) => error!("cannot update the exemptions map: {err:#}"),
            }
        }
        self.record_exemptions(resolved);
    }

    pub(super) fn record_exemptions(&mut self, resolved: &Resolved) {
        self.state.exemptions = self
            .config
            .exemptions
            .iter()
            .zip(&resolved.scopes)
            .map(|(e, scope)| ExemptionState {
                id: e.id.clone(),
                expires: super::state::rfc3339(e.expires.at),
                cgroups: scope.cgroups,
                processes: scope.processes,
                expired: scope.expired,
            })
            .collect();
    }

    /// Logs each exemption's expiry once, and once the warning before it.
    fn note_transitions(&mut self, resolved: &Resolved) -> u64 {
        if resolved.problems != self.exemptions.problems {
            for problem in &resolved.problems {
                warn!("{problem}");
            }
            self.exemptions.problems.clone_from(&resolved.problems);
        }
        let now = SystemTime::now();
        let mut newly_expired = 0;
        for exemption in &self.config.exemptions {
            let at = exemption.expires.at;
            if exemption.expires.passed(now) {
                if self.exemptions.expired.insert(exemption.id.clone()) {
                    newly_expired += 1;
                    warn!(
                        "exemption {:?} expired at {} ({}): no longer applied",
                        exemption.id,
                        super::state::rfc3339(at),
                        exemption.reason
                    );
                }
            } else if at
                .duration_since(now)
                .is_ok_and(|left| left <= self.config.exemption_warning)
                && self.exemptions.warned.insert(exemption.id.clone())
            {
                let left = at.duration_since(now).unwrap_or_default();
                warn!(
                    "exemption {:?} expires in {} (at {}): renew it or let it end",
                    exemption.id,
                    humantime::format_duration(std::time::Duration::from_secs(left.as_secs())),
                    super::state::rfc3339(at)
                );
            }
        }
        newly_expired
    }
}
