//! The sweep of established connections: the hooks only stop new connections, so a connection
//! made before its range was listed (or before vendorwall started) is terminated here
//! (SOCK_DESTROY through `sockdiag`).

use tracing::{error, warn};

use super::{Daemon, sockdiag};
use crate::{
    kernel::cgroup,
    verdict::{Policy, Verdict},
};

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
        let Some(block) = self.enforcer.block_set() else {
            // Only after a failed sync, which skips the sweep: nothing to decide against.
            return;
        };
        let policy = Policy::new(block, &self.config, &self.exempt_ids).with_grants(
            &self.exemptions.desired,
            crate::events::clock::boottime_ns(),
        );
        let mut covered = Vec::new();
        collect_cgroup_ids(&self.cgroup_path, &mut covered);
        covered.sort_unstable();
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
                    // The programs' own verdict: what a new connection to this peer from
                    // this cgroup would get (embedded IPv4 forms, exceptions, exemptions).
                    let verdict = policy.decide(socket.peer.ip(), socket.cgroup_id);
                    let Verdict::Listed(listed) = verdict else {
                        continue;
                    };
                    if !verdict.refused() {
                        continue;
                    }
                    let list = self.lists.by_id(listed.list_id);
                    let entry = self.lists.entry(listed.list_id, listed.looked_up);
                    let list_name = list
                        .map_or_else(|| format!("#{}", listed.list_id), |l| l.spec.name.clone());
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
                                list_name,
                                listed.prefix
                            );
                            self.terminated.push(Termination {
                                pid,
                                list: list_name,
                                vendor: list.and_then(|l| l.spec.vendor.clone()),
                                prefix: entry.map_or(listed.prefix, |m| m.prefix()).to_string(),
                                source: entry.map(|m| m.source()).unwrap_or_default(),
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
