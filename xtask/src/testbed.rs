//! The systemd test bed's root file system: a minimal Debian 12 (systemd 252 as PID 1) made
//! with debootstrap from the Debian mirror this machine's apt already uses, cached under
//! /var/cache/vendorwall so only the first run pays for it (about a minute). Each test boots an
//! overlay on it (tests/src/container.rs), so the cached copy is never changed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::shell;

const SUITE: &str = "bookworm";
/// What the tests use inside: systemd itself, journalctl, ps, ip, and Debian's ansible-core
/// (with python3-apt for its apt module) to run the Ansible role on the booted system;
/// python3-cffi-backend by name, as debootstrap does not resolve the virtual package
/// python3-cryptography needs.
const INCLUDE: &str =
    "systemd,systemd-sysv,dbus,procps,iproute2,ansible-core,python3-apt,python3-cffi-backend";
const CACHE: &str = "/var/cache/vendorwall/testbed";
/// Written last: a rootfs without it is an interrupted debootstrap and is made again.
const COMPLETE: &str = ".vendorwall-testbed-complete";

/// The cached rootfs, made first if missing; installs systemd-nspawn and debootstrap if needed.
pub fn ensure() -> anyhow::Result<PathBuf> {
    ensure_tools()?;
    let dir = Path::new(CACHE).join(format!("{SUITE}-{}", INCLUDE.replace(',', "+")));
    if dir.join(COMPLETE).exists() {
        return Ok(dir);
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(CACHE).with_context(|| format!("failed to create {CACHE}"))?;
    let mirror = apt_mirror();
    eprintln!(
        "xtask: making the systemd test bed ({SUITE} from {mirror}) in {}",
        dir.display()
    );
    shell::run(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={INCLUDE}"))
            .arg(SUITE)
            .arg(&partial)
            .arg(&mirror),
    )?;
    std::fs::write(partial.join(COMPLETE), "")?;
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("failed to move {} into place", partial.display()))?;
    Ok(dir)
}

fn ensure_tools() -> anyhow::Result<()> {
    shell::ensure_packages(&[
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
    ])
}

/// The first Debian (not security) archive in this machine's apt sources, deb822 or one-line.
pub fn apt_mirror() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            if let Some(uri) = uri.filter(|u| !u.contains("security"))
                && uri.contains("debian")
            {
                return uri.to_owned();
            }
        }
    }
    "http://deb.debian.org/debian".to_owned()
}
