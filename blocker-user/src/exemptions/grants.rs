//! What the kernel's `EXEMPTIONS` map must hold for the configured exemptions at one moment:
//! each unexpired exemption's cgroups (units and directories, with every cgroup below) and
//! processes, times its lists (or 0 for every list), with its expiry on the boot clock.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, SystemTime},
};

use blocker_common::{EXEMPT_CGROUP, EXEMPT_PROCESS, ExemptionKey, Grant};

use super::{Exemption, processes};

/// The map's content and what it was made from.
#[derive(Debug, Default)]
pub struct Resolved {
    pub desired: HashMap<ExemptionKey, Grant>,
    /// Per exemption (in config order): what its scope resolved to now.
    pub scopes: Vec<Scope>,
    /// Problems to report (a list name not in force): the exemption covers less, never more.
    pub problems: Vec<String>,
}

/// What one exemption covers at the moment.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Scope {
    pub id: String,
    pub cgroups: usize,
    pub processes: usize,
    pub expired: bool,
}

/// The inputs `resolve` needs besides the exemptions themselves.
pub struct Grants<'a> {
    /// List name to kernel id, for every configured list (failed ones too).
    pub list_ids: &'a HashMap<String, u16>,
    pub proc_root: &'a Path,
    pub wall_now: SystemTime,
    /// `CLOCK_BOOTTIME` now, in nanoseconds: the programs' clock.
    pub boot_now_ns: u64,
}

impl Grants<'_> {
    /// The map content for `exemptions` (slot = position + 1, the number events carry).
    pub fn resolve(&self, exemptions: &[Exemption]) -> Resolved {
        let mut resolved = Resolved::default();
        for (i, exemption) in exemptions.iter().enumerate() {
            let slot = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let expired = exemption.expires.passed(self.wall_now);
            let mut scope = Scope {
                id: exemption.id.clone(),
                expired,
                ..Scope::default()
            };
            if expired {
                resolved.scopes.push(scope);
                continue;
            }
            let lists = self.lists_of(exemption, &mut resolved.problems);
            if lists.is_empty() {
                resolved.scopes.push(scope);
                continue;
            }
            let expires_ns = self.boot_expiry(exemption.expires.at);
            let cgroups = crate::daemon::exempt::cgroup_ids(&exemption.cgroups, &exemption.units);
            scope.cgroups = cgroups.len();
            for id in cgroups {
                for &list in &lists {
                    let grant = Grant {
                        expires_ns,
                        slot,
                        _pad: [0; 6],
                        comm: [0; blocker_common::COMM_LEN],
                    };
                    merge(
                        &mut resolved.desired,
                        ExemptionKey::new(EXEMPT_CGROUP, id, list),
                        grant,
                    );
                }
            }
            let running = processes::running(self.proc_root, &exemption.executables);
            scope.processes = running.len();
            for process in running {
                for &list in &lists {
                    let grant = Grant {
                        expires_ns,
                        slot,
                        _pad: [0; 6],
                        comm: process.comm,
                    };
                    let key = ExemptionKey::new(EXEMPT_PROCESS, u64::from(process.pid), list);
                    merge(&mut resolved.desired, key, grant);
                }
            }
            resolved.scopes.push(scope);
        }
        resolved
    }

    /// The kernel ids of the exemption's lists; `[0]` (every list) when it names none.
    fn lists_of(&self, exemption: &Exemption, problems: &mut Vec<String>) -> Vec<u16> {
        if exemption.lists.is_empty() {
            return vec![0];
        }
        let mut ids = Vec::new();
        for name in &exemption.lists {
            match self.list_ids.get(name) {
                Some(&id) => ids.push(id),
                None => problems.push(format!(
                    "exemption {:?}: list {name:?} is not configured; it exempts nothing from it",
                    exemption.id
                )),
            }
        }
        ids
    }

    /// `at` on the boot clock, by the clocks' offset now. The daemon writes it again when the
    /// offset moves (a wall-clock step), at each integrity check.
    fn boot_expiry(&self, at: SystemTime) -> u64 {
        let left = at.duration_since(self.wall_now).unwrap_or(Duration::ZERO);
        let left = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
        self.boot_now_ns.saturating_add(left)
    }
}

/// Where two exemptions cover one key, the one that ends last: the key is then covered exactly
/// while either is.
fn merge(map: &mut HashMap<ExemptionKey, Grant>, key: ExemptionKey, grant: Grant) {
    map.entry(key)
        .and_modify(|old| {
            if grant.expires_ns > old.expires_ns {
                *old = grant;
            }
        })
        .or_insert(grant);
}

/// Whether two map contents differ beyond clock jitter: expiries within a second of each
/// other are the same (the offset between the clocks moves by microseconds between reads).
pub fn same(a: &HashMap<ExemptionKey, Grant>, b: &HashMap<ExemptionKey, Grant>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, g)| {
            b.get(k).is_some_and(|h| {
                g.slot == h.slot
                    && g.comm == h.comm
                    && g.expires_ns.abs_diff(h.expires_ns) < 1_000_000_000
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exemptions::Expiry;

    fn exemption(id: &str, expires: &str, lists: &[&str]) -> Exemption {
        Exemption {
            id: id.into(),
            reason: "r".into(),
            approved_by: None,
            ticket: None,
            expires: Expiry::parse(expires).expect("expiry"),
            units: Vec::new(),
            cgroups: Vec::new(),
            executables: vec![std::env::current_exe().expect("exe")],
            lists: lists.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn processes_lists_expiry_and_overlaps() {
        let list_ids = HashMap::from([("a".to_owned(), 3u16)]);
        let wall_now = SystemTime::now();
        let grants = Grants {
            list_ids: &list_ids,
            proc_root: Path::new("/proc"),
            wall_now,
            boot_now_ns: 1_000,
        };
        let resolved = grants.resolve(&[
            exemption("short", "2100-01-01T00:00:00Z", &["a"]),
            exemption("long", "2200-01-01T00:00:00Z", &["a", "missing"]),
            exemption("over", "2000-01-01", &[]),
        ]);
        let me = u64::from(std::process::id());
        let key = ExemptionKey::new(EXEMPT_PROCESS, me, 3);
        let grant = resolved
            .desired
            .get(&key)
            .expect("this process is exempt from a");
        assert_eq!(grant.slot, 2, "the exemption that ends last wins");
        assert!(grant.expires_ns > 1_000 + 150 * 365 * 86_400 * 1_000_000_000);
        assert!(
            !resolved
                .desired
                .contains_key(&ExemptionKey::new(EXEMPT_PROCESS, me, 0)),
            "the expired exemption from every list is not written"
        );
        assert!(resolved.scopes[2].expired);
        assert_eq!(resolved.problems.len(), 1, "{:?}", resolved.problems);
        assert!(resolved.problems[0].contains("missing"));
    }
}
