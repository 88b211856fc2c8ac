//! The running daemon's files in the run directory: its pid, and a JSON state snapshot that
//! `status`, `lists` and `reload` read (lists, last sync, errors, heartbeat).

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};

pub const PID_FILE: &str = "vendorwall.pid";
pub const STATE_FILE: &str = "state.json";

/// One list as `vendorwall lists` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListState {
    pub id: u16,
    pub name: String,
    pub vendor: Option<String>,
    pub action: String,
    pub sources: Vec<String>,
    pub raw_entries: usize,
    pub aggregated_entries: usize,
    /// RFC 3339.
    pub last_refresh: Option<String>,
    pub last_error: Option<String>,
    /// False for a list that failed to load and has no content in force (the daemon is then
    /// degraded); whatever the kernel held for it before stays.
    #[serde(default = "yes")]
    pub enforced: bool,
    /// Malformed lines skipped in the content in force.
    #[serde(default)]
    pub skipped_lines: usize,
    /// The first few of them, as `file:line: reason: "text"`.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// ipset `nomatch` exceptions carved out of the entries.
    #[serde(default)]
    pub exceptions: usize,
}

fn yes() -> bool {
    true
}

impl ListState {
    /// What a list's configuration says, before any content: a list that failed to load
    /// shows just this and its error.
    fn configured(id: u16, spec: &crate::lists::ListSpec) -> Self {
        Self {
            id,
            name: spec.name.clone(),
            vendor: spec.vendor.clone(),
            action: format!("{:?}", spec.action).to_lowercase(),
            sources: spec.sources.iter().map(ToString::to_string).collect(),
            raw_entries: 0,
            aggregated_entries: 0,
            last_refresh: None,
            last_error: None,
            enforced: false,
            skipped_lines: 0,
            skipped: Vec::new(),
            exceptions: 0,
        }
    }

    /// The view of a list that failed to load.
    pub fn failed(list: &crate::lists::FailedList) -> Self {
        Self {
            last_error: Some(list.error.clone()),
            ..Self::configured(list.id, &list.spec)
        }
    }

    /// Every configured list of `set`, in configuration order.
    pub fn all(set: &crate::lists::ListSet) -> Vec<Self> {
        let mut all: Vec<Self> = set.lists().iter().map(Self::of).collect();
        all.extend(set.failed().iter().map(Self::failed));
        all.sort_by_key(|l| l.id);
        all
    }

    /// The view of a loaded list that `status` and `lists` show.
    pub fn of(list: &crate::lists::List) -> Self {
        Self {
            raw_entries: list.entries.len(),
            aggregated_entries: list.aggregated,
            last_refresh: list.refreshed_at.map(rfc3339),
            last_error: list.last_error.clone(),
            enforced: true,
            skipped_lines: list.skipped_lines,
            skipped: list.skipped.clone(),
            exceptions: list.exceptions,
            ..Self::configured(list.id, &list.spec)
        }
    }
}

/// What the daemon last wrote about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DaemonState {
    pub pid: u32,
    /// What tells this process apart from a later one given the same pid.
    #[serde(default)]
    pub identity: super::identity::Identity,
    pub version: String,
    pub started: String,
    /// Updated at least every few seconds while the daemon runs.
    pub heartbeat: String,
    pub cgroup: String,
    pub generation: u64,
    pub dry_run: bool,
    pub lists: Vec<ListState>,
    /// Prefixes in the kernel after aggregation.
    pub kernel_prefixes: usize,
    /// Completed reloads (SIGHUP, interval, file change), to let `reload` see its effect.
    pub reloads: u64,
    /// When the last completed reload started (Unix time, ns): `vendorwall reload` waits for
    /// one that started after its signal, not one a file change began just before it.
    #[serde(default)]
    pub last_reload_started_ns: u64,
    pub last_sync: Option<String>,
    pub last_sync_stats: Option<crate::kernel::diff::SyncStats>,
    /// How long the last reload's phases took, in milliseconds.
    pub timings: Timings,
    /// Errors of the last reload (lists keeping their previous content, config errors).
    pub errors: Vec<String>,
    /// Times the daemon found its links detached and re-attached them.
    pub reattachments: u64,
    /// The DNS learner and the listed names.
    #[serde(default)]
    pub names: super::names::NamesState,
    /// The `[[exemptions]]` and what they covered at the last check.
    #[serde(default)]
    pub exemptions: Vec<super::exemptions::ExemptionState>,
}

impl DaemonState {
    /// The configured lists that are not enforced: while there is one, the daemon is degraded.
    pub fn not_enforced(&self) -> Vec<&ListState> {
        self.lists.iter().filter(|l| !l.enforced).collect()
    }
}

/// Durations of a load or reload, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Fetching and parsing every list.
    pub lists_ms: f64,
    /// Aggregating into the kernel set.
    pub aggregate_ms: f64,
    /// Reading the maps back and writing the difference.
    pub sync_ms: f64,
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Writes `value` to `path` atomically (temp file + rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

pub fn write_state(run_dir: &Path, state: &DaemonState) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    write_atomic(&run_dir.join(STATE_FILE), &bytes)
}

pub fn read_state(run_dir: &Path) -> Option<DaemonState> {
    let text = std::fs::read_to_string(run_dir.join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write_pid(run_dir: &Path) -> std::io::Result<PathBuf> {
    let path = run_dir.join(PID_FILE);
    write_atomic(&path, format!("{}\n", std::process::id()).as_bytes())?;
    Ok(path)
}

/// Now as Unix time in nanoseconds (0 if the clock is before 1970).
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
