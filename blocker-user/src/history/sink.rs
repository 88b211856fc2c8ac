//! The history writer: a thread with its own receiver on the hub. It takes whatever lines are
//! waiting (up to a batch) and stores them in one transaction, so it keeps up with floods by
//! writing bigger batches. When it still falls behind, the channel drops the oldest lines for
//! it alone and says exactly how many; those are counted in the metrics and in the database's
//! `missed` table, never waited for.

use std::{
    path::PathBuf,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::broadcast::{Receiver, error::TryRecvError};
use tracing::{error, warn};

use super::{Store, StoreError};
use crate::events::{hub::Line, sinks::stop::Stop};

/// Most lines in one transaction.
const BATCH: usize = 2048;
/// Most lines in one transaction once the daemon stops: small enough that the stop budget is
/// looked at often on a slow machine, so what is left is counted rather than cut off.
const STOP_BATCH: usize = 128;
/// How often retention runs.
const RETAIN_EVERY: Duration = Duration::from_secs(300);

pub struct HistorySink {
    pub path: PathBuf,
    pub keep: Duration,
    pub max_bytes: u64,
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
                crate::daemon::limits::lower_priority();
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
                    let most = if stop.requested() { STOP_BATCH } else { BATCH };
                    while !closed && batch.len() < most {
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
