//! `cargo xtask bootstrap`: make a fresh machine able to build the eBPF programs.
//!
//! Needs: a nightly toolchain with `rust-src` (the BPF target's `core` is built from source) and
//! `bpf-linker` whose LLVM matches nightly's. bpf-linker 0.10.4 loads rustc's own libLLVM at run
//! time, so no system LLVM is needed. Each step checks first, so a second run changes nothing and
//! takes about a second.

use std::process::Command;

use anyhow::Context as _;

use crate::shell;

/// The bpf-linker release known to work with this machine's nightly (LLVM 22).
const BPF_LINKER_VERSION: &str = "0.10.4";

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> anyhow::Result<()> {
    ensure()
}

/// Installs whatever is missing; prints one line per tool that was already there.
pub fn ensure() -> anyhow::Result<()> {
    ensure_nightly_with_rust_src()?;
    ensure_bpf_linker()?;
    Ok(())
}

fn ensure_nightly_with_rust_src() -> anyhow::Result<()> {
    let has_nightly =
        shell::output(Command::new("rustup").args(["run", "nightly", "rustc", "-V"])).is_some();
    if !has_nightly {
        shell::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))
        .context("failed to install the nightly toolchain")?;
    }
    let sysroot = shell::output(
        Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]),
    )
    .context("nightly rustc does not run")?;
    let core = std::path::Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core");
    if core.exists() {
        eprintln!("xtask: nightly with rust-src: present");
    } else {
        shell::run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))
        .context("failed to add rust-src to nightly")?;
    }
    Ok(())
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    let version = shell::output(Command::new("bpf-linker").arg("--version"));
    if version
        .as_deref()
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        eprintln!("xtask: bpf-linker {BPF_LINKER_VERSION}: present");
        return Ok(());
    }
    shell::run(Command::new("cargo").args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
    ]))
    .context("failed to install bpf-linker")
}
