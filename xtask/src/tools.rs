//! Tools the tests need that Debian ships inside a larger package: `promtool` comes with the
//! `prometheus` server, whose installation would start a server on this machine. The package
//! is fetched with `apt-get download` and unpacked into a cache instead; nothing is installed.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::shell;

const CACHE: &str = "/var/cache/vendorwall/tools/prometheus";

/// The path of a `promtool` binary, unpacked once from Debian's `prometheus` package.
pub fn promtool() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(CACHE);
    let promtool = dir.join("root/usr/bin/promtool");
    if promtool.exists() {
        return Ok(promtool);
    }
    let download = dir.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    // The host's apt state, read only: `download` installs nothing and changes no source.
    shell::run(
        Command::new("apt-get")
            .args(["download", "-qq", "prometheus"])
            .current_dir(&download),
    )
    .context("apt-get download prometheus failed")?;
    let deb = std::fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download prometheus left no .deb")?;
    shell::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("root")),
    )?;
    anyhow::ensure!(
        promtool.exists(),
        "{} is not in {}",
        promtool.display(),
        deb.display()
    );
    Ok(promtool)
}
