//! The bypass matrix (issue 6): every path by which a process in a covered cgroup could still
//! reach a listed range, each tried for real and refused. docs/THREAT-MODEL.md maps each row to
//! its hook and to the test here, and lists what remains out of reach.

use std::time::Duration;

use vendorwall_e2e::{
    TempDir, bpf,
    instance::Instance,
    list_file, listen,
    netns::NetNs,
    probe::{Holder, run_as_root_in, run_in, run_in_netns},
    probe_bin,
};

const LISTED: &str = "127.0.0.66";
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn assert_all_refused(run: &vendorwall_e2e::probe::ProbeRun) {
    for attempt in &run.attempts {
        assert!(attempt.refused(), "not refused: {attempt:?}");
    }
}

#[test]
fn every_udp_send_path_is_refused() {
    let dir = TempDir::new("udp-paths");
    let lists = [list_file(&dir, "udp-paths", &[LISTED])];
    let vw = Instance::new("udp-paths");
    let daemon = vw.start(&lists, &[]);
    let target = format!("{LISTED}:5353");
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[
            ("udp", target.clone()),
            ("sendmsg", target.clone()),
            ("sendmmsg", target.clone()),
            ("udp-connect", target.clone()),
            ("udp", format!("[::ffff:{LISTED}]:5353")),
        ],
    );
    assert_all_refused(&run);
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    assert_eq!(event["protocol"], "udp");
}

#[test]
fn tcp_fast_open_and_io_uring_connect_are_refused() {
    let dir = TempDir::new("tfo");
    let lists = [list_file(&dir, "tfo", &[LISTED])];
    let vw = Instance::new("tfo");
    let _daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[
            ("tfo", target.clone()),
            ("uring-connect", target.clone()),
            ("tfo", format!("[::ffff:{LISTED}]:{port}")),
            ("uring-connect", format!("[::ffff:{LISTED}]:{port}")),
        ],
    );
    assert_all_refused(&run);
}

#[test]
fn ipv6_tcp_and_connected_udp_are_refused_against_a_namespace_host() {
    let ns = NetNs::new("v6rows", &[0x66]);
    let dir = TempDir::new("v6rows");
    let listed = ns.addr(0x66);
    let lists = [list_file(&dir, "v6rows", &[&format!("{listed}/128")])];
    let vw = Instance::new("v6rows");
    let _daemon = vw.start(&lists, &[]);
    let run = run_in(
        &probe_bin(),
        &vw.cgroup,
        &[
            ("tcp", format!("[{listed}]:80")),
            ("udp-connect", format!("[{listed}]:53")),
            ("sendmsg", format!("[{listed}]:53")),
            ("tfo", format!("[{listed}]:80")),
        ],
    );
    assert_all_refused(&run);
}

#[test]
fn embedded_ipv4_in_nat64_6to4_and_compatible_addresses_is_refused() {
    // Attempts to these forms run in a namespace with nothing but its loopback, so even an
    // attempt that got through could not leave the machine.
    let ns = NetNs::isolated("embedded");
    let dir = TempDir::new("embedded");
    let lists = [list_file(&dir, "embedded", &[LISTED])];
    let vw = Instance::new("embedded");
    let nat64 = "[64:ff9b::7f00:42]:80"; // 127.0.0.66 behind the NAT64 well-known prefix
    let six_to_four = "[2002:7f00:42::1]:80"; // 127.0.0.66 as a 6to4 prefix
    let compatible = format!("[::{LISTED}]:80");

    // Off by default: NAT64 and 6to4 prefixes can be legitimate native IPv6 elsewhere.
    let daemon = vw.start(&lists, &[]);
    let run = run_in_netns(
        &probe_bin(),
        &ns,
        &vw.cgroup,
        &[("tcp", nat64.into()), ("tcp", compatible.clone())],
    );
    assert!(
        !run.attempts[0].refused(),
        "NAT64 checks must be opt-in: {:?}",
        run.attempts[0]
    );
    assert!(
        run.attempts[1].refused(),
        "IPv4-compatible is always checked: {:?}",
        run.attempts[1]
    );
    drop(daemon);

    let _daemon = vw.start(&lists, &["--nat64", "--6to4"]);
    let run = run_in_netns(
        &probe_bin(),
        &ns,
        &vw.cgroup,
        &[
            ("tcp", nat64.into()),
            ("udp", nat64.into()),
            ("tcp", six_to_four.into()),
            ("sendmsg", six_to_four.into()),
            ("tcp", compatible),
        ],
    );
    assert_all_refused(&run);
}

#[test]
fn processes_in_other_network_namespaces_and_nested_cgroups_are_refused() {
    let ns = NetNs::isolated("otherns");
    let dir = TempDir::new("nested");
    let lists = [list_file(&dir, "nested", &[LISTED])];
    let vw = Instance::new("nested");
    let _daemon = vw.start(&lists, &[]);
    let child = vw.cgroup.child("child");
    let grandchild = child.child("grandchild");
    let target = format!("{LISTED}:9");
    assert_all_refused(&run_in(
        &probe_bin(),
        &grandchild,
        &[("tcp", target.clone())],
    ));
    // The namespace's own loopback also answers 127.0.0.66: a different network, same refusal.
    assert_all_refused(&run_in_netns(
        &probe_bin(),
        &ns,
        &grandchild,
        &[("tcp", target.clone()), ("udp", target)],
    ));
    drop(grandchild);
    drop(child);
}

#[test]
fn a_child_cgroups_own_allow_all_program_cannot_override_the_refusal() {
    let dir = TempDir::new("override");
    let lists = [list_file(&dir, "override", &[LISTED])];
    let vw = Instance::new("override");
    let _daemon = vw.start(&lists, &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    for (name, flags) in [
        ("override", bpf::ALLOW_OVERRIDE),
        ("multi", bpf::ALLOW_MULTI),
    ] {
        let child = vw.cgroup.child(name);
        let prog = bpf::attach_allow_all_connect4(child.path(), flags)
            .unwrap_or_else(|err| panic!("attaching an allow-all program with {name}: {err}"));
        let run = run_in(&probe_bin(), &child, &[("tcp", format!("{LISTED}:{port}"))]);
        assert!(run.attempts[0].refused(), "{name}: {:?}", run.attempts[0]);
        // SAFETY: closing the program fd we loaded.
        unsafe { libc::close(prog) };
        drop(child);
    }
}

#[test]
fn raw_sockets_are_refused_by_the_guard_and_exempt_cgroups_keep_them() {
    let dir = TempDir::new("raw");
    let lists = [list_file(&dir, "raw", &[LISTED])];
    let vw = Instance::new("raw");
    let exempt = vw.cgroup.child("exempt");
    let exempt_path = exempt.path().display().to_string();
    let daemon = vw.start(
        &lists,
        &["--guard-raw-sockets", "--exempt-cgroup", &exempt_path],
    );
    let target = format!("{LISTED}:0");
    let run = run_as_root_in(&probe_bin(), &vw.cgroup, &[("raw-icmp", target.clone())]);
    assert_all_refused(&run);
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == run.pid);
    assert_eq!(event["hook"], "sock_create", "{event:#}");
    assert_eq!(event["list"], "raw-socket-guard", "{event:#}");
    let allowed = run_as_root_in(&probe_bin(), &exempt, &[("raw-icmp", target)]);
    assert!(
        allowed.attempts[0].ok,
        "exempt cgroup: {:?}",
        allowed.attempts[0]
    );
    let (_, status) = vw.status();
    assert!(
        status["counters"]["raw_sockets_refused"].as_u64() >= Some(1),
        "{status:#}"
    );
    drop(daemon);
    drop(exempt);
}

#[test]
fn the_egress_backstop_drops_raw_and_ping_packets_to_listed_ranges() {
    // Ping sockets are only allowed for the groups in net.ipv4.ping_group_range, which is per
    // namespace: widen it inside an isolated namespace, never on the host.
    let ns = NetNs::isolated("egress");
    let widen = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "sysctl",
            "-qw",
            "net.ipv4.ping_group_range=0 2147483647",
        ])
        .status()
        .expect("sysctl");
    assert!(widen.success());
    let dir = TempDir::new("egress");
    let lists = [list_file(&dir, "egress", &[LISTED])];
    let vw = Instance::new("egress");
    let _daemon = vw.start(&lists, &["--egress-backstop"]);
    let listed = format!("{LISTED}:0");
    let run = run_in_netns(
        &probe_bin(),
        &ns,
        &vw.cgroup,
        &[
            ("raw-icmp", listed.clone()),
            ("ping", listed),
            ("raw-icmp", "127.0.0.1:0".into()),
        ],
    );
    assert!(run.attempts[0].refused(), "raw ICMP: {:?}", run.attempts[0]);
    assert!(
        run.attempts[1].refused(),
        "ping socket: {:?}",
        run.attempts[1]
    );
    assert!(
        run.attempts[2].ok,
        "unlisted raw ICMP must pass: {:?}",
        run.attempts[2]
    );
    let (_, status) = vw.status();
    assert!(
        status["counters"]["egress_dropped"].as_u64() >= Some(1),
        "{status:#}"
    );
}

#[test]
fn connections_established_before_listing_or_start_are_terminated() {
    let dir = TempDir::new("established");
    let list = list_file(&dir, "established", &["127.0.0.66"]);
    let vw = Instance::new("established");
    let (early_listener, early_port) = listen("127.0.0.66:0");
    let (late_listener, late_port) = listen("127.0.0.68:0");
    // Made before vendorwall runs at all.
    let early = Holder::connect(
        &probe_bin(),
        &vw.cgroup,
        &format!("127.0.0.66:{early_port}"),
    );
    let (_early_server, _) = early_listener.accept().expect("accept early");
    let daemon = vw.start(std::slice::from_ref(&list), &[]);
    let early_pid = early.pid;
    assert_eq!(
        early.ended(),
        Some(libc::ECONNABORTED),
        "a connection from before the start survived"
    );
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == early_pid);
    assert_eq!(event["action"], "terminated", "{event:#}");
    assert_eq!(event["hook"], "established", "{event:#}");
    assert_eq!(event["dst"], "127.0.0.66");
    assert_eq!(event["list"], "established");

    // Made while its destination was not listed, then the list grows.
    let late = Holder::connect(&probe_bin(), &vw.cgroup, &format!("127.0.0.68:{late_port}"));
    let (_late_server, _) = late_listener.accept().expect("accept late");
    std::fs::write(&list, "127.0.0.66\n127.0.0.68\n").expect("list it");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    let late_pid = late.pid;
    assert_eq!(
        late.ended(),
        Some(libc::ECONNABORTED),
        "a connection to a newly listed range survived"
    );
    let event = daemon.expect_event(EVENT_TIMEOUT, |e| e["pid"] == late_pid);
    assert_eq!(event["action"], "terminated", "{event:#}");
    assert_eq!(event["dst"], "127.0.0.68");
}
