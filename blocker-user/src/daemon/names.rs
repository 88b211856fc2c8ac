//! Keeping the DNS learner's side in force: the listed names written to `DOMAINS`, the
//! daemon's own look-ups of them (warm start) written to the learned maps, systemd-resolved's
//! cache flushed, and learned entries pruned once expired or no longer listed.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use blocker_common::Learned;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Daemon;
use crate::{
    config::Config,
    events::clock::boottime_ns,
    kernel::{Enforcer, KernelError, domains::DomainTable},
    lists::{ListSpec, selection},
    names::{
        Domain, DomainSet,
        warm::{self, WarmAnswer},
    },
};

/// How long warm-start look-ups may take, all names together.
const WARM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often learned entries are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// The learner's side of the state file, for `status` and the metrics.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NamesState {
    /// Listed names in the kernel.
    pub domains: usize,
    /// Whether the learner program is attached; when not, why.
    pub learner: String,
    pub learning: bool,
    /// Addresses learned by warm start in the last load.
    pub warm_answers: usize,
    /// Learned entries deleted since start (expired, no longer listed).
    pub expired: u64,
    pub unlisted: u64,
    /// Unexpired learned addresses at the last prune.
    pub learned_v4: usize,
    pub learned_v6: usize,
    /// Why names were not (re)loaded in the last load: a domain source that failed (its list
    /// keeps the names it had), a failed warm start.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Malformed lines skipped in the domain files in force, and the first few of them.
    #[serde(default)]
    pub skipped_lines: usize,
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// The names of every list and the warm-start answers for them: the slow part of a load or
/// reload (domain files and URLs, DNS), done off the event loop.
pub struct NamesBuilt {
    pub set: DomainSet,
    pub answers: Vec<WarmAnswer>,
    pub errors: Vec<String>,
}

/// Loads the names and, when configured, resolves them.
pub fn build(config: &Config, specs: &[ListSpec], previous: &DomainSet) -> NamesBuilt {
    let (set, mut errors) = DomainSet::load(specs, &selection::fetcher(config), previous);
    let mut answers = Vec::new();
    if config.names.warm_start && !set.entries.is_empty() {
        let mut domains: Vec<Domain> = set.entries.iter().map(|e| e.domain.clone()).collect();
        domains.sort();
        domains.dedup();
        match warm::nameserver(&config.names.resolver)
            .and_then(|server| warm::resolve(&domains, server, WARM_TIMEOUT))
        {
            Ok(found) => answers = found,
            Err(err) => errors.push(format!("warm start: {}", crate::lists::error_chain(&err))),
        }
    }
    if config.names.flush_resolved && !set.entries.is_empty() {
        match warm::flush_resolved() {
            Ok(true) => {
                info!("flushed systemd-resolved's cache: its next answers pass the learner")
            }
            Ok(false) => {}
            Err(err) => errors.push(err),
        }
    }
    NamesBuilt {
        set,
        answers,
        errors,
    }
}

/// The learned-entry value of a warm-start answer.
fn learned(config: &Config, list_id: u16, action: u8, domain_id: u32, ttl: u32) -> Learned {
    let min = config.names.learned_min_ttl.as_secs();
    let max = config.names.learned_max_ttl.as_secs();
    let secs = u64::from(ttl).clamp(min, max.max(min));
    let now = boottime_ns();
    Learned {
        list_id,
        action,
        _pad: 0,
        domain_id,
        learned_ns: now,
        expires_ns: now + secs * 1_000_000_000,
    }
}

/// Writes the names into `DOMAINS` and the warm-start answers into the learned maps; removes
/// learned entries of names no longer listed. Returns the table of what `DOMAINS` holds.
pub fn apply(
    enforcer: &mut Enforcer,
    config: &Config,
    built: &NamesBuilt,
) -> Result<(DomainTable, usize), KernelError> {
    let targets = built.set.targets();
    let (_, table) = enforcer.sync_domains(&targets)?;
    let by_name: std::collections::HashMap<&Domain, u32> =
        table.iter().map(|(id, (d, _))| (d, *id)).collect();
    let mut written = 0;
    for answer in &built.answers {
        let Some(&domain_id) = by_name.get(&answer.domain) else {
            continue;
        };
        let Some(target) = targets.get(&answer.domain) else {
            continue;
        };
        let private = target.flags & blocker_common::DOMAIN_LEARN_PRIVATE != 0;
        if !private && is_special(answer.addr) {
            continue;
        }
        let value = learned(
            config,
            target.list_id,
            target.action as u8,
            domain_id,
            answer.ttl,
        );
        enforcer.learn(answer.addr, value)?;
        written += 1;
    }
    Ok((table, written))
}

/// The same ranges the kernel's learner refuses to learn.
pub fn is_special(addr: std::net::IpAddr) -> bool {
    match addr {
        std::net::IpAddr::V4(a) => blocker_common::special_v4(a.octets()),
        std::net::IpAddr::V6(a) => blocker_common::special_v6(&a.octets()),
    }
}

impl Daemon {
    /// Applies built names to this generation and records the outcome.
    pub(super) fn apply_names(&mut self, built: NamesBuilt) {
        for err in &built.errors {
            warn!("names: {err}");
        }
        // Like malformed prefix lines: the first few in full, then the count, once per load.
        for line in built.set.skipped.iter().take(5) {
            warn!("names: skipped {line}");
        }
        if !built.set.skipped.is_empty() {
            warn!(
                "names: {} malformed line(s) skipped; {} names in force",
                built.set.skipped.len(),
                built.set.entries.len()
            );
        }
        self.state.names.errors = built.errors.clone();
        self.state.names.skipped_lines = built.set.skipped.len();
        self.state.names.skipped = built.set.skipped.iter().take(5).cloned().collect();
        match apply(&mut self.enforcer, &self.config, &built) {
            Ok((table, warm)) => {
                self.state.names.domains = table.len();
                self.state.names.warm_answers = warm;
                self.domain_table = table;
                if warm > 0 {
                    info!("warm start: {warm} addresses of listed names learned");
                }
            }
            Err(err) => {
                warn!("names not updated, the previous ones stay: {err:#}");
                // Name what the kernel kept (a restart's daemon has no table of its own yet).
                if let Ok(table) = self.enforcer.domain_table() {
                    self.domain_table = table;
                }
            }
        }
        self.names = Arc::new(built.set);
        self.prune_learned();
    }

    /// Records whether the learner runs, and says so loudly when names are listed but the
    /// kernel cannot learn them.
    pub(super) fn record_learner(&mut self) {
        let attached = self.config.names.learn && self.enforcer.learner().is_ok();
        self.state.names.learning = attached;
        self.state.names.learner = match self.enforcer.learner() {
            Ok(()) if attached => "attached".into(),
            Ok(()) => "off ([names] learn = false)".into(),
            Err(why) => format!("unavailable on this kernel (needs Linux 5.17, bpf_loop): {why}"),
        };
        if !attached && !self.names.entries.is_empty() {
            warn!(
                "DNS learner {}: {} listed names are NOT enforced; the prefix lists are",
                self.state.names.learner,
                self.names.entries.len()
            );
        }
    }

    /// Deletes learned entries that expired (the kernel already ignores them) or whose name
    /// is no longer listed. "Listed" is what `DOMAINS` holds, read from the kernel: after a
    /// failed sync the names kept there keep their learned addresses too.
    pub fn prune_learned(&mut self) {
        self.last_prune = Instant::now();
        let listed: HashSet<u32> = match self.enforcer.domain_table() {
            Ok(table) => table.keys().copied().collect(),
            Err(err) => {
                warn!("cannot read the listed names, nothing pruned: {err:#}");
                return;
            }
        };
        match self.enforcer.prune_learned(boottime_ns(), &listed) {
            Ok(pruned) => {
                let (expired, unlisted) = (pruned.expired, pruned.unlisted);
                self.state.names.learned_v4 = pruned.kept_v4;
                self.state.names.learned_v6 = pruned.kept_v6;
                self.state.names.expired += expired;
                self.state.names.unlisted += unlisted;
                if expired + unlisted > 0 {
                    info!(
                        "learned addresses removed: {expired} expired, {unlisted} of names no longer listed"
                    );
                }
            }
            Err(err) => warn!("cannot prune learned addresses: {err:#}"),
        }
    }
}
