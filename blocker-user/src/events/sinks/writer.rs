//! The stdout and file sinks: a thread per sink writing every line of the hub, since their
//! writes may block.

use std::io::Write;

use tokio::sync::broadcast::{self, error::RecvError};

use super::stop::Stop;
use crate::events::{
    formats::LineFormat,
    hub::{Line, missed_line},
};

/// Writes every line from `rx` to `out`, in `format`, on a thread of its own, until the hub
/// is dropped. A writer that falls behind writes a `missed` line with the exact number it lost;
/// `on_missed` is told too (for metrics). Once `stop` is overdue, what is still queued is
/// counted the same way and the writer ends.
pub fn spawn_writer<W: Write + Send + 'static>(
    mut rx: broadcast::Receiver<Line>,
    mut out: W,
    sink: &'static str,
    format: LineFormat,
    stop: Stop,
    on_missed: impl Fn(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            if stop.overdue() {
                let left = rx.len() as u64;
                if left > 0 {
                    on_missed(left);
                    let _ = writeln!(out, "{}", missed_line(left, sink));
                }
                break;
            }
            let line = match rx.blocking_recv() {
                Ok(line) => format.convert(&line),
                Err(RecvError::Lagged(n)) => {
                    on_missed(n);
                    missed_line(n, sink)
                }
                Err(RecvError::Closed) => break,
            };
            let written = out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                // Flush when caught up, so readers see lines promptly without a syscall per line
                // during floods.
                .and_then(|()| if rx.is_empty() { out.flush() } else { Ok(()) });
            if let Err(err) = written {
                tracing::error!("event sink {sink} failed: {err}; it stops");
                break;
            }
        }
        let _ = out.flush();
    })
}
