//! Compliance (issue 16) on the real kernel: justified exemptions whose expiry the kernel
//! enforces (also with the daemon stopped), every use reported as `exempted`, executables
//! exempted by the file they run, a durable history that survives restarts and `kill -9` with
//! exact counts, and a report whose totals, in every form, equal the attempts made.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde_json::Value;
use vendorwall_e2e::{
    TempDir, eventually, instance::Instance, list_file, listen, probe::run_in, probe_bin,
};

const LISTED: &str = "127.0.0.66";
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A config with `exemptions` (TOML) and a fast integrity check, so the daemon re-resolves
/// exemptions within a fraction of a second.
fn config_with(exemptions: &str) -> String {
    format!("integrity_check_interval = \"200ms\"\n{exemptions}")
}

/// `vendorwall events --json --since 1h` from the history: the lines, parsed.
fn history(vw: &Instance) -> Vec<Value> {
    let (code, stdout, stderr) = vw.cli(&["events", "--json", "--since", "1h"]);
    assert_eq!(code, 0, "events failed: {stdout}{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Attempts the stored lines stand for, by action.
fn stored(vw: &Instance, action: &str) -> u64 {
    history(vw)
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn an_exemption_ends_at_its_time_even_with_the_daemon_stopped() {
    let dir = TempDir::new("expiry");
    let lists = [list_file(&dir, "expiry", &[LISTED])];
    let vw = Instance::new("expiry");
    let lab = vw.cgroup.child("lab");
    let other = vw.cgroup.child("other");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");
    // Whole seconds, as an operator writes it; far enough ahead for the steps before it (which
    // take several times longer on another kernel under emulation).
    let margin = if std::env::var_os("VENDORWALL_VM_KERNEL").is_some() {
        45
    } else {
        9
    };
    let expires = SystemTime::now() + Duration::from_secs(margin);
    vw.write_config(&config_with(&format!(
        "[[exemptions]]\nid = \"malware-lab\"\nreason = \"regulator's test bench\"\n\
         approved_by = \"CISO\"\nticket = \"CHG-1\"\nexpires = \"{}\"\ncgroups = [{:?}]\n",
        rfc3339(expires),
        lab.path().display().to_string()
    )));
    let daemon = vw.start(&lists, &[]);

    let exempted = run_in(&probe_bin(), &lab, &[("tcp", target.clone())]);
    assert!(exempted.attempts[0].ok, "{:?}", exempted.attempts[0]);
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == exempted.pid);
    assert_eq!(event["action"], "exempted", "{event}");
    assert_eq!(event["exemption"], "malware-lab", "{event}");
    let refused = run_in(&probe_bin(), &other, &[("tcp", target.clone())]);
    assert!(refused.attempts[0].refused(), "{:?}", refused.attempts[0]);
    let (code, stdout, stderr) = vw.cli(&["exemptions", "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rows: Value = serde_json::from_str(&stdout).expect("exemptions --json");
    assert_eq!(rows[0]["id"], "malware-lab");
    assert!(
        rows[0]["seconds_left"]
            .as_u64()
            .is_some_and(|s| s <= margin),
        "{rows}"
    );
    assert!(
        eventually(EVENT_TIMEOUT, || {
            let (_, out, _) = vw.cli(&["exemptions", "--json"]);
            serde_json::from_str::<Value>(&out).is_ok_and(|r| r[0]["uses"] == 1)
        }),
        "the use never reached the history"
    );

    // The daemon stops; the pinned programs keep enforcing, the exemption still applies...
    let (status, log) = daemon.stop();
    assert!(status.success(), "{status}: {log}");
    assert!(
        SystemTime::now() + Duration::from_secs(1) < expires,
        "too slow to test before the expiry"
    );
    let still = run_in(&probe_bin(), &lab, &[("tcp", target.clone())]);
    assert!(
        still.attempts[0].ok,
        "before its time: {:?}",
        still.attempts[0]
    );
    // ... and ends at its time, with nobody there to remove it.
    let wait = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    std::thread::sleep(wait + Duration::from_millis(300));
    let ended = run_in(&probe_bin(), &lab, &[("tcp", target.clone())]);
    assert!(
        ended.attempts[0].refused(),
        "after its time: {:?}",
        ended.attempts[0]
    );

    // A start with the expired exemption still configured says so and does not apply it.
    let daemon = vw.start(&lists, &[]);
    let again = run_in(&probe_bin(), &lab, &[("tcp", target)]);
    assert!(again.attempts[0].refused(), "{:?}", again.attempts[0]);
    let (code, stdout, _) = vw.cli(&["exemptions"]);
    assert_eq!(code, 1, "an expired exemption in the config: {stdout}");
    assert!(stdout.contains("EXPIRED"), "{stdout}");
    let (_, log) = daemon.stop();
    assert!(log.contains("exemption \"malware-lab\" expired"), "{log}");
}

/// A copy of the probe at its own path (its own inode), runnable by the probe's user.
fn probe_copy(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("vendorwall-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.join("vw-probe");
    let status = std::process::Command::new("cp")
        .arg(probe_bin())
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    copy
}

#[test]
fn an_executable_is_exempted_by_the_file_it_runs_and_only_from_its_lists() {
    let dir = TempDir::new("exe");
    let lists = [
        list_file(&dir, "kept", &[LISTED]),
        list_file(&dir, "other", &["127.0.0.67"]),
    ];
    let vw = Instance::new("exe");
    let exempt_exe = probe_copy("exempt-probe");
    vw.write_config(&config_with(&format!(
        "[[exemptions]]\nid = \"scanner\"\nreason = \"asset inventory\"\n\
         expires = \"2099-12-31\"\nexecutables = [{:?}]\nlists = [\"kept\"]\n",
        exempt_exe.display().to_string()
    )));
    let daemon = vw.start(&lists, &[]);
    let (_l1, port) = listen(&format!("{LISTED}:0"));
    let (_l2, port2) = listen("127.0.0.67:0");
    // The probe waits first, so the daemon's check (every 200 ms) finds the process.
    let ops = [
        ("sleep", "1000".to_owned()),
        ("tcp", format!("{LISTED}:{port}")),
        ("tcp", format!("127.0.0.67:{port2}")),
    ];
    let exempt = run_in(&exempt_exe, &vw.cgroup, &ops);
    assert!(exempt.attempts[0].ok, "its list: {:?}", exempt.attempts[0]);
    assert!(
        exempt.attempts[1].refused(),
        "another list: {:?}",
        exempt.attempts[1]
    );
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| {
        e["pid"] == exempt.pid && e["action"] == "exempted"
    });
    assert_eq!(event["exemption"], "scanner");
    assert_eq!(event["list"], "kept");
    // The same program from another file is not exempt.
    let plain = run_in(&probe_bin(), &vw.cgroup, &ops);
    assert!(plain.attempts[0].refused(), "{:?}", plain.attempts[0]);
    let _ = std::fs::remove_dir_all(exempt_exe.parent().expect("dir"));
}

/// Makes `n` refused attempts from a fresh probe.
fn refused_attempts(vw: &Instance, target: &str, n: usize) {
    let ops: Vec<(&str, String)> = (0..n).map(|_| ("tcp", target.to_owned())).collect();
    let run = run_in(&probe_bin(), &vw.cgroup, &ops);
    assert!(
        run.attempts.iter().all(|a| a.refused()),
        "{:?}",
        run.attempts
    );
}

#[test]
fn history_survives_restarts_and_kill_9_and_the_report_counts_every_attempt() {
    let dir = TempDir::new("history");
    let lists = [list_file(&dir, "kaspersky", &[LISTED])];
    let vw = Instance::new("history");
    // Aggregation on (as shipped): the history holds summaries whose counts must add up.
    vw.write_config(
        "[events]\naggregate_window = \"1s\"\nmax_lines_per_second = 0\n\
         max_lines_per_second_per_uid = 0\n",
    );
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");

    let daemon = vw.start(&lists, &[]);
    refused_attempts(&vw, &target, 3);
    assert!(
        eventually(EVENT_TIMEOUT, || stored(&vw, "blocked") == 3),
        "first run: {:?}",
        history(&vw)
    );
    let _ = daemon.kill9();
    // With no daemon, the kernel still refuses and queues the events in the pinned ring.
    refused_attempts(&vw, &target, 2);
    let daemon = vw.start(&lists, &[]);
    refused_attempts(&vw, &target, 4);
    assert!(
        eventually(EVENT_TIMEOUT, || stored(&vw, "blocked") == 9),
        "after kill -9 and restart: {} stored",
        stored(&vw, "blocked")
    );
    let (status, _) = daemon.stop();
    assert!(status.success());
    let daemon = vw.start(&lists, &[]);
    refused_attempts(&vw, &target, 1);
    assert!(
        eventually(EVENT_TIMEOUT, || stored(&vw, "blocked") == 10),
        "after a clean restart: {} stored",
        stored(&vw, "blocked")
    );
    // Nothing counted twice: the total stays once every window has closed.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stored(&vw, "blocked"), 10);
    let (code, stdout, _) = vw.cli(&["events", "--json", "--list", "nope"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "filters apply to the history"
    );

    let report = report_json(&vw);
    assert_eq!(report["totals"]["blocked"], 10, "{report:#}");
    assert_eq!(report["vendors"][0]["list"], "kaspersky");
    assert_eq!(report["vendors"][0]["totals"]["blocked"], 10);
    let per_day: u64 = report["vendors"][0]["per_day"]
        .as_object()
        .expect("per_day")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(per_day, 10);
    let (code, text, _) = vw.cli(&["report", "--since", "1h"]);
    assert_eq!(code, 0);
    assert!(text.contains("attempts: 10 blocked"), "{text}");

    let html = vw.dir().join("report.html");
    let (code, out, err) = vw.cli(&[
        "report",
        "--since",
        "1h",
        "--format",
        "html",
        "-o",
        &html.display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let fields = rendered_fields(&html, &vw.dir().join("report.png"));
    assert!(!fields.is_empty(), "no numbers in the rendered report");
    for (field, shown) in &fields {
        let in_json = lookup(&report, field)
            .unwrap_or_else(|| panic!("{field} shown in the HTML is not in the JSON"));
        assert_eq!(
            in_json.as_u64(),
            Some(*shown),
            "{field}: HTML {shown}, JSON {in_json}"
        );
    }
    assert!(
        fields
            .iter()
            .any(|(f, n)| f == "totals.blocked" && *n == 10)
    );
    if let Ok(keep) = std::env::var("VENDORWALL_KEEP_REPORT") {
        let _ = std::fs::copy(vw.dir().join("report.png"), format!("{keep}.png"));
        let _ = std::fs::copy(&html, format!("{keep}.html"));
    }
    drop(daemon);
}

fn report_json(vw: &Instance) -> Value {
    let (code, stdout, stderr) = vw.cli(&["report", "--since", "1h", "--format", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `a.0.b` in `value`.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
}

/// Renders `html` in headless Chromium: a screenshot (that it draws at all) and the DOM it
/// built, from which every `data-field` number is read.
fn rendered_fields(html: &Path, png: &Path) -> Vec<(String, u64)> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new("which")
                .arg(c)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is not installed (cargo xtask test installs it)");
    let profile = TempDir::new("chromium-profile");
    let base = |cmd: &mut std::process::Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let url = format!("file://{}", html.display());
    let mut shot = std::process::Command::new(chromium);
    base(&mut shot);
    let out = shot
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "the screenshot is {size} bytes");
    let mut dump = std::process::Command::new(chromium);
    base(&mut dump);
    let out = dump
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("vendorwall compliance report"), "{dom}");
    let mut fields = Vec::new();
    for part in dom.split("data-field=\"").skip(1) {
        let Some((field, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(text) = rest.split_once('>').map(|(_, t)| t) else {
            continue;
        };
        let number: String = text.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = number.parse() {
            fields.push((field.to_owned(), n));
        }
    }
    fields
}

#[test]
fn events_name_the_package_that_owns_the_executable() {
    let dir = TempDir::new("package");
    let lists = [list_file(&dir, "package", &[LISTED])];
    let vw = Instance::new("package");
    let daemon = vw.start(&lists, &[]);
    // The daemon indexes the package database on a thread of its own; events name packages
    // from then on. (Reading this host's database over 9p under emulation takes a while.)
    assert!(
        eventually(Duration::from_secs(90), || daemon
            .stderr_so_far()
            .contains("package index:")),
        "no package index: {}",
        daemon.stderr_so_far()
    );
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    // bash from this host's dpkg database: the shell moves itself into the test cgroup, then
    // execs bash, which connects and stays until the daemon has read /proc.
    let owner = std::process::Command::new("dpkg-query")
        .args(["-S", "/bin/bash"])
        .output()
        .expect("dpkg-query");
    let owner = String::from_utf8_lossy(&owner.stdout);
    let owner = owner
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        !owner.is_empty(),
        "this host's dpkg does not know /bin/bash"
    );
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec /bin/bash -c \
         '{{ : 3<>/dev/tcp/{LISTED}/{port}; }} 2>/dev/null; read -t 3 _'",
        vw.cgroup.path().display()
    );
    let mut shell = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = shell.id();
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == pid);
    drop(shell.stdin.take());
    let _ = shell.wait();
    assert_eq!(event["action"], "blocked", "{event}");
    let exe = std::fs::canonicalize("/bin/bash").expect("bash");
    assert_eq!(event["exe"], exe.display().to_string().as_str(), "{event}");
    assert_eq!(event["package"], owner.as_str(), "{event}");
}
