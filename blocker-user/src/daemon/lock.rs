//! One daemon per pin directory and per run directory. Two daemons on one pin directory would
//! retire each other's generations and write different lists into shared maps; two on one run
//! directory would overwrite each other's pid and state files. Each is an exclusive `flock`,
//! taken before anything is loaded and held for the daemon's life (the kernel drops it when
//! the process ends, `kill -9` included, so a stale lock cannot exist).

use std::{
    fs::File,
    io::{self, Write as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use rustix::fs::{FlockOperation, flock};

use crate::kernel::pins::PinRoot;

/// The lock file in the run directory (it also holds the holder's pid, for people).
pub const LOCK_FILE: &str = "vendorwall.lock";

/// Held locks; dropping them releases both.
pub struct InstanceLock {
    _run: File,
    _pins: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another vendorwall daemon{} already runs with {what} {}: stop it first (nothing was changed)",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        path.display()
    )]
    Held {
        what: &'static str,
        path: PathBuf,
        holder: Option<u32>,
    },
    #[error("cannot lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Pins(#[from] crate::kernel::pins::PinError),
}

/// Takes both locks, creating the run directory and the pin directory (mounting bpffs where
/// needed, as the load would) when missing.
pub fn acquire(run_dir: &Path, pin_dir: &Path) -> Result<InstanceLock, LockError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| LockError::Io { path, source }
    };
    std::fs::create_dir_all(run_dir).map_err(io_err(run_dir))?;
    let lock_path = run_dir.join(LOCK_FILE);
    let mut run = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    exclusive(&run, "run directory", run_dir)?;
    PinRoot::open(pin_dir)?;
    let pins = File::open(pin_dir).map_err(io_err(pin_dir))?;
    exclusive(&pins, "pin directory", pin_dir)?;
    // For people reading the directory; the lock itself is what counts.
    run.set_len(0).map_err(io_err(&lock_path))?;
    writeln!(run, "{}", std::process::id()).map_err(io_err(&lock_path))?;
    Ok(InstanceLock {
        _run: run,
        _pins: pins,
    })
}

fn exclusive(file: &File, what: &'static str, path: &Path) -> Result<(), LockError> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(LockError::Held {
            what,
            path: path.to_owned(),
            holder: holder(file),
        }),
        Err(errno) => Err(LockError::Io {
            path: path.to_owned(),
            source: errno.into(),
        }),
    }
}

/// The pid holding an flock on `file`'s inode, from /proc/locks (`N: FLOCK ADVISORY WRITE
/// <pid> <major>:<minor>:<inode> 0 EOF`; device numbers in hex).
fn holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let wanted = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    std::fs::read_to_string("/proc/locks")
        .ok()?
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&wanted.as_str()))
        .and_then(|f| f.get(4)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("vw-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let first = File::open(&dir).expect("open");
        exclusive(&first, "run directory", &dir).expect("first lock");
        // A second open file description conflicts even within one process.
        let second = File::open(&dir).expect("open again");
        match exclusive(&second, "run directory", &dir) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected a held lock, got {other:?}"),
        }
        drop(first);
        exclusive(&second, "run directory", &dir).expect("free again");
        std::fs::remove_dir_all(dir).ok();
    }
}
