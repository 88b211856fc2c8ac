//! Fan-out of event lines to every consumer without letting any of them slow the kernel reader:
//! lines go through a `tokio::sync::broadcast` channel, whose receivers that fall behind lose the
//! oldest lines and learn exactly how many ("lagged"), which they report as a `missed` line.
//! The sinks (in `sinks/`) each take a receiver. The most recent lines are kept for `events`.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;

use super::EventRecord;

/// One serialized JSON line (without the newline), shared by every sink.
pub type Line = Arc<str>;

/// Lines a consumer may fall behind before it starts missing them.
pub const CHANNEL_CAPACITY: usize = 1 << 14;

/// The line that tells a consumer how many lines it missed.
pub fn missed_line(count: u64, sink: &str) -> String {
    format!("{{\"type\":\"missed\",\"count\":{count},\"sink\":\"{sink}\"}}")
}

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Line>,
    recent: Arc<Mutex<VecDeque<Line>>>,
    keep: usize,
}

impl Hub {
    pub fn new(keep: usize) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            tx,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(keep.min(1 << 16)))),
            keep,
        }
    }

    /// Serializes `record` and hands it to every consumer; never blocks.
    pub fn publish(&self, record: &EventRecord) {
        let Ok(json) = serde_json::to_string(record) else {
            return;
        };
        let line: Line = json.into();
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= self.keep {
                recent.pop_front();
            }
            if self.keep > 0 {
                recent.push_back(line.clone());
            }
        }
        // An error only means nobody subscribes right now.
        let _ = self.tx.send(line);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Line> {
        self.tx.subscribe()
    }

    /// The most recent lines, oldest first.
    pub fn recent(&self) -> Vec<Line> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> EventRecord {
        EventRecord {
            count: n,
            ..EventRecord::sample()
        }
    }

    #[test]
    fn a_stalled_receiver_learns_exactly_how_many_it_missed() {
        let hub = Hub::new(10);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        let total = CHANNEL_CAPACITY as u64 + 100;
        let mut fast_got = 0;
        for n in 0..total {
            hub.publish(&record(n));
            while fast.try_recv().is_ok() {
                fast_got += 1;
            }
        }
        assert_eq!(fast_got, total, "the fast receiver gets everything");
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 100),
            other => panic!("expected a lag, got {other:?}"),
        }
        let mut rest = 0;
        while slow.try_recv().is_ok() {
            rest += 1;
        }
        assert_eq!(
            rest, CHANNEL_CAPACITY as u64,
            "missed + received = published"
        );
        assert_eq!(hub.recent().len(), 10);
    }
}
