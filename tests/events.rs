//! The blocked-event pipeline (issue 5) on the real kernel: enrichment, aggregation with exact
//! counts, slow subscribers that never slow others, and the Prometheus endpoint.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use serde_json::Value;
use vendorwall_e2e::{
    TempDir,
    instance::Instance,
    list_file, listen,
    probe::{Hammer, PROBE_UID, run_in},
    probe_bin,
};

const LISTED: &str = "127.0.0.66";
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn events_carry_process_user_unit_and_command_line() {
    let dir = TempDir::new("enrich");
    let lists = [list_file(&dir, "enrich", &[LISTED])];
    let vw = Instance::new("enrich");
    let unit = format!("vwprobe-{}.service", std::process::id());
    let service = vw.cgroup.child(&unit);
    let daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    // The probe stays alive a moment so the daemon reads its /proc entries while it exists.
    let run = run_in(
        &probe_bin(),
        &service,
        &[
            ("tcp", format!("{LISTED}:{port}")),
            ("sleep", "1500".into()),
        ],
    );
    assert!(run.attempts[0].refused());
    let e = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    assert_eq!(e["type"], "event");
    assert_eq!(e["count"], 1);
    assert_eq!(e["uid"], PROBE_UID);
    assert_eq!(e["user"], "nobody", "{e:#}");
    assert_eq!(
        e["ppid"],
        std::process::id(),
        "the test spawned the probe: {e:#}"
    );
    assert_eq!(e["unit"], unit.as_str(), "{e:#}");
    assert_eq!(e["container"], Value::Null, "{e:#}");
    assert_eq!(e["process_gone"], false, "{e:#}");
    let cmdline = e["cmdline"].as_str().expect("cmdline");
    assert!(cmdline.contains("vw-probe tcp 127.0.0.66:"), "{cmdline}");
    assert!(
        e["exe"].as_str().is_some_and(|x| x.ends_with("/vw-probe")),
        "{e:#}"
    );
    assert_eq!(e["hook"], "connect4");
    assert_eq!(e["prefix"], "127.0.0.66/32");
    drop(daemon);
    drop(service);
}

#[test]
fn repeats_are_aggregated_and_counts_equal_the_attempts() {
    let dir = TempDir::new("aggregate");
    let lists = [list_file(&dir, "aggregate", &[LISTED])];
    let vw = Instance::new("aggregate");
    vw.write_config("[events]\naggregate_window = \"2s\"\n");
    let daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(800));
    let counts = hammer.stop();
    assert!(counts.refused > 10, "{counts:?}");
    // The first attempt is reported at once, the rest as one summary when the window closes.
    let lines = daemon.events_within(Duration::from_secs(5));
    assert_eq!(lines.len(), 2, "one first line and one summary: {lines:#?}");
    assert_eq!(lines[0]["count"], 1);
    assert_eq!(lines[0]["repeat"], false);
    assert_eq!(lines[1]["repeat"], true);
    let total: u64 = lines
        .iter()
        .map(|l| l["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        total, counts.refused,
        "every attempt is counted exactly once"
    );
    assert!(
        lines[1]["time"].as_str() <= lines[1]["last"].as_str(),
        "{:#}",
        lines[1]
    );
}

/// Counts (event lines, missed events) until the line for the sentinel address 127.0.0.67.
fn count_until_sentinel(reader: BufReader<UnixStream>) -> (u64, u64) {
    let (mut events, mut missed) = (0u64, 0u64);
    for line in reader.lines().map_while(Result::ok) {
        if line.contains("\"type\":\"missed\"") {
            let v: Value = serde_json::from_str(&line).expect("missed line is JSON");
            missed += v["count"].as_u64().unwrap_or(0);
        } else if line.contains("\"dst\":\"127.0.0.67\"") {
            break;
        } else {
            events += 1;
        }
    }
    (events, missed)
}

/// Opens a follow subscription on the daemon's socket.
fn subscribe(vw: &Instance) -> BufReader<UnixStream> {
    let mut stream = UnixStream::connect(vw.run_dir().join("events.sock")).expect("connect socket");
    stream.write_all(b"{\"follow\":true}\n").expect("request");
    BufReader::new(stream)
}

#[test]
fn a_stalled_subscriber_misses_events_without_slowing_another() {
    let dir = TempDir::new("subscribers");
    let lists = [list_file(&dir, "subs", &[LISTED])];
    let vw = Instance::new("subscribers");
    let daemon = vw.start(&lists, &[]);
    let stalled = subscribe(&vw);
    let fast = subscribe(&vw);
    let (_listener, port) = listen(&format!("{LISTED}:0"));

    // The fast reader only counts lines (no parsing), on its own thread, until the sentinel.
    let reader = std::thread::spawn(move || count_until_sentinel(fast));
    // Enough attempts to overflow the stalled reader's socket buffer and its channel backlog.
    let hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        Duration::from_secs(30),
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let (_, status) = vw.status();
        if status["counters"]["blocked"].as_u64().unwrap_or(0) > 30_000 {
            break;
        }
    }
    let counts = hammer.stop();
    // A sentinel on another address tells the fast reader that everything before it was sent.
    std::fs::write(&lists[0], format!("{LISTED}\n127.0.0.67\n")).expect("add sentinel");
    assert_eq!(vw.cli(&["reload"]).0, 0);
    let run = run_in(&probe_bin(), &vw.cgroup, &[("tcp", "127.0.0.67:9".into())]);
    assert!(run.attempts[0].refused());

    let (events, missed) = reader.join().expect("reader thread");
    // Attempts the kernel could not queue (ring buffer full) are counted there, never lost.
    let dropped = vw.status().1["counters"]["events_dropped"]
        .as_u64()
        .expect("counter");
    let published = counts.refused - dropped;
    assert_eq!(missed, 0, "the fast subscriber must miss nothing");
    assert_eq!(
        events, published,
        "the fast subscriber gets every event ({dropped} dropped in the kernel)"
    );

    let (stalled_events, stalled_missed) = count_until_sentinel(stalled);
    assert!(
        stalled_missed > 0,
        "the stalled subscriber must be told what it missed"
    );
    assert_eq!(
        stalled_events + stalled_missed,
        published,
        "received + missed = everything, for the stalled subscriber too"
    );
    drop(daemon);
}

#[test]
fn recent_events_are_listed_and_filtered_by_the_events_command() {
    let dir = TempDir::new("recent");
    let lists = [
        list_file(&dir, "recent-a", &[LISTED]),
        list_file(&dir, "recent-b", &["127.0.0.67"]),
    ];
    let vw = Instance::new("recent");
    let daemon = vw.start(&lists, &[]);
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[
            ("tcp", format!("{LISTED}:9")),
            ("tcp", "127.0.0.67:9".into()),
        ],
    );
    daemon.expect_event(EVENT_TIMEOUT, |e| e["dst"] == "127.0.0.67");
    // The history is written on a thread of its own, after stdout: wait until it holds both.
    let stored = vendorwall_e2e::eventually(EVENT_TIMEOUT, || {
        let (code, all, err) = vw.cli(&["events", "--json"]);
        assert_eq!(code, 0, "{all}{err}");
        all.lines().count() >= 2
    });
    assert!(stored, "the history never held both events");
    let (code, out, err) = vw.cli(&["events", "--json", "--list", "recent-b"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["pid"], run.pid);
    let (code, table, _) = vw.cli(&["events", "--since", "5m"]);
    assert_eq!(code, 0);
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("TIME") && rows[0].contains("DESTINATION"),
        "{table}"
    );
    assert_eq!(rows.len(), 3, "header and two events: {table}");
    assert!(
        rows[1].contains("recent-a") && rows[1].contains("127.0.0.66:9"),
        "{table}"
    );
}

#[test]
fn the_metrics_endpoint_parses_and_counts_match_the_attempts() {
    let (_dir, vw, daemon, metrics_port) = with_metrics("metrics");
    let attempts: Vec<(&str, String)> = (0..7)
        .map(|i| ("tcp", format!("{LISTED}:{}", 1000 + i)))
        .collect();
    let run = run_in(&probe_bin(), &vw.cgroup, &attempts);
    assert!(run.attempts.iter().all(|a| a.refused()));
    for _ in 0..7 {
        daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    }
    let body = scrape(metrics_port);
    let samples = parse_exposition(&body);
    let blocked: f64 = samples
        .iter()
        .filter(|(name, labels, _)| {
            name == "vendorwall_blocked_total" && labels.contains("list=\"metered\"")
        })
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(blocked, 7.0, "{body}");
    let entries = samples
        .iter()
        .find(|(n, l, _)| n == "vendorwall_list_entries" && l.contains("metered"))
        .map(|(_, _, v)| *v);
    assert_eq!(entries, Some(1.0), "{body}");
    assert!(
        samples
            .iter()
            .any(|(n, _, _)| n == "vendorwall_events_dropped_total"),
        "{body}"
    );
    let value = |name: &str| samples.iter().find(|(n, _, _)| n == name).map(|s| s.2);
    assert_eq!(value("vendorwall_enforcing"), Some(1.0), "{body}");
    assert_eq!(
        value("vendorwall_refresh_interval_seconds"),
        Some(6.0 * 3600.0),
        "{body}"
    );
    // Every metric the shipped alert rules and dashboard use is exported.
    let metrics_source = std::fs::read_to_string(
        vendorwall_e2e::repo_root().join("blocker-user/src/events/sinks/metrics.rs"),
    )
    .expect("metrics source");
    for file in [
        "deploy/prometheus/vendorwall.rules.yml",
        "deploy/grafana/vendorwall.json",
    ] {
        let text = std::fs::read_to_string(vendorwall_e2e::repo_root().join(file)).expect(file);
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("vendorwall_") {
                // Families with labels appear with their first sample: no audit, no missed line
                // and no exemption happened here. Those must at least be registered by the daemon.
                let family = word.strip_suffix("_total").unwrap_or(word);
                let first_sample_only = [
                    "vendorwall_audited",
                    "vendorwall_events_missed",
                    "vendorwall_exemption_expiry_timestamp_seconds",
                ];
                let exported = samples.iter().any(|(n, _, _)| n == word)
                    || body.contains(&format!("# TYPE {family} "));
                let registered = first_sample_only.contains(&family)
                    && metrics_source
                        .contains(&format!("\"{}\"", family.trim_start_matches("vendorwall_")));
                assert!(
                    exported || registered,
                    "{file} uses {word}, which the endpoint does not export:\n{body}"
                );
            }
        }
    }
}

/// A daemon enforcing one list (`LISTED`) with the metrics endpoint on a free loopback port.
fn with_metrics(tag: &str) -> (TempDir, Instance, vendorwall_e2e::daemon::Daemon, u16) {
    let dir = TempDir::new(tag);
    let lists = [list_file(&dir, "metered", &[LISTED])];
    let vw = Instance::new(tag);
    let (probe_listener, metrics_port) = listen("127.0.0.1:0");
    drop(probe_listener);
    vw.write_config(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    let daemon = vw.start(&lists, &[]);
    (dir, vw, daemon, metrics_port)
}

fn scrape(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Parses OpenMetrics text into (name, labels, value); panics on a malformed sample line.
fn parse_exposition(body: &str) -> Vec<(String, String, f64)> {
    assert!(
        body.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (name.to_owned(), labels.to_owned(), value)
        })
        .collect()
}

#[test]
fn idle_clients_cannot_exhaust_the_metrics_endpoint() {
    let (_dir, _vw, daemon, metrics_port) = with_metrics("metrics-idle");
    let open_fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
            .expect("daemon fds")
            .count()
    };
    let before = open_fds();
    // Many more idle clients than the endpoint serves at once; none sends a request.
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", metrics_port)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = open_fds();
    assert!(
        held <= before + blocker_user::events::sinks::http::MAX_CONNECTIONS + 4,
        "idle clients took {} descriptors of the daemon (before: {before})",
        held - before
    );
    // An accepted idle client is dropped once the head timeout passes.
    let mut first = idle[0].try_clone().expect("clone");
    first
        .set_read_timeout(Some(
            blocker_user::events::sinks::http::HEAD_TIMEOUT + Duration::from_secs(3),
        ))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut first, &mut byte);
    assert!(
        matches!(read, Ok(0)),
        "an idle client must be closed by the server, got {read:?}"
    );
    drop(first);
    drop(idle);
    // The endpoint survives: it answers again, and only /metrics.
    let body = scrape(metrics_port);
    assert!(body.contains("vendorwall_list_entries"), "{body}");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).expect("connect");
    stream
        .write_all(b"GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

/// One unprivileged user connecting to 20,000 different listed addresses gets at most the
/// configured lines a second, the counts over all lines still sum to exactly 20,000, and
/// vendorwall's own tamper warning, raised while those lines are produced, is not suppressed.
#[test]
fn a_local_user_cannot_flood_the_log() {
    const FLOOD: u32 = 20_000;
    const PER_UID: u64 = 20;
    let dir = TempDir::new("flood");
    let lists = [list_file(&dir, "flood", &["127.88.0.0/16"])];
    let vw = Instance::new("flood");
    vw.write_config(&format!(
        "[events]\naggregate_window = \"0s\"\nmax_lines_per_second = 100\n\
         max_lines_per_second_per_uid = {PER_UID}\n"
    ));
    let daemon = vw.start(&lists, &[]);
    let ops: Vec<(&str, String)> = (0..FLOOD)
        .map(|i| {
            (
                "udp-connect",
                format!("127.88.{}.{}:9", i / 250, 1 + i % 250),
            )
        })
        .collect();
    let started = Instant::now();
    let run = run_in(&probe_bin(), &vw.cgroup, &ops);
    let refused = run.attempts.iter().filter(|a| a.refused()).count();
    assert_eq!(refused, FLOOD as usize, "every attempt is refused");
    // While the daemon still turns the flood into lines: tamper with enforcement.
    let (_, status) = vw.status();
    for id in vendorwall_e2e::link_ids(&status) {
        vendorwall_e2e::bpf::detach_link(id);
    }
    let mut lines = Vec::new();
    let mut total = 0;
    while total < u64::from(FLOOD) && started.elapsed() < Duration::from_secs(20) {
        for line in daemon.events_within(Duration::from_millis(200)) {
            if line["pid"] == run.pid || line["uid"] == PROBE_UID {
                total += line["count"].as_u64().expect("count");
                lines.push(line);
            }
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert_eq!(total, u64::from(FLOOD), "counts over all lines are exact");
    // Per second: the budget's lines plus one summary for this process and list.
    assert!(
        lines.len() as u64 <= seconds * (PER_UID + 1),
        "{} lines in {seconds} s",
        lines.len()
    );
    let summary = lines
        .iter()
        .find(|l| l["limited"].is_object())
        .expect("a summary of what went beyond the budget");
    assert_eq!(summary["repeat"], true, "{summary:#}");
    assert!(
        summary["limited"]["destinations"].as_u64() > Some(1000),
        "{summary:#}"
    );
    let repaired = vendorwall_e2e::eventually(Duration::from_secs(5), || {
        vw.status().1["daemon"]["reattachments"].as_u64() >= Some(1)
    });
    assert!(repaired, "the detached links were not re-attached");
    let (_, stderr) = daemon.stop();
    assert!(
        stderr.contains("ENFORCEMENT TAMPERED WITH"),
        "the tamper warning was lost: {stderr}"
    );
}

#[test]
fn a_sink_stuck_in_a_write_does_not_keep_the_daemon_from_stopping() {
    let dir = TempDir::new("stuck");
    let lists = [list_file(&dir, "stuck", &[LISTED])];
    let fifo = dir.path().join("events.fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    // A reader that never reads: the daemon's writes fill the pipe and then block.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the fifo for reading");
    let vw = Instance::new("stuck");
    vw.write_config(&format!(
        "[events]\naggregate_window = \"0s\"\nmax_lines_per_second = 0\n\
         max_lines_per_second_per_uid = 0\nfile = \"{}\"\n",
        fifo.display()
    ));
    let daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let mut hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        Duration::from_secs(60),
    );
    // Far more lines than a pipe holds (64 KiB): the file sink is stuck in a write.
    let start = hammer.mark();
    hammer.wait_for(start, 2_000);
    let first = daemon.expect_event(EVENT_TIMEOUT, |e| e["type"] == "event");
    assert_eq!(first["action"], "blocked", "{first:#}");
    let (status, stderr) = daemon.stop();
    let counts = hammer.stop();
    assert_eq!(counts.ok, 0, "{counts:?}");
    assert!(
        status.success(),
        "the daemon did not stop by itself: {status}: {stderr}"
    );
    assert!(
        stderr.contains("event sink file did not finish"),
        "the abandoned sink is not named: {stderr}"
    );
}
