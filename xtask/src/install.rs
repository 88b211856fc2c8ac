//! `cargo xtask install | uninstall`: put the binary, unit, default config, shipped lists, man
//! pages and shell completions in the standard places (under `--root` for a staging directory), or take them away again.
//! The same file list drives the .deb (`deb.rs`), and a test checks both agree.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{bootstrap, shell};

#[derive(clap::Args)]
pub struct Args {
    /// Install under this directory instead of `/` (for packaging or inspection).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    /// Uninstall from under this directory instead of `/`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Also remove /etc/vendorwall (the operator's configuration).
    #[arg(long)]
    pub purge: bool,
}

/// One installed file: source in the repository, destination path, mode.
pub struct Item {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub mode: u32,
    /// Kept when it exists (operator-owned configuration).
    pub config: bool,
}

pub const BIN: &str = "/usr/local/bin/vendorwall";
pub const UNIT: &str = "/etc/systemd/system/vendorwall.service";
pub const CONFIG: &str = "/etc/vendorwall/config.toml";
pub const LISTS: &str = "/usr/local/share/vendorwall/blocklists";

/// Everything `install` writes, in order.
pub fn plan(root: &Path) -> anyhow::Result<Vec<Item>> {
    let repo = shell::workspace_root();
    let mut items = vec![
        Item {
            source: repo.join("target/release/vendorwall"),
            dest: BIN.into(),
            mode: 0o755,
            config: false,
        },
        Item {
            source: repo.join("packaging/vendorwall.service"),
            dest: UNIT.into(),
            mode: 0o644,
            config: false,
        },
        Item {
            source: repo.join("packaging/config.toml"),
            dest: CONFIG.into(),
            mode: 0o644,
            config: true,
        },
    ];
    let mut lists: Vec<PathBuf> = std::fs::read_dir(repo.join("blocklists"))
        .context("failed to read blocklists/")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    lists.sort();
    for source in lists {
        let name = source.file_name().context("list file name")?.to_owned();
        items.push(Item {
            dest: Path::new(LISTS).join(name),
            source,
            mode: 0o644,
            config: false,
        });
    }
    for (source, dest) in crate::generated::files() {
        items.push(Item {
            source,
            dest,
            mode: 0o644,
            config: false,
        });
    }
    for item in &mut items {
        item.dest = under(root, &item.dest);
    }
    Ok(items)
}

/// `path` (absolute) placed under `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

pub fn install(args: &Args) -> anyhow::Result<()> {
    bootstrap::ensure()?;
    shell::run(shell::cargo().args(["build", "--release", "--package", "blocker-user"]))?;
    crate::generated::write()?;
    for item in plan(&args.root)? {
        if item.config && item.dest.exists() {
            println!("kept     {} (already configured)", item.dest.display());
            continue;
        }
        if let Some(dir) = item.dest.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        std::fs::copy(&item.source, &item.dest).with_context(|| {
            format!(
                "failed to copy {} to {}",
                item.source.display(),
                item.dest.display()
            )
        })?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&item.dest, std::fs::Permissions::from_mode(item.mode))?;
        println!("installed {}", item.dest.display());
    }
    if args.root == Path::new("/") && Path::new("/run/systemd/system").exists() {
        shell::run(Command::new("systemctl").arg("daemon-reload"))?;
        println!("start it with: systemctl enable --now vendorwall");
    }
    Ok(())
}

pub fn uninstall(args: &UninstallArgs) -> anyhow::Result<()> {
    let bin = under(&args.root, Path::new(BIN));
    if args.root == Path::new("/") {
        if Path::new("/run/systemd/system").exists() {
            let _ = Command::new("systemctl")
                .args(["disable", "--now", "vendorwall"])
                .status();
        }
        // Without the binary nothing could remove the pinned enforcement any more.
        if bin.exists() {
            println!("removing enforcement: {} unload", bin.display());
            let status = Command::new(&bin).arg("unload").status()?;
            if !status.success() {
                bail!("`vendorwall unload` failed; files left in place so you can retry");
            }
        }
    }
    for item in plan(&args.root)? {
        if item.config && !args.purge {
            continue;
        }
        match std::fs::remove_file(&item.dest) {
            Ok(()) => println!("removed  {}", item.dest.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).context(format!("failed to remove {}", item.dest.display()));
            }
        }
    }
    let _ = std::fs::remove_dir(under(&args.root, Path::new(LISTS)));
    let _ = std::fs::remove_dir(under(&args.root, Path::new("/usr/local/share/vendorwall")));
    if args.purge {
        let _ = std::fs::remove_dir(under(&args.root, Path::new("/etc/vendorwall")));
    }
    Ok(())
}
