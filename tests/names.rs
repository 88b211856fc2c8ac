//! Vendors reached by name: the kernel's DNS learner reads the answers a DNS server in a test
//! network namespace gives (UDP and TCP, compressed or not, CNAME chains), and the probe's
//! first connection to a learned address, made as soon as it reads the answer, is refused.
//!
//! The probe runs in a namespace holding only its loopback, so connections the programs allow
//! fail with ENETUNREACH and nothing leaves the machine; the DNS server listens on
//! 127.0.0.1:53 inside that namespace.

use std::time::Duration;

use serde_json::Value;
use vendorwall_e2e::{
    dns::{DnsServer, Record, Zone},
    instance::Instance,
    netns::NetNs,
    probe::{self, Attempt},
    probe_bin,
};

const ENETUNREACH: i32 = 101;
const ECONNREFUSED: i32 = 111;

fn zone() -> Zone {
    let mut zone = Zone {
        ttl: 300,
        ..Zone::default()
    };
    let a = |s: &str| Record::A(s.parse().expect("ipv4"));
    zone.add("listed.example", a("198.51.100.1"))
        .add("dnl-05.geo.listed.example", a("198.51.100.2"))
        .add("notlisted.example", a("198.51.100.3"))
        .add("listed.example.elsewhere.example", a("198.51.100.9"))
        .add("upper.listed.example", a("198.51.100.4"))
        // A chain through a listed name to a name of a third party's CDN.
        .add("www.shop.example", Record::Cname("cdn.listed.example".into()))
        .add("cdn.listed.example", Record::Cname("edge.cdn.example".into()))
        .add("edge.cdn.example", a("198.51.100.5"))
        // The same through an unlisted CDN name answered without compression.
        .add("alias.example", Record::Cname("plain.listed.example".into()))
        .add("plain.listed.example", a("198.51.100.6"))
        .add("tcp.listed.example", a("198.51.100.7"))
        .add("v6.listed.example", Record::Aaaa("2001:db8::7".parse().expect("ipv6")))
        .add("local.listed.example", a("127.0.0.1"))
        .add("printer.lan.example", a("127.0.0.2"))
        .add("audited.example", a("198.51.100.8"));
    zone.uncompressed.push("alias.example".into());
    zone
}

fn config(extra: &str) -> String {
    format!(
        "[[lists]]\nname = \"vendor\"\ndomains = [\"listed.example\"]\n\
         [[lists]]\nname = \"watch\"\naction = \"audit\"\ndomains = [\"audited.example\"]\n\
         [[lists]]\nname = \"lan\"\ndomains = [\"lan.example\"]\nlearn_private = true\n\
         [names]\nwarm_start = false\n{extra}"
    )
}

/// Resolves `name` (through `transport`) and connects to its answers, from the test cgroup.
fn resolve(ns: &NetNs, instance: &Instance, transport: &str, name: &str) -> Vec<Attempt> {
    let op = format!("resolve-{transport}");
    let run = probe::run_in_netns(
        &probe_bin(),
        ns,
        &instance.cgroup,
        &[(op.as_str(), format!("{name}:443"))],
    );
    run.attempts
}

fn only(attempts: &[Attempt], addr: &str) -> Attempt {
    assert_eq!(attempts.len(), 1, "one answer expected: {attempts:?}");
    let attempt = attempts[0].clone();
    assert_eq!(attempt.addr, addr, "{attempts:?}");
    attempt
}

fn learner_runs(instance: &Instance) -> bool {
    let (_, status) = instance.status();
    status["daemon"]["names"]["learning"].as_bool() == Some(true)
}

fn check_json(instance: &Instance, target: &str) -> Value {
    let (_, stdout, stderr) = instance.cli(&["check", "--json", target]);
    serde_json::from_str(stdout.lines().next().unwrap_or(""))
        .unwrap_or_else(|err| panic!("check --json {target}: {err}: {stdout}{stderr}"))
}

#[test]
fn answers_to_listed_names_are_refused_on_the_first_connection() {
    let instance = Instance::new("names");
    instance.write_config(&config(""));
    let daemon = instance.start(&[], &[]);
    if !learner_runs(&instance) {
        eprintln!("skipped: the DNS learner does not run on this kernel (tested by the next test)");
        return;
    }
    let ns = NetNs::isolated("names");
    let _server = DnsServer::start(&ns, zone());
    let refused = |transport: &str, name: &str, addr: &str| {
        let attempt = only(&resolve(&ns, &instance, transport, name), addr);
        assert!(attempt.refused(), "{name} -> {addr} must be refused at once: {attempt:?}");
    };
    let allowed = |name: &str, addr: &str, errno: i32| {
        let attempt = only(&resolve(&ns, &instance, "udp", name), addr);
        assert_eq!(attempt.errno, Some(errno), "{name} -> {addr} is not blocked: {attempt:?}");
    };
    refused("udp", "listed.example", "198.51.100.1:443");
    refused("udp", "dnl-05.geo.listed.example", "198.51.100.2:443");
    refused("udp", "UPPER.Listed.EXAMPLE", "198.51.100.4:443");
    refused("udp", "www.shop.example", "198.51.100.5:443");
    refused("udp", "alias.example", "198.51.100.6:443");
    refused("tcp", "tcp.listed.example", "198.51.100.7:443");
    refused("udp", "v6.listed.example", "[2001:db8::7]:443");
    // A listed list may allow private answers; by default they are never learned.
    refused("udp", "printer.lan.example", "127.0.0.2:443");
    allowed("notlisted.example", "198.51.100.3:443", ENETUNREACH);
    allowed("listed.example.elsewhere.example", "198.51.100.9:443", ENETUNREACH);
    allowed("local.listed.example", "127.0.0.1:443", ECONNREFUSED);
    allowed("audited.example", "198.51.100.8:443", ENETUNREACH);

    let event = daemon.expect_event(Duration::from_secs(5), |e| e["dst"] == "198.51.100.2");
    assert_eq!(event["action"], "blocked");
    assert_eq!(event["list"], "vendor");
    assert_eq!(event["domain"], "listed.example");
    assert!(event["learned_at"].is_string(), "{event}");
    let audited = daemon.expect_event(Duration::from_secs(5), |e| e["dst"] == "198.51.100.8");
    assert_eq!(audited["action"], "audited");
    assert_eq!(audited["domain"], "audited.example");

    let addr = check_json(&instance, "198.51.100.5");
    assert_eq!(addr["verdict"], "blocked", "{addr}");
    assert_eq!(addr["domain"], "listed.example", "{addr}");
    let name = check_json(&instance, "dnl-05.geo.listed.example");
    assert_eq!(name["list"], "vendor", "{name}");
    assert_eq!(name["domain"], "listed.example", "{name}");
    let learned: Vec<&str> = name["learned"]
        .as_array()
        .expect("learned addresses")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for addr in ["198.51.100.1", "198.51.100.2", "198.51.100.5", "2001:db8::7"] {
        assert!(learned.contains(&addr), "{addr} in {learned:?}");
    }
    assert!(!learned.contains(&"127.0.0.1"), "{learned:?}");
    let lookalike = check_json(&instance, "notlisted.example");
    assert_eq!(lookalike["listed"], false, "{lookalike}");
    let (_, status) = instance.status();
    let counters = &status["counters"];
    assert!(counters["learned_refused"].as_u64() >= Some(1), "{status}");

    // Restarted after kill -9, the learned addresses are still refused: the maps are pinned
    // and the programs stay attached, and the new daemon keeps them.
    let tcp = |addr: &str| {
        probe::run_in_netns(&probe_bin(), &ns, &instance.cgroup, &[("tcp", addr.to_owned())])
            .attempts
            .remove(0)
    };
    daemon.kill9();
    assert!(tcp("198.51.100.1:443").refused(), "refused with the daemon dead");
    let _daemon = instance.start(&[], &[]);
    assert!(tcp("198.51.100.1:443").refused(), "refused after the restart");
    assert!(!tcp("198.51.100.3:443").refused());
}

#[test]
fn a_learned_address_expires_on_time_even_with_the_daemon_down() {
    let instance = Instance::new("names-expiry");
    instance.write_config(&config(
        "learned_min_ttl = \"2s\"\nlearned_max_ttl = \"2s\"\n",
    ));
    let daemon = instance.start(&[], &[]);
    if !learner_runs(&instance) {
        eprintln!("skipped: the DNS learner does not run on this kernel");
        return;
    }
    let ns = NetNs::isolated("names-expiry");
    let _server = DnsServer::start(&ns, zone());
    let attempt = only(&resolve(&ns, &instance, "udp", "listed.example"), "198.51.100.1:443");
    assert!(attempt.refused(), "{attempt:?}");
    daemon.kill9();
    std::thread::sleep(Duration::from_millis(2500));
    let after = probe::run_in_netns(
        &probe_bin(),
        &ns,
        &instance.cgroup,
        &[("tcp", "198.51.100.1:443".to_owned())],
    );
    assert_eq!(
        after.attempts[0].errno,
        Some(ENETUNREACH),
        "expired in the kernel while the daemon was down: {:?}",
        after.attempts
    );
}

/// The kernel says what it can do: on a kernel without `bpf_loop` (5.10) the daemon starts,
/// says plainly that listed names are not enforced, and enforces the prefix lists.
#[test]
fn the_daemon_says_whether_this_kernel_learns_names() {
    let instance = Instance::new("names-kernel");
    let list = instance.write("p.netset", "198.51.100.77\n");
    instance.write_config(&format!(
        "[[lists]]\nname = \"vendor\"\ndomains = [\"listed.example\"]\nsources = [\"{}\"]\n[names]\nwarm_start = false\n",
        list.display()
    ));
    let daemon = instance.start(&[], &[]);
    let (_, status) = instance.status();
    let names = &status["daemon"]["names"];
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let ns = NetNs::isolated("names-kernel");
    let run = probe::run_in_netns(
        &probe_bin(),
        &ns,
        &instance.cgroup,
        &[("tcp", "198.51.100.77:443".to_owned())],
    );
    assert!(run.attempts[0].refused(), "prefix lists are enforced either way");
    if version >= (5, 17) {
        assert_eq!(names["learning"], true, "{status}");
        assert_eq!(names["learner"], "attached", "{status}");
        assert_eq!(names["domains"], 1, "{status}");
    } else {
        assert_eq!(names["learning"], false, "{status}");
        let why = names["learner"].as_str().unwrap_or_default();
        assert!(why.contains("needs Linux 5.17"), "{status}");
        let (_, stderr) = daemon.stop();
        assert!(
            stderr.contains("listed names are NOT enforced"),
            "the daemon says so at start: {stderr}"
        );
    }
}
