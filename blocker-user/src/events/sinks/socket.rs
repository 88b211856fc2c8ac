//! The subscriber socket (`<run dir>/events.sock`, root only): a client sends one JSON request
//! line (`{"follow": true}`), receives the recent lines, and with `follow` every new line after
//! them. A client that cannot keep up gets a `missed` line with the exact count it lost; it never
//! slows the daemon or other clients.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::broadcast::error::RecvError,
};

use crate::events::{
    formats::LineFormat,
    hub::{Hub, missed_line},
};

pub const SOCKET_FILE: &str = "events.sock";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Request {
    pub follow: bool,
    /// The line format for this client (`vendorwall`, `ecs`, `ocsf`); `[events] format`
    /// when absent. `vendorwall events` always asks for `vendorwall`.
    pub format: Option<LineFormat>,
}

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(run_dir: &Path) -> std::io::Result<UnixListener> {
    std::fs::create_dir_all(run_dir)?;
    let path = run_dir.join(SOCKET_FILE);
    match std::fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, hub: Hub, format: LineFormat) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, hub.clone(), format));
            }
            Err(err) => {
                tracing::warn!("events socket: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, hub: Hub, default_format: LineFormat) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    let request: Request = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_line(&mut line),
    )
    .await
    {
        Ok(Ok(_)) => serde_json::from_str(line.trim()).unwrap_or_default(),
        _ => return,
    };
    let format = request.format.unwrap_or(default_format);
    // Subscribe before sending the backlog, so nothing falls between the two.
    let mut rx = hub.subscribe();
    for line in hub.recent() {
        if write_line(&mut write, &format.convert(&line))
            .await
            .is_err()
        {
            return;
        }
    }
    if !request.follow {
        return;
    }
    loop {
        let line = match rx.recv().await {
            Ok(line) => format.convert(&line),
            Err(RecvError::Lagged(n)) => missed_line(n, "socket"),
            Err(RecvError::Closed) => return,
        };
        if write_line(&mut write, &line).await.is_err() {
            return;
        }
    }
}

async fn write_line(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    line: &str,
) -> std::io::Result<()> {
    write.write_all(line.as_bytes()).await?;
    write.write_all(b"\n").await
}
