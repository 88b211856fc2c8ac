//! The stop budget every sink thread shares: once the daemon asks the sinks to stop, each may
//! keep writing what is queued for [`STOP_BUDGET`]; what is still queued then is counted as
//! missed (exactly) rather than holding up the exit. Under a flood the queue is as long as
//! the channel, and a slow sink (a pipe, a busy journal, a disk) would otherwise keep a
//! stopping daemon past the service manager's stop timeout.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long a stopping daemon lets its sinks write what is still queued.
pub const STOP_BUDGET: Duration = Duration::from_secs(2);
/// How long past the budget the daemon waits for a sink stuck in one write (a pipe nobody
/// reads) before exiting without it.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Tells the sink threads the daemon is stopping; clones share it.
#[derive(Clone, Default)]
pub struct Stop(Arc<Mutex<Option<Instant>>>);

impl Stop {
    /// Starts the budget (the first call counts).
    pub fn request(&self) {
        if let Ok(mut at) = self.0.lock() {
            at.get_or_insert_with(Instant::now);
        }
    }

    /// Whether the sinks were asked to stop.
    pub fn requested(&self) -> bool {
        self.0.lock().map(|at| at.is_some()).unwrap_or(false)
    }

    /// Whether the sinks were asked to stop longer than [`STOP_BUDGET`] ago.
    pub fn overdue(&self) -> bool {
        self.0
            .lock()
            .map(|at| at.is_some_and(|t| t.elapsed() >= STOP_BUDGET))
            .unwrap_or(false)
    }

    /// Waits for `threads` until the budget and grace are spent; those still running are left
    /// behind (the process exits under them).
    pub fn join_all(&self, threads: Vec<(&'static str, std::thread::JoinHandle<()>)>) {
        let started = self
            .0
            .lock()
            .ok()
            .and_then(|at| *at)
            .unwrap_or_else(Instant::now);
        let deadline = started + STOP_BUDGET + STOP_GRACE;
        for (sink, thread) in threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    "event sink {sink} did not finish within {} s of the stop; exiting without it",
                    (STOP_BUDGET + STOP_GRACE).as_secs()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_starts_at_the_first_request() {
        let stop = Stop::default();
        assert!(!stop.overdue());
        stop.request();
        assert!(!stop.overdue());
        *stop.0.lock().expect("lock") = Some(Instant::now() - STOP_BUDGET);
        stop.request();
        assert!(
            stop.overdue(),
            "a second request must not restart the budget"
        );
    }
}
