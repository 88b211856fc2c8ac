//! The SIEM line formats (`[events] format = "ecs" | "ocsf"`) on the real kernel: a refused and
//! an audited connection from a test cgroup, their lines read from the file sink (ECS) and the
//! socket (OCSF), and every field checked by name and type against the published schema
//! definitions kept in tests/fixtures/schemas/ (ECS 9.4.0, OCSF 1.5.0 Network Activity), with
//! allowed values and enums, and the class's required attributes present.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    net::IpAddr,
    os::unix::net::UnixStream,
    time::Duration,
};

use serde_json::Value;
use vendorwall_e2e::{TempDir, instance::Instance, list_file, listen, probe::run_in, probe_bin};

const BLOCKED: &str = "127.0.0.66";
const AUDITED: &str = "127.0.0.67";

/// One schema field: type, whether an array, allowed values (or enum ids), requirement.
struct Field {
    kind: String,
    array: bool,
    allowed: Vec<String>,
    required: bool,
}

fn fixture(name: &str) -> HashMap<String, Field> {
    let path = vendorwall_e2e::repo_root()
        .join("tests/fixtures/schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let list = |i: usize| -> Vec<String> {
                cols.get(i)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default()
            };
            let field = Field {
                kind: cols[1].to_owned(),
                array: cols.get(2) == Some(&"array"),
                allowed: list(3),
                required: cols.get(2) == Some(&"required"),
            };
            (cols[0].to_owned(), field)
        })
        .collect()
}

/// Every leaf of `value` with its dotted path (arrays are leaves).
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    out.push((path.clone(), v.clone()));
                    leaves(&path, v, out);
                } else {
                    out.push((path, v.clone()));
                }
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

fn check_ecs(line: &Value, schema: &HashMap<String, Field>) {
    let mut fields = Vec::new();
    leaves("", line, &mut fields);
    for (path, value) in fields.iter().filter(|(_, v)| !v.is_object()) {
        if path.starts_with("vendorwall.") {
            continue; // vendorwall's own namespace, as ECS allows for custom fields
        }
        let field = schema
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not an ECS field: {line:#}"));
        let values: Vec<&Value> = match value {
            Value::Array(items) => {
                assert!(field.array, "{path} is not an array field in ECS");
                items.iter().collect()
            }
            one => vec![one],
        };
        for v in values {
            let ok = match field.kind.as_str() {
                "keyword" | "wildcard" | "match_only_text" | "text" | "constant_keyword" => {
                    v.is_string()
                }
                "long" | "integer" | "unsigned_long" => v.is_u64() || v.is_i64(),
                "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
                "date" => v.as_str().is_some_and(rfc3339_utc),
                "boolean" => v.is_boolean(),
                other => panic!("{path}: type {other} not handled by this test"),
            };
            assert!(ok, "{path} = {v} is not an ECS {}", field.kind);
            if !field.allowed.is_empty() {
                let s = v.as_str().unwrap_or_default();
                assert!(
                    field.allowed.iter().any(|a| a == s),
                    "{path} = {s} is not an allowed value"
                );
            }
        }
    }
}

fn rfc3339_utc(s: &str) -> bool {
    // RFC 3339 with a zone: what Elasticsearch's default date format takes.
    s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

fn check_ocsf(line: &Value, schema: &HashMap<String, Field>) {
    let mut fields = Vec::new();
    leaves("", line, &mut fields);
    for (path, value) in &fields {
        if path.starts_with("unmapped.") {
            continue; // OCSF's place for what it has no attribute for
        }
        let field = schema.get(path).unwrap_or_else(|| {
            panic!("{path} is not an OCSF Network Activity attribute: {line:#}")
        });
        let ok = match field.kind.as_str() {
            k if k.starts_with("object") => value.is_object(),
            "string_t" => value.is_string(),
            "integer_t" | "long_t" => value.is_u64() || value.is_i64(),
            "boolean_t" => value.is_boolean(),
            "float_t" => value.is_number(),
            other => panic!("{path}: type {other} not handled by this test"),
        };
        assert!(ok, "{path} = {value} is not an OCSF {}", field.kind);
        if !field.allowed.is_empty() {
            let id = value.as_u64().map(|v| v.to_string()).unwrap_or_default();
            assert!(
                field.allowed.contains(&id),
                "{path} = {id} is not in its enum"
            );
        }
    }
    // Every required attribute, at the top and inside each object written. (`cloud` and
    // `osint` are required only by profiles vendorwall does not declare.)
    let present: HashMap<&str, &Value> = fields.iter().map(|(p, v)| (p.as_str(), v)).collect();
    for path in schema.iter().filter(|(_, f)| f.required).map(|(p, _)| p) {
        let parent = path.rsplit_once('.').map(|(p, _)| p);
        let parent_written = parent.is_none_or(|p| present.contains_key(p));
        if parent_written && !["cloud", "osint"].contains(&path.as_str()) {
            assert!(
                present.contains_key(path.as_str()),
                "required {path} missing: {line:#}"
            );
        }
    }
}

#[test]
fn ecs_and_ocsf_lines_match_the_published_schemas() {
    let dir = TempDir::new("siem");
    let enforce = list_file(&dir, "siem-enforce", &[BLOCKED]);
    let audit = list_file(&dir, "siem-audit", &[AUDITED]);
    let vw = Instance::new("siem");
    let file = dir.path().join("events.ecs.jsonl");
    vw.write_config(&format!(
        "[[lists]]\nname = \"vendor\"\nsources = [{enforce:?}]\n\
         [[lists]]\nname = \"watch\"\naction = \"audit\"\nsources = [{audit:?}]\n\
         [events]\naggregate_window = \"0s\"\nformat = \"ecs\"\nfile = {file:?}\n"
    ));
    let _daemon = vw.start(&[], &[]);
    let (_l1, p1) = listen(&format!("{BLOCKED}:0"));
    let (_l2, p2) = listen(&format!("{AUDITED}:0"));
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[
            ("tcp", format!("{BLOCKED}:{p1}")),
            ("tcp", format!("{AUDITED}:{p2}")),
        ],
    );
    assert!(
        run.attempts[0].refused() && run.attempts[1].ok,
        "{:?}",
        run.attempts
    );

    let ecs = fixture("ecs-9.4.0.tsv");
    let mut lines = Vec::new();
    let read = vendorwall_e2e::eventually(Duration::from_secs(10), || {
        lines = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["process"]["pid"] == run.pid)
            .collect();
        lines.len() >= 2
    });
    assert!(read, "two ECS lines in {}: {lines:#?}", file.display());
    for line in &lines {
        check_ecs(line, &ecs);
    }
    let blocked = lines
        .iter()
        .find(|l| l["destination"]["ip"] == BLOCKED)
        .expect("blocked line");
    assert_eq!(
        blocked["event"]["type"],
        serde_json::json!(["connection", "denied"])
    );
    assert_eq!(blocked["event"]["outcome"], "failure");
    assert_eq!(blocked["rule"]["name"], "vendor");
    assert_eq!(blocked["destination"]["port"], p1);
    assert_eq!(blocked["network"]["transport"], "tcp");
    assert_eq!(
        blocked["user"]["id"],
        vendorwall_e2e::probe::PROBE_UID.to_string()
    );
    // (The probe has exited when its event is read: its /proc fields are absent, not null.)
    assert_eq!(blocked["process"]["name"], "vw-probe");
    let audited = lines
        .iter()
        .find(|l| l["destination"]["ip"] == AUDITED)
        .expect("audited line");
    assert_eq!(
        audited["event"]["type"],
        serde_json::json!(["connection", "allowed"])
    );
    assert_eq!(audited["rule"]["name"], "watch");

    // The same events from the socket, as OCSF.
    let ocsf = fixture("ocsf-1.5.0-network_activity.tsv");
    let mut socket = UnixStream::connect(vw.run_dir().join("events.sock")).expect("connect");
    socket
        .write_all(b"{\"follow\":false,\"format\":\"ocsf\"}\n")
        .expect("request");
    let lines: Vec<Value> = BufReader::new(socket)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(|l| l["actor"]["process"]["pid"] == run.pid)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        check_ocsf(line, &ocsf);
    }
    let refused = lines
        .iter()
        .find(|l| l["dst_endpoint"]["ip"] == BLOCKED)
        .expect("refused line");
    assert_eq!(refused["class_uid"], 4001);
    assert_eq!(refused["activity_id"], 5, "Refuse");
    assert_eq!(refused["type_uid"], 400105);
    assert_eq!(refused["disposition_id"], 2, "Blocked");
    assert_eq!(refused["firewall_rule"]["name"], "vendor");
    assert_eq!(refused["connection_info"]["direction_id"], 2, "Outbound");
    let logged = lines
        .iter()
        .find(|l| l["dst_endpoint"]["ip"] == AUDITED)
        .expect("audited line");
    assert_eq!(logged["activity_id"], 6, "Traffic");
    assert_eq!(logged["disposition_id"], 17, "Logged");
}
