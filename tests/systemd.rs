//! The installed unit under a real systemd (Debian 12's 252, PID 1 of a container): it starts
//! with the shipped lists, reloads, is restarted after SIGKILL and a watchdog timeout with no
//! connection getting through, leaves enforcement in place when stopped, logs its events to the
//! journal, and keeps retrying a start that keeps failing. And the .deb's life there: install
//! (enabled and started), upgrade under load, remove, purge.
//!
//! Every address used is loopback inside the container's own network namespace.

use std::{process::Command, time::Duration};

use vendorwall_e2e::{container::Container, eventually, probe::Hammer};

/// A local list beside the shipped defaults; only ever loopback.
const BED_LIST: &str = "/etc/vendorwall/bed.netset";
const LISTED: &str = "127.0.9.1:80";
const ADDED: &str = "127.0.7.1:80";
const UNLISTED: &str = "127.0.8.1:80";

/// The shipped default lists plus the local test list (naming lists replaces the defaults).
const CONFIG: &str = r#"
[[lists]]
manifest = "kaspersky"
[[lists]]
manifest = "china-telecom-americas"
[[lists]]
manifest = "china-unicom-americas"
[[lists]]
manifest = "huawei"
[[lists]]
name = "bed"
sources = ["/etc/vendorwall/bed.netset"]

[events]
aggregate_window = "0s"
"#;

fn configured(tag: &str) -> Container {
    let bed = Container::boot(tag);
    bed.write("/etc/vendorwall/config.toml", CONFIG);
    bed.write(BED_LIST, "127.0.9.0/24\n");
    bed
}

/// A hammer on `addr` running in its own cgroup inside the container.
fn hammer(bed: &Container, addr: &str) -> Hammer {
    let cmd: Command = bed.command(&format!(
        "mkdir -p /sys/fs/cgroup/vw-hammer && echo $$ > /sys/fs/cgroup/vw-hammer/cgroup.procs \
         && exec vw-probe hammer {addr} 120000"
    ));
    Hammer::spawn(cmd, |_| {})
}

fn main_pid(bed: &Container) -> String {
    bed.property("vendorwall", "MainPID")
}

fn active(bed: &Container) -> bool {
    bed.sh("systemctl is-active --quiet vendorwall")
        .status
        .success()
}

#[test]
fn the_unit_starts_reloads_restarts_and_stops_under_real_systemd() {
    let bed = configured("unit");
    bed.ok("systemctl daemon-reload");
    let started = bed.sh("systemctl start vendorwall");
    assert!(
        started.status.success(),
        "systemctl start failed: {}\n{}",
        String::from_utf8_lossy(&started.stderr),
        bed.ok("journalctl -u vendorwall --no-pager | tail -20")
    );
    // READY was sent only once enforcing: status agrees, with every shipped default list.
    let status: serde_json::Value =
        serde_json::from_str(&bed.ok("vendorwall status --json")).expect("status JSON");
    assert_eq!(status["enforcing"], true, "{status}");
    assert_eq!(status["not_enforced"], serde_json::json!([]), "{status}");
    let lists: Vec<&str> = status["daemon"]["lists"]
        .as_array()
        .unwrap_or_else(|| panic!("no lists in {status}"))
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    for name in ["kaspersky", "huawei", "bed"] {
        assert!(lists.contains(&name), "{name} not enforced: {lists:?}");
    }
    assert!(bed.refused(LISTED), "a listed address got through");
    assert!(!bed.refused(UNLISTED), "an unlisted address was refused");

    let hammer = hammer(&bed, LISTED);

    // `systemctl reload` applies a changed list.
    bed.write(BED_LIST, "127.0.9.0/24\n127.0.7.0/24\n");
    bed.ok("systemctl reload vendorwall");
    assert!(
        eventually(Duration::from_secs(10), || bed.refused(ADDED)),
        "a reload did not apply the added range"
    );

    // SIGKILL: systemd restarts it; the pinned programs enforce in between.
    let before = main_pid(&bed);
    bed.ok("systemctl kill -s KILL vendorwall");
    assert!(
        eventually(Duration::from_secs(20), || active(&bed)
            && main_pid(&bed) != before
            && main_pid(&bed) != "0"),
        "not restarted after SIGKILL"
    );

    // A hung daemon: the watchdog (shortened for the test) kills it and systemd restarts it.
    bed.write(
        "/etc/systemd/system/vendorwall.service.d/watchdog.conf",
        "[Service]\nWatchdogSec=2s\n",
    );
    bed.ok("systemctl daemon-reload && systemctl restart vendorwall");
    let hung = main_pid(&bed);
    bed.ok(&format!("kill -STOP {hung}"));
    assert!(
        eventually(Duration::from_secs(30), || active(&bed)
            && main_pid(&bed) != hung
            && main_pid(&bed) != "0"),
        "a hung daemon was not restarted by the watchdog"
    );
    let journal = bed.ok("journalctl -u vendorwall --no-pager");
    assert!(journal.contains("Watchdog timeout"), "{journal}");

    // `systemctl stop` ends the daemon, not the enforcement.
    bed.ok("systemctl stop vendorwall");
    assert!(!active(&bed));
    assert!(bed.refused(LISTED), "enforcement ended with the service");

    let counts = hammer.stop();
    assert_eq!(
        counts.ok + counts.other,
        0,
        "connections got through while the unit was reloaded, killed and restarted: {counts:?}"
    );
    assert!(counts.refused > 0, "the hammer never ran: {counts:?}");

    // Refused connections are in the journal natively: a sentence in MESSAGE, priority
    // warning, and every field of the event as VENDORWALL_*, selectable by journalctl.
    let events = bed.ok(
        "journalctl -u vendorwall VENDORWALL_LIST=bed VENDORWALL_DST=127.0.9.1 -o json --no-pager",
    );
    let entry = events
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|e| e["VENDORWALL_ACTION"] == "blocked")
        .unwrap_or_else(|| panic!("no blocked event for 127.0.9.1 in the journal:\n{events}"));
    let message = entry["MESSAGE"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("blocked vw-probe (pid ") && message.contains("-> 127.0.9.1:"),
        "{entry:#}"
    );
    assert!(message.contains(", list bed"), "{entry:#}");
    assert_eq!(entry["PRIORITY"], "4", "warning: {entry:#}");
    assert_eq!(entry["SYSLOG_IDENTIFIER"], "vendorwall", "{entry:#}");
    assert_eq!(entry["_SYSTEMD_UNIT"], "vendorwall.service", "{entry:#}");
    for field in [
        "VENDORWALL_PORT",
        "VENDORWALL_PROTOCOL",
        "VENDORWALL_COUNT",
        "VENDORWALL_PID",
        "VENDORWALL_UID",
        // (No /proc fields: the kernel reports host pids, which this container's /proc,
        // where the daemon runs, does not show; on a host they are there.)
        "VENDORWALL_PROCESS_GONE",
        "VENDORWALL_HOOK",
        "VENDORWALL_TIME",
    ] {
        assert!(entry[field].is_string(), "{field} missing: {entry:#}");
    }
    assert_eq!(entry["VENDORWALL_PROTOCOL"], "tcp", "{entry:#}");
    // The vendor of a shipped manifest is a field too: one query finds all of its events.
    let vendors = bed.ok("journalctl -u vendorwall -F VENDORWALL_LIST --no-pager");
    assert!(vendors.lines().any(|l| l == "bed"), "{vendors}");
}

#[test]
fn a_start_that_keeps_failing_keeps_being_retried() {
    let bed = configured("retry");
    // A broken configuration: every start fails, far more often than the default start limit
    // (5 in 10 s) allows.
    bed.write("/etc/vendorwall/config.toml", "this is not = = toml\n");
    bed.ok("systemctl daemon-reload");
    let _ = bed.sh("systemctl start vendorwall");
    assert!(
        eventually(Duration::from_secs(30), || {
            bed.property("vendorwall", "NRestarts")
                .parse::<u32>()
                .is_ok_and(|n| n > 6)
        }),
        "restarts stopped: {}",
        bed.ok("systemctl status vendorwall --no-pager | head -5")
    );
    assert_ne!(
        bed.property("vendorwall", "Result"),
        "start-limit-hit",
        "systemd gave up on the security daemon"
    );
    // Fixed by the operator: it comes up on its own, no reset-failed needed.
    bed.write("/etc/vendorwall/config.toml", CONFIG);
    assert!(
        eventually(Duration::from_secs(30), || active(&bed)),
        "did not start once the configuration was fixed"
    );
    assert!(bed.refused(LISTED));
}

/// `deb` rebuilt with a later version, as the next release's package would be.
fn next_version(deb: &std::path::Path, dir: &vendorwall_e2e::TempDir) -> std::path::PathBuf {
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("dpkg-deb");
        assert!(out.status.success(), "{cmd:?}: {out:?}");
    };
    let tree = dir.path().join("tree");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("control");
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("a Version field")
        .to_owned();
    std::fs::write(
        &control,
        text.replace(
            &format!("Version: {version}"),
            &format!("Version: {version}+next1"),
        ),
    )
    .expect("write control");
    let out = dir.path().join("next.deb");
    run(Command::new("dpkg-deb").arg("-b").arg(&tree).arg(&out));
    out
}

#[test]
fn the_package_installs_upgrades_under_load_removes_and_purges() {
    let deb = std::path::PathBuf::from(
        std::env::var_os("VENDORWALL_DEB").expect("VENDORWALL_DEB is set by `cargo xtask test`"),
    );
    let scratch = vendorwall_e2e::TempDir::new("deb-next");
    let next = next_version(&deb, &scratch);
    let bed = Container::boot_clean("deb");
    std::fs::copy(&deb, bed.root().join("root/vendorwall.deb")).expect("copy .deb");
    std::fs::copy(&next, bed.root().join("root/vendorwall-next.deb")).expect("copy next .deb");

    // Install: enabled and started by the maintainer scripts, with the shipped lists.
    bed.ok("DEBIAN_FRONTEND=noninteractive dpkg -i /root/vendorwall.deb");
    assert_eq!(bed.ok("systemctl is-enabled vendorwall").trim(), "enabled");
    assert!(
        eventually(Duration::from_secs(30), || active(&bed)),
        "not started on install: {}",
        bed.ok("journalctl -u vendorwall --no-pager | tail -20")
    );
    bed.ok("vendorwall status >/dev/null");

    // The operator configures it (the conffile); the next release is installed under load.
    bed.write("/etc/vendorwall/config.toml", CONFIG);
    bed.write(BED_LIST, "127.0.9.0/24\n");
    bed.ok("systemctl reload vendorwall");
    assert!(bed.refused(LISTED));
    let hammer = hammer(&bed, LISTED);
    let before = main_pid(&bed);
    bed.ok("DEBIAN_FRONTEND=noninteractive dpkg -i /root/vendorwall-next.deb");
    assert!(
        eventually(Duration::from_secs(30), || active(&bed)
            && main_pid(&bed) != before
            && main_pid(&bed) != "0"),
        "not restarted on upgrade"
    );
    let counts = hammer.stop();
    assert_eq!(
        counts.ok + counts.other,
        0,
        "connections got through during the upgrade: {counts:?}"
    );
    assert!(counts.refused > 0, "the hammer never ran: {counts:?}");
    assert_eq!(
        bed.ok("cat /etc/vendorwall/config.toml"),
        CONFIG,
        "the upgrade replaced the operator's configuration"
    );

    // Remove: the service stops, the enforcement stays (as the README says).
    bed.ok("dpkg -r vendorwall");
    assert!(!active(&bed), "still running after dpkg -r");
    assert_eq!(
        bed.sh("test -e /usr/sbin/vendorwall").status.code(),
        Some(1)
    );
    assert!(bed.refused(LISTED), "enforcement ended with dpkg -r");

    // Purge: the enforcement, the state and the packaged configuration go; a file the operator
    // added to /etc/vendorwall (the local list) stays, as dpkg leaves what it did not install.
    bed.ok("dpkg --purge vendorwall");
    assert!(!bed.refused(LISTED), "still refused after purge");
    assert_eq!(bed.ok(&format!("cat {BED_LIST}")), "127.0.9.0/24\n");
    for gone in [
        "/sys/fs/bpf/vendorwall",
        "/etc/vendorwall/config.toml",
        "/var/lib/vendorwall",
    ] {
        assert_eq!(
            bed.sh(&format!("test -e {gone}")).status.code(),
            Some(1),
            "{gone} is left after purge"
        );
    }
}

/// A .deb named like the vendor's product (`kesl`, Kaspersky Endpoint Security for Linux),
/// holding one file under the product's install path; nothing of the vendor's.
fn dummy_vendor_deb(dir: &vendorwall_e2e::TempDir) -> std::path::PathBuf {
    let tree = dir.path().join("kesl");
    std::fs::create_dir_all(tree.join("DEBIAN")).expect("mkdir");
    std::fs::create_dir_all(tree.join("opt/kaspersky/kesl/bin")).expect("mkdir");
    std::fs::write(
        tree.join("DEBIAN/control"),
        "Package: kesl\nVersion: 12.1.0-0test\nArchitecture: all\n\
         Maintainer: vendorwall tests <tests@example.org>\n\
         Description: test package named like a vendor product\n",
    )
    .expect("control");
    std::fs::write(tree.join("opt/kaspersky/kesl/bin/kesl"), "#!/bin/sh\n").expect("file");
    let deb = dir.path().join("kesl.deb");
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&tree)
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    deb
}

#[test]
fn scan_finds_a_vendor_package_installed_with_dpkg() {
    let scratch = vendorwall_e2e::TempDir::new("scan-deb");
    let deb = dummy_vendor_deb(&scratch);
    let bed = configured("scan");
    let clean = bed.sh("vendorwall scan");
    assert_eq!(
        clean.status.code(),
        Some(0),
        "a clean system: {}",
        String::from_utf8_lossy(&clean.stdout)
    );
    std::fs::copy(&deb, bed.root().join("root/kesl.deb")).expect("copy .deb");
    bed.ok("dpkg -i /root/kesl.deb");
    let found = bed.sh("vendorwall scan --json");
    assert_eq!(found.status.code(), Some(1), "something was found");
    let findings: serde_json::Value =
        serde_json::from_slice(&found.stdout).expect("scan --json is JSON");
    let has = |kind: &str, name: &str| {
        findings
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x["kind"] == kind && x["name"] == name))
    };
    assert!(has("package", "kesl"), "{findings:#}");
    assert!(has("path", "/opt/kaspersky/kesl"), "{findings:#}");
    assert_eq!(findings[0]["vendor"], "AO Kaspersky Lab");
    let table = bed.sh("vendorwall scan");
    assert!(String::from_utf8_lossy(&table.stdout).contains("kesl"));
    // Purged, it is gone again.
    bed.ok("dpkg --purge kesl");
    assert_eq!(bed.sh("vendorwall scan").status.code(), Some(0));
}
