//! The RPM database, through `rpm` itself: its format (Berkeley DB, NDB or SQLite, by
//! distribution and release) is the rpm library's to read. Only consulted where an RPM
//! database exists.

use std::{path::Path, process::Command};

fn available(root: &Path) -> bool {
    ["var/lib/rpm", "usr/lib/sysimage/rpm"]
        .iter()
        .any(|db| root.join(db).is_dir())
}

fn rpm(root: &Path, args: &[&str]) -> Option<String> {
    if !available(root) {
        return None;
    }
    let output = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Which of `names` are installed, with their versions.
pub fn installed(root: &Path, names: &[String]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for name in names {
        if let Some(out) = rpm(
            root,
            &["-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n", name],
        ) {
            for line in out.lines() {
                if let Some((n, v)) = line.split_once(' ') {
                    found.push((n.to_owned(), v.to_owned()));
                }
            }
        }
    }
    found
}

/// The (path, package) pairs of the installed packages that `keep` accepts, from one
/// `rpm -qa`.
pub fn files(root: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let Some(out) = rpm(root, &["-qa", "--qf", "[%{FILENAMES}\t%{NAME}\n]"]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(path, _)| keep(path))
        .map(|(path, name)| (path.to_owned(), name.to_owned()))
        .collect()
}
