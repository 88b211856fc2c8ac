//! Rebuild the eBPF object when bpf-linker changes (a new linker can change the output), and
//! fail with one actionable line when it is missing.
use std::process::ExitCode;

fn main() -> ExitCode {
    match which::which("bpf-linker") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            ExitCode::SUCCESS
        }
        Err(_) => {
            eprintln!("error: bpf-linker not found in PATH: run `cargo xtask bootstrap`");
            ExitCode::FAILURE
        }
    }
}
