//! Fleet roll-out with Ansible (deploy/ansible/roles/vendorwall), for real: Debian's
//! ansible-core runs the role inside a booted Debian 12 with systemd as PID 1 (the systemd test
//! bed), as it would on each host of a fleet. The first run installs the .deb, writes the config
//! and leaves the host enforcing; a second run changes nothing; a config change triggers exactly
//! one reload.

use std::time::Duration;

use vendorwall_e2e::{container::Container, eventually};

const LISTED: &str = "127.0.9.1:80";

/// Runs the test playbook with `extra` variables (JSON); returns `changed=N` of the recap.
fn play(bed: &Container, extra: &str) -> u32 {
    let out = bed.ok(&format!(
        "cd /root/ansible && ANSIBLE_ROLES_PATH=roles ANSIBLE_NOCOLOR=1 \
         ansible-playbook -c local -i localhost, test.yml -e '{extra}'"
    ));
    let recap = out
        .lines()
        .rev()
        .find(|l| l.contains("changed="))
        .unwrap_or_else(|| panic!("no play recap:\n{out}"));
    assert!(recap.contains("failed=0"), "{out}");
    recap
        .split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no changed count in {recap}"))
}

fn reloads(bed: &Container) -> u64 {
    let status = bed.sh("vendorwall status --json");
    serde_json::from_slice::<serde_json::Value>(&status.stdout)
        .ok()
        .and_then(|s| s["daemon"]["reloads"].as_u64())
        .unwrap_or(0)
}

#[test]
fn the_role_installs_enforces_is_idempotent_and_reloads_once_per_change() {
    let deb = std::path::PathBuf::from(
        std::env::var_os("VENDORWALL_DEB").expect("VENDORWALL_DEB is set by `cargo xtask test`"),
    );
    let bed = Container::boot_clean("ansible");
    let ansible = bed.root().join("root/ansible");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(vendorwall_e2e::repo_root().join("deploy/ansible"))
        .arg(&ansible)
        .status()
        .expect("cp");
    assert!(copied.success());
    std::fs::copy(&deb, bed.root().join("root/vendorwall.deb")).expect("copy .deb");
    bed.write("/etc/vendorwall/bed.netset", "127.0.9.0/24\n");
    bed.write(
        "/root/ansible/test.yml",
        "- hosts: all\n  roles:\n    - role: vendorwall\n      vars:\n        \
         vendorwall_deb: /root/vendorwall.deb\n        vendorwall_lists:\n          \
         - name: bed\n            sources: [/etc/vendorwall/bed.netset]\n",
    );

    let first = play(&bed, "{}");
    assert!(
        first >= 3,
        "the first run installs and configures: changed={first}"
    );
    assert!(
        eventually(Duration::from_secs(30), || bed
            .sh("systemctl is-active vendorwall")
            .stdout
            .starts_with(b"active")),
        "the unit is not active after the first run"
    );
    assert_eq!(bed.ok("systemctl is-enabled vendorwall").trim(), "enabled");
    assert!(bed.refused(LISTED), "the host does not enforce the list");
    let config = bed.ok("cat /etc/vendorwall/config.toml");
    assert!(config.contains("name = \"bed\""), "{config}");

    assert_eq!(
        play(&bed, "{}"),
        0,
        "a second run with nothing new changed something"
    );

    let before = reloads(&bed);
    let change = r#"{"vendorwall_exceptions": ["127.0.9.7/32"]}"#;
    assert_eq!(play(&bed, change), 2, "the config file and its one reload");
    assert!(
        eventually(Duration::from_secs(10), || reloads(&bed) == before + 1),
        "not exactly one reload: {} then {}",
        before,
        reloads(&bed)
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reloads(&bed), before + 1, "more than one reload");
    assert!(
        !bed.refused("127.0.9.7:80"),
        "the exception is not in force"
    );
    assert!(bed.refused(LISTED), "enforcement lapsed with the change");
}
