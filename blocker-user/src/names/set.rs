//! Every list's domain names, with where each came from, and the table the kernel's `DOMAINS`
//! map must hold. A list whose domain source fails keeps the names it had (fail closed),
//! exactly as its prefixes do.

use std::collections::BTreeMap;

use blocker_common::{Action, DOMAIN_LEARN_PRIVATE};

use super::{domain::Domain, parse::parse_names};
use crate::{
    config::ListAction,
    lists::{ListSpec, error_chain, source::Fetcher},
};

/// One listed name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEntry {
    pub domain: Domain,
    pub list_id: u16,
    pub list: String,
    pub action: ListAction,
    pub learn_private: bool,
    /// `config`, `manifest` or `file:line`.
    pub source: String,
}

/// What the kernel holds for one name: the list that wins it (enforce over audit, else the
/// first list) and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainTarget {
    pub list_id: u16,
    pub action: Action,
    pub flags: u8,
}

#[derive(Clone, Debug, Default)]
pub struct DomainSet {
    pub entries: Vec<DomainEntry>,
    /// Malformed lines skipped, `file:line: reason`.
    pub skipped: Vec<String>,
}

impl DomainSet {
    /// Loads the names of every list (list ids follow `specs`' order, as the prefix lists'
    /// do). A list whose source fails keeps its names from `previous`; the error is returned.
    pub fn load(
        specs: &[ListSpec],
        fetcher: &Fetcher,
        previous: &DomainSet,
    ) -> (DomainSet, Vec<String>) {
        let mut set = DomainSet::default();
        let mut errors = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let list_id = u16::try_from(i + 1).unwrap_or(u16::MAX);
            match load_list(spec, list_id, fetcher) {
                Ok((entries, skipped)) => {
                    set.entries.extend(entries);
                    set.skipped.extend(skipped);
                }
                Err(err) => {
                    errors.push(format!(
                        "list {}: {err}; its names stay as they were",
                        spec.name
                    ));
                    set.entries.extend(
                        previous
                            .entries
                            .iter()
                            .filter(|e| e.list == spec.name)
                            .cloned()
                            .map(|e| DomainEntry { list_id, ..e }),
                    );
                }
            }
        }
        (set, errors)
    }

    /// The `DOMAINS` map's content.
    pub fn targets(&self) -> BTreeMap<Domain, DomainTarget> {
        let mut targets: BTreeMap<Domain, DomainTarget> = BTreeMap::new();
        for entry in &self.entries {
            let target = DomainTarget {
                list_id: entry.list_id,
                action: entry.action.into(),
                flags: if entry.learn_private {
                    DOMAIN_LEARN_PRIVATE
                } else {
                    0
                },
            };
            targets
                .entry(entry.domain.clone())
                .and_modify(|held| {
                    if held.action == Action::Audit && target.action == Action::Enforce {
                        *held = target;
                    }
                })
                .or_insert(target);
        }
        targets
    }

    /// The listed name covering `name` that the learner would match: the longest.
    pub fn covering(&self, name: &str) -> Option<&DomainEntry> {
        self.entries
            .iter()
            .filter(|e| e.domain.covers(name))
            .max_by_key(|e| {
                (
                    e.domain.as_str().len(),
                    e.action == ListAction::Enforce,
                    std::cmp::Reverse(e.list_id),
                )
            })
    }

    /// The entry behind a kernel target, for explaining.
    pub fn entry(&self, domain: &Domain, list_id: u16) -> Option<&DomainEntry> {
        self.entries
            .iter()
            .find(|e| &e.domain == domain && e.list_id == list_id)
    }
}

type Loaded = (Vec<DomainEntry>, Vec<String>);

fn load_list(spec: &ListSpec, list_id: u16, fetcher: &Fetcher) -> Result<Loaded, String> {
    let entry = |domain: Domain, source: String| DomainEntry {
        domain,
        list_id,
        list: spec.name.clone(),
        action: spec.action,
        learn_private: spec.learn_private,
        source,
    };
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (j, text) in spec.domains.iter().enumerate() {
        let domain = Domain::parse(text).map_err(|err| format!("domains[{j}]: {err}"))?;
        entries.push(entry(domain, "inline".into()));
    }
    for source in &spec.domain_sources {
        let fetched = fetcher.fetch(source).map_err(|err| error_chain(&err))?;
        for text in fetched {
            let content = String::from_utf8_lossy(&text.bytes);
            let parsed = parse_names(&text.label, &content);
            if parsed.names.is_empty() && !parsed.skipped.is_empty() {
                return Err(format!(
                    "{} has no valid name ({} malformed lines), the first: {}",
                    text.label,
                    parsed.skipped.len(),
                    parsed.skipped[0]
                ));
            }
            skipped.extend(parsed.skipped);
            entries.extend(
                parsed
                    .names
                    .into_iter()
                    .map(|n| entry(n.domain, format!("{}:{}", text.label, n.line))),
            );
        }
    }
    Ok((entries, skipped))
}
