//! The sweep of established connections: the hooks only stop new connections, so a connection
//! made before its range was listed (or before vendorwall started) is terminated here
//! (SOCK_DESTROY through `sockdiag`).

use tracing::{error, warn};

use super::{Daemon, sockdiag};
use crate::kernel::cgroup;

/// An established connection to an enforced range that the daemon terminated.
#[derive(Clone, Debug)]
pub struct Termination {
    pub socket: crate::daemon::sockdiag::DiagSocket,
    /// A process holding the socket when it was destroyed, if one was found.
    pub pid: Option<u32>,
    pub list: String,
    pub vendor: Option<String>,
    pub prefix: String,
    pub source: String,
}

impl Daemon {
    /// Terminates established TCP connections and connected UDP sockets of covered processes
    /// whose peer is in an enforced range: the hooks only stop new connections, so a connection
    /// made before its range was listed (or before vendorwall started) would otherwise live on.
    pub(super) fn sweep_established(&mut self) {
        if self.config.dry_run {
            return;
        }
        let mut covered = Vec::new();
        collect_cgroup_ids(&self.cgroup_path, &mut covered);
        covered.retain(|id| !self.exempt_ids.contains(id));
        covered.sort_unstable();
        let exceptions = &self.config.exceptions.prefixes;
        let mut diag = match sockdiag::SockDiag::open() {
            Ok(diag) => diag,
            Err(err) => {
                warn!("cannot inspect established connections (sock_diag): {err}");
                return;
            }
        };
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            for protocol in [libc::IPPROTO_TCP as u8, libc::IPPROTO_UDP as u8] {
                let sockets = match diag.dump(family, protocol) {
                    Ok(sockets) => sockets,
                    Err(err) => {
                        warn!("sock_diag dump failed: {err}");
                        continue;
                    }
                };
                for socket in sockets {
                    let in_scope = socket
                        .cgroup_id
                        .is_some_and(|id| covered.binary_search(&id).is_ok());
                    if !in_scope {
                        continue;
                    }
                    let peer = socket.peer.ip();
                    let Some(m) = self.lists.lookup(peer) else {
                        continue;
                    };
                    if m.list.spec.action != crate::config::ListAction::Enforce
                        || exceptions.iter().any(|e| e.contains(&peer))
                    {
                        continue;
                    }
                    let pid = sockdiag::owner_of(socket.inode);
                    match diag.destroy(&socket) {
                        Ok(()) => {
                            warn!(
                                "terminated {} connection {} -> {} (list {}, {})",
                                if protocol == libc::IPPROTO_TCP as u8 {
                                    "tcp"
                                } else {
                                    "udp"
                                },
                                socket.local,
                                socket.peer,
                                m.list.spec.name,
                                m.prefix()
                            );
                            self.terminated.push(Termination {
                                pid,
                                list: m.list.spec.name.clone(),
                                vendor: m.list.spec.vendor.clone(),
                                prefix: m.prefix().to_string(),
                                source: m.source(),
                                socket,
                            });
                        }
                        Err(err) => error!(
                            "cannot terminate {} -> {}: {err}",
                            socket.local, socket.peer
                        ),
                    }
                }
            }
        }
    }
}

/// The ids of `dir` and every cgroup below it.
fn collect_cgroup_ids(dir: &std::path::Path, ids: &mut Vec<u64>) {
    if let Ok(id) = cgroup::id(dir) {
        ids.push(id);
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_cgroup_ids(&entry.path(), ids);
        }
    }
}
