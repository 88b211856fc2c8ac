//! The userspace verdict (`vendorwall check`, which the sweep and events share) against the real
//! programs: random list sets (both actions, overlapping prefixes of every length, exceptions,
//! exemptions, dry run, NAT64 and 6to4) are loaded into the real maps by a real daemon, and a
//! probe in a test cgroup makes a real UDP `connect()` to each generated address. Every attempt
//! must be refused exactly when `check` says "blocked", and every blocked or audited attempt
//! must report an event naming the list `check` names, with the same action.
//!
//! The probe runs in a network namespace holding only its loopback, so an attempt the programs
//! allow fails with ENETUNREACH and nothing ever leaves the machine.
//! `BPF_PROG_TEST_RUN` is not an option: the kernel does not implement it for
//! `cgroup_sock_addr` programs.

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use proptest::{
    prelude::*,
    test_runner::{Config as RunnerConfig, TestRunner},
};
use serde_json::Value;
use vendorwall_e2e::{
    daemon::Daemon,
    instance::Instance,
    listen,
    netns::NetNs,
    probe::{self, Holder},
    probe_bin,
};

/// List sets tried; each is checked against every address generated for it.
const CASES: u32 = 24;
/// Addresses per list set (before duplicates are removed).
const ADDRESSES: usize = 160;

#[derive(Clone, Debug)]
struct Case {
    /// Per list: enforce?, prefixes.
    lists: Vec<(bool, Vec<String>)>,
    exceptions: Vec<String>,
    nat64: bool,
    six_to_four: bool,
    dry_run: bool,
    exempt: bool,
    addrs: Vec<IpAddr>,
}

/// IPv4 prefixes of every length from the guard's /8 to /32, clustered in 10.0.0.0/16 so that
/// lists overlap, nest and touch.
fn v4_prefix() -> impl Strategy<Value = String> {
    (any::<u16>(), 8u8..=32).prop_map(|(host, len)| {
        let addr = u32::from(Ipv4Addr::new(10, 0, 0, 0)) | u32::from(host);
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        format!("{}/{len}", Ipv4Addr::from(addr & mask))
    })
}

/// IPv6 prefixes from /16 to /128, clustered in 2001:db8::/48 (plus 64:ff9b::/96 and 2002::/16
/// themselves, which only match while the translation is off).
fn v6_prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => (any::<u16>(), any::<u16>(), 16u8..=128).prop_map(|(a, b, len)| {
            let bits = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, a & 0xf, 0, 0, 0, b));
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", Ipv6Addr::from(bits & mask))
        }),
        1 => Just("64:ff9b::/96".to_owned()),
        1 => Just("2002::/16".to_owned()),
    ]
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![3 => v4_prefix(), 1 => v6_prefix()]
}

/// A destination near the listed ones, in every form the programs look at.
fn address() -> impl Strategy<Value = IpAddr> {
    let v4 = any::<u16>()
        .prop_map(|h| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) | u32::from(h)));
    let v6 = (any::<u16>(), any::<u16>())
        .prop_map(|(a, b)| Ipv6Addr::new(0x2001, 0xdb8, 0, a & 0xf, 0, 0, 0, b));
    prop_oneof![
        4 => v4.clone().prop_map(IpAddr::V4),
        1 => v4.clone().prop_map(|a| IpAddr::V6(a.to_ipv6_mapped())),
        1 => v4.clone().prop_map(|a| IpAddr::V6(a.to_ipv6_compatible())),
        1 => v4.clone().prop_map(|a| {
            let o = a.octets();
            IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]])))
        }),
        1 => v4.prop_map(|a| {
            let o = a.octets();
            IpAddr::V6(Ipv6Addr::new(0x2002, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]), 0, 0, 0, 0, 1))
        }),
        2 => v6.prop_map(IpAddr::V6),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(
            (
                prop::bool::weighted(0.6),
                proptest::collection::vec(prefix(), 1..10),
            ),
            1..4,
        ),
        proptest::collection::vec(prefix(), 0..3),
        any::<(bool, bool)>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        proptest::collection::vec(address(), ADDRESSES),
    )
        .prop_map(
            |(lists, exceptions, (nat64, six_to_four), dry_run, exempt, addrs)| Case {
                lists,
                exceptions,
                nat64,
                six_to_four,
                dry_run,
                exempt,
                addrs,
            },
        )
}

/// The config of one case; list `i` is `l<i>` (id i + 1).
fn config(instance: &Instance, case: &Case) -> String {
    let mut text = format!(
        "nat64 = {}\n6to4 = {}\ndry_run = {}\n",
        case.nat64, case.six_to_four, case.dry_run
    );
    text += &format!("[exceptions]\nprefixes = [{}]\n", quoted(&case.exceptions));
    if case.exempt {
        text += &format!(
            "[exempt]\ncgroups = [\"{}\"]\n",
            instance.cgroup.path().display()
        );
    }
    for (i, (enforce, prefixes)) in case.lists.iter().enumerate() {
        let path = instance.write(
            &format!("l{i}.netset"),
            &format!("# generated\n{}\n", prefixes.join("\n")),
        );
        text += &format!(
            "[[lists]]\nname = \"l{i}\"\naction = \"{}\"\nsources = [\"{}\"]\nallow_shrink = true\n",
            if *enforce { "enforce" } else { "audit" },
            path.display()
        );
    }
    text
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn socket_addr(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{v4}:9"),
        IpAddr::V6(v6) => format!("[{v6}]:9"),
    }
}

/// `check`'s verdict per address: (verdict word, list name).
fn check(
    instance: &Instance,
    case: &Case,
    addrs: &[IpAddr],
) -> BTreeMap<IpAddr, (String, Option<String>)> {
    let cgroup = instance.cgroup.path().display().to_string();
    let mut args = vec!["check", "--json", "--cgroup", &cgroup];
    let texts: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    args.extend(texts.iter().map(String::as_str));
    let (code, stdout, stderr) = instance.cli(&args);
    assert!(
        code == 0 || code == 1,
        "check failed ({code}): {stderr}\n{case:?}"
    );
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("check --json prints JSON lines");
            let addr: IpAddr = v["addr"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .expect("addr");
            let word = v["verdict"].as_str().expect("verdict").to_owned();
            (addr, (word, v["list"].as_str().map(str::to_owned)))
        })
        .collect()
}

#[test]
fn the_userspace_verdict_agrees_with_the_kernel_on_random_list_sets() {
    let instance = Instance::new("verdict");
    let ns = NetNs::isolated("verdict");
    let probe = probe_bin();
    // The runner takes an `Fn`: the daemon and the tally live in cells.
    let daemon: RefCell<Option<Daemon>> = RefCell::new(None);
    let compared = Cell::new(0usize);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: CASES,
        // Each case reloads a daemon; shrinking a failure is worth it, a long hunt is not.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&case(), |case| {
        instance.write_config(&config(&instance, &case));
        let mut slot = daemon.borrow_mut();
        match slot.as_ref() {
            None => *slot = Some(instance.start(&[], &[])),
            Some(_) => {
                let (code, out, err) = instance.cli(&["reload"]);
                prop_assert_eq!(code, 0, "reload: {}{}", out, err);
            }
        }
        let daemon = slot.as_ref().expect("started");
        let addrs: Vec<IpAddr> = case
            .addrs
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let expected = check(&instance, &case, &addrs);
        let ops: Vec<(&str, String)> = addrs
            .iter()
            .map(|a| ("udp-connect", socket_addr(*a)))
            .collect();
        let run = probe::run_in_netns(&probe, &ns, &instance.cgroup, &ops);
        prop_assert_eq!(run.attempts.len(), addrs.len());
        let mut want_events = BTreeMap::new();
        for (addr, attempt) in addrs.iter().zip(&run.attempts) {
            let (word, list) = &expected[addr];
            prop_assert_eq!(
                attempt.refused(),
                word == "blocked",
                "{} : check says {} ({:?}), the kernel {:?}\n{:?}",
                addr,
                word,
                list,
                attempt.errno,
                case
            );
            // Every listed destination is reported: refused, audited, or let through by the
            // exemption (`exempted`).
            let action = match word.as_str() {
                "blocked" => Some("blocked"),
                "audited" => Some("audited"),
                "exempt" => Some("exempted"),
                _ => None,
            };
            if let Some(action) = action {
                want_events.insert(*addr, (action.to_owned(), list.clone()));
            }
        }
        // Every event of this probe; none may be missing, none extra.
        let mut got_events = BTreeMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got_events.len() < want_events.len() && std::time::Instant::now() < deadline {
            for e in daemon.events_within(Duration::from_millis(100)) {
                if e["pid"].as_u64() != Some(u64::from(run.pid)) {
                    continue;
                }
                let dst: IpAddr = e["dst"].as_str().and_then(|d| d.parse().ok()).expect("dst");
                got_events.insert(
                    dst,
                    (
                        e["action"].as_str().unwrap_or("?").to_owned(),
                        e["list"].as_str().map(str::to_owned),
                    ),
                );
            }
        }
        for e in daemon.events_within(Duration::from_millis(200)) {
            if e["pid"].as_u64() == Some(u64::from(run.pid)) {
                let dst: IpAddr = e["dst"].as_str().and_then(|d| d.parse().ok()).expect("dst");
                got_events.insert(
                    dst,
                    (
                        e["action"].as_str().unwrap_or("?").to_owned(),
                        e["list"].as_str().map(str::to_owned),
                    ),
                );
            }
        }
        prop_assert_eq!(
            &got_events,
            &want_events,
            "events differ from check's verdicts\n{:?}",
            case
        );
        compared.set(compared.get() + addrs.len());
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let compared = compared.get();
    eprintln!("{compared} addresses compared, 0 disagreements");
    assert!(compared >= 3000, "only {compared} addresses compared");
}

/// The sweep of established connections decides like the programs: a connection to an address
/// an enforce list covers is terminated even where a longer audit prefix also covers it, and a
/// connection through an IPv4-mapped IPv6 socket to an excepted address is left alone.
#[test]
fn the_sweep_terminates_what_the_kernel_refuses_and_spares_what_it_allows() {
    let vw = Instance::new("sweep-verdict");
    let enforce = vw.write("enforce.netset", "127.77.0.0/16\n127.78.0.0/16\n");
    let audit = vw.write("audit.netset", "127.77.1.0/24\n");
    let placeholder = vw.write("placeholder.netset", "127.79.0.1\n");
    let lists = |enforce: &std::path::Path, audit: &std::path::Path| {
        format!(
            "[exceptions]\nprefixes = [\"127.78.0.9/32\"]\n\
             [[lists]]\nname = \"vendor\"\nsources = [\"{}\"]\nallow_shrink = true\n\
             [[lists]]\nname = \"watch\"\naction = \"audit\"\nsources = [\"{}\"]\n",
            enforce.display(),
            audit.display()
        )
    };
    // First only an unrelated list, so both connections can be made.
    vw.write_config(&lists(&placeholder, &audit));
    let daemon = vw.start(&[], &[]);
    let (audit_listener, audit_port) = listen("127.77.1.5:0");
    let (excepted_listener, excepted_port) = listen("127.78.0.9:0");
    let refused = Holder::connect(
        &probe_bin(),
        &vw.cgroup,
        &format!("127.77.1.5:{audit_port}"),
    );
    let (_a, _) = audit_listener.accept().expect("accept");
    let spared = Holder::connect(
        &probe_bin(),
        &vw.cgroup,
        &format!("[::ffff:127.78.0.9]:{excepted_port}"),
    );
    let (_e, _) = excepted_listener.accept().expect("accept");

    vw.write_config(&lists(&enforce, &audit));
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    let refused_pid = refused.pid;
    assert_eq!(
        refused.ended(),
        Some(libc::ECONNABORTED),
        "enforce 127.77.0.0/16 refuses 127.77.1.5 although audit 127.77.1.0/24 is longer"
    );
    // (The connection itself was audited when made: the audit list was already in force.)
    let event = daemon.expect_event(Duration::from_secs(10), |e| {
        e["pid"] == refused_pid && e["action"] == "terminated"
    });
    assert_eq!(event["list"], "vendor", "{event:#}");
    // The reload (and its sweep) is over: an exception the sweep ignored would have ended it.
    assert_eq!(
        spared.ended_within(Duration::from_secs(1)),
        None,
        "an excepted ::ffff:127.78.0.9 connection was terminated"
    );
}
