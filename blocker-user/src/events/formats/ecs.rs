//! The Elastic Common Schema form of an event (ECS 9.4): `event.kind` event, `event.category`
//! [network], `event.type` [connection, denied] (refused) or [connection, allowed] (audited)
//! (also exempted) or [connection, end] (terminated), `destination.*`, `network.*`, `process.*`, `user.*`,
//! `rule.name` = the list, `rule.ruleset` = the vendor, `observer.*` = vendorwall; what ECS has
//! no field for stays under `vendorwall.*`.

use serde_json::{Map, Value, json};

use super::{Fields, pruned};

pub const ECS_VERSION: &str = "9.4.0";

pub fn from_record(record: &Map<String, Value>) -> Value {
    let f = Fields(record);
    let action = f.str("action").unwrap_or("blocked");
    let (types, outcome, event_action) = match action {
        "audited" => (["connection", "allowed"], "success", "connection-audited"),
        "exempted" => (["connection", "allowed"], "success", "connection-exempted"),
        "terminated" => (["connection", "end"], "success", "connection-terminated"),
        _ => (["connection", "denied"], "failure", "connection-blocked"),
    };
    let dst = f.str("dst").unwrap_or_default();
    let ipv6 = dst.contains(':');
    pruned(json!({
        "@timestamp": f.str("time"),
        "message": crate::events::sinks::journal::summary(record),
        "ecs": { "version": ECS_VERSION },
        "event": {
            "kind": "event",
            "category": ["network"],
            "type": types,
            "action": event_action,
            "outcome": outcome,
            "start": f.str("time"),
            "end": f.str("last"),
            "module": "vendorwall",
            "dataset": "vendorwall.events",
            "provider": f.str("hook"),
            "reason": f.str("list").map(|l| format!("destination listed in {l}")),
        },
        "destination": {
            "ip": dst,
            "address": dst,
            "port": f.u64("port"),
            "domain": f.str("domain"),
        },
        "network": {
            "transport": f.str("protocol"),
            "type": if ipv6 { "ipv6" } else { "ipv4" },
            "direction": "egress",
        },
        "process": {
            "pid": f.u64("pid"),
            "name": f.str("comm"),
            "executable": f.str("exe"),
            "command_line": f.str("cmdline"),
            "parent": { "pid": f.u64("ppid") },
            "thread": { "id": f.u64("tid") },
        },
        "user": {
            "id": f.u64("uid").map(|u| u.to_string()),
            "name": f.str("user"),
        },
        "group": { "id": f.u64("gid").map(|g| g.to_string()) },
        "rule": {
            "name": f.str("list"),
            "ruleset": f.str("vendor"),
            "reference": f.str("source"),
        },
        "observer": { "product": "vendorwall", "vendor": "vendorwall", "type": "firewall" },
        "container": { "id": f.str("container") },
        "package": { "name": f.str("package") },
        "vendorwall": {
            "count": f.u64("count"),
            "repeat": f.value("repeat"),
            "prefix": f.str("prefix"),
            "learned_at": f.str("learned_at"),
            "unit": f.str("unit"),
            "cgroup_id": f.u64("cgroup_id"),
            "limited": f.value("limited"),
            "exemption": f.str("exemption"),
        },
    }))
}
