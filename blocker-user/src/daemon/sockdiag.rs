//! Terminating connections that were established before their destination was listed (or
//! before vendorwall started): the connect hooks only see new connections, so after every sync
//! the daemon dumps TCP and UDP sockets through NETLINK_SOCK_DIAG and destroys (SOCK_DESTROY,
//! as `ss -K` does) those whose peer is in an enforced range and whose cgroup is covered.
//!
//! The messages are written by hand over a netlink socket (opened, written and read through
//! rustix): the sock_diag crates build dump requests but not SOCK_DESTROY, and the wire format
//! is four fixed structs (linux/inet_diag.h).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::OwnedFd,
};

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink, recv, sendto,
    socket_with,
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const INET_DIAG_CGROUP_ID: u16 = 21;
/// Every TCP state but LISTEN (10) and CLOSE (7): bit n set for state n.
const TCP_CONNECTED_STATES: u32 = 0xfff & !(1 << 10) & !(1 << 7);
/// UDP sockets report state 1 (ESTABLISHED) once connected.
const UDP_CONNECTED_STATES: u32 = 1 << 1;

const NLMSGHDR_LEN: usize = 16;
const SOCKID_LEN: usize = 48;
const REQ_LEN: usize = 8 + SOCKID_LEN;
const MSG_LEN: usize = 4 + SOCKID_LEN + 20;

/// One socket as sock_diag reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    pub family: u8,
    pub protocol: u8,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub uid: u32,
    pub inode: u32,
    pub cgroup_id: Option<u64>,
    /// The raw `inet_diag_sockid`, echoed back to destroy this exact socket (cookie included).
    id: [u8; SOCKID_LEN],
}

/// A netlink sock_diag socket.
pub struct SockDiag {
    fd: OwnedFd,
    seq: u32,
}

impl SockDiag {
    pub fn open() -> io::Result<Self> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        Ok(Self { fd, seq: 0 })
    }

    /// Every connected TCP or UDP socket of `family` (AF_INET / AF_INET6).
    pub fn dump(&mut self, family: u8, protocol: u8) -> io::Result<Vec<DiagSocket>> {
        let states = if protocol == libc::IPPROTO_TCP as u8 {
            TCP_CONNECTED_STATES
        } else {
            UDP_CONNECTED_STATES
        };
        let request = request(family, protocol, states, &[0; SOCKID_LEN]);
        let seq = self.send(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &request)?;
        let mut sockets = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            for (kind, payload) in messages(&buf[..n], seq) {
                match kind {
                    NLMSG_DONE => return Ok(sockets),
                    NLMSG_ERROR => return Err(netlink_error(payload)),
                    SOCK_DIAG_BY_FAMILY => {
                        if let Some(socket) = parse_socket(payload, protocol) {
                            sockets.push(socket);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Destroys one socket: its owner sees ECONNABORTED.
    pub fn destroy(&mut self, socket: &DiagSocket) -> io::Result<()> {
        let request = request(socket.family, socket.protocol, u32::MAX, &socket.id);
        let seq = self.send(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, &request)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf)?;
            for (kind, payload) in messages(&buf[..n], seq) {
                if kind == NLMSG_ERROR {
                    let err = netlink_error(payload);
                    return if err.raw_os_error() == Some(0) {
                        Ok(())
                    } else {
                        Err(err)
                    };
                }
            }
        }
    }

    fn send(&mut self, kind: u16, flags: u16, payload: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut message = Vec::with_capacity(NLMSGHDR_LEN + payload.len());
        message.extend(((NLMSGHDR_LEN + payload.len()) as u32).to_ne_bytes());
        message.extend(kind.to_ne_bytes());
        message.extend(flags.to_ne_bytes());
        message.extend(self.seq.to_ne_bytes());
        message.extend(0u32.to_ne_bytes());
        message.extend(payload);
        // Port 0, no groups: the kernel.
        let kernel = netlink::SocketAddrNetlink::new(0, 0);
        sendto(&self.fd, &message, SendFlags::empty(), &kernel)?;
        Ok(self.seq)
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, _) = recv(&self.fd, buf, RecvFlags::empty())?;
        Ok(n)
    }
}

/// `inet_diag_req_v2`: family, protocol, ext, pad, states, then the socket id.
fn request(family: u8, protocol: u8, states: u32, id: &[u8; SOCKID_LEN]) -> Vec<u8> {
    let mut req = Vec::with_capacity(REQ_LEN);
    req.extend([family, protocol, 0, 0]);
    req.extend(states.to_ne_bytes());
    req.extend(id);
    req
}

/// Splits a receive buffer into (type, payload) of the messages answering `seq`.
fn messages(buf: &[u8], seq: u32) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSGHDR_LEN <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
        if len < NLMSGHDR_LEN || at + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let msg_seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap_or_default());
        if msg_seq == seq {
            out.push((kind, &buf[at + NLMSGHDR_LEN..at + len]));
        }
        at += (len + 3) & !3;
    }
    out
}

fn netlink_error(payload: &[u8]) -> io::Error {
    let errno = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_ne_bytes);
    io::Error::from_raw_os_error(-errno)
}

/// Parses an `inet_diag_msg` and its attributes.
fn parse_socket(payload: &[u8], protocol: u8) -> Option<DiagSocket> {
    if payload.len() < MSG_LEN {
        return None;
    }
    let family = payload[0];
    let id: [u8; SOCKID_LEN] = payload[4..4 + SOCKID_LEN].try_into().ok()?;
    let sport = u16::from_be_bytes([id[0], id[1]]);
    let dport = u16::from_be_bytes([id[2], id[3]]);
    let addr = |bytes: &[u8]| -> Option<IpAddr> {
        Some(if i32::from(family) == libc::AF_INET {
            IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[..16]).ok()?))
        })
    };
    let tail = &payload[4 + SOCKID_LEN..];
    let uid = u32::from_ne_bytes(tail[12..16].try_into().ok()?);
    let inode = u32::from_ne_bytes(tail[16..20].try_into().ok()?);
    let mut cgroup_id = None;
    let mut at = MSG_LEN;
    while at + 4 <= payload.len() {
        let len = usize::from(u16::from_ne_bytes([payload[at], payload[at + 1]]));
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]);
        if len < 4 || at + len > payload.len() {
            break;
        }
        if kind == INET_DIAG_CGROUP_ID && len >= 12 {
            cgroup_id = payload[at + 4..at + 12]
                .try_into()
                .ok()
                .map(u64::from_ne_bytes);
        }
        at += (len + 3) & !3;
    }
    Some(DiagSocket {
        family,
        protocol,
        local: SocketAddr::new(addr(&id[4..20])?, sport),
        peer: SocketAddr::new(addr(&id[20..36])?, dport),
        uid,
        inode,
        cgroup_id,
        id,
    })
}

/// The pid of a process holding the socket with this inode, by scanning /proc/*/fd.
pub fn owner_of(inode: u32) -> Option<u32> {
    let wanted = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str())
                })
                .then_some(pid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inet_diag_msg for 10.0.0.1:1000 -> 192.0.2.7:443 with a cgroup id attribute.
    fn message() -> Vec<u8> {
        let mut m = vec![libc::AF_INET as u8, 1, 0, 0];
        let mut id = [0u8; SOCKID_LEN];
        id[0..2].copy_from_slice(&1000u16.to_be_bytes());
        id[2..4].copy_from_slice(&443u16.to_be_bytes());
        id[4..8].copy_from_slice(&[10, 0, 0, 1]);
        id[20..24].copy_from_slice(&[192, 0, 2, 7]);
        id[40..48].copy_from_slice(&[9; 8]);
        m.extend(id);
        m.extend([0u8; 12]);
        m.extend(1000u32.to_ne_bytes());
        m.extend(4242u32.to_ne_bytes());
        m.extend(12u16.to_ne_bytes());
        m.extend(INET_DIAG_CGROUP_ID.to_ne_bytes());
        m.extend(77u64.to_ne_bytes());
        m
    }

    #[test]
    fn parses_addresses_owner_and_cgroup() {
        let socket = parse_socket(&message(), 6).expect("parses");
        assert_eq!(socket.local, "10.0.0.1:1000".parse().expect("addr"));
        assert_eq!(socket.peer, "192.0.2.7:443".parse().expect("addr"));
        assert_eq!(
            (socket.uid, socket.inode, socket.cgroup_id),
            (1000, 4242, Some(77))
        );
        assert_eq!(
            &socket.id[40..48],
            &[9; 8],
            "the cookie is kept for SOCK_DESTROY"
        );
        assert!(parse_socket(&message()[..30], 6).is_none());
    }

    #[test]
    fn splits_netlink_messages_by_sequence() {
        let mut buf = Vec::new();
        for (seq, kind) in [
            (7u32, SOCK_DIAG_BY_FAMILY),
            (8, SOCK_DIAG_BY_FAMILY),
            (7, NLMSG_DONE),
        ] {
            buf.extend(20u32.to_ne_bytes());
            buf.extend(kind.to_ne_bytes());
            buf.extend(0u16.to_ne_bytes());
            buf.extend(seq.to_ne_bytes());
            buf.extend(0u32.to_ne_bytes());
            buf.extend([1, 2, 3, 4]);
        }
        let kinds: Vec<u16> = messages(&buf, 7).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [SOCK_DIAG_BY_FAMILY, NLMSG_DONE]);
    }

    #[test]
    fn dumps_a_real_socket_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let mut diag = SockDiag::open().expect("netlink sock_diag");
        let sockets = diag
            .dump(libc::AF_INET as u8, libc::IPPROTO_TCP as u8)
            .expect("dump");
        let ours = sockets
            .iter()
            .find(|s| s.local == client.local_addr().expect("addr"))
            .expect("our socket is listed");
        assert_eq!(ours.peer, listener.local_addr().expect("addr"));
        assert!(
            ours.cgroup_id.is_some(),
            "the kernel reports the socket's cgroup"
        );
        assert_eq!(owner_of(ours.inode), Some(std::process::id()));
    }
}
