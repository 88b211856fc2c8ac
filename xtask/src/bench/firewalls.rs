//! The peers, set up the way an operator would, matching only the bench's own traffic (packets
//! of the bench uid) and removed on drop, also when the bench fails.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// The uid the bench's probe runs as; the peers' rules match only it.
pub const BENCH_UID: u32 = 65534;

/// A uid no peer rule matches: the A side of a peer's A/B comparison, whose traffic walks the
/// peer's output chain (its uid test) but is never looked up in its set.
pub const OTHER_UID: u32 = 65533;

fn run_with_input(program: &str, args: &[&str], input: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to run {program}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed())
}

fn quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .status();
}

/// An nftables table with an interval set of the prefixes and an output rule for the bench uid.
pub struct Nft {
    pub load_time: Duration,
}

impl Nft {
    pub fn load(prefixes: &[String]) -> anyhow::Result<Self> {
        quiet("nft", &["delete", "table", "inet", "vwbench"]);
        let mut text = String::from(
            "table inet vwbench {\n set blocked { type ipv4_addr; flags interval; elements = { ",
        );
        text.push_str(&prefixes.join(", "));
        text.push_str(&format!(
            " }} }}\n chain out {{ type filter hook output priority 0; policy accept; meta skuid {BENCH_UID} ip daddr @blocked reject; }}\n}}\n"
        ));
        let load_time = run_with_input("nft", &["-f", "-"], &text)?;
        Ok(Self { load_time })
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        quiet("nft", &["delete", "table", "inet", "vwbench"]);
    }
}

/// An ipset hash:net of the prefixes and an iptables OUTPUT rule for the bench uid.
pub struct Ipset {
    pub load_time: Duration,
    /// The set's kernel memory as ipset reports it (`Size in memory` of `ipset list -t`), bytes.
    pub memory: Option<u64>,
}

const IPTABLES_RULE: [&str; 10] = [
    "OUTPUT",
    "-m",
    "owner",
    "--uid-owner",
    "65534",
    "-m",
    "set",
    "--match-set",
    "vwbench",
    "dst",
];

impl Ipset {
    pub fn load(prefixes: &[String]) -> anyhow::Result<Self> {
        Self::remove();
        let mut text = format!(
            "create vwbench hash:net family inet hashsize 65536 maxelem {}\n",
            (prefixes.len() * 2).max(65536)
        );
        for p in prefixes {
            text.push_str("add vwbench ");
            text.push_str(p);
            text.push('\n');
        }
        let load_time = run_with_input("ipset", &["restore"], &text)?;
        let mut rule = vec!["-I"];
        rule.extend(IPTABLES_RULE);
        rule.extend(["-j", "REJECT"]);
        let status = Command::new("iptables").args(&rule).status()?;
        if !status.success() {
            bail!("iptables {rule:?} failed");
        }
        let memory = Command::new("ipset")
            .args(["list", "vwbench", "-t"])
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("Size in memory:"))
                    .and_then(|v| v.trim().parse().ok())
            });
        Ok(Self { load_time, memory })
    }

    fn remove() {
        let mut rule = vec!["-D"];
        rule.extend(IPTABLES_RULE);
        rule.extend(["-j", "REJECT"]);
        quiet("iptables", &rule);
        quiet("ipset", &["destroy", "vwbench"]);
    }
}

impl Drop for Ipset {
    fn drop(&mut self) {
        Self::remove();
    }
}
