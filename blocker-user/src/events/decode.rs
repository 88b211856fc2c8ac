//! Reading the kernel's fixed-size [`BlockEvent`] records: the struct itself, its destination
//! address, its command name and protocol.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use blocker_common::{BLOCK_EVENT_V1_LEN, BlockEvent, FAMILY_INET};

/// Reads a `BlockEvent` out of a ring-buffer record; `None` when the record is too short (an
/// object/daemon mismatch, never expected). Records of programs older than the DNS learner
/// (72 bytes, still in a pinned ring buffer after an upgrade) decode with no domain.
pub fn decode(bytes: &[u8]) -> Option<BlockEvent> {
    let mut full = [0u8; size_of::<BlockEvent>()];
    let len = bytes.len().min(full.len());
    if len < BLOCK_EVENT_V1_LEN {
        return None;
    }
    full[..len].copy_from_slice(&bytes[..len]);
    // SAFETY: `full` holds size_of::<BlockEvent>() bytes; BlockEvent is plain data valid for
    // any bit pattern, and read_unaligned has no alignment requirement.
    Some(unsafe { full.as_ptr().cast::<BlockEvent>().read_unaligned() })
}

/// The destination address of an event.
pub fn destination(event: &BlockEvent) -> IpAddr {
    if event.family == FAMILY_INET {
        IpAddr::V4(Ipv4Addr::new(
            event.addr[0],
            event.addr[1],
            event.addr[2],
            event.addr[3],
        ))
    } else {
        IpAddr::V6(Ipv6Addr::from(event.addr))
    }
}

/// `comm` up to its first NUL.
pub fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use blocker_common::{Action, Hook};

    use super::*;

    fn event(family: u8, addr: [u8; 16]) -> BlockEvent {
        BlockEvent {
            boot_ns: 0,
            cgroup_id: 7,
            pid: 1,
            tid: 1,
            uid: 0,
            gid: 0,
            addr,
            port: 443,
            family,
            protocol: 6,
            hook: Hook::Connect4 as u8,
            action: Action::Enforce as u8,
            list_id: 1,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            domain_id: 0,
            exemption: 0,
            _pad: 0,
            learned_ns: 0,
        }
    }

    #[test]
    fn decodes_what_the_kernel_wrote() {
        let original = event(
            FAMILY_INET,
            [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        // SAFETY: viewing a plain-data struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&original as *const BlockEvent).cast::<u8>(),
                size_of::<BlockEvent>(),
            )
        };
        let decoded = decode(bytes).expect("full record");
        assert_eq!(
            destination(&decoded),
            "192.0.2.1".parse::<IpAddr>().expect("addr")
        );
        assert_eq!(comm(&decoded.comm), "curl");
        assert!(decode(&bytes[..10]).is_none());
        let old = decode(&bytes[..BLOCK_EVENT_V1_LEN]).expect("an older program's record");
        assert_eq!((old.list_id, old.domain_id), (1, 0));
    }

    #[test]
    fn ipv6_destinations_keep_their_form() {
        let mapped: Ipv6Addr = "::ffff:127.0.0.66".parse().expect("addr");
        let e = event(blocker_common::FAMILY_INET6, mapped.octets());
        assert_eq!(destination(&e).to_string(), "::ffff:127.0.0.66");
    }
}
