//! The running processes of an executable, found in /proc by the file they run (device and
//! inode, so a symlinked or bind-mounted path still matches, and a replaced file does not).
//! The kernel cannot read a process's executable path on the connect hooks, so the daemon
//! names the processes instead and looks again on every integrity check; the kernel also
//! compares `comm`, so a pid reused by another program does not inherit the exemption.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use blocker_common::COMM_LEN;

/// One running process of an exempted executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// The kernel's tgid (the pid in `proc_root`'s namespace).
    pub pid: u32,
    pub comm: [u8; COMM_LEN],
}

/// Every process under `proc_root` running one of `executables`. Executables that do not
/// exist cover nothing.
pub fn running(proc_root: &Path, executables: &[PathBuf]) -> Vec<Process> {
    let files: Vec<(u64, u64)> = executables
        .iter()
        .filter_map(|exe| std::fs::metadata(exe).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if files.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        // Following /proc/PID/exe gives the file the process runs, even if its path changed.
        let Ok(meta) = std::fs::metadata(dir.join("exe")) else {
            continue;
        };
        if !files.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        found.push(Process {
            pid,
            comm: comm_bytes(comm.trim_end_matches('\n')),
        });
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// A `comm` as the kernel holds it: at most 15 bytes, NUL-padded.
pub fn comm_bytes(comm: &str) -> [u8; COMM_LEN] {
    let mut out = [0u8; COMM_LEN];
    let bytes = comm.as_bytes();
    let len = bytes.len().min(COMM_LEN - 1);
    out[..len].copy_from_slice(&bytes[..len]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_test_by_its_executable() {
        let exe = std::env::current_exe().expect("own exe");
        let found = running(Path::new("/proc"), &[exe]);
        let me = std::process::id();
        assert!(found.iter().any(|p| p.pid == me), "{found:?}");
        assert!(running(Path::new("/proc"), &[PathBuf::from("/nonexistent/x")]).is_empty());
    }

    #[test]
    fn comm_is_cut_like_the_kernel_cuts_it() {
        assert_eq!(
            &comm_bytes("a-very-long-command-name")[..15],
            b"a-very-long-com"
        );
        assert_eq!(comm_bytes("a-very-long-command-name")[15], 0);
    }
}
