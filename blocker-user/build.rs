//! Builds the kernel programs (blocker-ebpf) with nightly + bpf-linker through aya-build and
//! leaves the object in OUT_DIR, where `kernel/mod.rs` embeds it.
//!
//! Missing tools get one actionable line instead of a page of cargo output.

use std::{path::Path, process::Command};

fn main() {
    if let Err(message) = check_toolchain() {
        eprintln!("error: {message}: run `cargo xtask bootstrap`");
        std::process::exit(1);
    }
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blocker-ebpf");
    let root_dir = root_dir.to_string_lossy();
    let package = aya_build::Package {
        name: "blocker-ebpf",
        root_dir: &root_dir,
        ..Default::default()
    };
    if let Err(err) = aya_build::build_ebpf([package], aya_build::Toolchain::default()) {
        eprintln!("error: failed to build the eBPF programs: {err:#}");
        std::process::exit(1);
    }
}

/// The eBPF build needs a nightly toolchain with rust-src and bpf-linker on PATH.
fn check_toolchain() -> Result<(), String> {
    println!("cargo:rerun-if-env-changed=PATH");
    if which("bpf-linker").is_none() {
        return Err("bpf-linker is not installed".into());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .ok_or("the nightly toolchain is not installed")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    let library = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !library.exists() {
        return Err("rust-src is not installed for the nightly toolchain".into());
    }
    Ok(())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
