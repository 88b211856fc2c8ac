//! Block lists as the daemon holds them: named lists of prefixes, each entry remembering the file
//! and line it came from, plus an index that explains which entry covers an address.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use blocker_common::{Action, ListRef};
use ipnet::IpNet;

use crate::{
    index::PrefixIndex,
    prefix::{self, Entry, ParseError, Warning},
};

/// Why the lists could not be loaded. Nothing is applied to the kernel when this happens.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("failed to read list {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("no list files (*.netset) in {}", dir.display())]
    NoLists { dir: PathBuf },
    #[error("failed to read list directory {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("too many lists: at most {max} are supported")]
    TooMany { max: usize },
}

/// One named list.
#[derive(Debug)]
pub struct List {
    /// 1-based; 0 is never a valid id in the kernel maps.
    pub id: u16,
    /// The file stem, e.g. `kaspersky` for `kaspersky.netset`.
    pub name: String,
    pub path: PathBuf,
    pub action: Action,
    pub entries: Vec<Entry>,
}

/// Where an address matched: the list, the prefix and the source line.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    pub list: &'a List,
    pub prefix: IpNet,
    pub line: u32,
}

impl Match<'_> {
    /// `path:line`, for messages and events.
    pub fn source(&self) -> String {
        format!("{}:{}", self.list.path.display(), self.line)
    }
}

/// All lists, in load order (earlier lists win when two name the same prefix).
#[derive(Debug, Default)]
pub struct ListSet {
    lists: Vec<List>,
    /// Payload of each index entry: (position in `lists`, position in that list's entries).
    origins: Vec<(u16, u32)>,
    index: PrefixIndex,
    warnings: Vec<Warning>,
}

impl ListSet {
    /// Reads and parses every file; fails on the first unreadable file or malformed line.
    pub fn load(files: &[PathBuf], action: Action) -> Result<Self, ListError> {
        let max = usize::from(u16::MAX) - 1;
        if files.len() > max {
            return Err(ListError::TooMany { max });
        }
        let mut lists = Vec::with_capacity(files.len());
        let mut warnings = Vec::new();
        for (position, path) in files.iter().enumerate() {
            let text = std::fs::read_to_string(path).map_err(|source| ListError::Read {
                path: path.clone(),
                source,
            })?;
            let parsed = prefix::parse(path, &text)?;
            warnings.extend(parsed.warnings);
            lists.push(List {
                id: u16::try_from(position + 1).unwrap_or(u16::MAX),
                name: list_name(path),
                path: path.clone(),
                action,
                entries: parsed.entries,
            });
        }
        Ok(Self::from_lists(lists, warnings))
    }

    fn from_lists(lists: Vec<List>, warnings: Vec<Warning>) -> Self {
        let mut origins = Vec::new();
        let mut items = Vec::new();
        for (l, list) in lists.iter().enumerate() {
            for (e, entry) in list.entries.iter().enumerate() {
                let payload = u32::try_from(origins.len()).unwrap_or(u32::MAX);
                origins.push((l as u16, e as u32));
                items.push((entry.net, payload));
            }
        }
        Self {
            index: PrefixIndex::build(items),
            lists,
            origins,
            warnings,
        }
    }

    pub fn lists(&self) -> &[List] {
        &self.lists
    }

    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    pub fn by_id(&self, id: u16) -> Option<&List> {
        self.lists.iter().find(|l| l.id == id)
    }

    /// The entry that decides `addr`, as the kernel would: IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) are looked up as their IPv4 address.
    pub fn lookup(&self, addr: IpAddr) -> Option<Match<'_>> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let (prefix, payload) = self.index.longest_match(addr)?;
        let &(l, e) = self.origins.get(payload as usize)?;
        let list = self.lists.get(usize::from(l))?;
        let line = list.entries.get(e as usize)?.line;
        Some(Match { list, prefix, line })
    }

    /// The prefixes the kernel must hold and the list each one reports. A prefix named by
    /// several lists is reported as the first list's.
    pub fn desired(&self) -> HashMap<IpNet, ListRef> {
        let mut desired = HashMap::new();
        for list in &self.lists {
            for entry in &list.entries {
                desired
                    .entry(entry.net)
                    .or_insert(ListRef::new(list.id, list.action));
            }
        }
        desired
    }
}

/// A list's name: its file name without the extension.
fn list_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The list files in `dir`: every `*.netset`, sorted by name so load order is stable.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, ListError> {
    let read_dir = std::fs::read_dir(dir).map_err(|source| ListError::ReadDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = read_dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "netset"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ListError::NoLists {
            dir: dir.to_owned(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write test list");
        path
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vw-lists-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    #[test]
    fn lookup_names_list_prefix_and_line() {
        let dir = temp_dir("lookup");
        let a = write(&dir, "a.netset", "# a\n10.0.0.0/8\n");
        let b = write(&dir, "b.netset", "\n\n10.1.0.0/16\n2001:db8::/32\n");
        let set = ListSet::load(&[a, b], Action::Enforce).expect("loads");
        let m = set
            .lookup("10.1.2.3".parse().expect("addr"))
            .expect("match");
        assert_eq!(
            (m.list.name.as_str(), m.prefix.to_string(), m.line),
            ("b", "10.1.0.0/16".into(), 3)
        );
        let m = set
            .lookup("::ffff:10.9.9.9".parse().expect("addr"))
            .expect("mapped match");
        assert_eq!((m.list.name.as_str(), m.line), ("a", 2));
        assert!(set.lookup("192.0.2.1".parse().expect("addr")).is_none());
        assert_eq!(files_in(&dir).expect("files").len(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn first_list_keeps_a_shared_prefix() {
        let dir = temp_dir("shared");
        let a = write(&dir, "a.netset", "10.0.0.0/8\n");
        let b = write(&dir, "b.netset", "10.0.0.0/8\n");
        let set = ListSet::load(&[a, b], Action::Enforce).expect("loads");
        let desired = set.desired();
        assert_eq!(desired.len(), 1);
        assert_eq!(desired.values().next().map(|v| v.list_id), Some(1));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = temp_dir("errors");
        let missing = dir.join("missing.netset");
        let err =
            ListSet::load(std::slice::from_ref(&missing), Action::Enforce).expect_err("missing");
        assert!(err.to_string().contains(&missing.display().to_string()));
        let bad = write(&dir, "bad.netset", "1.2.3.4\nnot-an-ip\n");
        let err = ListSet::load(&[bad], Action::Enforce).expect_err("malformed");
        assert!(
            err.to_string().contains("bad.netset:2: invalid IP address"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
