//! Debian's package database, read directly (`var/lib/dpkg/status` and `info/*.list`) rather
//! than through `dpkg-query`, so a scan of another root (a container's) needs no chroot and
//! the owners index (`owners.rs`) costs no process.

use std::path::Path;

/// Installed packages (status `install ok installed`, or any `... installed`/`half-configured`
/// state in which the files are on disk), with their versions.
pub fn installed(root: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(root.join("var/lib/dpkg/status")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut on_disk) = (None, String::new(), false);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("Status: ") {
                let state = v.split_whitespace().nth(2).unwrap_or_default();
                on_disk = matches!(
                    state,
                    "installed"
                        | "half-configured"
                        | "unpacked"
                        | "half-installed"
                        | "triggers-awaited"
                        | "triggers-pending"
                );
            }
        }
        if let (Some(name), true) = (name, on_disk) {
            found.push((name, version));
        }
    }
    found
}

/// The (path, package) pairs of the installed packages' file lists that `keep` accepts (a
/// system lists a hundred thousand paths; the caller wants a few).
pub fn files(root: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(root.join("var/lib/dpkg/info")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let file = entry.path();
        if file.extension().is_none_or(|e| e != "list") {
            continue;
        }
        let Some(stem) = file.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        // Multi-arch packages' lists are named `name:arch.list`.
        let package = stem.split(':').next().unwrap_or(&stem).to_owned();
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        out.extend(
            text.lines()
                .filter(|l| keep(l))
                .map(|l| (l.to_owned(), package.clone())),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_installed_packages_and_owners() {
        let root = std::env::temp_dir().join(format!("vw-dpkg-{}", std::process::id()));
        let info = root.join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).expect("dirs");
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: kesl\nStatus: install ok installed\nVersion: 12.1.0-1\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
             Package: klnagent64\nStatus: install ok half-configured\nVersion: 15\n",
        )
        .expect("status");
        std::fs::write(
            info.join("kesl:amd64.list"),
            "/.\n/opt/kaspersky/kesl/bin/kesl\n",
        )
        .expect("list");
        std::fs::write(info.join("bash.list"), "/.\n/bin/bash\n").expect("list");
        let names: Vec<String> = installed(&root).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["kesl", "klnagent64"]);
        let files = files(&root, |_| true);
        assert!(files.contains(&("/opt/kaspersky/kesl/bin/kesl".into(), "kesl".into())));
        assert!(files.contains(&("/bin/bash".into(), "bash".into())));
        let _ = std::fs::remove_dir_all(&root);
    }
}
