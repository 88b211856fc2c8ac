//! Enforcement core (issue 2), on the real kernel: a real `vendorwall run` attached to a child
//! cgroup, real connection attempts from a process moved into it, and the JSON events it writes.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;
use vendorwall_e2e::{
    TempDir,
    instance::Instance,
    list_file as list, listen,
    netns::NetNs,
    probe::{Listener, PROBE_UID, run_in},
};

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// A loopback address the tests list; the kernel routes all of 127/8 to lo.
const LISTED_V4: &str = "127.0.0.66";

fn probe() -> PathBuf {
    vendorwall_e2e::probe_bin()
}

/// Runs a vendorwall command line that is expected to exit: (code, stderr).
fn run_to_exit(args: &[String]) -> (i32, String) {
    let out = std::process::Command::new(vendorwall_e2e::vendorwall_bin())
        .args(args)
        .output()
        .expect("run vendorwall");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts the fields every event must carry for an attempt by the probe.
fn assert_event(event: &Value, pid: u32, dst: &str, port: u16, protocol: &str, list: &str) {
    assert_eq!(event["action"], "blocked", "{event:#}");
    assert_eq!(event["pid"], pid, "{event:#}");
    assert_eq!(event["comm"], "vw-probe", "{event:#}");
    assert_eq!(event["uid"], PROBE_UID, "{event:#}");
    assert_eq!(event["dst"], dst, "{event:#}");
    assert_eq!(event["port"], port, "{event:#}");
    assert_eq!(event["protocol"], protocol, "{event:#}");
    assert_eq!(event["list"], list, "{event:#}");
    assert!(
        event["exe"]
            .as_str()
            .is_none_or(|exe| exe.ends_with("vw-probe")),
        "{event:#}"
    );
    let time = event["time"].as_str().expect("time is a string");
    assert!(
        time.len() >= 20 && time.ends_with('Z'),
        "RFC 3339 UTC time: {time}"
    );
}

#[test]
fn tcp_to_a_listed_address_is_refused_and_unlisted_reached() {
    let dir = TempDir::new("tcp");
    let lists = [list(&dir, "loopback-test", &[LISTED_V4])];
    let vw = Instance::new("tcp");
    let daemon = vw.start(&lists, &[]);
    let cgroup = &vw.cgroup;
    let (_listed, listed_port) = listen(&format!("{LISTED_V4}:0"));
    let (_unlisted, unlisted_port) = listen("127.0.0.1:0");

    let run = run_in(
        &probe(),
        cgroup,
        &[
            ("tcp", format!("{LISTED_V4}:{listed_port}")),
            ("tcp", format!("127.0.0.1:{unlisted_port}")),
        ],
    );
    assert!(run.attempts[0].refused(), "listed: {:?}", run.attempts[0]);
    assert!(run.attempts[1].ok, "unlisted: {:?}", run.attempts[1]);

    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    assert_event(
        &event,
        run.pid,
        LISTED_V4,
        listed_port,
        "tcp",
        "loopback-test",
    );
    assert_eq!(event["hook"], "connect4");
    assert_eq!(event["prefix"], "127.0.0.66/32");
    assert!(
        event["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("loopback-test.netset:2")),
        "{event:#}"
    );
    assert_eq!(event["cgroup_id"], cgroup.id());
    // The unlisted connection produced no event.
    let more = daemon.events_within(Duration::from_millis(300));
    assert!(more.is_empty(), "unexpected events: {more:#?}");
}

#[test]
fn udp_to_a_listed_address_is_refused() {
    let dir = TempDir::new("udp");
    let lists = [list(&dir, "udp-test", &["127.0.0.64/30"])];
    let vw = Instance::new("udp");
    let daemon = vw.start(&lists, &[]);
    let cgroup = &vw.cgroup;

    let run = run_in(
        &probe(),
        cgroup,
        &[
            ("udp", format!("{LISTED_V4}:5353")),
            ("udp-connect", format!("{LISTED_V4}:5354")),
            ("udp", "127.0.0.1:9".to_owned()),
        ],
    );
    assert!(run.attempts[0].refused(), "sendto: {:?}", run.attempts[0]);
    assert!(
        run.attempts[1].refused(),
        "connected UDP: {:?}",
        run.attempts[1]
    );
    assert!(run.attempts[2].ok, "unlisted sendto: {:?}", run.attempts[2]);

    let sendto = daemon.expect_event(EVENT_TIMEOUT, |e| e["port"] == 5353);
    assert_event(&sendto, run.pid, LISTED_V4, 5353, "udp", "udp-test");
    assert_eq!(sendto["hook"], "sendmsg4");
    assert_eq!(sendto["prefix"], "127.0.0.64/30");
    let connected = daemon.expect_event(EVENT_TIMEOUT, |e| e["port"] == 5354);
    assert_event(&connected, run.pid, LISTED_V4, 5354, "udp", "udp-test");
    assert_eq!(connected["hook"], "connect4");
}

#[test]
fn ipv4_mapped_ipv6_destinations_are_checked_against_the_ipv4_list() {
    let dir = TempDir::new("mapped");
    let lists = [list(&dir, "mapped-test", &[LISTED_V4])];
    let vw = Instance::new("mapped");
    let daemon = vw.start(&lists, &[]);
    let cgroup = &vw.cgroup;
    let (_listed, port) = listen(&format!("{LISTED_V4}:0"));

    let mapped = format!("[::ffff:{LISTED_V4}]:{port}");
    let run = run_in(
        &probe(),
        cgroup,
        &[
            ("tcp", mapped),
            ("udp", format!("[::ffff:{LISTED_V4}]:5355")),
        ],
    );
    assert!(
        run.attempts[0].refused(),
        "AF_INET6 TCP: {:?}",
        run.attempts[0]
    );
    assert!(
        run.attempts[1].refused(),
        "AF_INET6 UDP: {:?}",
        run.attempts[1]
    );

    let tcp = daemon.expect_event(EVENT_TIMEOUT, |e| e["protocol"] == "tcp");
    assert_event(
        &tcp,
        run.pid,
        &format!("::ffff:{LISTED_V4}"),
        port,
        "tcp",
        "mapped-test",
    );
    assert_eq!(tcp["hook"], "connect6");
    assert_eq!(tcp["prefix"], "127.0.0.66/32");
    // UDP to a mapped address runs the kernel's sendmsg4 hook (the socket talks IPv4).
    let udp = daemon.expect_event(EVENT_TIMEOUT, |e| e["protocol"] == "udp");
    assert_eq!(udp["port"], 5355, "{udp:#}");
    assert_eq!(udp["list"], "mapped-test", "{udp:#}");
    assert!(
        udp["dst"].as_str().is_some_and(|d| d.ends_with(LISTED_V4)),
        "{udp:#}"
    );
}

#[test]
fn ipv6_prefixes_are_enforced_against_a_namespace_host() {
    // The namespace holds ::2 (unlisted) and ::66 (inside the listed ::40/122).
    let ns = NetNs::new("v6", &[2, 0x66]);
    let listed = ns.addr(0x66);
    let unlisted = ns.addr(2);
    let prefix = format!("{}/122", ns.addr(0x40));
    let dir = TempDir::new("v6");
    let lists = [list(&dir, "v6-test", &[&prefix])];
    let vw = Instance::new("v6");
    let daemon = vw.start(&lists, &[]);
    let cgroup = &vw.cgroup;
    let mut listen_cmd = ns.command(&probe());
    listen_cmd.args(["listen", "[::]:8066"]);
    let _listener = Listener::start(listen_cmd);

    let run = run_in(
        &probe(),
        cgroup,
        &[
            ("tcp", format!("[{listed}]:8066")),
            ("tcp", format!("[{unlisted}]:8066")),
            ("udp", format!("[{listed}]:8067")),
        ],
    );
    assert!(run.attempts[0].refused(), "listed: {:?}", run.attempts[0]);
    assert!(run.attempts[1].ok, "unlisted: {:?}", run.attempts[1]);
    assert!(
        run.attempts[2].refused(),
        "listed UDP: {:?}",
        run.attempts[2]
    );

    let tcp = daemon.expect_event(EVENT_TIMEOUT, |e| e["protocol"] == "tcp");
    assert_event(&tcp, run.pid, &listed.to_string(), 8066, "tcp", "v6-test");
    assert_eq!(tcp["hook"], "connect6");
    assert_eq!(tcp["prefix"], prefix);
    let udp = daemon.expect_event(EVENT_TIMEOUT, |e| e["protocol"] == "udp");
    assert_event(&udp, run.pid, &listed.to_string(), 8067, "udp", "v6-test");
    assert_eq!(udp["hook"], "sendmsg6");
}

/// IPv6 prefixes of two lists nest: the inner one is cut out of the outer one in the kernel's
/// sorted pieces and wins, as the longest match; a reload that drops the inner list leaves the
/// outer one whole, and the address stays refused throughout.
#[test]
fn nested_ipv6_prefixes_of_two_lists_each_refuse_with_their_own_list() {
    // ::2, ::66 and ::70 inside the outer ::/120, ::66/128 in the inner list; ::102 outside
    // both. ::70 comes after the inner prefix: only a cut outer prefix still holds it.
    let ns = NetNs::new("v6nest", &[2, 0x66, 0x70, 0x102]);
    let (inner_addr, outer_addr, unlisted) = (ns.addr(0x66), ns.addr(2), ns.addr(0x102));
    let (outer, inner) = (format!("{}/120", ns.addr(0)), format!("{inner_addr}/128"));
    let vw = Instance::new("v6nest");
    let outer_list = vw.write("v6-outer.netset", &format!("{outer}\n"));
    let inner_list = vw.write("v6-inner.netset", &format!("{inner}\n"));
    let daemon = vw.start(&[outer_list.clone(), inner_list.clone()], &[]);
    let lists = [&outer_list, &inner_list];
    let mut listen_cmd = ns.command(&probe());
    listen_cmd.args(["listen", "[::]:8066"]);
    let _listener = Listener::start(listen_cmd);

    // A connection to `addr` is refused, and its event names `list` and `prefix`.
    let refused_by = |addr: &std::net::Ipv6Addr, list: &str, prefix: &str| {
        let run = run_in(&probe(), &vw.cgroup, &[("tcp", format!("[{addr}]:8066"))]);
        assert!(run.attempts[0].refused(), "{addr}: {:?}", run.attempts[0]);
        let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
        assert_eq!(
            (&event["list"], &event["prefix"]),
            (&Value::from(list), &Value::from(prefix)),
            "{event:#}"
        );
    };
    refused_by(&inner_addr, "v6-inner", &inner);
    refused_by(&outer_addr, "v6-outer", &outer);
    refused_by(&ns.addr(0x70), "v6-outer", &outer);
    let run = run_in(
        &probe(),
        &vw.cgroup,
        &[("tcp", format!("[{unlisted}]:8066"))],
    );
    assert!(run.attempts[0].ok, "unlisted: {:?}", run.attempts[0]);
    assert_eq!(
        kernel_list(&vw, &inner_addr, &lists),
        Some("v6-inner".into())
    );
    assert_eq!(
        kernel_list(&vw, &outer_addr, &lists),
        Some("v6-outer".into())
    );
    assert_eq!(kernel_list(&vw, &unlisted, &lists), None);

    // The inner list moves on to ::77: ::66 falls to the outer prefix, refused all along.
    std::fs::write(&inner_list, format!("{}/128\n", ns.addr(0x77))).expect("edit the inner list");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    refused_by(&inner_addr, "v6-outer", &outer);
    assert_eq!(
        kernel_list(&vw, &inner_addr, &lists),
        Some("v6-outer".into())
    );
}

/// The list `vendorwall check` reads off the pinned maps for `addr`.
fn kernel_list(vw: &Instance, addr: &std::net::Ipv6Addr, lists: &[&PathBuf]) -> Option<String> {
    let addr = addr.to_string();
    let mut args = vec!["check", &addr, "--json"];
    for list in lists {
        args.extend(["--list", list.to_str().expect("utf-8 path")]);
    }
    let (_, out, err) = vw.cli(&args);
    let verdict: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    verdict["kernel"]["list"].as_str().map(str::to_owned)
}

#[test]
fn a_malformed_line_is_skipped_and_named_and_strict_fails_only_its_list() {
    let dir = TempDir::new("malformed");
    let good = list(&dir, "good", &[LISTED_V4]);
    let bad = dir.write("bad.netset", "# header\n127.0.0.77\n192.0.2.300\n");
    let vw = Instance::new("malformed");
    let named = format!("{}:3: invalid IP address: \"192.0.2.300\"", bad.display());
    // Skipped, named, and the rest of both lists enforced.
    let daemon = vw.start(&[good.clone(), bad.clone()], &[]);
    let (_listener, port) = listen("127.0.0.1:0");
    let run = run_in(
        &probe(),
        &vw.cgroup,
        &[
            ("tcp", format!("{LISTED_V4}:{port}")),
            ("tcp", format!("127.0.0.77:{port}")),
        ],
    );
    assert!(
        run.attempts.iter().all(|a| a.refused()),
        "{:?}",
        run.attempts
    );
    assert_eq!(vw.status().0, 0, "a skipped line does not degrade");
    let (_, stderr) = daemon.stop();
    assert!(stderr.contains(&named), "{stderr}");
    // --strict: the bad list fails as a whole, the good one is still enforced.
    let daemon = vw.start(&[good, bad], &["--strict"]);
    let run = run_in(
        &probe(),
        &vw.cgroup,
        &[("tcp", format!("{LISTED_V4}:{port}"))],
    );
    assert!(run.attempts[0].refused(), "{:?}", run.attempts[0]);
    let (code, status) = vw.status();
    assert_eq!(code, 1, "degraded: {status:#}");
    assert_eq!(status["not_enforced"][0], "bad", "{status:#}");
    let (_, stderr) = daemon.stop();
    assert!(stderr.contains(&format!("list bad: {named}")), "{stderr}");
}

#[test]
fn a_missing_cgroup_is_named_in_the_error() {
    let dir = TempDir::new("nocg");
    let lists = [list(&dir, "l", &[LISTED_V4])];
    let missing = dir.path().join("no-such-cgroup");
    let vw = Instance::new("nocg");
    let mut args = vw.run_args(&lists);
    let at = args
        .iter()
        .position(|a| a == "--cgroup")
        .expect("run_args names the cgroup");
    args[at + 1] = missing.display().to_string();
    let (code, stderr) = run_to_exit(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

#[test]
fn check_names_list_prefix_and_source_line_of_the_shipped_lists() {
    let blocklists = vendorwall_e2e::repo_root().join("blocklists");
    let dir = blocklists.to_str().expect("utf-8 path");
    // 77.74.176.0/21 is announced by Kaspersky's AS200107 (blocklists/kaspersky.netset).
    let vw = Instance::new("check");
    let (code, stdout, stderr) = vw.cli(&["check", "77.74.177.9", "--blocklists", dir, "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let verdict: Value = serde_json::from_str(stdout.trim()).expect("JSON verdict");
    assert_eq!(verdict["blocked"], true);
    assert_eq!(verdict["list"], "kaspersky");
    assert_eq!(verdict["prefix"], "77.74.176.0/21");
    assert!(
        verdict["source"]
            .as_str()
            .is_some_and(|s| s.contains("kaspersky.netset:")),
        "{verdict:#}"
    );
    let (code, stdout, _) = vw.cli(&["check", "127.0.0.1", "--blocklists", dir]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("not blocked"), "{stdout}");
}

/// IPv4 blocks live in three kernel maps (/32 hosts, /24 networks, the trie for every other
/// length) behind a /24 bitmap; the answer must still be the longest listed prefix. Audit
/// prefixes that contain enforce prefixes make the nesting visible: the wrong tier winning
/// would let a refused address through, or refuse an audited one.
#[test]
fn ipv4_tiers_answer_the_longest_prefix() {
    let vw = Instance::new("tiers");
    let wide = vw.write("wide.netset", "127.77.0.0/16\n127.78.1.0/24\n");
    let narrow_text = "127.77.5.0/24\n127.77.6.128/25\n127.77.7.7\n127.78.1.128/25\n127.78.1.5\n";
    let narrow = vw.write("narrow.netset", narrow_text);
    vw.write_config(&format!(
        "[[lists]]\nname = \"wide\"\nsources = [{wide:?}]\naction = \"audit\"\n\n\
         [[lists]]\nname = \"narrow\"\nsources = [{narrow:?}]\nallow_shrink = true\n"
    ));
    let daemon = vw.start(&[], &[]);
    // (destination, refused, which list the kernel answers with)
    let cases = [
        ("127.77.5.9", true, Some("narrow")), // /24 (hash) over the /16 (trie)
        ("127.77.6.200", true, Some("narrow")), // /25 (trie)
        ("127.77.6.1", false, Some("wide")),  // only the /16
        ("127.77.7.7", true, Some("narrow")), // host (hash)
        ("127.77.7.8", false, Some("wide")),  // the /16 around the host
        ("127.78.1.200", true, Some("narrow")), // /25 (trie) over the /24 (hash)
        ("127.78.1.5", true, Some("narrow")), // host over the /24
        ("127.78.1.6", false, Some("wide")),  // only the /24
        ("127.79.0.1", false, None),          // unlisted
    ];
    let check = |cases: &[(&str, bool, Option<&str>)]| {
        let ops: Vec<(&str, String)> = cases
            .iter()
            .map(|(addr, _, _)| ("udp", format!("{addr}:9")))
            .collect();
        let run = run_in(&probe(), &vw.cgroup, &ops);
        for ((addr, refused, list), attempt) in cases.iter().zip(&run.attempts) {
            assert_eq!(attempt.refused(), *refused, "{addr}: {attempt:?}");
            let (_, out, err) = vw.cli(&["check", addr, "--json"]);
            let verdict: Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
            assert_eq!(
                verdict["kernel"]["list"].as_str(),
                *list,
                "{addr}: {verdict:#}"
            );
        }
        run
    };
    let run = check(&cases);
    let audited = daemon.expect_event(EVENT_TIMEOUT, |e| {
        e["pid"] == run.pid && e["dst"] == "127.78.1.6"
    });
    assert_eq!(audited["action"], "audited", "{audited:#}");

    // Removing the /24 and the host must clear their kernel entries and bitmap bits without
    // losing the /16 around them.
    std::fs::write(&narrow, "127.77.6.128/25\n127.78.1.128/25\n").expect("rewrite list");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "reload: {out} {err}");
    check(&[
        ("127.77.5.9", false, Some("wide")),
        ("127.77.6.200", true, Some("narrow")),
        ("127.77.7.7", false, Some("wide")),
        ("127.78.1.5", false, Some("wide")),
        ("127.78.1.200", true, Some("narrow")),
    ]);
    let (_, status) = vw.status();
    assert_eq!(status["fill"]["block_v4"], 4, "{status:#}");
}

/// The suite runs the probe as another user, who cannot reach a checkout in a 0700 directory
/// (a clone in root's home): the probe must be run from a copy outside it, reachable by that
/// user at every step of its path.
#[test]
fn the_probe_user_can_run_the_probe_from_any_checkout() {
    use std::os::unix::{fs::PermissionsExt as _, process::CommandExt as _};
    let probe = probe();
    assert!(
        !probe.starts_with(vendorwall_e2e::repo_root()),
        "{} is inside the checkout, which may be 0700",
        probe.display()
    );
    for dir in probe.ancestors().skip(1) {
        let mode = std::fs::metadata(dir).expect("stat").permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} is not traversable by others",
            dir.display()
        );
    }
    let out = std::process::Command::new(&probe)
        .uid(PROBE_UID)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("uid {PROBE_UID} cannot run {}: {err}", probe.display()));
    // Without `go` on stdin it exits 2 with its usage message: it ran.
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `status`, `reload`, `unload` and `events` run by a user who may not read the pins, signal the
/// daemon or use its socket
/// say so and exit 2, instead of "NOT in place" or "no daemon is running".
#[test]
fn commands_run_without_privileges_say_permission_denied() {
    use std::os::unix::process::CommandExt as _;
    let dir = TempDir::new("unprivileged");
    let vw = Instance::new("unprivileged");
    let _daemon = vw.start(&[list(&dir, "unprivileged", &[LISTED_V4])], &[]);
    // Pins are created readable by root only, as on a real host.
    for sub in ["status", "reload", "unload", "events"] {
        let out = std::process::Command::new(vendorwall_e2e::vendorwall_bin_for_users())
            .args(vw.global_args())
            .arg(sub)
            .uid(PROBE_UID)
            .output()
            .expect("run vendorwall as the probe user");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {out:?}");
        assert!(
            stderr.contains("permission denied") && stderr.contains("run as root"),
            "{sub}: {stderr}"
        );
    }
    let (code, status) = vw.status();
    assert_eq!(code, 0, "enforcement still in place: {status:#}");
}
