//! The report's content, gathered once and rendered by each form.

use std::{collections::BTreeMap, path::PathBuf, time::SystemTime};

use serde::Serialize;

use crate::{
    config::Config,
    daemon::state::DaemonState,
    history::{Filter, Store, StoreError},
    lists::manifest::Manifest,
    software::Finding,
};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub generated: String,
    pub host: String,
    pub since: String,
    pub until: String,
    /// The history database read, and lines it could not store in the period.
    pub history: String,
    pub missed_lines: u64,
    pub totals: Totals,
    pub vendors: Vec<VendorRow>,
    pub processes: Vec<ProcessRow>,
    pub days: Vec<DayRow>,
    pub exemptions: Vec<ExemptionRow>,
    pub lists: Vec<ListRow>,
    pub findings: Vec<Finding>,
}

/// Attempts in the period by what happened to them.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub blocked: u64,
    pub audited: u64,
    pub exempted: u64,
    pub terminated: u64,
}

impl Totals {
    fn add(&mut self, action: &str, count: u64) {
        match action {
            "blocked" => self.blocked += count,
            "audited" => self.audited += count,
            "exempted" => self.exempted += count,
            "terminated" => self.terminated += count,
            _ => {}
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VendorRow {
    /// The vendor, or the list name for lists without one.
    pub vendor: String,
    pub list: String,
    pub totals: Totals,
    /// Attempts per day (UTC, `YYYY-MM-DD`), every action together, for the timeline.
    pub per_day: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessRow {
    pub comm: String,
    pub exe: String,
    pub unit: String,
    pub package: String,
    pub action: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DayRow {
    pub day: String,
    pub totals: Totals,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExemptionRow {
    pub id: String,
    pub reason: String,
    pub approved_by: Option<String>,
    pub ticket: Option<String>,
    pub expires: String,
    pub expired: bool,
    pub scope: Vec<String>,
    pub lists: Vec<String>,
    /// Attempts it let through in the period.
    pub uses: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ListRow {
    pub name: String,
    pub vendor: Option<String>,
    pub action: String,
    /// Whether it has content in force (from the running daemon's state; unknown without one).
    pub enforced: Option<bool>,
    pub entries: Option<usize>,
    pub last_refresh: Option<String>,
    pub data_source: Option<String>,
    pub data_date: Option<String>,
    pub domain_data_date: Option<String>,
}

/// What `gather` reads besides the config.
pub struct Inputs<'a> {
    pub store: &'a Store,
    pub since: SystemTime,
    pub state: Option<&'a DaemonState>,
    pub manifests: &'a [(PathBuf, Manifest)],
    pub findings: Vec<Finding>,
}

/// Day of a microsecond stamp, in SQL.
const DAY: &str = "strftime('%Y-%m-%d', last_us / 1000000, 'unixepoch')";

pub fn gather(config: &Config, inputs: Inputs<'_>) -> Result<Report, StoreError> {
    let now = SystemTime::now();
    let filter = Filter {
        since: Some(inputs.since),
        ..Filter::default()
    };
    let store = inputs.store;
    let mut totals = Totals::default();
    let mut vendors: BTreeMap<(String, String), VendorRow> = BTreeMap::new();
    for (keys, count) in store.totals(&filter, &["COALESCE(vendor, list)", "list", "action"])? {
        let [vendor, list, action] = <[String; 3]>::try_from(keys).unwrap_or_default();
        totals.add(&action, count);
        vendors
            .entry((vendor.clone(), list.clone()))
            .or_insert_with(|| VendorRow {
                vendor,
                list,
                totals: Totals::default(),
                per_day: BTreeMap::new(),
            })
            .totals
            .add(&action, count);
    }
    for (keys, count) in store.totals(&filter, &["COALESCE(vendor, list)", "list", DAY])? {
        let [vendor, list, day] = <[String; 3]>::try_from(keys).unwrap_or_default();
        if let Some(row) = vendors.get_mut(&(vendor, list)) {
            *row.per_day.entry(day).or_default() += count;
        }
    }
    // Every day of the period on each timeline, so quiet days show as gaps, not as nothing.
    for day in days_between(inputs.since, now) {
        for row in vendors.values_mut() {
            row.per_day.entry(day.clone()).or_default();
        }
    }
    let processes = store
        .totals(&filter, &["comm", "exe", "unit", "package", "action"])?
        .into_iter()
        .map(|(keys, count)| {
            let [comm, exe, unit, package, action] =
                <[String; 5]>::try_from(keys).unwrap_or_default();
            ProcessRow {
                comm,
                exe,
                unit,
                package,
                action,
                count,
            }
        })
        .collect();
    let mut days: BTreeMap<String, Totals> = BTreeMap::new();
    for (keys, count) in store.totals(&filter, &[DAY, "action"])? {
        let [day, action] = <[String; 2]>::try_from(keys).unwrap_or_default();
        days.entry(day).or_default().add(&action, count);
    }
    let uses: BTreeMap<String, u64> = store
        .totals(&filter, &["exemption"])?
        .into_iter()
        .filter_map(|(keys, count)| keys.into_iter().next().map(|k| (k, count)))
        .collect();
    let exemptions = config
        .exemptions
        .iter()
        .map(|e| ExemptionRow {
            id: e.id.clone(),
            reason: e.reason.clone(),
            approved_by: e.approved_by.clone(),
            ticket: e.ticket.clone(),
            expires: crate::daemon::state::rfc3339(e.expires.at),
            expired: e.expires.passed(now),
            scope: scope_words(e),
            lists: e.lists.clone(),
            uses: uses.get(&e.id).copied().unwrap_or(0),
        })
        .collect();
    Ok(Report {
        generated: crate::daemon::state::rfc3339(now),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        since: crate::daemon::state::rfc3339(inputs.since),
        until: crate::daemon::state::rfc3339(now),
        history: store.path().display().to_string(),
        missed_lines: store.missed(Some(inputs.since))?,
        totals,
        vendors: vendors.into_values().collect(),
        processes,
        days: days
            .into_iter()
            .map(|(day, totals)| DayRow { day, totals })
            .collect(),
        exemptions,
        lists: lists_in_force(config, inputs.state, inputs.manifests),
        findings: inputs.findings,
    })
}

/// The UTC days from `since` to `until` (at most 400).
fn days_between(since: SystemTime, until: SystemTime) -> Vec<String> {
    let day = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400)
    };
    let (first, last) = (day(since), day(until));
    (first.max(last.saturating_sub(399))..=last)
        .map(|d| {
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d * 86_400);
            humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
        })
        .collect()
}

fn scope_words(e: &crate::exemptions::Exemption) -> Vec<String> {
    let units = e.units.iter().map(|u| format!("unit {u}"));
    let cgroups = e.cgroups.iter().map(|c| format!("cgroup {}", c.display()));
    let exes = e
        .executables
        .iter()
        .map(|x| format!("executable {}", x.display()));
    units.chain(cgroups).chain(exes).collect()
}

/// The running daemon's lists (or, without one, the config's selection), with the data dates
/// of their manifests.
fn lists_in_force(
    config: &Config,
    state: Option<&DaemonState>,
    manifests: &[(PathBuf, Manifest)],
) -> Vec<ListRow> {
    let manifest = |name: &str| manifests.iter().map(|(_, m)| m).find(|m| m.name == name);
    let row = |name: &str, vendor: Option<String>, action: String| {
        let m = manifest(name);
        ListRow {
            name: name.to_owned(),
            vendor: vendor.or_else(|| m.map(|m| m.vendor.clone())),
            action,
            enforced: None,
            entries: None,
            last_refresh: None,
            data_source: m.map(|m| m.data_source.clone()),
            data_date: m.map(|m| m.data_date.clone()),
            domain_data_date: m.and_then(|m| m.domain_data_date.clone()),
        }
    };
    if let Some(state) = state {
        return state
            .lists
            .iter()
            .map(|l| ListRow {
                enforced: Some(l.enforced),
                entries: Some(l.raw_entries),
                last_refresh: l.last_refresh.clone(),
                ..row(&l.name, l.vendor.clone(), l.action.clone())
            })
            .collect();
    }
    let args = crate::cli::ListArgs {
        lists: Vec::new(),
        blocklists: None,
        strict: false,
    };
    crate::lists::selection::specs(config, &args)
        .map(|specs| {
            specs
                .iter()
                .map(|s| {
                    let action = format!("{:?}", s.action).to_lowercase();
                    row(&s.name, s.vendor.clone(), action)
                })
                .collect()
        })
        .unwrap_or_default()
}
