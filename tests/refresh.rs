//! Gap-free list refresh and list sources (issue 3) on the real kernel: an address that stays
//! listed is never reachable while lists are refreshed by every trigger, a failing source keeps
//! its last good content, and URL and ASN sources work against servers on loopback.

use std::{
    io::{Read as _, Write as _},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use vendorwall_e2e::{
    bpf, eventually,
    http::{HttpServer, Reply},
    instance::Instance,
    link_ids, listen,
    probe::{Hammer, run_in},
    probe_bin,
};

const LISTED: &str = "127.0.0.66";
const HAMMER_MAX: Duration = Duration::from_secs(120);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

fn reachable(vw: &Instance, target: &str) -> bool {
    run_in(&probe_bin(), &vw.cgroup, &[("tcp", target.to_owned())]).attempts[0].ok
}

fn refused(vw: &Instance, target: &str) -> bool {
    run_in(&probe_bin(), &vw.cgroup, &[("tcp", target.to_owned())]).attempts[0].refused()
}

fn reloads(vw: &Instance) -> u64 {
    vw.status().1["daemon"]["reloads"].as_u64().unwrap_or(0)
}

#[test]
fn a_listed_address_is_never_reachable_while_lists_refresh() {
    let vw = Instance::new("hammer");
    let list = vw.write("churn.netset", &format!("{LISTED}\n::1\n"));
    // A second list comes from a URL whose content changes every round too.
    let server = HttpServer::start(Reply {
        status: 200,
        body: "192.0.2.0/24\n".into(),
        etag: None,
    });
    vw.write_config(&format!(
        "[[lists]]\nname = \"churn\"\nsources = [{list:?}]\n\n\
         [[lists]]\nname = \"remote\"\nsources = [{:?}]\nallow_shrink = true\n",
        server.url("/remote.txt")
    ));
    let mut daemon = vw.start(&[], &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let (_listener6, port6) = listen("[::1]:0");
    let hammer = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("{LISTED}:{port}"),
        HAMMER_MAX,
    );
    let hammer6 = Hammer::start(
        &probe_bin(),
        &vw.cgroup,
        &format!("[::1]:{port6}"),
        HAMMER_MAX,
    );

    // The prefixes holding the watched addresses move between tiers every round (IPv4: the
    // hosts hash, the trie, the /24 hash, the trie again), so each round deletes the entry
    // that held the address and inserts another: with deletes applied first, the hammers
    // would get through in between.
    let tiers_v4 = [
        "127.0.0.66/32",
        "127.0.0.64/30",
        "127.0.0.0/24",
        "127.0.0.0/16",
    ];
    let tiers_v6 = ["::1/128", "::/126", "::/120", "::/112"];
    for round in 0..12u32 {
        // Each round rewrites the file with a different set of other prefixes around the ones
        // that hold the watched addresses, changes what the URL serves, then triggers a
        // refresh three different ways.
        let others: Vec<String> = (0..50).map(|i| format!("10.{round}.{i}.0/24")).collect();
        let tier = round as usize % tiers_v4.len();
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            others[..25].join("\n"),
            tiers_v4[tier],
            tiers_v6[tier],
            others[25..].join("\n")
        );
        std::fs::write(&list, text).expect("rewrite list");
        server.set(Reply {
            status: 200,
            body: format!("198.51.{round}.0/24\n203.0.113.{round}\n"),
            etag: Some(format!("\"r{round}\"")),
        });
        let before = reloads(&vw);
        match round % 3 {
            0 => daemon.hangup(),
            1 => {
                let (code, out, err) = vw.cli(&["reload"]);
                assert_eq!(code, 0, "{out}{err}");
            }
            _ => {} // the file watcher notices the edit by itself
        }
        if !eventually(RELOAD_TIMEOUT, || reloads(&vw) > before) {
            let (_, status) = vw.status();
            let (_, stderr) = daemon.stop();
            panic!(
                "round {round}: no reload happened; status {status:#}; daemon stderr:\n{stderr}"
            );
        }
    }
    daemon.wait_for_notify("READY=1", Duration::from_secs(5));
    for (counts, family) in [(hammer.stop(), "IPv4"), (hammer6.stop(), "IPv6")] {
        assert_eq!(
            counts.ok, 0,
            "an {family} connection got through during a refresh: {counts:?}"
        );
        assert!(
            counts.refused > 100,
            "the {family} hammer barely ran: {counts:?}"
        );
    }
    let (_, status) = vw.status();
    let lists = &status["daemon"]["lists"];
    assert_eq!(lists[0]["raw_entries"], 52, "{status:#}");
    assert_eq!(lists[1]["raw_entries"], 2, "{status:#}");
    assert!(
        server.requests().len() >= 12,
        "the URL was fetched on every refresh"
    );
}

#[test]
fn newly_listed_is_refused_after_one_refresh_and_removed_is_reachable_again() {
    let vw = Instance::new("addremove");
    let list = vw.write("addremove.netset", &format!("{LISTED}\n"));
    let _daemon = vw.start(std::slice::from_ref(&list), &[]);
    let (_listener, port) = listen("127.0.0.67:0");
    let target = format!("127.0.0.67:{port}");
    assert!(reachable(&vw, &target));

    // The file watch may apply the edit before the explicit reload does (on a slow machine it
    // does): either way, once `reload` returns, the list holds the new content.
    let entries = |vw: &Instance| vw.status().1["daemon"]["lists"][0]["raw_entries"].clone();
    std::fs::write(&list, format!("{LISTED}\n127.0.0.67\n")).expect("add");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(entries(&vw), 2, "{out}");
    assert!(refused(&vw, &target), "not refused after one reload");

    std::fs::write(&list, format!("{LISTED}\n")).expect("remove");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(entries(&vw), 1, "{out}");
    assert!(reachable(&vw, &target), "still refused after removal");
}

#[test]
fn a_corrupt_file_keeps_the_previous_content_enforced() {
    let vw = Instance::new("corrupt");
    let list = vw.write("corrupt.netset", &format!("{LISTED}\n"));
    // Strict: a malformed line fails the list, which then keeps its last good content.
    let _daemon = vw.start(std::slice::from_ref(&list), &["--strict"]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");

    std::fs::write(&list, "# oops\n10.0.0.1\nthis is not an address\n").expect("corrupt");
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 1, "a reload with errors exits 1: {out}{err}");
    assert!(
        out.contains(&format!("{}:3: invalid IP address", list.display())),
        "the error names file and line: {out}"
    );
    assert!(refused(&vw, &target), "protection was lost");
    let (_, lists, _) = vw.cli(&["lists", "--json"]);
    let entry: serde_json::Value =
        serde_json::from_str(lists.lines().next().expect("one list")).expect("lists --json");
    assert_eq!(entry["raw_entries"], 1, "{entry:#}");
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("corrupt.netset:3")),
        "{entry:#}"
    );

    // A list that would lose most of its entries at once is refused too.
    std::fs::write(
        &list,
        format!("{LISTED}\n10.1.0.0/16\n10.2.0.0/16\n10.3.0.0/16\n"),
    )
    .expect("grow");
    assert_eq!(vw.cli(&["reload"]).0, 0);
    std::fs::write(&list, "10.1.0.0/16\n").expect("shrink");
    let (code, out, _) = vw.cli(&["reload"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("shrink from 4 to 1"), "{out}");
    assert!(refused(&vw, &target), "protection was lost to a shrink");
}

#[test]
fn url_sources_use_etags_and_keep_the_last_good_copy_when_the_server_fails() {
    let server = HttpServer::start(Reply {
        status: 200,
        body: format!("# served list\n{LISTED}\n"),
        etag: Some("\"v1\"".into()),
    });
    let vw = Instance::new("url");
    let url = server.url("/list.txt");
    vw.write_config(&format!(
        "[[lists]]\nname = \"remote\"\nsources = [{url:?}]\n"
    ));
    let daemon = vw.start(&[], &[]);
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port}");
    assert!(refused(&vw, &target));
    let run = run_in(&probe_bin(), &vw.cgroup, &[("tcp", target.clone())]);
    let event = daemon.expect_event(Duration::from_secs(10), |e| e["pid"] == run.pid);
    assert_eq!(event["source"], format!("{url}:2"), "{event:#}");

    // Unchanged: the second request is conditional and gets 304; nothing changes.
    let (code, out, err) = vw.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains("if-none-match: \"v1\""),
        "{}",
        requests[1]
    );
    assert!(out.contains("inserted=0 updated=0 deleted=0"), "{out}");

    // The server breaks: the cached copy stays in force and the error names the URL.
    server.set(Reply {
        status: 500,
        body: "broken".into(),
        etag: None,
    });
    let (code, out, _) = vw.cli(&["reload"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&url) && out.contains("500"), "{out}");
    assert!(
        refused(&vw, &target),
        "protection was lost when the URL failed"
    );

    // The daemon restarts while the server is still down: the on-disk cache carries it.
    let (stopped, _) = daemon.stop();
    assert!(stopped.success());
    let _restarted = vw.start(&[], &[]);
    assert!(refused(&vw, &target));
    let (_, lists, _) = vw.cli(&["lists", "--json"]);
    assert!(lists.contains("using the cached copy"), "{lists}");
}

#[test]
fn asn_sources_resolve_through_a_ripestat_style_endpoint() {
    let server = HttpServer::start(Reply {
        status: 200,
        body: format!(
            r#"{{"status":"ok","data":{{"resource":"64500","prefixes":[{{"prefix":"{LISTED}/32"}},{{"prefix":"2001:db8:64::/48"}}]}}}}"#
        ),
        etag: None,
    });
    let vw = Instance::new("asn");
    vw.write_config(&format!(
        "[asn]\nendpoint = {:?}\n\n[[lists]]\nname = \"as64500\"\nasns = [64500]\n",
        server.url("/data/announced-prefixes/data.json")
    ));
    let _daemon = vw.start(&[], &[]);
    let requests = server.requests();
    assert!(requests[0].contains("resource=AS64500"), "{requests:?}");
    let (_listener, port) = listen(&format!("{LISTED}:0"));
    assert!(refused(&vw, &format!("{LISTED}:{port}")));
    let (code, out, _) = vw.cli(&["check", LISTED, "--json"]);
    assert_eq!(code, 0, "{out}");
    let verdict: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(verdict["list"], "as64500");
    assert_eq!(verdict["source"], "AS64500:1");
    assert_eq!(
        verdict["kernel"]["blocked"], true,
        "the kernel agrees: {verdict:#}"
    );
}

/// A loopback server that answers its first request with `body` and then accepts every
/// connection and never answers it; returns its port and how many connections it accepted.
fn stalling_server(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            } else {
                held.push(stream);
            }
        }
    });
    (port, accepted)
}

/// While a reload waits on a URL that never answers, the loop goes on: detached links are
/// noticed within the integrity interval and re-attached, the watchdog is pinged, events are
/// delivered, and further SIGHUPs are coalesced into one reload that follows, not queued.
#[test]
fn a_reload_waiting_on_a_silent_url_stalls_nothing() {
    const INTEGRITY: Duration = Duration::from_millis(500);
    // For a busy machine or the kernel matrix's emulation, where the check itself takes time.
    const MARGIN: Duration = Duration::from_secs(2);
    // How long the reload waits on the silent server: longer than everything checked while it
    // waits, including a re-attach (a program load takes up to 10 s under emulation).
    const HANG: Duration = Duration::from_secs(25);
    let (port, accepted) = stalling_server("127.0.0.71\n");
    let vw = Instance::new("stall");
    let local = vw.write("local.netset", &format!("{LISTED}\n"));
    vw.write_config(&format!(
        "integrity_check_interval = \"500ms\"\n\
         [http]\ntimeout = \"{}s\"\n\
         [[lists]]\nname = \"local\"\nsources = [\"{}\"]\n\
         [[lists]]\nname = \"remote\"\nsources = [\"http://127.0.0.1:{port}/list\"]\n",
        HANG.as_secs(),
        local.display()
    ));
    let wrapper = ["env".to_owned(), "WATCHDOG_USEC=2000000".to_owned()];
    let mut daemon = vendorwall_e2e::daemon::Daemon::start_wrapped(&wrapper, &vw.run_args(&[]));
    let (_listener, port_66) = listen(&format!("{LISTED}:0"));
    let target = format!("{LISTED}:{port_66}");
    let before = reloads(&vw);

    daemon.hangup();
    assert!(
        eventually(Duration::from_secs(5), || accepted.load(Ordering::SeqCst)
            >= 2),
        "the reload never asked the server"
    );
    let asked = std::time::Instant::now();
    // The reload now waits on the silent server. Tamper with enforcement meanwhile.
    let (_, status) = vw.status();
    let detached = std::time::Instant::now();
    for id in link_ids(&status) {
        bpf::detach_link(id);
    }
    let noticed = eventually(INTEGRITY + MARGIN, || {
        daemon.stderr_so_far().contains("ENFORCEMENT TAMPERED WITH")
    });
    let noticed_in = detached.elapsed();
    if !noticed {
        let (_, stderr) = daemon.stop();
        panic!(
            "the detach was not noticed within {:?} while a reload waited; stderr:\n{stderr}",
            INTEGRITY + MARGIN
        );
    }
    daemon.wait_for_notify("WATCHDOG=1", Duration::from_secs(2));
    assert!(
        eventually(HANG / 2, || refused(&vw, &target)),
        "not re-attached while the reload waited"
    );
    let run = run_in(&probe_bin(), &vw.cgroup, &[("tcp", target.clone())]);
    let pid = run.pid;
    daemon.expect_event(Duration::from_secs(5), |e| e["pid"] == pid);
    assert!(
        asked.elapsed() < HANG && accepted.load(Ordering::SeqCst) == 2 && reloads(&vw) == before,
        "the checks above must have run while the first reload still waited"
    );
    // Two more requests while it waits: one reload follows, not two.
    daemon.hangup();
    std::thread::sleep(Duration::from_millis(100));
    daemon.hangup();
    assert!(
        eventually(HANG * 3, || reloads(&vw) == before + 2),
        "the coalesced reload did not follow the first"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        reloads(&vw),
        before + 2,
        "SIGHUPs were queued, not coalesced"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    eprintln!("tampering noticed {noticed_in:?} after the detach, during the reload");
}
