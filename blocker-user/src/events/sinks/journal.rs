//! The journal sink: each event through journald's native protocol (libsystemd), as a
//! one-line human `MESSAGE`, a `PRIORITY` (warning when refused, notice when audited or exempted), and
//! every field of the JSON record as `VENDORWALL_<FIELD>` (`VENDORWALL_LIST`,
//! `VENDORWALL_VENDOR`, `VENDORWALL_DST`, ...), so `journalctl VENDORWALL_VENDOR=...` selects
//! and `journalctl -o json` carries the structure. Used instead of JSON lines on stdout when
//! stdout is the journal (`JOURNAL_STREAM`), or when `[events] journal = true`.

use libsystemd::logging::{JournalStream, Priority, journal_send};
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use super::stop::Stop;
use crate::events::hub::Line;

/// Whether standard output is connected to the journal (systemd sets `JOURNAL_STREAM` to the
/// device and inode of the stream it gave the service).
pub fn stdout_is_journal() -> bool {
    JournalStream::from_env().is_ok_and(|env| {
        JournalStream::from_fd(std::io::stdout()).is_ok_and(|stdout| stdout == env)
    })
}

/// Sends every line of `rx` to the journal on a thread of its own, until the hub is dropped
/// (or, once `stop` is overdue, counts what is still queued as missed and ends).
pub fn spawn_journal(
    mut rx: broadcast::Receiver<Line>,
    stop: Stop,
    on_missed: impl Fn(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            if stop.overdue() {
                let left = rx.len() as u64;
                if left > 0 {
                    on_missed(left);
                    let _ = send_missed(left);
                }
                break;
            }
            let sent = match rx.blocking_recv() {
                Ok(line) => send_event(&line),
                Err(RecvError::Lagged(n)) => {
                    on_missed(n);
                    send_missed(n)
                }
                Err(RecvError::Closed) => break,
            };
            if let Err(err) = sent {
                // journald may be restarting: say so on stderr and keep going.
                tracing::warn!("cannot send an event to the journal: {err}");
            }
        }
    })
}

fn send_missed(n: u64) -> Result<(), libsystemd::errors::SdError> {
    journal_send(
        Priority::Warning,
        &format!("the journal sink missed {n} event lines"),
        [("VENDORWALL_MISSED", n.to_string())].into_iter(),
    )
}

fn send_event(line: &str) -> Result<(), libsystemd::errors::SdError> {
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
        return journal_send(Priority::Warning, line, std::iter::empty::<(&str, &str)>());
    };
    let priority = match record.get("action").and_then(Value::as_str) {
        Some("audited" | "exempted") => Priority::Notice,
        _ => Priority::Warning,
    };
    let fields = record.iter().filter_map(|(key, value)| {
        let text = match value {
            Value::Null => return None,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some((format!("VENDORWALL_{}", key.to_ascii_uppercase()), text))
    });
    journal_send(
        priority,
        &summary(&record),
        fields.chain([("SYSLOG_IDENTIFIER".to_owned(), "vendorwall".to_owned())]),
    )
}

/// `blocked curl (pid 8883, unit session-3.scope) -> 77.74.177.9:443, list kaspersky (AO
/// Kaspersky Lab)`, with `, N attempts` for a summary line.
pub fn summary(record: &serde_json::Map<String, Value>) -> String {
    let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or_default();
    let number = |key: &str| record.get(key).and_then(Value::as_u64).unwrap_or_default();
    let exe = text("exe");
    let name = exe.rsplit('/').next().filter(|n| !n.is_empty());
    let who = name.unwrap_or(text("comm"));
    let unit = match text("unit") {
        "" => String::new(),
        unit => format!(", unit {unit}"),
    };
    let dst = text("dst");
    let dst = if dst.contains(':') {
        format!("[{dst}]")
    } else {
        dst.to_owned()
    };
    let vendor = match text("vendor") {
        "" => String::new(),
        vendor => format!(" ({vendor})"),
    };
    let count = match number("count") {
        0 | 1 => String::new(),
        n => format!(", {n} attempts"),
    };
    format!(
        "{} {who} (pid {}{unit}) -> {dst}:{}, list {}{vendor}{count}",
        text("action"),
        number("pid"),
        number("port"),
        text("list"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_a_sentence() {
        let line = r#"{"action":"blocked","exe":"/usr/bin/curl","comm":"curl","pid":8883,"unit":"session-3.scope","dst":"77.74.177.9","port":443,"list":"kaspersky","vendor":"AO Kaspersky Lab","count":1}"#;
        let Ok(Value::Object(record)) = serde_json::from_str(line) else {
            panic!("test line is an object");
        };
        assert_eq!(
            summary(&record),
            "blocked curl (pid 8883, unit session-3.scope) -> 77.74.177.9:443, list kaspersky (AO Kaspersky Lab)"
        );
        let line = r#"{"action":"audited","comm":"x","pid":1,"dst":"2001:db8::1","port":53,"list":"l","count":7}"#;
        let Ok(Value::Object(record)) = serde_json::from_str(line) else {
            panic!("test line is an object");
        };
        assert_eq!(
            summary(&record),
            "audited x (pid 1) -> [2001:db8::1]:53, list l, 7 attempts"
        );
    }
}
