//! The optional programs attached besides the address hooks: the raw-socket guard and the
//! egress backstop, and the DNS learner.

use blocker_common::program_names;

/// The optional programs to attach besides the address hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalPrograms {
    /// Refuse raw sockets in non-exempt cgroups (`vw_sock_create`).
    pub raw_sockets: bool,
    /// Drop egress packets to enforced ranges (`vw_egress`).
    pub egress: bool,
    /// Learn the addresses of listed names from DNS answers (`vw_dns_ingress`), when it loaded.
    pub learner: bool,
}

impl OptionalPrograms {
    /// The programs to attach.
    pub fn programs(&self) -> Vec<&'static str> {
        let mut programs = Vec::new();
        if self.raw_sockets {
            programs.push(program_names::SOCK_CREATE);
        }
        if self.egress {
            programs.push(program_names::EGRESS);
        }
        if self.learner {
            programs.push(program_names::DNS_INGRESS);
        }
        programs
    }
}
