//! The OCSF form of an event (OCSF 1.5, class Network Activity, 4001): activity Refuse (5) with
//! disposition Blocked for a refusal, Traffic (6) with disposition Logged for an audit, Reset
//! (3) for a terminated connection; `dst_endpoint`, `connection_info` (outbound),
//! `actor.process` and `actor.user`, `firewall_rule.name` = the list, `metadata.product` =
//! vendorwall; what OCSF has no attribute for stays under `unmapped`.

use serde_json::{Map, Value, json};

use super::{Fields, pruned};

pub const OCSF_VERSION: &str = "1.5.0";
const CLASS_UID: u64 = 4001;

pub fn from_record(record: &Map<String, Value>) -> Value {
    let f = Fields(record);
    let action = f.str("action").unwrap_or("blocked");
    // (activity id and name, severity, status, action, disposition)
    let (activity, severity, status, allowed, disposition) = match action {
        "audited" => (
            (6, "Traffic"),
            (1, "Informational"),
            (1, "Success"),
            true,
            (17, "Logged"),
        ),
        "exempted" => (
            (6, "Traffic"),
            (1, "Informational"),
            (1, "Success"),
            true,
            (1, "Allowed"),
        ),
        "terminated" => (
            (3, "Reset"),
            (3, "Medium"),
            (1, "Success"),
            false,
            (2, "Blocked"),
        ),
        _ => (
            (5, "Refuse"),
            (3, "Medium"),
            (2, "Failure"),
            false,
            (2, "Blocked"),
        ),
    };
    let dst = f.str("dst").unwrap_or_default();
    let exe = f.str("exe");
    let file = exe.map(|path| {
        json!({
            "path": path,
            "name": path.rsplit('/').next().unwrap_or(path),
            // 1: Regular File.
            "type_id": 1,
        })
    });
    let user = json!({ "uid": f.u64("uid").map(|u| u.to_string()), "name": f.str("user") });
    pruned(json!({
        "class_uid": CLASS_UID,
        "class_name": "Network Activity",
        "category_uid": 4,
        "category_name": "Network Activity",
        "activity_id": activity.0,
        "activity_name": activity.1,
        "type_uid": CLASS_UID * 100 + activity.0,
        "type_name": format!("Network Activity: {}", activity.1),
        "time": millis(f.str("time")),
        "start_time": millis(f.str("time")),
        "end_time": millis(f.str("last")),
        "count": f.u64("count"),
        "severity_id": severity.0,
        "severity": severity.1,
        "status_id": status.0,
        "status": status.1,
        "action_id": if allowed { 1 } else { 2 },
        "action": if allowed { "Allowed" } else { "Denied" },
        "disposition_id": disposition.0,
        "disposition": disposition.1,
        "message": crate::events::sinks::journal::summary(record),
        "dst_endpoint": { "ip": dst, "port": f.u64("port"), "domain": f.str("domain") },
        "connection_info": {
            "protocol_name": f.str("protocol"),
            // 2: Outbound.
            "direction_id": 2,
            "direction": "Outbound",
            "protocol_ver_id": if dst.contains(':') { 6 } else { 4 },
        },
        "actor": {
            "process": {
                "pid": f.u64("pid"),
                "name": f.str("comm"),
                "cmd_line": f.str("cmdline"),
                "tid": f.u64("tid"),
                "file": file,
                "parent_process": { "pid": f.u64("ppid") },
                "user": user.clone(),
            },
            "user": user,
        },
        "firewall_rule": {
            "name": f.str("list"),
            "desc": f.str("vendor"),
        },
        "metadata": {
            "version": OCSF_VERSION,
            "log_name": "vendorwall",
            "product": {
                "name": "vendorwall",
                "vendor_name": "vendorwall",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "unmapped": {
            "prefix": f.str("prefix"),
            "source": f.str("source"),
            "learned_at": f.str("learned_at"),
            "hook": f.str("hook"),
            "unit": f.str("unit"),
            "container": f.str("container"),
            "cgroup_id": f.u64("cgroup_id"),
            "repeat": f.value("repeat"),
            "limited": f.value("limited"),
            "exemption": f.str("exemption"),
            "package": f.str("package"),
        },
    }))
}

/// Milliseconds since the Unix epoch (OCSF's `timestamp_t`) of an RFC 3339 time.
fn millis(time: Option<&str>) -> Option<u64> {
    let time = humantime::parse_rfc3339(time?).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
