//! The list formats operators have (issue 13), through the real daemon on the real kernel: each
//! loads, is enforced from a test cgroup, and `check` names it; one broken list never switches
//! the others off, is reported by file and line, and never removes what was enforced.

use std::{io::Write as _, path::PathBuf};

use vendorwall_e2e::{TempDir, instance::Instance, listen, probe::run_in, probe_bin, repo_root};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/lists").join(name)
}

/// A `[[lists]]` entry for one file.
fn list_entry(name: &str, path: &std::path::Path, extra: &str) -> String {
    format!(
        "[[lists]]\nname = \"{name}\"\nsources = [\"{}\"]\n{extra}\n",
        path.display()
    )
}

/// Connects from the instance's cgroup to every address: which were refused.
fn refused(vw: &Instance, addrs: &[&str]) -> Vec<bool> {
    let (_unused, port) = listen("127.0.0.1:0");
    let ops: Vec<(&str, String)> = addrs
        .iter()
        .map(|a| ("tcp", format!("{a}:{port}")))
        .collect();
    run_in(&probe_bin(), &vw.cgroup, &ops)
        .attempts
        .iter()
        .map(|a| a.refused())
        .collect()
}

#[test]
fn every_supported_format_loads_is_enforced_and_checked() {
    let dir = TempDir::new("formats");
    let gz = dir.path().join("gzipped.netset.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"# gzip\n127.0.9.1\n").expect("gzip");
    std::fs::write(&gz, encoder.finish().expect("gzip")).expect("write gz");
    let cases = [
        ("ipset", fixture("restore.ipset"), "127.0.1.5"),
        ("ipset-second-set", fixture("restore.ipset"), "127.0.2.1"),
        ("dshield", fixture("dshield.txt"), "127.0.3.77"),
        ("counts", fixture("counts.txt"), "127.0.4.2"),
        ("csv", fixture("export.csv"), "127.0.5.1"),
        ("drop-text", fixture("drop.txt"), "127.0.6.9"),
        ("drop-json", fixture("drop.json"), "127.0.7.9"),
        ("crlf-bom", fixture("crlf.netset"), "127.0.8.2"),
        ("gzip", gz.clone(), "127.0.9.1"),
    ];
    let config: String = cases
        .iter()
        .filter(|(name, _, _)| *name != "ipset-second-set")
        .map(|(name, path, _)| list_entry(name, path, "strict = true"))
        .collect();
    let vw = Instance::new("formats");
    vw.write_config(&config);
    let _daemon = vw.start(&[], &[]);
    let (code, status) = vw.status();
    assert_eq!(code, 0, "not degraded: {status:#}");

    let listed: Vec<&str> = cases.iter().map(|(_, _, addr)| *addr).collect();
    let got = refused(&vw, &listed);
    for ((name, _, addr), refused) in cases.iter().zip(&got) {
        assert!(refused, "{name}: {addr} must be refused");
    }
    // Not listed: the ipset `nomatch` exception, and an address next to the DShield range.
    assert_eq!(
        refused(&vw, &["127.0.1.200", "127.0.10.1"]),
        [false, false],
        "a nomatch element is carved out; unlisted addresses pass"
    );
    for (name, _, addr) in &cases {
        let expected = name.trim_end_matches("-second-set");
        let (code, stdout, stderr) = vw.cli(&["check", addr, "--json"]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
        let verdict: serde_json::Value = serde_json::from_str(&stdout).expect("check --json");
        assert_eq!(verdict["list"], expected, "{name}: {verdict:#}");
        assert_eq!(verdict["kernel"]["blocked"], true, "{name}: {verdict:#}");
    }
}

#[test]
fn a_broken_list_is_reported_by_file_and_line_and_never_switches_the_others_off() {
    let dir = TempDir::new("broken");
    let good = dir.write("good.netset", "127.0.11.1\n");
    let typo = dir.write("typo.netset", "127.0.12.1\n127.0.12.300\n127.0.12.2\n");
    let strict = dir.write("strict.netset", "127.0.13.1\nnot-an-address\n");
    let missing = dir.path().join("missing.netset");
    let config = [
        list_entry("good", &good, ""),
        list_entry("typo", &typo, ""),
        list_entry("strict", &strict, "strict = true"),
        list_entry("missing", &missing, ""),
    ]
    .concat();
    // A fresh instance: nothing pinned, as after a reboot.
    let vw = Instance::new("broken");
    vw.write_config(&config);
    let daemon = vw.start(&[], &[]);
    assert_eq!(
        refused(
            &vw,
            &["127.0.11.1", "127.0.12.1", "127.0.12.2", "127.0.13.1"]
        ),
        [true, true, true, false],
        "good and typo (minus its bad line) are enforced; strict failed as a whole"
    );
    let (code, status) = vw.status();
    assert_eq!(code, 1, "degraded while lists are not enforced: {status:#}");
    let mut not_enforced: Vec<&str> = status["not_enforced"]
        .as_array()
        .expect("not_enforced")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    not_enforced.sort_unstable();
    assert_eq!(not_enforced, ["missing", "strict"], "{status:#}");
    let (_, lists, _) = vw.cli(&["lists", "--json"]);
    let lists: Vec<serde_json::Value> = lists
        .lines()
        .map(|l| serde_json::from_str(l).expect("lists --json"))
        .collect();
    let by_name = |n: &str| {
        lists
            .iter()
            .find(|l| l["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {lists:?}"))
    };
    assert_eq!(by_name("typo")["skipped_lines"], 1);
    assert_eq!(
        by_name("typo")["skipped"][0],
        format!("{}:2: invalid IP address: \"127.0.12.300\"", typo.display())
    );
    assert_eq!(
        by_name("strict")["last_error"],
        format!(
            "list strict: {}:2: invalid IP address: \"not-an-address\"",
            strict.display()
        )
    );
    assert!(
        by_name("missing")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&missing.display().to_string())),
        "{lists:?}"
    );
    let (_, log) = daemon.stop();
    assert!(
        log.contains(&format!(
            "{}:2: invalid IP address: \"127.0.12.300\"",
            typo.display()
        )),
        "the skipped line is logged: {log}"
    );
    assert!(log.contains("list strict is NOT enforced"), "{log}");

    // Restart with the good list's file gone and the typo list replaced by an error page:
    // what they enforced stays in force.
    std::fs::remove_file(&good).expect("remove good");
    std::fs::write(&typo, "<html>\n<body>502 Bad Gateway</body>\n</html>\n").expect("page");
    let _daemon = vw.start(&[], &[]);
    assert_eq!(
        refused(&vw, &["127.0.11.1", "127.0.12.1", "127.0.12.2"]),
        [true, true, true],
        "a list that fails never removes what the kernel enforced for it"
    );
    let (code, _) = vw.status();
    assert_eq!(code, 1);
}
