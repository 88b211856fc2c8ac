//! The history writer: a thread with its own receiver on the hub. It takes whatever lines are
//! waiting (up to a batch) and stores them in one transaction, so it keeps up with floods by
//! writing bigger batches. When it still falls behind, the channel drops the oldest lines for
//! it alone and says exactly how many; those are counted in the metrics and in the database's
//! `missed` table, never waited for.

use std::{
    path::PathBuf,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::broadcast::{Receiver, error::TryRecvError};
use tracing::{error, warn};

use super::{Store, StoreError};
use crate::events::hub::Line;

/// Most lines in one transaction.
const BATCH: usize = 2048;
/// How long a stopping daemon lets the writer store what is still queued; what is left then
/// is recorded as missed (exactly) instead of holding up the exit.
const STOP_BUDGET: Duration = Duration::from_secs(2);
/// How often retention runs.
const RETAIN_EVERY: Duration = Duration::from_secs(300);

pub struct HistorySink {
    pub path: PathBuf,
    pub keep: Duration,
    pub max_bytes: u64,
}

/// Tells a running writer the daemon is stopping.
#[derive(Clone, Default)]
pub struct Stop(Arc<std::sync::Mutex<Option<Instant>>>);

impl Stop {
    pub fn request(&self) {
        if let Ok(mut at) = self.0.lock() {
            at.get_or_insert_with(Instant::now);
        }
    }

    fn overdue(&self) -> bool {
        self.0
            .lock()
            .map(|at| at.is_some_and(|t| t.elapsed() >= STOP_BUDGET))
            .unwrap_or(false)
    }
}

impl HistorySink {
    /// Opens the database (so a bad path is a start-up error) and starts the writer.
    pub fn spawn(
        self,
        mut rx: Receiver<Line>,
        stop: Stop,
        on_missed: impl Fn(u64) + Send + 'static,
        on_stored: impl Fn(u64) + Send + 'static,
    ) -> Result<JoinHandle<()>, StoreError> {
        let mut store = Store::open(&self.path)?;
        if let Err(err) = store.retain(self.keep, self.max_bytes) {
            warn!("history retention: {err}");
        }
        let handle = std::thread::Builder::new()
            .name("vw-history".into())
            .spawn(move || {
                lower_priority();
                let mut last_retain = Instant::now();
                let mut batch: Vec<Line> = Vec::with_capacity(BATCH);
                loop {
                    let mut missed = 0;
                    let mut closed = false;
                    match rx.blocking_recv() {
                        Ok(line) => batch.push(line),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => missed += n,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => closed = true,
                    }
                    while !closed && batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(line) => batch.push(line),
                            Err(TryRecvError::Lagged(n)) => missed += n,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Closed) => closed = true,
                        }
                    }
                    if missed > 0 {
                        on_missed(missed);
                    }
                    if !batch.is_empty() || missed > 0 {
                        match store.insert(&batch, missed) {
                            Ok(n) => on_stored(n as u64),
                            Err(err) => {
                                // Counted as missed: the lines are not in the history.
                                error!("history: {err}");
                                on_missed(batch.len() as u64);
                            }
                        }
                        batch.clear();
                    }
                    if last_retain.elapsed() >= RETAIN_EVERY {
                        last_retain = Instant::now();
                        if let Err(err) = store.retain(self.keep, self.max_bytes) {
                            warn!("history retention: {err}");
                        }
                    }
                    if closed {
                        break;
                    }
                    if stop.overdue() {
                        // Stopping, and still behind: count what is queued as missed, exactly,
                        // rather than keep the daemon from exiting.
                        let left = rx.len() as u64;
                        if left > 0 {
                            on_missed(left);
                            if let Err(err) = store.insert(&[] as &[Line], left) {
                                error!("history: {err}");
                            }
                            warn!("history: {left} queued lines not stored at stop (counted as missed)");
                        }
                        break;
                    }
                }
            })
            .map_err(|source| StoreError::Dir {
                path: PathBuf::from("vw-history thread"),
                source,
            })?;
        Ok(handle)
    }
}

/// Runs this thread at nice 10: under a flood the writer must lose lines (counted), not CPU
/// time the event loop and enforcement need.
pub(crate) fn lower_priority() {
    // SAFETY: gettid and setpriority have no memory preconditions; on Linux a thread id names
    // one thread for PRIO_PROCESS.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}
