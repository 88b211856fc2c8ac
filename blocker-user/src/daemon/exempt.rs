//! Resolving exemptions to the cgroup ids the kernel compares: configured cgroup directories and
//! systemd units (found by name in the cgroup v2 tree), each with every cgroup below it.
//! Re-resolved periodically, because a restarted unit gets a new cgroup (and a new id).

use std::path::{Path, PathBuf};

use crate::config::Exempt;

/// How deep to look for a unit's cgroup (`/system.slice/foo.service` is depth 2; nested
/// slices and user managers go deeper).
const UNIT_SEARCH_DEPTH: usize = 6;

/// The ids of every exempt cgroup and its descendants, sorted and de-duplicated. Missing cgroups
/// and units that are not running are skipped (nothing to exempt until they exist).
pub fn resolve(exempt: &Exempt) -> Vec<u64> {
    cgroup_ids(&exempt.cgroups, &exempt.units)
}

/// The ids of `cgroups`, the cgroups of `units`, and every cgroup below them, sorted and
/// de-duplicated.
pub fn cgroup_ids(cgroups: &[PathBuf], units: &[String]) -> Vec<u64> {
    let mut roots: Vec<PathBuf> = cgroups.to_vec();
    if !units.is_empty()
        && let Ok(root) = crate::kernel::cgroup::default_root()
    {
        find_units(&root, units, UNIT_SEARCH_DEPTH, &mut roots);
    }
    let mut ids = Vec::new();
    for root in roots {
        collect_ids(&root, &mut ids);
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The cgroup of a running unit, found by name.
pub fn unit_cgroup(unit: &str) -> Option<PathBuf> {
    let root = crate::kernel::cgroup::default_root().ok()?;
    let mut found = Vec::new();
    find_units(&root, &[unit.to_owned()], UNIT_SEARCH_DEPTH, &mut found);
    found.into_iter().next()
}

fn subdirs(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
}

fn find_units(dir: &Path, units: &[String], depth: usize, found: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    for sub in subdirs(dir) {
        let is_unit = sub
            .file_name()
            .is_some_and(|n| units.iter().any(|u| n == u.as_str()));
        if is_unit {
            found.push(sub);
        } else {
            find_units(&sub, units, depth - 1, found);
        }
    }
}

fn collect_ids(dir: &Path, ids: &mut Vec<u64>) {
    if let Ok(id) = crate::kernel::cgroup::id(dir) {
        ids.push(id);
        for sub in subdirs(dir) {
            collect_ids(&sub, ids);
        }
    }
}
