//! Fail-closed persistence (issue 4) on the real kernel: enforcement outlives the daemon (kill -9,
//! restart, upgrade, map migration), only `unload` removes it, and the operator sees it all in
//! `status` and systemd notifications.

use std::time::Duration;

use serde_json::Value;
use vendorwall_e2e::{
    TempDir, bpf, eventually, instance::Instance, link_ids, list_file, listen, probe::Hammer,
    probe::run_in, probe_bin,
};

const LISTED: &str = "127.0.0.66";
const HAMMER_MAX: Duration = Duration::from_secs(60);
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn map_id(status: &Value, map: &str) -> Option<u32> {
    let pin_dir = status["pin_dir"].as_str()?;
    let generation = status["generation"].as_u64()?;
    let path = std::path::Path::new(pin_dir)
        .join(format!("g{generation}"))
        .join(map);
    blocker_user::kernel::inspect::map_id(&path)
}

#[test]
fn kill_9_keeps_enforcing_and_a_restart_rewrites_nothing() {
    let dir = TempDir::new("kill9");
    let lists = [list_file(
        &dir,
        "kill9",
        &[LISTED, "192.0.2.0/24", "2001:db8::/32"],
    )];
    let vw = Instance::new("kill9");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let daemon = vw.start(&lists, &[]);
    let (_, before) = vw.status();
    // The listed host lives in the sorted hosts, the /24 in the /24 hash.
    let block_maps = ["BLOCK_HOSTS_SORTED_V4", "BLOCK_NETS24_V4", "BLOCK_TRIE_V4"]
        .map(|name| map_id(&before, name).unwrap_or_else(|| panic!("{name} pinned")));

    let mut hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        HAMMER_MAX,
    );
    let running = hammer.wait_for(Default::default(), 100);
    daemon.kill9();
    // Attempts made with no daemon at all, then through the restart until READY.
    let killed = hammer.mark();
    let dead = hammer.wait_for(killed, 200);
    let (code, down) = vw.status();
    assert_eq!(
        code, 0,
        "enforcement must stay in place with the daemon dead: {down:#}"
    );
    assert_eq!(down["daemon_running"], false, "{down:#}");
    let restarting = hammer.mark();
    let restarted = vw.start(&lists, &[]);
    let ready = hammer.mark();
    let after_ready = hammer.wait_for(ready, 100);
    let counts = hammer.stop();
    assert_eq!(counts.ok, 0, "a connection got through: {counts:?}");
    for (phase, made) in [
        ("before the kill", running),
        ("with the daemon dead", dead.since(killed)),
        ("while the daemon restarted", ready.since(restarting)),
        ("after the restart", after_ready.since(ready)),
    ] {
        assert!(
            made.refused > 0 && made.ok == 0,
            "{phase}: {made:?} (every phase must be hammered and refused)"
        );
    }

    let (_, after) = vw.status();
    let stats = &after["daemon"]["last_sync_stats"];
    assert_eq!(stats["inserted"], 0, "{after:#}");
    assert_eq!(stats["updated"], 0, "{after:#}");
    assert_eq!(stats["deleted"], 0, "{after:#}");
    assert_eq!(stats["unchanged"], 3, "{after:#}");
    for (name, id) in ["BLOCK_HOSTS_SORTED_V4", "BLOCK_NETS24_V4", "BLOCK_TRIE_V4"]
        .iter()
        .zip(block_maps)
    {
        assert_eq!(map_id(&after, name), Some(id), "{name} was not reused");
    }
    assert_eq!(
        after["generation"],
        before["generation"].as_u64().expect("gen") + 1
    );
    drop(restarted);
}

#[test]
fn a_changed_map_size_migrates_without_a_gap() {
    let dir = TempDir::new("migrate");
    let lists = [list_file(&dir, "migrate", &[LISTED, "198.51.100.0/24"])];
    let vw = Instance::new("migrate");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let first = vw.start(&lists, &["--max-v4", "1000"]);
    let (_, before) = vw.status();
    // The IPv4 trie's capacity is `--max-v4`; the hashes are fitted to the two entries and
    // still fit, so only the trie is new.
    let (v4_before, v6_before) = (
        map_id(&before, "BLOCK_TRIE_V4"),
        map_id(&before, "BLOCK_SORTED_V6"),
    );
    assert!(v4_before.is_some() && v6_before.is_some(), "{before:#}");
    let hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        HAMMER_MAX,
    );
    let (status, stderr) = first.stop();
    assert!(status.success(), "{status}: {stderr}");

    let second = vw.start(&lists, &["--max-v4", "2000"]);
    std::thread::sleep(Duration::from_millis(300));
    let counts = hammer.stop();
    assert_eq!(
        counts.ok, 0,
        "a connection got through during the migration: {counts:?}"
    );
    assert!(counts.refused > 100, "{counts:?}");

    let (code, after) = vw.status();
    assert_eq!(code, 0, "{after:#}");
    assert_ne!(
        map_id(&after, "BLOCK_TRIE_V4"),
        v4_before,
        "a new map was expected"
    );
    assert_eq!(
        map_id(&after, "BLOCK_SORTED_V6"),
        v6_before,
        "BLOCK_SORTED_V6 fits: reused"
    );
    assert_eq!(after["fill"]["block_v4"], 2, "{after:#}");
    drop(second);
}

#[test]
fn a_list_that_outgrows_its_hosts_map_moves_to_a_bigger_one_without_a_gap() {
    let dir = TempDir::new("grow");
    let few: Vec<String> = (1..=3).map(|i| format!("10.77.0.{i}")).collect();
    // More hosts than the smallest hash holds (4096), LISTED among them throughout; odd
    // addresses only, so aggregation keeps each a /32.
    let many: Vec<String> = (0..6000u32)
        .map(|i| format!("10.77.{}.{}", i / 120, 1 + 2 * (i % 120)))
        .chain([LISTED.to_owned()])
        .collect();
    let few_refs: Vec<&str> = few.iter().map(String::as_str).chain([LISTED]).collect();
    let list = list_file(&dir, "grow", &few_refs);
    let vw = Instance::new("grow");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let daemon = vw.start(std::slice::from_ref(&list), &[]);
    let (_, before) = vw.status();
    let hosts_path = |status: &Value| {
        std::path::Path::new(status["pin_dir"].as_str().expect("pin_dir"))
            .join(format!("g{}", status["generation"]))
            .join("BLOCK_HOSTS_SORTED_V4")
    };
    // The hosts a half of the sorted hosts' array holds.
    let capacity = |status: &Value| {
        blocker_user::kernel::inspect::capacity(&hosts_path(status))
            .map(blocker_user::kernel::halves::capacity_of)
    };
    assert_eq!(
        capacity(&before),
        Some(4096),
        "fitted to four hosts: {before:#}"
    );
    let hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        HAMMER_MAX,
    );
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    list_file(&dir, "grow", &many_refs);
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    std::thread::sleep(Duration::from_millis(300));
    let counts = hammer.stop();
    assert_eq!(
        counts.ok, 0,
        "a connection got through while the hash grew: {counts:?}"
    );
    assert!(counts.refused > 100, "{counts:?}");
    let (_, after) = vw.status();
    assert_ne!(after["generation"], before["generation"], "{after:#}");
    assert_eq!(capacity(&after), Some(8192), "{after:#}");
    assert_eq!(after["fill"]["block_v4"], 6001, "{after:#}");
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("map sizes changed: migrating to a new generation"),
        "{stderr}"
    );
}

#[test]
fn many_24s_move_to_the_dense_array_and_back_to_the_hash_without_a_gap() {
    use blocker_user::kernel::sizing::{DENSE24_AT, DENSE24_UNTIL};
    let dir = TempDir::new("dense");
    // The hammer's destination is listed as a /24 throughout: it is refused by the /24 tier,
    // hash or dense, whichever is in force.
    const NET24: &str = "127.0.77.0/24";
    let target = "127.0.77.1";
    // Every other /24 from 11.0.0.0 (never contacted: only counted), so aggregation keeps
    // each a /24.
    let spaced = |count: usize| -> Vec<String> {
        (0..count)
            .map(|i| {
                let block = (11 << 16) + 2 * i;
                format!(
                    "{}.{}.{}.0/24",
                    block >> 16,
                    (block >> 8) & 0xff,
                    block & 0xff
                )
            })
            .chain([NET24.to_owned()])
            .collect()
    };
    let write = |lines: &[String]| {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        list_file(&dir, "dense", &refs)
    };
    let list = write(&spaced(10));
    let vw = Instance::new("dense");
    let (_listener, port) = listen(&format!("{target}:0"));
    let daemon = vw.start(std::slice::from_ref(&list), &[]);
    let chunks = |status: &Value| {
        let path = std::path::Path::new(status["pin_dir"].as_str().expect("pin_dir"))
            .join(format!("g{}", status["generation"]))
            .join("BLOCK_DENSE24_V4");
        blocker_user::kernel::inspect::capacity(&path)
    };
    let (_, sparse) = vw.status();
    assert_eq!(
        chunks(&sparse),
        Some(1),
        "a few /24s stay in the hash: {sparse:#}"
    );
    let hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{target}:{port}"),
        HAMMER_MAX,
    );
    // To the dense array, then below the threshold but above half of it (stays dense), then
    // below half (back to the hash): refused throughout.
    let steps = [
        (DENSE24_AT, Some((1 << 16) + 1)),
        (DENSE24_UNTIL + 1000, Some((1 << 16) + 1)),
        (DENSE24_UNTIL - 1000, Some(1)),
    ];
    for (count, expected) in steps {
        write(&spaced(count));
        // A migration of 196,608 /24s takes over a minute under the matrix's emulation.
        let (code, out, err) = vw.cli(&["reload", "--timeout", "300"]);
        assert_eq!(code, 0, "{count} /24s: {out}{err}");
        let (_, status) = vw.status();
        assert_eq!(chunks(&status), expected, "{count} /24s: {status:#}");
        assert_eq!(status["fill"]["block_v4"], count + 1, "{status:#}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let counts = hammer.stop();
    assert_eq!(
        counts.ok, 0,
        "a connection got through while the /24s changed form: {counts:?}"
    );
    assert!(counts.refused > 100, "{counts:?}");
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn unload_leaves_nothing_attached_or_pinned() {
    let dir = TempDir::new("unload");
    let lists = [list_file(&dir, "unload", &[LISTED])];
    let vw = Instance::new("unload");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let daemon = vw.start(&lists, &[]);
    let (_, status) = vw.status();
    let links = link_ids(&status);
    // The address hooks, and the DNS learner where the kernel runs it (5.17 and newer).
    let learner = usize::from(status["daemon"]["names"]["learning"] == true);
    assert_eq!(links.len(), 4 + learner, "{status:#}");
    assert!(links.iter().all(|&id| bpf::link_exists(id)));

    let (code, stdout, stderr) = vw.cli(&["unload"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("stopping daemon pid"),
        "unload stops the daemon: {stdout}"
    );
    assert!(
        stdout.contains("link_vw_connect4"),
        "unload says what it removed: {stdout}"
    );
    let (status, _) = daemon.stop();
    assert!(
        status.success(),
        "the daemon exits cleanly on unload's SIGTERM"
    );

    assert!(
        !vw.pin_dir.exists(),
        "{} still exists",
        vw.pin_dir.display()
    );
    // The kernel may free a link after the last reference is gone (5.10 defers it to a
    // worker), so give it a moment.
    for id in links {
        assert!(
            vendorwall_e2e::eventually(Duration::from_secs(5), || !bpf::link_exists(id)),
            "link {id} is still in the kernel"
        );
    }
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[("tcp", format!("{LISTED}:{port}"))],
    );
    assert!(
        run.attempts[0].ok,
        "still refused after unload: {:?}",
        run.attempts[0]
    );
    let (code, status) = vw.status();
    assert_eq!(
        code, 1,
        "status must fail when nothing is enforced: {status:#}"
    );
    assert_eq!(status["enforcing"], false);
}

#[test]
fn events_from_while_the_daemon_was_down_are_delivered() {
    let dir = TempDir::new("queued");
    let lists = [list_file(&dir, "queued", &[LISTED])];
    let vw = Instance::new("queued");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    vw.start(&lists, &[]).kill9();

    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[("tcp", format!("{LISTED}:{port}"))],
    );
    assert!(run.attempts[0].refused(), "{:?}", run.attempts[0]);

    let daemon = vw.start(&lists, &[]);
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    assert_eq!(event["dst"], LISTED);
    assert_eq!(event["port"], port);
    assert_eq!(event["list"], "queued");
}

#[test]
fn systemd_notifications_and_status_exit_codes() {
    let dir = TempDir::new("notify");
    let lists = [list_file(&dir, "notify", &[LISTED])];
    let vw = Instance::new("notify");
    let mut daemon = vw.start(&lists, &[]);
    assert!(
        daemon
            .notifications()
            .iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=enforcing 1 prefixes")),
        "{:?}",
        daemon.notifications()
    );
    let (code, status) = vw.status();
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(status["daemon_running"], true);
    assert_eq!(status["fill"]["block_v4"], 1);

    daemon.hangup();
    daemon.wait_for_notify("RELOADING=1", Duration::from_secs(10));
    daemon.wait_for_notify("READY=1", Duration::from_secs(10));
    let reloading = daemon
        .notifications()
        .iter()
        .find(|m| m.contains("RELOADING=1"))
        .expect("seen above");
    assert!(
        reloading.contains("MONOTONIC_USEC="),
        "Type=notify-reload needs it: {reloading}"
    );

    let (stopped, _) = daemon.stop();
    assert!(stopped.success());
    let (code, status) = vw.status();
    assert_eq!(
        code, 0,
        "still enforcing with the daemon stopped: {status:#}"
    );
    assert_eq!(status["daemon_running"], false);
    let (code, _, _) = vw.cli(&["unload"]);
    assert_eq!(code, 0);
    let (code, _) = vw.status();
    assert_eq!(code, 1);
}

#[test]
fn audit_lists_log_and_allow_while_others_enforce() {
    let vw = Instance::new("audit");
    let audit = vw.write("audit-list.netset", "127.0.0.67\n");
    let enforce = vw.write("enforce-list.netset", "127.0.0.66\n");
    vw.write_config(&format!(
        "[[lists]]\nname = \"audited\"\nsources = [{audit:?}]\naction = \"audit\"\n\n\
         [[lists]]\nname = \"enforced\"\nsources = [{enforce:?}]\n"
    ));
    let daemon = vw.start(&[], &[]);
    let (_a, audit_port) = listen("127.0.0.67:0");
    let (_e, enforce_port) = listen("127.0.0.66:0");
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[
            ("tcp", format!("127.0.0.67:{audit_port}")),
            ("tcp", format!("127.0.0.66:{enforce_port}")),
        ],
    );
    assert!(
        run.attempts[0].ok,
        "audit lists allow: {:?}",
        run.attempts[0]
    );
    assert!(
        run.attempts[1].refused(),
        "enforce lists refuse: {:?}",
        run.attempts[1]
    );
    let audited = daemon.expect_event(EVENT_TIMEOUT, |e| e["dst"] == "127.0.0.67");
    assert_eq!(audited["action"], "audited", "{audited:#}");
    assert_eq!(audited["list"], "audited");
    let blocked = daemon.expect_event(EVENT_TIMEOUT, |e| e["dst"] == "127.0.0.66");
    assert_eq!(blocked["action"], "blocked", "{blocked:#}");
}

#[test]
fn dry_run_audits_everything() {
    let dir = TempDir::new("dry");
    let lists = [list_file(&dir, "dry", &[LISTED])];
    let vw = Instance::new("dry");
    let daemon = vw.start(&lists, &["--dry-run"]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[("tcp", format!("{LISTED}:{port}"))],
    );
    assert!(run.attempts[0].ok, "{:?}", run.attempts[0]);
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    assert_eq!(event["action"], "audited");
}

#[test]
fn exempt_cgroups_are_allowed_while_others_are_refused() {
    let dir = TempDir::new("exempt");
    let lists = [list_file(&dir, "exempt", &[LISTED])];
    let vw = Instance::new("exempt");
    let forensics = vw.cgroup.child("forensics.service");
    let exempt_path = forensics.path().display().to_string();
    let _daemon = vw.start(&lists, &["--exempt-cgroup", &exempt_path]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");

    let exempt = run_in(&probe_bin(), &forensics, &[("tcp", target.clone())]);
    assert!(
        exempt.attempts[0].ok,
        "exempt cgroup refused: {:?}",
        exempt.attempts[0]
    );
    let other = run_in(&probe_bin(), &vw.cgroup, &[("tcp", target)]);
    assert!(other.attempts[0].refused(), "{:?}", other.attempts[0]);
    drop(forensics);
}

#[test]
fn exempt_units_are_found_by_name_and_followed_across_restarts() {
    let dir = TempDir::new("unit");
    let lists = [list_file(&dir, "unit", &[LISTED])];
    let vw = Instance::new("unit");
    // A unit name unique to this test, so no other test's cgroup matches it.
    let unit = format!("vwtest-{}.service", std::process::id());
    vw.write_config(&format!("[exempt]\nunits = [{unit:?}]\n"));
    let service = vw.cgroup.child(&unit);
    let _daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");
    let run = run_in(&probe_bin(), &service, &[("tcp", target.clone())]);
    assert!(
        run.attempts[0].ok,
        "unit cgroup refused: {:?}",
        run.attempts[0]
    );

    // The unit restarts: its cgroup is recreated with a new id, which the daemon re-resolves.
    drop(service);
    let service = vw.cgroup.child(&unit);
    let followed = eventually(Duration::from_secs(10), || {
        run_in(&probe_bin(), &service, &[("tcp", target.clone())]).attempts[0].ok
    });
    assert!(
        followed,
        "the restarted unit's new cgroup was never exempted"
    );
    drop(service);
}

#[test]
fn detached_links_are_reattached_within_the_integrity_interval() {
    // The documented bound: one `integrity_check_interval`. The margin covers the re-attach
    // itself (the loaded programs attached again in place, no program verified again: a few
    // ms here, 0.5 s under the kernel matrix's emulation, QEMU without KVM). The state file is
    // polled, not a probe run, so the wait measures the daemon and not process start-up.
    const INTERVAL: Duration = Duration::from_secs(1);
    const MARGIN: Duration = Duration::from_secs(2);
    let dir = TempDir::new("tamper");
    let lists = [list_file(&dir, "tamper", &[LISTED])];
    let vw = Instance::new("tamper");
    vw.write_config("integrity_check_interval = \"1s\"\n");
    let _daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let (_, status) = vw.status();
    let state_file = vw.run_dir().join("state.json");
    let reattachments = || {
        std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["reattachments"].as_u64())
            .unwrap_or(0)
    };
    let detached = std::time::Instant::now();
    for id in link_ids(&status) {
        bpf::detach_link(id);
    }
    let mut took = Duration::ZERO;
    let recorded = eventually(INTERVAL + MARGIN, || {
        took = detached.elapsed();
        reattachments() >= 1
    });
    assert!(
        recorded,
        "links were not re-attached within {:?} of the detach",
        INTERVAL + MARGIN
    );
    eprintln!("re-attached within {took:?}");
    let target = format!("{LISTED}:{port}");
    assert!(
        run_in(&probe_bin(), &vw.cgroup, &[("tcp", target)]).attempts[0].refused(),
        "enforcement is not back although the daemon says it re-attached"
    );
    let (code, status) = vw.status();
    assert_eq!(code, 0, "{status:#}");
}

/// Runs `vendorwall <args>` that is expected to exit on its own within 10 s: (code, stderr).
fn run_to_exit(args: &[String]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(vendorwall_e2e::vendorwall_bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vendorwall");
    let exited = eventually(Duration::from_secs(30), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait");
    (
        exited.then(|| out.status.code()).flatten(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_daemon_on_the_same_pins_exits_2_naming_the_first_and_changes_nothing() {
    let dir = TempDir::new("second");
    let lists = [list_file(&dir, "second", &[LISTED])];
    let other = [list_file(&dir, "other", &["127.0.0.67"])];
    let vw = Instance::new("second");
    let daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let (_, before) = vw.status();
    let first = daemon.pid();
    // The same pins from another run directory (the pin lock), then the same run directory
    // too (the run-directory lock is taken first).
    let elsewhere = dir.path().join("other-run");
    let mut args = vw.run_args(&other);
    let at = args
        .iter()
        .position(|a| a == "--run-dir")
        .expect("--run-dir")
        + 1;
    args[at] = elsewhere.display().to_string();
    for (args, what) in [
        (args, "pin directory"),
        (vw.run_args(&other), "run directory"),
    ] {
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(2), "a second daemon did not exit 2: {stderr}");
        assert!(
            stderr.contains(&format!(
                "another vendorwall daemon (pid {first}) already runs with {what}"
            )),
            "{stderr}"
        );
    }
    let (code, after) = vw.status();
    assert_eq!(code, 0, "{after:#}");
    assert_eq!(after["generation"], before["generation"], "{after:#}");
    assert_eq!(link_ids(&after), link_ids(&before));
    assert_eq!(after["daemon"]["pid"], first);
    assert_eq!(
        after["fill"], before["fill"],
        "the second daemon wrote into the maps"
    );
    let target = format!("{LISTED}:{port}");
    assert!(run_in(&probe_bin(), &vw.cgroup, &[("tcp", target)]).attempts[0].refused());
    drop(daemon);
}

#[test]
fn reload_and_unload_never_signal_a_process_that_took_over_the_pid() {
    let dir = TempDir::new("reuse");
    let lists = [list_file(&dir, "reuse", &[LISTED])];
    let vw = Instance::new("reuse");
    let daemon = vw.start(&lists, &[]);
    let _ = daemon.kill9();
    // After a kill -9 the pid file stays; say the pid now belongs to an unrelated process.
    let mut stranger = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    std::fs::write(
        vw.run_dir().join("vendorwall.pid"),
        format!("{}\n", stranger.id()),
    )
    .expect("write pid file");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("pid {} in", stranger.id())) && err.contains("another process now"),
        "{err}"
    );
    let (code, out, err) = vw.cli(&["unload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("another process now"), "{out}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        stranger.try_wait().expect("try_wait").is_none(),
        "a SIGHUP or SIGTERM reached the process that took over the pid"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}
