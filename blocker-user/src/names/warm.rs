//! Warm start: the daemon asks for every listed name itself at start and reload, and writes
//! the answers into the learned maps, so an address an application (or a resolver) cached
//! before vendorwall started is refused on its first connection too. systemd-resolved's cache
//! is flushed for the same reason: its next answers pass through the learner.
//!
//! All queries (A and AAAA per name) go out at once on one UDP socket and are collected until
//! one deadline, so a silent resolver costs one timeout, not one per name.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData, RecordType},
};

use super::domain::Domain;
use crate::config::Resolver;

/// One address a listed name resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmAnswer {
    pub domain: Domain,
    pub addr: IpAddr,
    pub ttl: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("no nameserver in {path}")]
    NoNameserver { path: String },
    #[error("failed to read {path}")]
    ResolvConf {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to query {server}")]
    Socket {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameserver queries go to.
pub fn nameserver(resolver: &Resolver) -> Result<SocketAddr, WarmError> {
    match resolver {
        Resolver::Address(addr) => Ok(*addr),
        Resolver::System => {
            let text = std::fs::read(RESOLV_CONF).map_err(|source| WarmError::ResolvConf {
                path: RESOLV_CONF.into(),
                source,
            })?;
            let (config, _) = resolv_conf::Config::parse_with_errors(&text);
            config
                .nameservers
                .first()
                .map(|ip| SocketAddr::new(ip.into(), 53))
                .ok_or(WarmError::NoNameserver {
                    path: RESOLV_CONF.into(),
                })
        }
    }
}

/// Resolves every domain (A and AAAA) through `server` within `timeout`. Names that get no
/// answer in time are left out (the learner still sees later answers).
pub fn resolve(
    domains: &[Domain],
    server: SocketAddr,
    timeout: Duration,
) -> Result<Vec<WarmAnswer>, WarmError> {
    let socket_err = |source| WarmError::Socket { server, source };
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind).map_err(socket_err)?;
    socket.connect(server).map_err(socket_err)?;
    let mut pending: HashMap<u16, &Domain> = HashMap::new();
    let mut id: u16 = rand_id();
    for domain in domains {
        let Ok(name) = Name::from_ascii(format!("{}.", domain.as_str())) else {
            continue;
        };
        for kind in [RecordType::A, RecordType::AAAA] {
            id = id.wrapping_add(1);
            let mut query = Message::new();
            query
                .set_id(id)
                .set_message_type(MessageType::Query)
                .set_op_code(OpCode::Query)
                .set_recursion_desired(true)
                .add_query(Query::query(name.clone(), kind));
            let Ok(bytes) = query.to_vec() else { continue };
            // A full send buffer only loses this query; the learner sees later answers.
            if socket.send(&bytes).is_ok() {
                pending.insert(id, domain);
            }
        }
    }
    let deadline = Instant::now() + timeout;
    let mut answers = Vec::new();
    let mut buf = [0u8; 4096];
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).map_err(socket_err)?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            // ICMP unreachable on a connected socket: nobody listens there.
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => break,
            Err(source) => return Err(socket_err(source)),
        };
        let Ok(message) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let Some(domain) = pending.remove(&message.id()) else {
            continue;
        };
        for record in message.answers() {
            let addr = match record.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            answers.push(WarmAnswer {
                domain: domain.clone(),
                addr,
                ttl: record.ttl(),
            });
        }
    }
    Ok(answers)
}

/// A query id that differs between runs, so a late answer to a previous run is not taken
/// for this one's.
fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

/// systemd-resolved's varlink socket: present while it runs.
const RESOLVED_SOCKET: &str = "/run/systemd/resolve/io.systemd.Resolve";

/// Flushes systemd-resolved's cache when it runs. `Ok(false)` when it does not.
pub fn flush_resolved() -> Result<bool, String> {
    if !Path::new(RESOLVED_SOCKET).exists() {
        return Ok(false);
    }
    let out = std::process::Command::new("resolvectl")
        .arg("flush-caches")
        .output()
        .map_err(|err| format!("resolvectl flush-caches: {err}"))?;
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!(
            "resolvectl flush-caches: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
