//! The kernel programs' verdict, written once in userspace: `check`, the sweep of established
//! connections and the property test against the real programs all decide with this, so none
//! of them can answer differently from `connect4/6` and `sendmsg4/6`.
//!
//! The order mirrors `blocker-ebpf/src/main.rs` step by step:
//! 1. an IPv6 destination that embeds an IPv4 address (`::ffff:a.b.c.d`, IPv4-compatible
//!    `::a.b.c.d` except `::` and `::1`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16` when those
//!    settings are on) is first looked up as that IPv4 address; only when no IPv4 prefix holds
//!    it is the IPv6 address itself looked up;
//! 2. the longest block prefix decides the list and its action (the kernel set already lets
//!    enforce win over audit, see `lists::aggregate`); an address learned from a DNS answer to
//!    a listed name decides when no prefix holds it, or when the prefix only audits and the
//!    learned name enforces;
//! 3. an exception (allow-list) covering the address looked up, in the same family, allows;
//! 4. an exempt cgroup, or an unexpired `[[exemptions]]` grant for the cgroup (from this list
//!    or every list), allows;
//! 5. dry run turns a refusal into an audit.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use blocker_common::{Action, EXEMPT_CGROUP, ExemptionKey, Grant};
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    config::Config,
    kernel::{learned::LearnedEntry, shadow::Shadow},
};

/// What the programs do with one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No block prefix holds it.
    Unlisted,
    /// A block prefix holds it, and an exception covers it.
    Excepted(Listed),
    /// A block prefix holds it, and the connecting cgroup is exempt.
    Exempt(Listed),
    /// Refused (`Action::Enforce`) or let through and reported (`Action::Audit`).
    Listed(Listed),
}

/// The block prefix that matched and what follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The address the kernel looked up: the embedded IPv4 address, or the destination.
    pub looked_up: IpAddr,
    /// The kernel prefix (aggregated) that holds it.
    pub prefix: IpNet,
    pub list_id: u16,
    /// The action after dry run: what the program returns and reports.
    pub action: Action,
    /// Non-zero when the address was learned from an answer to this listed name.
    pub domain_id: u32,
}

impl Verdict {
    /// The matched prefix, whatever let the connection through.
    pub fn listed(&self) -> Option<&Listed> {
        match self {
            Verdict::Unlisted => None,
            Verdict::Excepted(l) | Verdict::Exempt(l) | Verdict::Listed(l) => Some(l),
        }
    }

    /// True when the connection is refused.
    pub fn refused(&self) -> bool {
        matches!(self, Verdict::Listed(l) if l.action == Action::Enforce)
    }

    /// One word for output: `blocked`, `audited`, `excepted`, `exempt` or `allowed`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Unlisted => "allowed",
            Verdict::Excepted(_) => "excepted",
            Verdict::Exempt(_) => "exempt",
            Verdict::Listed(l) if l.action == Action::Enforce => "blocked",
            Verdict::Listed(_) => "audited",
        }
    }
}

/// Which embedded IPv4 forms the kernel translates (its `SETTINGS` flags).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Translations {
    pub nat64: bool,
    pub six_to_four: bool,
}

impl Translations {
    pub fn of(config: &Config) -> Self {
        Self {
            nat64: config.nat64,
            six_to_four: config.six_to_four,
        }
    }
}

/// Everything the verdict depends on besides the destination and the caller's cgroup.
pub struct Policy<'a> {
    /// The block set as the kernel holds it.
    pub block: &'a Shadow,
    /// The exceptions (allow tries), as configured.
    pub exceptions: &'a [IpNet],
    /// Exempt cgroup ids, as the daemon resolved them.
    pub exempt: &'a [u64],
    pub translations: Translations,
    pub dry_run: bool,
    /// Unexpired learned addresses, as the kernel's learned maps hold them.
    pub learned: &'a HashMap<IpAddr, LearnedEntry>,
    /// The `[[exemptions]]` grants as the exemptions map holds them, with the boot-clock time
    /// to judge their expiry by; only cgroup grants count here (a process is not known).
    pub grants: (&'a HashMap<ExemptionKey, Grant>, u64),
}

static NONE_LEARNED: std::sync::LazyLock<HashMap<IpAddr, LearnedEntry>> =
    std::sync::LazyLock::new(HashMap::new);
static NO_GRANTS: std::sync::LazyLock<HashMap<ExemptionKey, Grant>> =
    std::sync::LazyLock::new(HashMap::new);

impl<'a> Policy<'a> {
    /// The policy of `config` over `block`, with the exempt cgroups resolved to `exempt`.
    pub fn new(block: &'a Shadow, config: &'a Config, exempt: &'a [u64]) -> Self {
        Self {
            block,
            exceptions: &config.exceptions.prefixes,
            exempt,
            translations: Translations::of(config),
            dry_run: config.dry_run,
            learned: &NONE_LEARNED,
            grants: (&NO_GRANTS, 0),
        }
    }

    /// The same policy with the exemption grants in force, judged at boot-clock `now_ns`.
    pub fn with_grants(self, grants: &'a HashMap<ExemptionKey, Grant>, now_ns: u64) -> Self {
        Self {
            grants: (grants, now_ns),
            ..self
        }
    }

    /// Whether an unexpired grant exempts cgroup `id` from list `list_id`.
    fn granted(&self, id: u64, list_id: u16) -> bool {
        let (grants, now) = self.grants;
        [list_id, 0].into_iter().any(|list| {
            grants
                .get(&ExemptionKey::new(EXEMPT_CGROUP, id, list))
                .is_some_and(|g| g.expires_ns > now)
        })
    }

    /// The same policy with the learned addresses of the kernel's maps.
    pub fn with_learned(self, learned: &'a HashMap<IpAddr, LearnedEntry>) -> Self {
        Self { learned, ..self }
    }

    /// The verdict for a connection to `dst` from cgroup `cgroup` (`None`: a cgroup that is
    /// not exempt).
    pub fn decide(&self, dst: IpAddr, cgroup: Option<u64>) -> Verdict {
        let Some((prefix, list_id, list_action, domain_id, looked_up)) =
            lookup_order(dst, self.translations)
                .into_iter()
                .flatten()
                .find_map(|addr| self.matched(addr))
        else {
            return Verdict::Unlisted;
        };
        let action = if self.dry_run || list_action == Some(Action::Audit) {
            Action::Audit
        } else {
            Action::Enforce
        };
        let listed = Listed {
            looked_up,
            prefix,
            list_id,
            action,
            domain_id,
        };
        // The allow tries are per family: an IPv4 exception covers the IPv4 address looked up.
        if self.exceptions.iter().any(|e| e.contains(&looked_up)) {
            return Verdict::Excepted(listed);
        }
        if cgroup.is_some_and(|id| self.exempt.contains(&id) || self.granted(id, list_id)) {
            return Verdict::Exempt(listed);
        }
        Verdict::Listed(listed)
    }
}

type Matched = (IpNet, u16, Option<Action>, u32, IpAddr);

impl Policy<'_> {
    /// What one looked-up address matches: its longest prefix, or its learned entry (see the
    /// module's step 2).
    fn matched(&self, addr: IpAddr) -> Option<Matched> {
        let prefix = self.block.longest_match(addr);
        let learned = self.learned.get(&addr);
        let enforce = |a: u8| Action::from_u8(a) == Some(Action::Enforce);
        match (prefix, learned) {
            (Some((net, v)), _) if enforce(v.action) => {
                Some((net, v.list_id, Action::from_u8(v.action), 0, addr))
            }
            (None, Some(l)) | (Some(_), Some(l)) if prefix.is_none() || enforce(l.action) => {
                Some((
                    IpNet::from(addr),
                    l.list_id,
                    Action::from_u8(l.action),
                    l.domain_id,
                    addr,
                ))
            }
            (Some((net, v)), _) => Some((net, v.list_id, Action::from_u8(v.action), 0, addr)),
            (None, _) => None,
        }
    }
}

/// The addresses the kernel looks up for `dst`, in order: the embedded IPv4 address first
/// (where there is one), then the destination itself; IPv4 destinations are looked up as
/// they are.
pub fn lookup_order(dst: IpAddr, translations: Translations) -> [Option<IpAddr>; 2] {
    match dst {
        IpAddr::V4(_) => [Some(dst), None],
        IpAddr::V6(v6) => [embedded_v4(v6, translations).map(IpAddr::V4), Some(dst)],
    }
}

/// The IPv4 address an IPv6 destination reaches, as `check_v6` finds it.
pub fn embedded_v4(addr: Ipv6Addr, translations: Translations) -> Option<Ipv4Addr> {
    let o = addr.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if o[..10] == [0; 10] && o[10..12] == [0xff, 0xff] {
        return Some(last);
    }
    // IPv4-compatible: `::` and `::1` are not addresses of an IPv4 host.
    if o[..12] == [0; 12] && u32::from(last) > 1 {
        return Some(last);
    }
    if translations.nat64 && o[..12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
        return Some(last);
    }
    if translations.six_to_four && o[..2] == [0x20, 0x02] {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use blocker_common::ListRef;

    use super::*;

    fn shadow(entries: &[(&str, u16, Action)]) -> Shadow {
        let mut set: Vec<(IpNet, ListRef)> = entries
            .iter()
            .map(|(n, id, a)| (n.parse().expect("net"), ListRef::new(*id, *a)))
            .collect();
        set.sort_unstable_by_key(|(n, _)| *n);
        Shadow::of(&set)
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn embedded_ipv4_forms_are_looked_up_as_ipv4_first() {
        let block = shadow(&[
            ("10.0.0.0/8", 1, Action::Enforce),
            ("64:ff9b::/96", 2, Action::Audit),
        ]);
        let off = Policy {
            learned: &NONE_LEARNED,
            grants: (&NO_GRANTS, 0),
            block: &block,
            exceptions: &[],
            exempt: &[],
            translations: Translations::default(),
            dry_run: false,
        };
        assert!(off.decide(addr("::ffff:10.1.2.3"), None).refused());
        assert!(off.decide(addr("::10.1.2.3"), None).refused());
        assert_eq!(off.decide(addr("::1"), None), Verdict::Unlisted);
        // NAT64 off: the IPv6 prefix of list 2 decides.
        assert_eq!(
            off.decide(addr("64:ff9b::10.1.2.3"), None).word(),
            "audited"
        );
        let on = Policy {
            translations: Translations {
                nat64: true,
                six_to_four: true,
            },
            ..off
        };
        assert!(on.decide(addr("64:ff9b::10.1.2.3"), None).refused());
        // An embedded address in no IPv4 prefix falls back to the IPv6 lookup.
        assert_eq!(on.decide(addr("64:ff9b::11.1.2.3"), None).word(), "audited");
        assert!(on.decide(addr("2002:a01:203::1"), None).refused());
    }

    #[test]
    fn exceptions_apply_to_the_address_looked_up_then_exempt_then_dry_run() {
        let block = shadow(&[("10.0.0.0/8", 1, Action::Enforce)]);
        let exceptions: Vec<IpNet> = vec!["10.9.0.0/16".parse().expect("net")];
        let policy = Policy {
            learned: &NONE_LEARNED,
            grants: (&NO_GRANTS, 0),
            block: &block,
            exceptions: &exceptions,
            exempt: &[42],
            translations: Translations::default(),
            dry_run: false,
        };
        assert_eq!(policy.decide(addr("10.9.1.1"), None).word(), "excepted");
        assert_eq!(
            policy.decide(addr("::ffff:10.9.1.1"), None).word(),
            "excepted"
        );
        assert_eq!(policy.decide(addr("10.8.1.1"), Some(42)).word(), "exempt");
        assert_eq!(policy.decide(addr("10.8.1.1"), Some(7)).word(), "blocked");
        // A grant from list 1 for cgroup 7, until boot time 100: exempt before, not after.
        let grant = |expires_ns| Grant {
            expires_ns,
            slot: 1,
            _pad: [0; 6],
            comm: [0; blocker_common::COMM_LEN],
        };
        let grants = HashMap::from([(ExemptionKey::new(EXEMPT_CGROUP, 7, 1), grant(100))]);
        let granted = Policy { ..policy }.with_grants(&grants, 99);
        assert_eq!(granted.decide(addr("10.8.1.1"), Some(7)).word(), "exempt");
        let ended = Policy { ..policy }.with_grants(&grants, 100);
        assert_eq!(ended.decide(addr("10.8.1.1"), Some(7)).word(), "blocked");
        let dry = Policy {
            dry_run: true,
            ..policy
        };
        assert_eq!(dry.decide(addr("10.8.1.1"), None).word(), "audited");
    }
}
