//! Block lists as the daemon holds them: each list's sources fetched and parsed, checked by the
//! guards, every entry remembering where it came from (`source:line`), plus an index that
//! explains which entry covers an address.
//!
//! At start-up any bad list is fatal (the daemon never starts with an invalid list); on refresh a
//! list that fails keeps its last good content and records the error.

use std::{net::IpAddr, time::SystemTime};

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::{
    aggregate::{self, Tagged},
    config::ListAction,
    index::PrefixIndex,
    prefix::{self, ParseError},
    source::{FetchError, Fetcher, Source},
};

/// Why a list could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("list {list}: {source}")]
    Fetch {
        list: String,
        #[source]
        source: FetchError,
    },
    #[error("list {list}: {source}")]
    Parse {
        list: String,
        #[source]
        source: ParseError,
    },
    #[error("list {list} refused: {reason}")]
    Guard { list: String, reason: String },
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
}

/// Limits a list must respect to be applied.
#[derive(Clone, Copy, Debug)]
pub struct Guards {
    pub min_prefix_len_v4: u8,
    pub min_prefix_len_v6: u8,
    pub allow_short_prefixes: bool,
    /// Largest fraction of a list's entries one refresh may remove.
    pub max_shrink: f64,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            min_prefix_len_v4: 8,
            min_prefix_len_v6: 16,
            allow_short_prefixes: false,
            max_shrink: 0.5,
        }
    }
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

/// Parsed content of one list, before it gets an id.
struct Content {
    origins: Vec<String>,
    entries: Vec<ListEntry>,
    warnings: Vec<String>,
    /// Sources that fell back to their cached copy, and why.
    stale: Vec<String>,
}

/// Fetches, parses and guards one list.
fn load_content(
    spec: &ListSpec,
    fetcher: &Fetcher,
    guards: &Guards,
    previous_len: Option<usize>,
) -> Result<Content, ListError> {
    let mut content = Content {
        origins: Vec::new(),
        entries: Vec::new(),
        warnings: Vec::new(),
        stale: Vec::new(),
    };
    for source in &spec.sources {
        let fetched = fetcher.fetch(source).map_err(|source| ListError::Fetch {
            list: spec.name.clone(),
            source,
        })?;
        for text in fetched {
            if let Some(reason) = &text.stale_because {
                content
                    .stale
                    .push(format!("{}: {reason}; using the cached copy", text.label));
            }
            let origin = u16::try_from(content.origins.len()).unwrap_or(u16::MAX);
            let parsed =
                prefix::parse(std::path::Path::new(&text.label), &text.text).map_err(|source| {
                    ListError::Parse {
                        list: spec.name.clone(),
                        source,
                    }
                })?;
            content
                .warnings
                .extend(parsed.warnings.iter().map(ToString::to_string));
            content
                .entries
                .extend(parsed.entries.into_iter().map(|e| ListEntry {
                    net: unmap(e.net),
                    line: e.line,
                    origin,
                }));
            content.origins.push(text.label);
        }
    }
    check_guards(spec, &content, guards, previous_len)?;
    Ok(content)
}

/// `::ffff:a.b.c.d/n` (n >= 96) is the IPv4 prefix `a.b.c.d/(n-96)`: the kernel checks mapped
/// destinations against the IPv4 block maps, so that is where such an entry must go.
fn unmap(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

fn check_guards(
    spec: &ListSpec,
    content: &Content,
    guards: &Guards,
    previous_len: Option<usize>,
) -> Result<(), ListError> {
    let refuse = |reason: String| ListError::Guard {
        list: spec.name.clone(),
        reason,
    };
    if !guards.allow_short_prefixes {
        for entry in &content.entries {
            let (len, min) = match entry.net {
                IpNet::V4(n) => (n.prefix_len(), guards.min_prefix_len_v4),
                IpNet::V6(n) => (n.prefix_len(), guards.min_prefix_len_v6),
            };
            let origin = content
                .origins
                .get(usize::from(entry.origin))
                .map_or("?", String::as_str);
            if len == 0 {
                return Err(refuse(format!(
                    "{origin}:{}: {} would block every address (set allow_short_prefixes to accept)",
                    entry.line, entry.net
                )));
            }
            if len < min {
                return Err(refuse(format!(
                    "{origin}:{}: {} is shorter than the minimum /{min} (min_prefix_len_v4/v6)",
                    entry.line, entry.net
                )));
            }
        }
    }
    if let Some(before) = previous_len
        && !spec.allow_shrink
        && before > 0
    {
        let after = content.entries.len();
        let lost = before.saturating_sub(after) as f64 / before as f64;
        if lost > guards.max_shrink {
            return Err(refuse(format!(
                "it would shrink from {before} to {after} entries ({:.0}% lost, max_shrink is {:.0}%)",
                lost * 100.0,
                guards.max_shrink * 100.0
            )));
        }
    }
    Ok(())
}

/// All lists, in configuration order (earlier lists win when two name the same prefix).
#[derive(Debug, Default)]
pub struct ListSet {
    lists: Vec<List>,
    /// Index payloads number all entries of all lists in order; `starts[l]` is the first payload
    /// of list `l` (a table per entry would cost 8 bytes a prefix).
    starts: Vec<u32>,
    index: PrefixIndex,
}

impl ListSet {
    /// Loads every list; the first failure is returned (start-up: never run with a bad list).
    pub fn load(specs: &[ListSpec], fetcher: &Fetcher, guards: &Guards) -> Result<Self, ListError> {
        check_count(specs)?;
        let mut lists = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let content = load_content(spec, fetcher, guards, None)?;
            lists.push(new_list(i, spec, content));
        }
        Ok(Self::from_lists(lists))
    }

    /// Loads every list again. A list that fails keeps the content it had in `self` (with the
    /// error recorded); a new list that fails is left out. Returns the new set and the errors.
    pub fn refresh(
        &self,
        specs: &[ListSpec],
        fetcher: &Fetcher,
        guards: &Guards,
    ) -> Result<(Self, Vec<String>), ListError> {
        check_count(specs)?;
        let mut errors = Vec::new();
        let mut lists = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let previous = self.lists.iter().find(|l| l.spec.name == spec.name);
            match load_content(spec, fetcher, guards, previous.map(|l| l.entries.len())) {
                Ok(content) => lists.push(new_list(i, spec, content)),
                Err(err) => {
                    let message = err.to_string();
                    errors.push(message.clone());
                    if let Some(previous) = previous {
                        lists.push(List {
                            id: list_id(i),
                            spec: spec.clone(),
                            origins: previous.origins.clone(),
                            entries: previous.entries.clone(),
                            aggregated: previous.aggregated,
                            refreshed_at: previous.refreshed_at,
                            last_error: Some(message),
                            warnings: previous.warnings.clone(),
                        });
                    }
                }
            }
        }
        for list in &lists {
            if let Some(stale) = &list.last_error
                && !errors.contains(stale)
            {
                errors.push(stale.clone());
            }
        }
        Ok((Self::from_lists(lists), errors))
    }

    fn from_lists(lists: Vec<List>) -> Self {
        let mut starts = Vec::with_capacity(lists.len());
        let mut items = Vec::new();
        for list in &lists {
            starts.push(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for entry in &list.entries {
                let payload = u32::try_from(items.len()).unwrap_or(u32::MAX);
                items.push((entry.net, payload));
            }
        }
        Self {
            index: PrefixIndex::build(items),
            lists,
            starts,
        }
    }

    pub fn lists(&self) -> &[List] {
        &self.lists
    }

    pub fn by_id(&self, id: u16) -> Option<&List> {
        self.lists.iter().find(|l| l.id == id)
    }

    /// Total raw entries over all lists.
    pub fn entry_count(&self) -> usize {
        self.lists.iter().map(|l| l.entries.len()).sum()
    }

    /// The entry that decides `addr`, as the kernel would: IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) are looked up as their IPv4 address.
    pub fn lookup(&self, addr: IpAddr) -> Option<Match<'_>> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let (_, payload) = self.index.longest_match(addr)?;
        // The list whose range of payloads holds this one.
        let l = self
            .starts
            .partition_point(|&start| start <= payload)
            .checked_sub(1)?;
        let list = self.lists.get(l)?;
        let entry = list.entries.get((payload - self.starts[l]) as usize)?;
        Some(Match { list, entry })
    }

    /// The prefixes the kernel must hold, aggregated, with enforce winning over audit.
    pub fn kernel_set(&self) -> crate::aggregate::KernelSet {
        let tagged: Vec<Tagged> = self
            .lists
            .iter()
            .flat_map(|list| {
                list.entries.iter().map(|e| Tagged {
                    net: e.net,
                    list_id: list.id,
                    action: list.spec.action.into(),
                })
            })
            .collect();
        aggregate::kernel_set(&tagged)
    }
}

fn check_count(specs: &[ListSpec]) -> Result<(), ListError> {
    let max = usize::from(u16::MAX) - 1;
    if specs.len() > max {
        return Err(ListError::TooMany { max });
    }
    Ok(())
}

fn list_id(position: usize) -> u16 {
    u16::try_from(position + 1).unwrap_or(u16::MAX)
}

fn new_list(position: usize, spec: &ListSpec, content: Content) -> List {
    let nets: Vec<IpNet> = content.entries.iter().map(|e| e.net).collect();
    List {
        id: list_id(position),
        spec: spec.clone(),
        aggregated: aggregate::aggregate(&nets).len(),
        origins: content.origins,
        entries: content.entries,
        refreshed_at: Some(SystemTime::now()),
        last_error: (!content.stale.is_empty()).then(|| content.stale.join("; ")),
        warnings: content.warnings,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fetcher() -> Fetcher {
        Fetcher {
            timeout: std::time::Duration::from_secs(1),
            max_bytes: 1 << 20,
            cache_dir: std::env::temp_dir().join("vw-lists-cache"),
            asn_endpoint: "http://127.0.0.1:1/none".into(),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vw-lists-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn spec(name: &str, files: &[&Path], action: ListAction) -> ListSpec {
        ListSpec {
            name: name.into(),
            action,
            vendor: None,
            sources: files
                .iter()
                .map(|f| Source::File(f.to_path_buf()))
                .collect(),
            allow_shrink: false,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write test list");
        path
    }

    #[test]
    fn lookup_names_list_prefix_and_line() {
        let dir = temp_dir("lookup");
        let a = write(&dir, "a.netset", "# a\n10.0.0.0/8\n");
        let b = write(&dir, "b.netset", "\n\n10.1.0.0/16\n2001:db8::/32\n");
        let specs = [
            spec("a", &[&a], ListAction::Enforce),
            spec("b", &[&b], ListAction::Enforce),
        ];
        let set = ListSet::load(&specs, &fetcher(), &Guards::default()).expect("loads");
        let m = set
            .lookup("10.1.2.3".parse().expect("addr"))
            .expect("match");
        assert_eq!(m.list.spec.name, "b");
        assert_eq!(m.prefix().to_string(), "10.1.0.0/16");
        assert_eq!(m.source(), format!("{}:3", b.display()));
        let m = set
            .lookup("::ffff:10.9.9.9".parse().expect("addr"))
            .expect("mapped match");
        assert_eq!(m.entry.line, 2);
        assert!(set.lookup("192.0.2.1".parse().expect("addr")).is_none());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn mapped_entries_become_ipv4() {
        assert_eq!(
            unmap("::ffff:192.0.2.0/120".parse().expect("net")).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            unmap("2001:db8::/32".parse().expect("net")).to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn guards_refuse_default_routes_short_prefixes_and_big_shrinks() {
        let dir = temp_dir("guards");
        let all = write(&dir, "all.netset", "192.0.2.1\n0.0.0.0/0\n");
        let err = ListSet::load(
            &[spec("all", &[&all], ListAction::Enforce)],
            &fetcher(),
            &Guards::default(),
        )
        .expect_err("default route");
        assert!(
            err.to_string()
                .contains("all.netset:2: 0.0.0.0/0 would block every address"),
            "{err}"
        );

        let short = write(&dir, "short.netset", "10.0.0.0/7\n");
        let err = ListSet::load(
            &[spec("short", &[&short], ListAction::Enforce)],
            &fetcher(),
            &Guards::default(),
        )
        .expect_err("short");
        assert!(
            err.to_string().contains("shorter than the minimum /8"),
            "{err}"
        );

        let path = write(&dir, "l.netset", "10.0.0.1\n10.0.0.2\n10.0.0.3\n10.0.0.4\n");
        let specs = [spec("l", &[&path], ListAction::Enforce)];
        let set = ListSet::load(&specs, &fetcher(), &Guards::default()).expect("loads");
        write(&dir, "l.netset", "10.0.0.1\n");
        let (next, errors) = set
            .refresh(&specs, &fetcher(), &Guards::default())
            .expect("refresh");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("shrink from 4 to 1"), "{errors:?}");
        assert_eq!(
            next.lists()[0].entries.len(),
            4,
            "the last good content stays"
        );
        assert!(next.lists()[0].last_error.is_some());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_corrupt_file_keeps_the_previous_content_on_refresh() {
        let dir = temp_dir("corrupt");
        let path = write(&dir, "l.netset", "10.0.0.1\n");
        let specs = [spec("l", &[&path], ListAction::Enforce)];
        let set = ListSet::load(&specs, &fetcher(), &Guards::default()).expect("loads");
        write(&dir, "l.netset", "10.0.0.1\nnonsense\n");
        let (next, errors) = set
            .refresh(&specs, &fetcher(), &Guards::default())
            .expect("refresh");
        assert!(
            errors[0].contains("l.netset:2: invalid IP address"),
            "{errors:?}"
        );
        assert!(next.lookup("10.0.0.1".parse().expect("addr")).is_some());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = temp_dir("errors");
        let missing = dir.join("missing.netset");
        let err = ListSet::load(
            &[spec("m", &[&missing], ListAction::Enforce)],
            &fetcher(),
            &Guards::default(),
        )
        .expect_err("missing");
        assert!(format!("{err:#}").contains("missing.netset"), "{err:#}");
        std::fs::remove_dir_all(dir).ok();
    }
}
