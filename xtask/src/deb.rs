//! `cargo xtask deb`: a Debian package of the files `install` puts in place, at the paths
//! Debian's rules want (/usr/sbin, /usr/share/vendorwall, the unit under /usr/lib/systemd),
//! built by cargo-deb from the `[package.metadata.deb]` section of blocker-user/Cargo.toml,
//! with the maintainer scripts of packaging/debian/ and cargo-deb's dh_installsystemd snippets.

use std::process::Command;

use anyhow::Context as _;

use crate::{bootstrap, shell};

/// The cargo-deb release this was written against.
const CARGO_DEB_VERSION: &str = "3";

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> anyhow::Result<()> {
    bootstrap::ensure()?;
    ensure_cargo_deb()?;
    shell::run(shell::cargo().args(["build", "--release", "--package", "blocker-user"]))?;
    assets()?;
    shell::run(shell::cargo().args(["deb", "--no-build", "--package", "blocker-user"]))
        .context("cargo deb failed")?;
    Ok(())
}

fn ensure_cargo_deb() -> anyhow::Result<()> {
    if shell::output(Command::new("cargo").args(["deb", "--version"])).is_some() {
        return Ok(());
    }
    shell::run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--version",
        &format!("^{CARGO_DEB_VERSION}"),
        "--locked",
    ]))
    .context("failed to install cargo-deb")
}

/// What the package ships that the repository does not hold as is: the unit with the packaged
/// binary's path, and the man pages generated from the CLI (`vendorwall manpage`), gzipped.
fn assets() -> anyhow::Result<()> {
    let root = shell::workspace_root();
    let dir = root.join("target/deb-assets");
    std::fs::create_dir_all(&dir)?;
    let unit = std::fs::read_to_string(root.join("packaging/vendorwall.service"))?;
    let packaged = unit.replace(
        &format!("ExecStart={}", crate::install::BIN),
        "ExecStart=/usr/sbin/vendorwall",
    );
    anyhow::ensure!(
        packaged != unit,
        "the unit's ExecStart is not {}",
        crate::install::BIN
    );
    std::fs::write(dir.join("vendorwall.service"), packaged)?;
    crate::generated::write()?;
    let man = dir.join("man");
    let _ = std::fs::remove_dir_all(&man);
    std::fs::create_dir_all(&man)?;
    for (page, _) in crate::generated::files() {
        if page.extension().is_some_and(|e| e == "8") {
            let copy = man.join(page.file_name().context("page name")?);
            std::fs::copy(&page, &copy)?;
            // -n: no name or time stamp inside, so the package is reproducible.
            shell::run(Command::new("gzip").args(["-9", "-n", "-f"]).arg(&copy))?;
        }
    }
    Ok(())
}
