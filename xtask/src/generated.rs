//! What is made from the built binary rather than kept in the repository: the manual pages
//! and the shell completions, both generated from the CLI's clap definitions, under
//! `target/generated/`. `install` and `deb` ship them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::shell;

/// (shell, file name) of each completion script.
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "vendorwall"),
    ("zsh", "_vendorwall"),
    ("fish", "vendorwall.fish"),
];

pub fn dir() -> PathBuf {
    shell::workspace_root().join("target/generated")
}

/// Writes the pages and scripts with the release binary.
pub fn write() -> anyhow::Result<()> {
    let bin = shell::workspace_root().join("target/release/vendorwall");
    let man = dir().join("man");
    let _ = std::fs::remove_dir_all(&man);
    shell::run(Command::new(&bin).arg("manpage").arg("--dir").arg(&man))
        .context("vendorwall manpage failed")?;
    for (shell_name, file) in COMPLETIONS {
        let script = shell::output(Command::new(&bin).args(["completions", shell_name]))
            .with_context(|| format!("vendorwall completions {shell_name} failed"))?;
        let path = dir().join("completions").join(shell_name).join(file);
        std::fs::create_dir_all(path.parent().context("has a parent")?)?;
        std::fs::write(&path, script)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}

/// (generated file, where `install` puts it), for what [`write`] made; empty before.
pub fn files() -> Vec<(PathBuf, PathBuf)> {
    let mut files = Vec::new();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir().join("man"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    pages.sort();
    for page in pages {
        if let Some(name) = page.file_name() {
            let dest = Path::new("/usr/local/share/man/man8").join(name);
            files.push((page, dest));
        }
    }
    for (shell_name, file) in COMPLETIONS {
        let source = dir().join("completions").join(shell_name).join(file);
        let dest = match shell_name {
            "bash" => "/usr/local/share/bash-completion/completions",
            "zsh" => "/usr/local/share/zsh/site-functions",
            _ => "/usr/local/share/fish/vendor_completions.d",
        };
        if source.exists() {
            files.push((source, Path::new(dest).join(file)));
        }
    }
    files
}
