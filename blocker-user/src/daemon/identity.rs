//! Which process the running daemon is, beyond its pid: a pid file outlives a `kill -9`, and
//! the pid may since belong to an unrelated process. The daemon records its start time (clock
//! ticks after boot, `/proc/<pid>/stat` field 22) and the boot id in the state file; the CLI
//! opens a pidfd for the pid in the pid file, checks that the process behind the pidfd started
//! at the recorded time in the recorded boot, and only then signals it through the pidfd, so
//! the process cannot change between the check and the signal.

use std::{
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use serde::{Deserialize, Serialize};

use super::state::{self, PID_FILE};

/// What tells the daemon's process apart from a later one with the same pid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// Clock ticks after boot at which the process started.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id`: start times only compare within one boot.
    pub boot_id: String,
    /// The executable, for messages (after an upgrade it reads "... (deleted)").
    pub exe: String,
}

impl Identity {
    /// This process.
    pub fn of_self() -> io::Result<Self> {
        Self::of(std::process::id())
    }

    /// Process `pid` as /proc shows it now.
    pub fn of(pid: u32) -> io::Result<Self> {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        Ok(Self {
            pid,
            start_ticks: start_ticks(&std::fs::read_to_string(proc.join("stat"))?)?,
            boot_id: boot_id()?,
            exe: std::fs::read_link(proc.join("exe"))
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        })
    }

    /// Whether `other` is the same process (the executable may have been replaced since).
    fn same_process(&self, other: &Self) -> bool {
        self.pid == other.pid
            && self.start_ticks == other.start_ticks
            && self.boot_id == other.boot_id
    }
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn start_ticks(stat: &str) -> io::Result<u64> {
    let after_comm = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no command name in stat"))?;
    // After the name come field 3 (state) onwards: starttime is the 20th of them.
    after_comm
        .split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no start time in stat"))
}

fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// Why no daemon can be signalled.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no daemon is running (no pid file {0})")]
    NoPidFile(PathBuf),
    #[error("no daemon is running (pid {pid} in {file} has exited)")]
    Exited { pid: u32, file: PathBuf },
    #[error(
        "no daemon is running: pid {pid} in {file} is another process now ({found}), not the \
         daemon that wrote it (a stale pid file after kill -9)"
    )]
    NotTheDaemon {
        pid: u32,
        file: PathBuf,
        found: String,
    },
    #[error("permission denied: {what}: run as root")]
    PermissionDenied { what: String },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DaemonError {
    /// A running daemon exists but could not be verified or signalled by this user.
    pub fn is_permission(&self) -> bool {
        matches!(self, DaemonError::PermissionDenied { .. })
    }
}

/// The running daemon, verified; signals go through its pidfd.
pub struct RunningDaemon {
    pub pid: u32,
    pidfd: OwnedFd,
    identity: Identity,
    pid_file: PathBuf,
}

impl RunningDaemon {
    /// The daemon whose pid file and state are in `run_dir`, if it is still that process.
    pub fn find(run_dir: &Path) -> Result<Self, DaemonError> {
        let file = run_dir.join(PID_FILE);
        let text = std::fs::read_to_string(&file).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => DaemonError::NoPidFile(file.clone()),
            io::ErrorKind::PermissionDenied => DaemonError::PermissionDenied {
                what: format!("cannot read {}", file.display()),
            },
            _ => DaemonError::Read {
                path: file.clone(),
                source,
            },
        })?;
        let pid: u32 = text.trim().parse().map_err(|_| DaemonError::Read {
            path: file.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "not a pid"),
        })?;
        let exited = || DaemonError::Exited {
            pid,
            file: file.clone(),
        };
        let raw = Pid::from_raw(i32::try_from(pid).map_err(|_| exited())?).ok_or_else(exited)?;
        let pidfd = pidfd_open(raw, PidfdFlags::empty()).map_err(|errno| match errno {
            rustix::io::Errno::SRCH => exited(),
            errno => DaemonError::Read {
                path: file.clone(),
                source: errno.into(),
            },
        })?;
        // Checked after the pidfd is open: if the process is the daemon now, the pidfd can
        // only ever signal the daemon.
        let found = Identity::of(pid).map_err(|_| exited())?;
        let state_file = run_dir.join(state::STATE_FILE);
        if let Err(err) = std::fs::File::open(&state_file)
            && err.kind() == io::ErrorKind::PermissionDenied
        {
            return Err(DaemonError::PermissionDenied {
                what: format!("cannot read {}", state_file.display()),
            });
        }
        let recorded = state::read_state(run_dir).map(|s| s.identity);
        match recorded {
            Some(recorded) if recorded.same_process(&found) => Ok(Self {
                pid,
                pidfd,
                identity: found,
                pid_file: file,
            }),
            _ => Err(DaemonError::NotTheDaemon {
                pid,
                file,
                found: if found.exe.is_empty() {
                    format!("started at tick {}", found.start_ticks)
                } else {
                    found.exe
                },
            }),
        }
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) -> Result<(), DaemonError> {
        pidfd_send_signal(&self.pidfd, signal).map_err(|errno| match errno {
            rustix::io::Errno::PERM | rustix::io::Errno::ACCESS => DaemonError::PermissionDenied {
                what: format!("cannot signal the daemon (pid {})", self.pid),
            },
            errno => DaemonError::Read {
                path: PathBuf::from(format!("/proc/{}", self.pid)),
                source: errno.into(),
            },
        })
    }

    /// Whether the daemon has exited: it removes its pid file on the way out, and a killed
    /// one leaves /proc (or its pid to another process).
    pub fn exited(&self) -> bool {
        !self.pid_file.exists()
            || !Identity::of(self.pid).is_ok_and(|now| now.same_process(&self.identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 98765 \
                    1000 100";
        assert_eq!(start_ticks(stat).expect("parsed"), 98765);
        assert!(start_ticks("4242 (truncated").is_err());
    }

    #[test]
    fn this_process_is_itself_and_not_its_parent() {
        let me = Identity::of_self().expect("own identity");
        assert!(me.same_process(&Identity::of_self().expect("again")));
        let parent = Identity::of(std::os::unix::process::parent_id()).expect("parent");
        assert!(!me.same_process(&parent));
    }
}
