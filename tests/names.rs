//! Vendors reached by name: the kernel's DNS learner reads the answers a DNS server in a test
//! network namespace gives (UDP and TCP, compressed or not, CNAME chains), and the probe's
//! first connection to a learned address, made as soon as it reads the answer, is refused.
//!
//! The probe runs in a namespace holding only its loopback, so connections the programs allow
//! fail with ENETUNREACH and nothing leaves the machine; the DNS server listens on
//! 127.0.0.1:53 inside that namespace.

use std::{net::IpAddr, time::Duration};

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
        .add(
            "www.shop.example",
            Record::Cname("cdn.listed.example".into()),
        )
        .add(
            "cdn.listed.example",
            Record::Cname("edge.cdn.example".into()),
        )
        .add("edge.cdn.example", a("198.51.100.5"))
        // The same through an unlisted CDN name answered without compression.
        .add(
            "alias.example",
            Record::Cname("plain.listed.example".into()),
        )
        .add("plain.listed.example", a("198.51.100.6"))
        .add("tcp.listed.example", a("198.51.100.7"))
        .add(
            "v6.listed.example",
            Record::Aaaa("2001:db8::7".parse().expect("ipv6")),
        )
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
        assert!(
            attempt.refused(),
            "{name} -> {addr} must be refused at once: {attempt:?}"
        );
    };
    let allowed = |name: &str, addr: &str, errno: i32| {
        let attempt = only(&resolve(&ns, &instance, "udp", name), addr);
        assert_eq!(
            attempt.errno,
            Some(errno),
            "{name} -> {addr} is not blocked: {attempt:?}"
        );
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
    allowed(
        "listed.example.elsewhere.example",
        "198.51.100.9:443",
        ENETUNREACH,
    );
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
    for addr in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.5",
        "2001:db8::7",
    ] {
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
        probe::run_in_netns(
            &probe_bin(),
            &ns,
            &instance.cgroup,
            &[("tcp", addr.to_owned())],
        )
        .attempts
        .remove(0)
    };
    daemon.kill9();
    assert!(
        tcp("198.51.100.1:443").refused(),
        "refused with the daemon dead"
    );
    let _daemon = instance.start(&[], &[]);
    assert!(
        tcp("198.51.100.1:443").refused(),
        "refused after the restart"
    );
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
    let attempt = only(
        &resolve(&ns, &instance, "udp", "listed.example"),
        "198.51.100.1:443",
    );
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

/// Warm start: the daemon asks for the listed names itself (here from a server on this host's
/// loopback), so an address an application resolved before vendorwall started is refused on
/// its first connection, with no answer passing the learner; a reload asks again.
#[test]
fn listed_names_are_resolved_at_start_and_on_reload() {
    let mut zone = Zone {
        ttl: 300,
        ..Zone::default()
    };
    zone.add(
        "listed.example",
        Record::A("198.51.100.31".parse().expect("ip")),
    )
    .add(
        "listed.example",
        Record::Aaaa("2001:db8::31".parse().expect("ip")),
    );
    let server = DnsServer::start_on_loopback(zone);
    let instance = Instance::new("names-warm");
    instance.write_config(&format!(
        "[[lists]]\nname = \"vendor\"\ndomains = [\"listed.example\"]\n\
         [names]\nwarm_start = true\nresolver = \"{}\"\n",
        server.udp
    ));
    let daemon = instance.start(&[], &[]);
    let ns = NetNs::isolated("names-warm");
    let connect = |addr: &str| {
        probe::run_in_netns(
            &probe_bin(),
            &ns,
            &instance.cgroup,
            &[("tcp", addr.to_owned())],
        )
        .attempts
        .remove(0)
    };
    assert!(connect("198.51.100.31:443").refused(), "learned at start");
    assert!(
        connect("[2001:db8::31]:443").refused(),
        "learned at start (AAAA)"
    );
    let checked = check_json(&instance, "198.51.100.31");
    assert_eq!(checked["domain"], "listed.example", "{checked}");
    assert!(!connect("198.51.100.32:443").refused());
    server.zone.lock().expect("zone").add(
        "listed.example",
        Record::A("198.51.100.32".parse().expect("ip")),
    );
    let (code, stdout, stderr) = instance.cli(&["reload"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        connect("198.51.100.32:443").refused(),
        "learned again on reload"
    );
    drop(daemon);
}

/// Bad name input never lowers what is in force: a malformed line is skipped and reported
/// with its file and line; a domain file that disappears keeps the names it gave.
#[test]
fn a_bad_domain_source_keeps_the_names_in_force() {
    let instance = Instance::new("names-bad");
    let file = instance.write("v.domains", "listed.example\nbad!name.example\n");
    instance.write_config(&format!(
        "[[lists]]\nname = \"vendor\"\ndomain_sources = [\"{}\"]\n[names]\nwarm_start = false\n",
        file.display()
    ));
    let _daemon = instance.start(&[], &[]);
    let (_, status) = instance.status();
    let names = &status["daemon"]["names"];
    assert_eq!(names["skipped_lines"], 1, "{status}");
    let first = names["skipped"][0].as_str().unwrap_or_default();
    assert!(first.contains(&format!("{}:2:", file.display())), "{first}");
    assert_eq!(status["learned"]["domains"], 1, "{status}");

    std::fs::remove_file(&file).expect("remove the domain file");
    let (_, stdout, stderr) = instance.cli(&["reload"]);
    let (_, status) = instance.status();
    let errors = status["daemon"]["names"]["errors"].to_string();
    assert!(
        errors.contains(&file.display().to_string()),
        "the failure names the file: {errors} ({stdout}{stderr})"
    );
    assert_eq!(
        status["learned"]["domains"], 1,
        "the names it gave stay in force: {status}"
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
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let ns = NetNs::isolated("names-kernel");
    let run = probe::run_in_netns(
        &probe_bin(),
        &ns,
        &instance.cgroup,
        &[("tcp", "198.51.100.77:443".to_owned())],
    );
    assert!(
        run.attempts[0].refused(),
        "prefix lists are enforced either way"
    );
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

/// The learner run directly on crafted and mutated DNS packets (BPF_PROG_TEST_RUN on the
/// attached program): it must never learn an address that is not an A or AAAA answer in a
/// response to a listed name, as a reference parser (hickory-proto's decoder, reading what
/// the learner reads: header, question, answers) finds them. Unmutated answers to listed
/// names must learn exactly their addresses, or the test would prove nothing. (It found two
/// laxities of the first learner: CNAME targets running past their data, and pointers into
/// the name that pointed there.)
#[test]
fn the_learner_never_learns_what_no_answer_to_a_listed_name_holds() {
    use std::collections::BTreeSet;

    let instance = Instance::new("names-fuzz");
    instance.write_config(&config(""));
    let _daemon = instance.start(&[], &[]);
    if !learner_runs(&instance) {
        eprintln!("skipped: the DNS learner does not run on this kernel");
        return;
    }
    let (_, status) = instance.status();
    let generation = status["generation"].as_u64().expect("generation");
    let dir = instance.pin_dir.join(format!("g{generation}"));
    let prog = vendorwall_e2e::bpf::prog_of_link_pin(&dir.join("link_vw_dns_ingress"));
    let learned = || -> BTreeSet<(IpAddr, u64)> {
        blocker_user::kernel::inspect::learned(&dir)
            .expect("read the learned maps")
            .into_iter()
            .map(|e| (e.addr, e.learned_ns))
            .collect()
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let templates = fuzz::templates();
    let mut runs = 0;
    // Unmutated first: each learns exactly what the reference says.
    for (i, message) in templates.iter().enumerate() {
        let before = learned();
        let expected = fuzz::reference(message);
        assert_eq!(
            vendorwall_e2e::bpf::test_run(&prog, &fuzz::packet(message, i % 2 == 1)),
            1
        );
        let new: BTreeSet<IpAddr> = learned().difference(&before).map(|(a, _)| *a).collect();
        assert_eq!(new, expected, "template {i}: {message:02x?}");
        runs += 1;
    }
    // Fewer under the kernel matrix's emulation, where each run is far slower.
    let rounds = if std::env::var_os("VENDORWALL_VM_KERNEL").is_some() {
        3_000
    } else {
        20_000
    };
    for round in 0..rounds {
        let base = &templates[rng.below(templates.len())];
        let message = fuzz::mutate(base, &mut rng);
        let before = learned();
        let allowed = fuzz::reference(&message);
        assert_eq!(
            vendorwall_e2e::bpf::test_run(&prog, &fuzz::packet(&message, round % 3 == 0)),
            1,
            "the learner never drops a packet"
        );
        let new: BTreeSet<IpAddr> = learned().difference(&before).map(|(a, _)| *a).collect();
        assert!(
            new.is_subset(&allowed),
            "seed {seed:#x} round {round}: learned {new:?}, but the answers to listed names \
             are {allowed:?}; message {message:02x?}"
        );
        runs += 1;
    }
    eprintln!("{runs} packets run through the learner (seed {seed:#x})");
}

/// xorshift64*: a reproducible stream from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

mod fuzz {
    use std::{collections::BTreeSet, net::IpAddr};

    use hickory_proto::{
        op::{Header, MessageType, OpCode, Query, ResponseCode},
        rr::Name,
        serialize::binary::{BinDecodable as _, BinDecoder},
    };
    use vendorwall_e2e::dns::{Record, answer};

    use super::Rng;

    /// The names the test config lists and whose answers may be learned.
    const LISTED: [&str; 3] = ["listed.example", "audited.example", "lan.example"];

    fn query(name: &str, kind: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend(label.as_bytes());
        }
        q.push(0);
        q.extend(kind.to_be_bytes());
        q.extend(1u16.to_be_bytes());
        q
    }

    /// Answers to listed and unlisted names, chains, both families, with and without
    /// compression, plus hand-made hostile messages.
    pub fn templates() -> Vec<Vec<u8>> {
        let mut zone = super::zone();
        zone.add(
            "many.listed.example",
            Record::A("198.51.100.20".parse().expect("ip")),
        )
        .add(
            "many.listed.example",
            Record::A("198.51.100.21".parse().expect("ip")),
        )
        .add("other.example", Record::Cname("x.unrelated.example".into()))
        .add(
            "x.unrelated.example",
            Record::A("203.0.113.9".parse().expect("ip")),
        );
        let mut plain = zone.clone();
        plain.uncompressed = zone.records.keys().cloned().collect();
        let mut out = Vec::new();
        for z in [&zone, &plain] {
            for name in [
                "listed.example",
                "dnl-05.geo.listed.example",
                "www.shop.example",
                "alias.example",
                "v6.listed.example",
                "many.listed.example",
                "notlisted.example",
                "other.example",
                "audited.example",
            ] {
                for kind in [1u16, 28] {
                    if let Some(message) = answer(&query(name, kind), z) {
                        out.push(message);
                    }
                }
            }
        }
        let listed = answer(&query("listed.example", 1), &zone).expect("answer");
        // A query (QR clear) carrying an answer section, and an NXDOMAIN with answers.
        let mut not_response = listed.clone();
        not_response[2] &= 0x7f;
        out.push(not_response);
        let mut nxdomain = listed.clone();
        nxdomain[3] = (nxdomain[3] & 0xf0) | 3;
        out.push(nxdomain);
        // A pointer to itself as the question name, and one pointing forwards.
        let mut looped = listed[..12].to_vec();
        looped.extend([0xc0, 12, 0, 1, 0, 1]);
        out.push(looped);
        let mut forward = listed[..12].to_vec();
        forward.extend([0xc0, 40, 0, 1, 0, 1]);
        forward.extend(&listed[12..]);
        out.push(forward);
        // A rdata length past the end.
        let mut long = listed.clone();
        let len = long.len();
        long[len - 6] = 0xff;
        out.push(long);
        // A CNAME whose target runs past its data into the next record, then an A record
        // (found by this fuzz test: it was learned before targets had to end with their data).
        out.push(
            [
                "12 34 81 80 00 01 00 03 00 00 00 00 03 77 77 77 04 73 68 6f 70 07 65 78 61 6d",
                "70 6c 65 00 00 01 00 01 c0 0c 00 05 00 01 00 00 01 2c 00 0d 03 63 64 6e 06 6c",
                "69 73 74 65 64 c0 15 c0 2e 00 05 00 01 00 00 01 2c 00 0b 14 65 64 67 65 03 63",
                "64 6e c0 15 c0 47 00 01 00 01 00 00 01 2c 00 04 c6 33 64 05",
            ]
            .join(" ")
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect(),
        );
        // Answer count far above what is there.
        let mut counted = listed;
        counted[6] = 0xff;
        out.push(counted);
        out
    }

    /// A cgroup_skb test packet: Ethernet, IPv4 or IPv6, UDP from port 53, the message.
    pub fn packet(message: &[u8], ipv6: bool) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        let udp_len = (8 + message.len()) as u16;
        if ipv6 {
            p.extend([0x86, 0xdd]);
            p.extend([0x60, 0, 0, 0]);
            p.extend(udp_len.to_be_bytes());
            p.extend([17, 64]);
            p.extend([0u8; 15]);
            p.push(1);
            p.extend([0u8; 15]);
            p.push(1);
        } else {
            p.extend([0x08, 0x00]);
            p.extend([0x45, 0]);
            p.extend((20 + udp_len).to_be_bytes());
            p.extend([0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        }
        p.extend(53u16.to_be_bytes());
        p.extend(40000u16.to_be_bytes());
        p.extend(udp_len.to_be_bytes());
        p.extend([0, 0]);
        p.extend(message);
        p
    }

    /// Random damage: bytes changed, pointers planted, counts changed, cut or grown.
    pub fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut m = base.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(m.len());
            match rng.below(7) {
                0 | 1 => m[at] = rng.next() as u8,
                2 => m[at] ^= 1 << rng.below(8),
                3 if at + 1 < m.len() => {
                    m[at] = 0xc0 | (rng.below(4) as u8);
                    m[at + 1] = rng.next() as u8;
                }
                4 => m.truncate(at.max(12)),
                5 => {
                    let byte = rng.next() as u8;
                    m.insert(at, byte);
                }
                _ => {
                    let count = rng.next() as u8 & 7;
                    let at = 7.min(m.len() - 1);
                    m[at] = count;
                }
            }
        }
        m
    }

    fn listed(name: &Name) -> bool {
        let text = name.to_lowercase().to_ascii();
        let text = text.trim_end_matches('.');
        LISTED
            .iter()
            .any(|l| text == *l || text.strip_suffix(l).is_some_and(|head| head.ends_with('.')))
    }

    /// The addresses a correct learner may learn from `message`: A and AAAA answers read
    /// after the question or a CNAME target showed the message answers a listed name, up to
    /// the first record the reference cannot read. Loopback and private answers of the
    /// listed names whose list does not allow them are left out, as the learner does.
    pub fn reference(message: &[u8]) -> BTreeSet<IpAddr> {
        let mut out = BTreeSet::new();
        let mut decoder = BinDecoder::new(message);
        let Ok(header) = Header::read(&mut decoder) else {
            return out;
        };
        if header.message_type() != MessageType::Response
            || header.op_code() != OpCode::Query
            || header.response_code() != ResponseCode::NoError
            || header.query_count() != 1
        {
            return out;
        }
        let Ok(question) = Query::read(&mut decoder) else {
            return out;
        };
        let mut listed_now = listed(question.name());
        let lan = |name: &Name| name.to_lowercase().to_ascii().contains("lan.example");
        let mut private_ok = lan(question.name());
        for _ in 0..header.answer_count().min(32) {
            let Ok(_owner) = Name::read(&mut decoder) else {
                break;
            };
            let fixed = (|| {
                let kind = decoder.read_u16().ok()?.unverified();
                let class = decoder.read_u16().ok()?.unverified();
                decoder.read_u32().ok()?;
                let len = decoder.read_u16().ok()?.unverified();
                let start = decoder.index();
                let data = decoder.read_slice(usize::from(len)).ok()?.unverified();
                Some((kind, class, start, data))
            })();
            let Some((kind, class, start, data)) = fixed else {
                break;
            };
            if class != 1 {
                continue;
            }
            match (kind, data.len()) {
                (1, 4) if listed_now => {
                    let ip = IpAddr::from(<[u8; 4]>::try_from(data).expect("4 bytes"));
                    if private_ok || !blocker_user::daemon::names::is_special(ip) {
                        out.insert(ip);
                    }
                }
                (28, 16) if listed_now => {
                    let ip = IpAddr::from(<[u8; 16]>::try_from(data).expect("16 bytes"));
                    if private_ok || !blocker_user::daemon::names::is_special(ip) {
                        out.insert(ip);
                    }
                }
                (5, _) => {
                    let Ok(target) = Name::read(&mut decoder.clone(start as u16)) else {
                        break;
                    };
                    if listed(&target) {
                        listed_now = true;
                        private_ok |= lan(&target);
                    }
                }
                _ => {}
            }
        }
        out
    }
}
