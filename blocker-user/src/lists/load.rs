//! Loading one list: fetch every source, parse each text, keep where every entry came from,
//! carve out its exceptions, and check the guards.

use ipnet::{IpNet, Ipv4Net};

use super::{
    List, ListEntry, ListError, ListGuards, ListSpec, aggregate, error_chain,
    parse::{self, ParseError},
    source::{Fetched, Fetcher},
};

/// Parsed content of one list, before it gets an id.
pub(super) struct Content {
    pub origins: Vec<String>,
    pub entries: Vec<ListEntry>,
    pub warnings: Vec<String>,
    /// Sources that fell back to their cached copy, and why.
    pub stale: Vec<String>,
    pub skipped_lines: usize,
    pub skipped: Vec<String>,
    pub exceptions: usize,
    pub fingerprint: u64,
}

/// The digest of a list's fetched texts (labels and bytes, in order), to tell an unchanged
/// text from a changed one. XXH3 because every reload hashes every byte of every list (the
/// standard SipHash took 8 ms for a million-line file, XXH3 a tenth of that); a collision could
/// only keep content the source itself served before.
fn fingerprint(texts: &[Fetched]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for text in texts {
        // Lengths first, so label and bytes cannot shift into each other.
        hasher.update(&(text.label.len() as u64).to_le_bytes());
        hasher.update(text.label.as_bytes());
        hasher.update(&(text.bytes.len() as u64).to_le_bytes());
        hasher.update(&text.bytes);
    }
    hasher.digest()
}

/// Fetches, parses and guards one list. When `previous` (the list's content in force) was
/// parsed from the very same texts with the same spec, its entries are reused unparsed.
pub(super) fn load_content(
    spec: &ListSpec,
    fetcher: &Fetcher,
    guards: &ListGuards,
    previous: Option<&List>,
) -> Result<Content, ListError> {
    let mut texts = Vec::new();
    for source in &spec.sources {
        let fetched = fetcher.fetch(source).map_err(|source| ListError::Fetch {
            list: spec.name.clone(),
            source,
        })?;
        texts.extend(fetched);
    }
    let digest = fingerprint(&texts);
    let stale: Vec<String> = texts
        .iter()
        .filter_map(|text| {
            let reason = text.stale_because.as_ref()?;
            Some(format!(
                "{}: {}; using the cached copy",
                text.label,
                error_chain(reason)
            ))
        })
        .collect();
    let previous_len = previous.map(|l| l.entries.len());
    if let Some(previous) = previous.filter(|p| p.fingerprint == digest && p.spec == *spec) {
        let content = Content {
            origins: previous.origins.clone(),
            entries: previous.entries.clone(),
            warnings: previous.warnings.clone(),
            stale,
            skipped_lines: previous.skipped_lines,
            skipped: previous.skipped.clone(),
            exceptions: previous.exceptions,
            fingerprint: digest,
        };
        // The guards may have changed with the config: they are checked again.
        return guarded(spec, guards, content, previous_len);
    }
    parse_texts(spec, texts, stale, digest, guards, previous_len)
}

fn guarded(
    spec: &ListSpec,
    guards: &ListGuards,
    content: Content,
    previous_len: Option<usize>,
) -> Result<Content, ListError> {
    guards
        .check(spec, &content.entries, &content.origins, previous_len)
        .map_err(|source| ListError::Guard {
            list: spec.name.clone(),
            source,
        })?;
    Ok(content)
}

/// Parses the fetched texts of one list, carves its exceptions and checks the guards.
fn parse_texts(
    spec: &ListSpec,
    texts: Vec<Fetched>,
    stale: Vec<String>,
    fingerprint: u64,
    guards: &ListGuards,
    previous_len: Option<usize>,
) -> Result<Content, ListError> {
    let mut content = Content {
        origins: Vec::new(),
        entries: Vec::new(),
        warnings: Vec::new(),
        stale,
        skipped_lines: 0,
        skipped: Vec::new(),
        exceptions: 0,
        fingerprint,
    };
    let mut holes = Vec::new();
    let mut first_skipped = None;
    let parse_error = |source: ParseError| ListError::Parse {
        list: spec.name.clone(),
        source,
    };
    for text in texts {
        let origin = u16::try_from(content.origins.len()).unwrap_or(u16::MAX);
        let parsed = parse::parse(std::path::Path::new(&text.label), &text.bytes, spec.format)
            .map_err(parse_error)?;
        if spec.strict
            && let Some(first) = parsed.skipped.first()
        {
            return Err(parse_error(first.clone()));
        }
        content.skipped_lines += parsed.skipped_count;
        if first_skipped.is_none() {
            first_skipped = parsed.skipped.first().cloned();
        }
        let room = parse::SKIPPED_KEPT.saturating_sub(content.skipped.len());
        content
            .skipped
            .extend(parsed.skipped.iter().take(room).map(ToString::to_string));
        content
            .warnings
            .extend(parsed.warnings.iter().map(ToString::to_string));
        holes.extend(
            parsed
                .entries
                .iter()
                .filter(|e| e.exception)
                .map(|e| unmap(e.net)),
        );
        // Converted in place (an entry and a list entry have the same layout, so collect
        // reuses the parser's allocation): a million entries are never held twice.
        let entries = parsed
            .entries
            .into_iter()
            .filter(|e| !e.exception)
            .map(|e| ListEntry {
                net: unmap(e.net),
                line: e.line,
                origin,
            });
        if content.entries.is_empty() {
            content.entries = entries.collect();
        } else {
            content.entries.extend(entries);
        }
        content.origins.push(text.label);
    }
    // Every content line malformed (a wrong `format`, an error page served as the list): an
    // empty list would remove everything it enforced, so the list fails and keeps what it had.
    if content.entries.is_empty()
        && holes.is_empty()
        && let Some(first) = first_skipped
    {
        return Err(ListError::Unreadable {
            list: spec.name.clone(),
            skipped: content.skipped_lines,
            first,
        });
    }
    content.exceptions = holes.len();
    if !holes.is_empty() {
        content.entries = carve(content.entries, &holes);
    }
    guarded(spec, guards, content, previous_len)
}

/// The entries minus the exceptions (ipset `nomatch`): an entry that overlaps an exception is
/// split into the largest prefixes that do not, each keeping the entry's source line; an entry
/// inside an exception is dropped. Exact, so the list blocks precisely what the set matched.
fn carve(entries: Vec<ListEntry>, holes: &[IpNet]) -> Vec<ListEntry> {
    // Disjoint and sorted, the holes overlapping one entry are a run found by binary search:
    // a large list with many exceptions costs a search per entry, not a scan.
    let holes = aggregate::aggregate(holes);
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let net = entry.net;
        let first = holes.partition_point(|h| h.broadcast() < net.network());
        let count = holes[first..]
            .iter()
            .take_while(|h| h.network() <= net.broadcast())
            .count();
        carve_one(entry, net, &holes[first..first + count], &mut out);
    }
    out
}

/// Carves `holes` (disjoint, each overlapping `net`'s range or past it) out of `net`.
fn carve_one(entry: ListEntry, net: IpNet, holes: &[IpNet], out: &mut Vec<ListEntry>) {
    let overlapping = |h: &&IpNet| h.contains(&net) || net.contains(*h);
    match holes.iter().find(overlapping) {
        None => out.push(ListEntry { net, ..entry }),
        Some(hole) if hole.contains(&net) => {}
        Some(_) => {
            let halves = net.subnets(net.prefix_len() + 1).into_iter().flatten();
            for half in halves {
                carve_one(entry, half, holes, out);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn exceptions_are_carved_out_exactly() {
        let entry = |net: &str| ListEntry {
            net: net.parse().expect("net"),
            line: 3,
            origin: 0,
        };
        let holes: Vec<IpNet> = ["192.0.2.128/25", "10.0.0.0/8"]
            .iter()
            .map(|h| h.parse().expect("net"))
            .collect();
        let out = carve(
            vec![
                entry("192.0.2.0/24"),
                entry("10.1.0.0/16"),
                entry("198.51.100.0/24"),
            ],
            &holes,
        );
        let nets: Vec<String> = out.iter().map(|e| e.net.to_string()).collect();
        assert_eq!(nets, ["192.0.2.0/25", "198.51.100.0/24"]);
        let out = carve(
            vec![entry("192.0.2.0/24")],
            &["192.0.2.7/32".parse().expect("net")],
        );
        let covered: u32 = out.iter().map(|e| 1u32 << (32 - e.net.prefix_len())).sum();
        assert_eq!(covered, 255, "every address but the exception");
        assert!(out.iter().all(|e| {
            e.line == 3
                && !e
                    .net
                    .contains(&"192.0.2.7".parse::<std::net::IpAddr>().expect("a"))
        }));
    }
}
