//! The one documented event schema: the JSON line every sink writes for a blocked or audited
//! attempt (field names are a stable interface, documented in the README).

use serde::Serialize;

use super::ProcessInfo;

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
    /// `blocked` (refused with EPERM), `audited` (allowed, would have been refused),
    /// `exempted` (allowed by an exemption) or `terminated` (an established connection ended).
    pub action: &'static str,
    /// With `exempted`: the id of the exemption that let it through (`[exempt]` for the
    /// unconditional section).
    pub exemption: Option<String>,
    /// Name of the list whose prefix matched.
    pub list: String,
    /// The vendor, for lists from a vendor manifest.
    pub vendor: Option<String>,
    /// The matching prefix, when the daemon still knows it.
    pub prefix: Option<String>,
    /// `source:line` the prefix came from.
    pub source: Option<String>,
    /// When the destination was learned from a DNS answer: the listed name that was answered
    /// (`prefix` and `source` are then absent).
    pub domain: Option<String>,
    /// When that answer was seen (RFC 3339).
    pub learned_at: Option<String>,
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
    /// Present on the summary of attempts beyond the line budget (`events.max_lines_per_second`
    /// and `events.max_lines_per_second_per_uid`): `count` of them, from `time` to `last`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited: Option<Limited>,
}

/// What a budget summary adds to a line.
#[derive(Clone, Debug, Serialize)]
pub struct Limited {
    /// Distinct destinations among the summarised attempts (`dst` is the first).
    pub destinations: u64,
    /// True when there were more than could be counted (65536): `destinations` is a minimum.
    pub more_destinations: bool,
}

#[cfg(test)]
impl EventRecord {
    /// One blocked connect4 attempt of pid 1 to 192.0.2.1, for tests to adjust.
    pub fn sample() -> Self {
        Self {
            kind: "event",
            time: String::new(),
            last: String::new(),
            count: 1,
            repeat: false,
            action: "blocked",
            exemption: None,
            list: "l".into(),
            vendor: None,
            prefix: None,
            source: None,
            domain: None,
            learned_at: None,
            dst: "192.0.2.1".into(),
            port: 1,
            protocol: "tcp".into(),
            hook: "connect4",
            pid: 1,
            tid: 1,
            uid: 0,
            user: None,
            gid: 0,
            comm: "x".into(),
            cgroup_id: 0,
            process: ProcessInfo::default(),
            limited: None,
        }
    }
}
