//! All lists, in configuration order, with the index that names the entry (list, prefix,
//! `source:line`) deciding an address, and the aggregated set the kernel must hold.

use std::{
    net::IpAddr,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use super::{
    FailedList, List, ListError, ListGuards, ListSpec, Match,
    aggregate::{self, KernelSet},
    error_chain,
    index::PrefixIndex,
    load::{Content, load_content},
    source::Fetcher,
};

/// All lists, in configuration order (earlier lists win when two name the same prefix).
#[derive(Debug, Default)]
pub struct ListSet {
    lists: Vec<List>,
    /// Configured lists with no content in force.
    failed: Vec<FailedList>,
    /// Index payloads number all entries of all lists in order; `starts[l]` is the first payload
    /// of list `l` (a table per entry would cost 8 bytes a prefix).
    starts: Vec<u32>,
    /// Built on a thread of its own once the set is shared ([`Self::index_in_background`]),
    /// or on first use: only explaining a verdict needs it, so the kernel is brought up to
    /// date without waiting for its sort of every entry.
    index: OnceLock<PrefixIndex>,
    /// Set while [`Self::index_in_background`]'s thread builds the index: a lookup meanwhile
    /// scans the list instead of waiting for a thread that yields to everything else.
    index_building: AtomicBool,
}

impl ListSet {
    /// Loads every list. A list that fails is left out and reported (and kept in
    /// [`Self::failed`] to be retried); the others load all the same. Only a configuration
    /// that cannot be loaded at all (too many lists) is an error.
    pub fn load(
        specs: &[ListSpec],
        fetcher: &Fetcher,
        guards: &ListGuards,
    ) -> Result<(Self, Vec<ListError>), ListError> {
        Self::default().refresh(specs, fetcher, guards)
    }

    /// Loads every list again. A list that fails keeps the content it had in `self` (with the
    /// error recorded); one that had none is recorded as failed. Returns the new set and the
    /// errors.
    pub fn refresh(
        &self,
        specs: &[ListSpec],
        fetcher: &Fetcher,
        guards: &ListGuards,
    ) -> Result<(Self, Vec<ListError>), ListError> {
        check_count(specs)?;
        let mut errors = Vec::new();
        let mut lists = Vec::with_capacity(specs.len());
        let mut failed = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let previous = self.lists.iter().find(|l| l.spec.name == spec.name);
            match load_content(spec, fetcher, guards, previous) {
                Ok(content) => {
                    let list = new_list(i, spec, content);
                    // Served from a cached copy: in force, but worth reporting.
                    if let Some(detail) = &list.last_error {
                        errors.push(ListError::Stale {
                            list: spec.name.clone(),
                            detail: detail.clone(),
                        });
                    }
                    lists.push(list);
                }
                Err(err) => {
                    match previous {
                        Some(previous) => lists.push(List {
                            id: list_id(i),
                            spec: spec.clone(),
                            origins: previous.origins.clone(),
                            entries: previous.entries.clone(),
                            aggregated: previous.aggregated,
                            refreshed_at: previous.refreshed_at,
                            last_error: Some(error_chain(&err)),
                            warnings: previous.warnings.clone(),
                            skipped_lines: previous.skipped_lines,
                            skipped: previous.skipped.clone(),
                            exceptions: previous.exceptions,
                            fingerprint: previous.fingerprint,
                        }),
                        None => failed.push(FailedList {
                            id: list_id(i),
                            spec: spec.clone(),
                            error: error_chain(&err),
                        }),
                    }
                    errors.push(err);
                }
            }
        }
        let mut set = Self::from_lists(lists);
        set.failed = failed;
        Ok((set, errors))
    }

    /// Configured lists with no content in force.
    pub fn failed(&self) -> &[FailedList] {
        &self.failed
    }

    /// The kernel list ids of [`Self::failed`]: whatever the maps hold for them stays.
    pub fn failed_ids(&self) -> Vec<u16> {
        self.failed.iter().map(|f| f.id).collect()
    }

    fn from_lists(lists: Vec<List>) -> Self {
        let mut starts = Vec::with_capacity(lists.len());
        let mut at = 0usize;
        for list in &lists {
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
            at += list.entries.len();
        }
        Self {
            index: OnceLock::new(),
            index_building: AtomicBool::new(false),
            lists,
            starts,
            failed: Vec::new(),
        }
    }

    /// Builds the index on a thread of its own, while the caller goes on (to the kernel sync):
    /// a lookup meanwhile waits for it rather than building a second one. If no thread can be
    /// started the first lookup builds it.
    pub fn index_in_background(self: &std::sync::Arc<Self>) {
        let set = std::sync::Arc::clone(self);
        self.index_building.store(true, Ordering::Release);
        let spawned = std::thread::Builder::new()
            .name("vw-index".into())
            .spawn(move || {
                // The lowest priority (a nice value is per thread on Linux): the index never
                // takes a core from the sync or from the next reload's parse, only the time
                // they leave. Failing that it runs at the daemon's priority, as before.
                let _ = rustix::process::setpriority_process(None, 19);
                set.index();
                set.index_building.store(false, Ordering::Release);
            });
        if let Err(err) = spawned {
            self.index_building.store(false, Ordering::Release);
            tracing::debug!("index built on first use: cannot start its thread: {err}");
        }
    }

    /// The index of every entry, built on first use.
    fn index(&self) -> &PrefixIndex {
        self.index.get_or_init(|| {
            // Each entry's payload is its position across all lists; read from the lists in
            // place (a collected copy was a million entries more at the load's peak).
            let items = self
                .lists
                .iter()
                .zip(&self.starts)
                .flat_map(|(list, &start)| {
                    list.entries.iter().enumerate().map(move |(i, entry)| {
                        let payload =
                            u32::try_from(i).map_or(u32::MAX, |i| start.saturating_add(i));
                        (entry.net, payload)
                    })
                });
            PrefixIndex::build(items)
        })
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

    /// The most specific entry of list `list_id` holding `addr`: which file and line put an
    /// address the kernel matched into that list.
    pub fn entry(&self, list_id: u16, addr: IpAddr) -> Option<Match<'_>> {
        let l = self.lists.iter().position(|l| l.id == list_id)?;
        let list = &self.lists[l];
        if self.index.get().is_none() && self.index_building.load(Ordering::Acquire) {
            return scan(list, addr);
        }
        let start = self.starts[l];
        let end = start.saturating_add(u32::try_from(list.entries.len()).unwrap_or(u32::MAX));
        let (_, payload) = self.index().longest_match_in(addr, start..end)?;
        let entry = list.entries.get((payload - start) as usize)?;
        Some(Match { list, entry })
    }

    /// The entry of list `list_id` that explains the kernel matching `dst`: the addresses are
    /// tried in the order the kernel looks them up (an embedded IPv4 address first).
    pub fn explain(
        &self,
        list_id: u16,
        dst: IpAddr,
        translations: crate::verdict::Translations,
    ) -> Option<Match<'_>> {
        crate::verdict::lookup_order(dst, translations)
            .into_iter()
            .flatten()
            .find_map(|addr| self.entry(list_id, addr))
    }

    /// The prefixes the kernel must hold, aggregated, with enforce winning over audit.
    pub fn kernel_set(&self) -> KernelSet {
        self.aggregated().0
    }

    /// [`Self::kernel_set`], recording each list's own aggregated count on the way (what
    /// `status` and the metrics show as `aggregated_entries`).
    pub fn kernel_set_counted(&mut self) -> KernelSet {
        let (set, counts) = self.aggregated();
        for list in &mut self.lists {
            list.aggregated = counts
                .iter()
                .find(|(id, _)| *id == list.id)
                .map_or(0, |(_, n)| *n);
        }
        set
    }

    /// Each list aggregated from its entries in place (no copy of a million entries first).
    fn aggregated(&self) -> (KernelSet, Vec<(u16, usize)>) {
        aggregate::from_lists(self.lists.iter().map(|list| {
            let action = list.spec.action.into();
            let nets = aggregate::list_set(list.id, action, list.entries.iter().map(|e| e.net));
            (list.id, action, nets)
        }))
    }
}

/// [`ListSet::entry`] without the index: the most specific entry of `list` holding `addr`,
/// the first of equals, as the index finds it. One pass over the list (a few milliseconds at a
/// million entries), for the moments after a load while the index is still being built.
fn scan(list: &List, addr: IpAddr) -> Option<Match<'_>> {
    let mut best: Option<&super::ListEntry> = None;
    for entry in &list.entries {
        if entry.net.contains(&addr)
            && best.is_none_or(|b| entry.net.prefix_len() > b.net.prefix_len())
        {
            best = Some(entry);
        }
    }
    best.map(|entry| Match { list, entry })
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
    List {
        id: list_id(position),
        spec: spec.clone(),
        // Counted by the aggregation of the whole set (`kernel_set_counted`), not twice.
        aggregated: 0,
        origins: content.origins,
        entries: content.entries,
        refreshed_at: Some(SystemTime::now()),
        last_error: (!content.stale.is_empty()).then(|| content.stale.join("; ")),
        warnings: content.warnings,
        skipped_lines: content.skipped_lines,
        skipped: content.skipped,
        exceptions: content.exceptions,
        fingerprint: content.fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::{config::ListAction, lists::source::Source};

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
            format: crate::lists::Format::Auto,
            strict: false,
            domains: Vec::new(),
            domain_sources: Vec::new(),
            learn_private: false,
        }
    }

    /// The one error of loading `specs`, which must leave the failing list out.
    fn first_error(specs: &[ListSpec], what: &str) -> ListError {
        let (set, mut errors) =
            ListSet::load(specs, &fetcher(), &ListGuards::default()).expect("loads");
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        assert_eq!(set.failed().len(), 1, "{what}");
        assert!(set.lists().is_empty(), "{what}");
        errors.remove(0)
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
        let set = ListSet::load(&specs, &fetcher(), &ListGuards::default())
            .expect("loads")
            .0;
        let none = crate::verdict::Translations::default();
        let m = set
            .explain(2, "10.1.2.3".parse().expect("addr"), none)
            .expect("match");
        assert_eq!(m.list.spec.name, "b");
        assert_eq!(m.prefix().to_string(), "10.1.0.0/16");
        assert_eq!(m.source(), format!("{}:3", b.display()));
        let m = set
            .explain(1, "10.1.2.3".parse().expect("addr"), none)
            .expect("list a holds it too");
        assert_eq!(m.prefix().to_string(), "10.0.0.0/8");
        let m = set
            .explain(1, "::ffff:10.9.9.9".parse().expect("addr"), none)
            .expect("mapped match");
        assert_eq!(m.entry.line, 2);
        assert!(
            set.explain(2, "10.9.9.9".parse().expect("addr"), none)
                .is_none()
        );
        assert!(
            set.explain(1, "192.0.2.1".parse().expect("addr"), none)
                .is_none()
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_lookup_while_the_index_is_built_scans_to_the_same_entry() {
        let dir = temp_dir("scan");
        let a = write(
            &dir,
            "a.netset",
            "10.0.0.0/8\n10.1.0.0/16\n10.1.2.0/24\n10.1.0.0/16\n2001:db8::/32\n2001:db8::/48\n",
        );
        let b = write(&dir, "b.netset", "10.1.2.3\n");
        let specs = [
            spec("a", &[&a], ListAction::Enforce),
            spec("b", &[&b], ListAction::Audit),
        ];
        let set = ListSet::load(&specs, &fetcher(), &ListGuards::default())
            .expect("loads")
            .0;
        let addrs = [
            "10.1.2.3",
            "10.1.9.9",
            "10.200.0.1",
            "11.0.0.1",
            "2001:db8::1",
            "2001:db8:1::1",
        ];
        for list in set.lists() {
            for addr in addrs {
                let addr: IpAddr = addr.parse().expect("addr");
                let indexed = set.entry(list.id, addr).map(|m| (m.prefix(), m.entry.line));
                let scanned = scan(list, addr).map(|m| (m.prefix(), m.entry.line));
                assert_eq!(scanned, indexed, "list {} {addr}", list.spec.name);
            }
        }
        // The duplicate /16 answers with its first line, as the index does.
        let m = scan(&set.lists()[0], "10.1.9.9".parse().expect("addr")).expect("match");
        assert_eq!(m.entry.line, 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn guards_refuse_default_routes_short_prefixes_and_big_shrinks() {
        let dir = temp_dir("guards");
        let all = write(&dir, "all.netset", "192.0.2.1\n0.0.0.0/0\n");
        let err = first_error(
            &[spec("all", &[&all], ListAction::Enforce)],
            "default route",
        );
        assert!(
            error_chain(&err).contains("all.netset:2: 0.0.0.0/0 would block every address"),
            "{err}"
        );

        let short = write(&dir, "short.netset", "10.0.0.0/7\n");
        let err = first_error(&[spec("short", &[&short], ListAction::Enforce)], "short");
        assert!(
            error_chain(&err).contains("shorter than the minimum /8"),
            "{err}"
        );

        let path = write(&dir, "l.netset", "10.0.0.1\n10.0.0.2\n10.0.0.3\n10.0.0.4\n");
        let specs = [spec("l", &[&path], ListAction::Enforce)];
        let set = ListSet::load(&specs, &fetcher(), &ListGuards::default())
            .expect("loads")
            .0;
        write(&dir, "l.netset", "10.0.0.1\n");
        let (next, errors) = set
            .refresh(&specs, &fetcher(), &ListGuards::default())
            .expect("refresh");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            error_chain(&errors[0]).contains("shrink from 4 to 1"),
            "{errors:?}"
        );
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
        let specs = [ListSpec {
            strict: true,
            ..spec("l", &[&path], ListAction::Enforce)
        }];
        let set = ListSet::load(&specs, &fetcher(), &ListGuards::default())
            .expect("loads")
            .0;
        write(&dir, "l.netset", "10.0.0.1\nnonsense\n");
        let (next, errors) = set
            .refresh(&specs, &fetcher(), &ListGuards::default())
            .expect("refresh");
        assert!(
            error_chain(&errors[0]).contains("l.netset:2: invalid IP address"),
            "{errors:?}"
        );
        assert!(
            next.entry(1, "10.0.0.1".parse().expect("addr")).is_some(),
            "the previous content stays"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unchanged_texts_are_reused_and_any_change_is_parsed_again() {
        let dir = temp_dir("reuse");
        let path = write(&dir, "l.netset", "10.0.0.1\n10.0.0.2\n");
        let specs = [spec("l", &[&path], ListAction::Enforce)];
        let guards = ListGuards::default();
        let set = ListSet::load(&specs, &fetcher(), &guards).expect("loads").0;
        let nets = |set: &ListSet| -> Vec<String> {
            set.lists()[0]
                .entries
                .iter()
                .map(|e| e.net.to_string())
                .collect()
        };
        let (same, errors) = set.refresh(&specs, &fetcher(), &guards).expect("refresh");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(nets(&same), ["10.0.0.1/32", "10.0.0.2/32"]);
        assert_eq!(same.lists()[0].fingerprint, set.lists()[0].fingerprint);
        // Same length, one byte different: parsed again.
        write(&dir, "l.netset", "10.0.0.1\n10.0.0.3\n");
        let (changed, _) = same.refresh(&specs, &fetcher(), &guards).expect("refresh");
        assert_eq!(nets(&changed), ["10.0.0.1/32", "10.0.0.3/32"]);
        // Same bytes read another way (a changed spec): parsed again, under the new spec.
        let strict = [ListSpec {
            strict: true,
            ..specs[0].clone()
        }];
        write(&dir, "l.netset", "10.0.0.1\nnonsense\n");
        let (lenient, _) = changed
            .refresh(&specs, &fetcher(), &guards)
            .expect("refresh");
        assert_eq!(lenient.lists()[0].skipped_lines, 1);
        let (_, errors) = lenient
            .refresh(&strict, &fetcher(), &guards)
            .expect("refresh");
        assert!(
            errors.iter().any(|e| error_chain(e).contains("nonsense")),
            "a strict list with a bad line fails even when its text is unchanged: {errors:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = temp_dir("errors");
        let missing = dir.join("missing.netset");
        let err = first_error(&[spec("m", &[&missing], ListAction::Enforce)], "missing");
        assert!(error_chain(&err).contains("missing.netset"), "{err:#}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_malformed_line_is_reported_once_with_file_line_and_text() {
        let dir = temp_dir("exact");
        let path = write(&dir, "x.netset", "10.0.0.1\nnonsense here\n");
        let strict = ListSpec {
            strict: true,
            ..spec("x", &[&path], ListAction::Enforce)
        };
        let err = first_error(&[strict], "malformed");
        assert_eq!(
            error_chain(&err),
            format!(
                "list x: {}:2: invalid IP address: \"nonsense here\"",
                path.display()
            )
        );
        // Not strict: the line is skipped and counted, the rest is in force.
        let (set, errors) = ListSet::load(
            &[spec("x", &[&path], ListAction::Enforce)],
            &fetcher(),
            &ListGuards::default(),
        )
        .expect("loads");
        assert!(errors.is_empty(), "{errors:?}");
        let list = &set.lists()[0];
        assert_eq!((list.entries.len(), list.skipped_lines), (1, 1));
        assert_eq!(
            list.skipped,
            [format!(
                "{}:2: invalid IP address: \"nonsense here\"",
                path.display()
            )]
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_list_with_no_valid_line_fails_instead_of_loading_empty() {
        let dir = temp_dir("unreadable");
        let path = write(&dir, "page.netset", "<html>\n<body>not a list</body>\n");
        let err = first_error(&[spec("page", &[&path], ListAction::Enforce)], "unreadable");
        assert_eq!(
            error_chain(&err),
            format!(
                "list page has no valid entry (2 malformed lines), the first: {}:1: invalid IP address: \"<html>\"",
                path.display()
            )
        );
        let empty = write(&dir, "empty.netset", "# nothing listed yet\n");
        let (set, errors) = ListSet::load(
            &[spec("empty", &[&empty], ListAction::Enforce)],
            &fetcher(),
            &ListGuards::default(),
        )
        .expect("loads");
        assert!(
            errors.is_empty() && set.lists().len() == 1,
            "an empty file is a list"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
