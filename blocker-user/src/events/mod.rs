//! Turning a kernel [`BlockEvent`] into the JSON line operators read: wall-clock time, the list
//! and entry that matched, and who tried (process fields read from /proc at event time).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, SystemTime},
};

use blocker_common::{Action, BlockEvent, FAMILY_INET, Hook};
use serde::Serialize;

use crate::lists::ListSet;

pub mod cache;
pub mod hub;
pub mod pipeline;
pub mod process;
pub mod socket;
pub mod window;

pub use process::ProcessInfo;

/// One blocked or audited connection attempt, or a summary of repeats. Field names are a
/// stable interface, documented in the README.
#[derive(Clone, Debug, Serialize)]
pub struct EventRecord {
    /// Always `event` (other line types: `missed`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// RFC 3339, UTC, microseconds: when the (first) attempt was made.
    pub time: String,
    /// When the last attempt summarised by this line was made (= `time` when `count` is 1).
    pub last: String,
    /// Attempts this line stands for.
    pub count: u64,
    /// True for a summary of repeats within the aggregation window.
    pub repeat: bool,
    /// `blocked` (refused with EPERM) or `audited` (allowed, would have been refused).
    pub action: &'static str,
    /// Name of the list whose prefix matched.
    pub list: String,
    /// The vendor, for lists from a vendor manifest.
    pub vendor: Option<String>,
    /// The matching prefix, when the daemon still knows it.
    pub prefix: Option<String>,
    /// `source:line` the prefix came from.
    pub source: Option<String>,
    /// Destination address as the caller gave it (an IPv4-mapped IPv6 address stays IPv6).
    pub dst: String,
    pub port: u16,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, or the protocol number.
    pub protocol: String,
    /// `connect4`, `connect6`, `sendmsg4` or `sendmsg6`.
    pub hook: &'static str,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// User name of `uid`, when it has one.
    pub user: Option<String>,
    pub gid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    #[serde(flatten)]
    pub process: ProcessInfo,
}

/// Reads a `BlockEvent` out of a ring-buffer record; `None` when the record is too short (an
/// object/daemon mismatch, never expected).
pub fn decode(bytes: &[u8]) -> Option<BlockEvent> {
    if bytes.len() < size_of::<BlockEvent>() {
        return None;
    }
    // SAFETY: the length was checked; BlockEvent is plain data valid for any bit pattern, and
    // read_unaligned has no alignment requirement.
    Some(unsafe { bytes.as_ptr().cast::<BlockEvent>().read_unaligned() })
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

/// Builds the record for `event`, looking up list names and the matching entry in `lists`, and
/// the process's details (from /proc, through `cache`).
pub fn describe(
    event: &BlockEvent,
    lists: &ListSet,
    cache: &mut cache::ProcessCache,
) -> EventRecord {
    let dst = destination(event);
    // The kernel's trie returns only a list id (of an aggregated prefix); the userspace index
    // names the exact entry, its list and its source line.
    let matched = lists.lookup(dst);
    let guard = Hook::from_u8(event.hook) == Some(Hook::SockCreate);
    // A raw-socket refusal has no destination, so no list entry explains it.
    let matched = matched.filter(|_| !guard);
    let list = matched
        .map(|m| m.list)
        .or_else(|| lists.by_id(event.list_id));
    EventRecord {
        kind: "event",
        time: rfc3339(event.boot_ns),
        last: rfc3339(event.boot_ns),
        count: 1,
        repeat: false,
        action: match Action::from_u8(event.action) {
            Some(Action::Audit) => "audited",
            _ => "blocked",
        },
        list: if guard {
            "raw-socket-guard".to_owned()
        } else {
            list.map_or_else(|| format!("#{}", event.list_id), |l| l.spec.name.clone())
        },
        vendor: list.and_then(|l| l.spec.vendor.clone()),
        prefix: matched.map(|m| m.prefix().to_string()),
        source: matched.map(|m| m.source()),
        dst: dst.to_string(),
        port: event.port,
        protocol: protocol_name(event.protocol),
        hook: Hook::from_u8(event.hook).map_or("unknown", Hook::name),
        pid: event.pid,
        tid: event.tid,
        uid: event.uid,
        user: cache.user(event.uid),
        gid: event.gid,
        comm: comm(&event.comm),
        cgroup_id: event.cgroup_id,
        process: cache.process(event.pid),
    }
}

/// The summary line for repeats of `first` within one aggregation window.
pub fn summary(repeats: window::Repeats<EventRecord>) -> EventRecord {
    EventRecord {
        time: rfc3339(repeats.first_boot_ns),
        last: rfc3339(repeats.last_boot_ns),
        count: repeats.count,
        repeat: true,
        ..repeats.template
    }
}

/// The aggregation key of a kernel event.
pub fn window_key(event: &BlockEvent) -> window::Key {
    window::Key {
        pid: event.pid,
        dst: destination(event),
        list_id: event.list_id,
        action: event.action,
    }
}

fn rfc3339(boot_ns: u64) -> String {
    humantime::format_rfc3339_micros(wall_time(boot_ns)).to_string()
}

/// `comm` up to its first NUL.
fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// Converts a `CLOCK_BOOTTIME` stamp to wall-clock time, using the clocks' current offset.
fn wall_time(boot_ns: u64) -> SystemTime {
    let now_wall = SystemTime::now();
    let now_boot = boottime_ns();
    let age = Duration::from_nanos(now_boot.saturating_sub(boot_ns));
    now_wall.checked_sub(age).unwrap_or(now_wall)
}

fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the valid pointer; CLOCK_BOOTTIME always exists
    // on Linux >= 2.6.39.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(family: u8, addr: [u8; 16]) -> BlockEvent {
        BlockEvent {
            boot_ns: boottime_ns(),
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
    }

    #[test]
    fn ipv6_destinations_keep_their_form() {
        let mapped: Ipv6Addr = "::ffff:127.0.0.66".parse().expect("addr");
        let e = event(blocker_common::FAMILY_INET6, mapped.octets());
        assert_eq!(destination(&e).to_string(), "::ffff:127.0.0.66");
    }

    #[test]
    fn boot_stamps_become_recent_wall_time() {
        let e = event(FAMILY_INET, [0; 16]);
        let age = SystemTime::now()
            .duration_since(wall_time(e.boot_ns))
            .expect("not in the future");
        assert!(age < Duration::from_secs(5), "{age:?}");
        assert_eq!(protocol_name(17), "udp");
        assert_eq!(protocol_name(132), "132");
    }
}
