//! `vendorwall scan`'s search: for every manifest with a `[software]` section, the installed
//! packages (dpkg and rpm databases), unit files and running units, install paths, and
//! running processes that match it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{dpkg, rpm};
use crate::lists::manifest::Manifest;

/// One piece of a vendor's software found on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub vendor: String,
    /// The manifest (list) name.
    pub list: String,
    /// `package`, `unit`, `path` or `process`.
    pub kind: &'static str,
    pub name: String,
    /// The version of a package, the unit file or cgroup of a unit, the pid of a process.
    pub detail: String,
}

/// Where unit files live, relative to the root.
const UNIT_DIRS: [&str; 5] = [
    "etc/systemd/system",
    "run/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
    "usr/local/lib/systemd/system",
];

/// Everything of the manifests' software found under `root` (`/` for this host; running
/// processes and units are only looked for there).
pub fn scan(manifests: &[(PathBuf, Manifest)], root: &Path) -> Vec<Finding> {
    let live = root == Path::new("/");
    let debs = dpkg::installed(root);
    let processes = if live { running_comms() } else { Vec::new() };
    let mut findings = Vec::new();
    for (_, manifest) in manifests {
        let Some(software) = &manifest.software else {
            continue;
        };
        let mut found = |kind: &'static str, name: &str, detail: String| {
            findings.push(Finding {
                vendor: manifest.vendor.clone(),
                list: manifest.name.clone(),
                kind,
                name: name.to_owned(),
                detail,
            });
        };
        for (name, version) in &debs {
            if software.deb_packages.contains(name) {
                found("package", name, format!("deb {version}"));
            }
        }
        for (name, version) in rpm::installed(root, &software.rpm_packages) {
            found("package", &name, format!("rpm {version}"));
        }
        for unit in &software.units {
            if let Some(file) = UNIT_DIRS
                .iter()
                .map(|dir| root.join(dir).join(unit))
                .find(|f| f.exists())
            {
                found("unit", unit, format!("unit file {}", file.display()));
            } else if live && let Some(cgroup) = crate::daemon::exempt::unit_cgroup(unit) {
                found("unit", unit, format!("running in {}", cgroup.display()));
            }
        }
        for path in &software.paths {
            let relative = path.trim_start_matches('/');
            if root.join(relative).exists() {
                found("path", path, "exists".into());
            }
        }
        for (pid, comm) in &processes {
            if software.processes.iter().any(|p| p == comm) {
                found("process", comm, format!("pid {pid}"));
            }
        }
    }
    findings
}

/// (pid, comm) of every process.
fn running_comms() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<(u32, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((pid, comm.trim_end().to_owned()))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::software::Software;

    #[test]
    fn finds_packages_units_and_paths_under_a_root() {
        let root = std::env::temp_dir().join(format!("vw-scan-{}", std::process::id()));
        std::fs::create_dir_all(root.join("var/lib/dpkg")).expect("dpkg");
        std::fs::create_dir_all(root.join("lib/systemd/system")).expect("units");
        std::fs::create_dir_all(root.join("opt/kaspersky/kesl")).expect("path");
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: kesl\nStatus: install ok installed\nVersion: 12\n",
        )
        .expect("status");
        std::fs::write(root.join("lib/systemd/system/kesl.service"), "").expect("unit");
        let mut manifest: Manifest = toml::from_str(
            "name = \"k\"\nvendor = \"K\"\nreason = \"r\"\nreferences = []\n\
             data_source = \"s\"\ndata_date = \"2026-01-01\"\n",
        )
        .expect("manifest");
        manifest.software = Some(Software {
            deb_packages: vec!["kesl".into(), "klnagent64".into()],
            units: vec!["kesl.service".into(), "klnagent64.service".into()],
            paths: vec![
                "/opt/kaspersky/kesl".into(),
                "/opt/kaspersky/klnagent64".into(),
            ],
            ..Software::default()
        });
        let findings = scan(&[(PathBuf::new(), manifest)], &root);
        let kinds: Vec<(&str, &str)> = findings.iter().map(|f| (f.kind, f.name.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("package", "kesl"),
                ("unit", "kesl.service"),
                ("path", "/opt/kaspersky/kesl")
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
