//! Block lists, from configuration to the set the kernel must hold: which lists to enforce
//! (`selection`, `manifest`), where their text comes from (`source`), how a text becomes prefixes
//! (`parse`), the limits a list must respect (`guards`), one list loaded with provenance
//! (`load`), all lists together with the index that explains a match (`set`, `index`), and the
//! aggregation into the kernel set (`aggregate`).
//!
//! At start-up any bad list is fatal (the daemon never starts with an invalid list); on refresh a
//! list that fails keeps its last good content and records the error.

pub mod aggregate;
pub mod guards;
pub mod index;
pub mod load;
pub mod manifest;
pub mod parse;
pub mod selection;
pub mod set;
pub mod source;

use std::time::SystemTime;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::ListAction;
pub use guards::{GuardError, ListGuards};
pub use parse::Format;
use parse::ParseError;
pub use set::ListSet;
use source::{FetchError, Source};

/// Why a list could not be (re)loaded. The cause is the error's source, so a report that walks
/// the chain (`{:#}`) names it exactly once.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("list {list}")]
    Fetch {
        list: String,
        #[source]
        source: FetchError,
    },
    #[error("list {list}")]
    Parse {
        list: String,
        #[source]
        source: ParseError,
    },
    #[error("list {list} refused")]
    Guard {
        list: String,
        #[source]
        source: GuardError,
    },
    #[error("list {list} has no valid entry ({skipped} malformed lines), the first")]
    Unreadable {
        list: String,
        skipped: usize,
        #[source]
        first: ParseError,
    },
    /// Loaded from a cached copy because its source failed: in force, and reported.
    #[error("list {list}: {detail}")]
    Stale { list: String, detail: String },
    #[error("no lists to enforce: {0}")]
    NoLists(String),
    #[error("too many lists: at most {max} are supported")]
    TooMany { max: usize },
}

/// A list as configured: what to load and what to do with it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListSpec {
    pub name: String,
    pub action: ListAction,
    pub vendor: Option<String>,
    pub sources: Vec<Source>,
    /// Skip the shrink guard.
    pub allow_shrink: bool,
    /// How the list's files are laid out (detected per file by default).
    pub format: parse::Format,
    /// A malformed line fails the whole list instead of being skipped.
    pub strict: bool,
    /// Domain names blocked through the DNS learner (manifest and config, as written).
    pub domains: Vec<String>,
    /// Files or URLs of domain names.
    pub domain_sources: Vec<Source>,
    /// Learn loopback, private and link-local answers too.
    pub learn_private: bool,
}

/// One prefix and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub net: IpNet,
    pub line: u32,
    /// Index into the list's `origins`.
    pub origin: u16,
}

/// One loaded list.
#[derive(Debug)]
pub struct List {
    /// 1-based; 0 is never a valid id in the kernel maps.
    pub id: u16,
    pub spec: ListSpec,
    /// Labels of the texts the entries came from (file paths, URLs, `AS<n>`).
    pub origins: Vec<String>,
    pub entries: Vec<ListEntry>,
    /// Entries after merging duplicates, overlaps and neighbours within this list.
    pub aggregated: usize,
    /// When the content was last fetched successfully.
    pub refreshed_at: Option<SystemTime>,
    /// The last refresh's error, while the previous content stays in force.
    pub last_error: Option<String>,
    pub warnings: Vec<String>,
    /// Malformed lines skipped in the content in force.
    pub skipped_lines: usize,
    /// The first few of them, as `file:line: reason: "text"`.
    pub skipped: Vec<String>,
    /// ipset `nomatch` exceptions carved out of the entries.
    pub exceptions: usize,
    /// A digest of the texts the entries were parsed from: a refresh that fetches the same
    /// texts (an untouched file, a 304 from a server) reuses the entries instead of parsing.
    pub fingerprint: u64,
}

/// A configured list with no content in force: it failed to load and had none before. It is
/// retried on every refresh and reload; whatever the kernel holds for its id stays.
#[derive(Debug, Clone)]
pub struct FailedList {
    pub id: u16,
    pub spec: ListSpec,
    pub error: String,
}

impl List {
    pub fn source_of(&self, entry: &ListEntry) -> String {
        let origin = self
            .origins
            .get(usize::from(entry.origin))
            .map_or("?", String::as_str);
        format!("{origin}:{}", entry.line)
    }
}

/// Where an address matched: the list, the prefix and its source line.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    pub list: &'a List,
    pub entry: &'a ListEntry,
}

impl Match<'_> {
    pub fn prefix(&self) -> IpNet {
        self.entry.net
    }

    /// `source:line`, for messages and events.
    pub fn source(&self) -> String {
        self.list.source_of(self.entry)
    }
}

/// An error and its causes on one line (`a: b: c`), as `anyhow`'s `{:#}` prints them: the form
/// logs, `status` and sd_notify show.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}
