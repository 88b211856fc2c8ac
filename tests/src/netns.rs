//! A network namespace joined to the host by a veth pair, with ULA IPv6 addresses, removed with
//! its guard. The only non-loopback addresses tests ever reach live here.

use std::{net::Ipv6Addr, process::Command};

pub struct NetNs {
    name: String,
    host_if: String,
    /// The namespace's /64, `fd00:766:<a>:<b>::/64`.
    prefix: [u16; 4],
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("run ip {args:?}: {err} (is iproute2 installed?)"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    /// Creates the namespace and veth pair; the host side is `<prefix>::1`, the namespace holds
    /// every address in `hosts` (interface ids within the /64).
    pub fn new(tag: &str, hosts: &[u16]) -> Self {
        let unique = crate::unique(tag);
        let n = std::process::id() & 0xffff;
        let seq = unique
            .rsplit('-')
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let name = format!("vwtest-{unique}");
        let host_if = format!("vwh{}", n * 100 + u32::from(seq) % 100);
        let peer_if = format!("vwp{}", n * 100 + u32::from(seq) % 100);
        let prefix = [0xfd00, 0x766, n as u16, seq];
        let ns = Self {
            name,
            host_if,
            prefix,
        };
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &ns.name]);
        let host_addr = format!("{}/64", ns.addr(1));
        ip(&["addr", "add", &host_addr, "dev", &ns.host_if, "nodad"]);
        ip(&["link", "set", &ns.host_if, "up"]);
        for &host in hosts {
            let addr = format!("{}/64", ns.addr(host));
            ip(&[
                "-n", &ns.name, "addr", "add", &addr, "dev", &peer_if, "nodad",
            ]);
        }
        ip(&["-n", &ns.name, "link", "set", &peer_if, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace with only its own loopback: nothing sent inside it can leave the machine,
    /// so attempts to real-world-looking addresses are safe to make there.
    pub fn isolated(tag: &str) -> Self {
        let ns = Self {
            name: format!("vwtest-{}", crate::unique(tag)),
            host_if: String::new(),
            prefix: [0, 0, 0, 0],
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<prefix>::<host>`.
    pub fn addr(&self, host: u16) -> Ipv6Addr {
        let [a, b, c, d] = self.prefix;
        Ipv6Addr::new(a, b, c, d, 0, 0, 0, host)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if self.host_if.is_empty() {
            return;
        }
        // Deleting the namespace destroys the peer and with it the pair; this is a fallback.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
