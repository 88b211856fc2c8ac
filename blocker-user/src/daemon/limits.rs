//! Process limits a server raises for itself at start, and the priority of its background
//! threads.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard one, as servers do: systemd starts services
/// with a soft limit of 1,024, which a busy host (subscribers, metrics clients, sock_diag) can
/// reach while the hard limit allows far more. Returns the soft limit in force afterwards.
pub fn raise_open_files() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("cannot raise the open-file limit to its hard limit: {err}");
            return limit.current;
        }
        return limit.maximum;
    }
    limit.current
}

/// Runs this thread at nice 10: a background thread (the history writer, the package index)
/// must fall behind under a flood (losing lines, counted, or finishing later), not take CPU
/// time the event loop and enforcement need.
pub fn lower_priority() {
    // SAFETY: gettid and setpriority have no memory preconditions; on Linux a thread id names
    // one thread for PRIO_PROCESS.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}
