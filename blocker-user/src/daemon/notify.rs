//! systemd notifications (READY, RELOADING, STATUS, WATCHDOG, STOPPING) sent without ever
//! blocking the daemon.
//!
//! Written by hand because the sd-notify crate sends with a blocking socket: when the receiver's
//! queue is full (systemd busy, or a test that reads slowly) the daemon's whole loop would stall
//! in `sendto`, events and signals included. Here a full queue drops the message and logs it.

use std::os::unix::net::{SocketAddr, UnixDatagram};

pub use sd_notify::NotifyState;

/// Sends `states` to `$NOTIFY_SOCKET`, if set; never blocks.
pub fn notify(states: &[NotifyState<'_>]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    if let Err(err) = send(&path, message.as_bytes()) {
        tracing::warn!("sd_notify to {}: {err}", path.to_string_lossy());
    }
}

fn send(path: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        // A leading '@' names a socket in the abstract namespace.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    socket.send_to_addr(message, &addr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_receiver_does_not_block() {
        let dir = std::env::temp_dir().join(format!("vw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).expect("bind");
        // Far more than any receive queue holds: must return, not hang.
        let results: Vec<_> = (0..10_000)
            .map(|_| send(path.as_os_str(), b"READY=1\n"))
            .collect();
        assert!(results.iter().any(Result::is_ok));
        assert!(
            results.iter().any(Result::is_err),
            "the queue should have filled"
        );
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("a message arrived");
        assert_eq!(&buf[..n], b"READY=1\n");
        std::fs::remove_dir_all(dir).ok();
    }
}
