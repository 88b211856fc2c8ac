//! Loading one list: fetch every source, parse each text, keep where every entry came from, and
//! check the guards.

use ipnet::{IpNet, Ipv4Net};

use super::{ListEntry, ListError, ListGuards, ListSpec, error_chain, parse, source::Fetcher};

/// Parsed content of one list, before it gets an id.
pub(super) struct Content {
    pub origins: Vec<String>,
    pub entries: Vec<ListEntry>,
    pub warnings: Vec<String>,
    /// Sources that fell back to their cached copy, and why.
    pub stale: Vec<String>,
}

/// Fetches, parses and guards one list.
pub(super) fn load_content(
    spec: &ListSpec,
    fetcher: &Fetcher,
    guards: &ListGuards,
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
                content.stale.push(format!(
                    "{}: {}; using the cached copy",
                    text.label,
                    error_chain(reason)
                ));
            }
            let origin = u16::try_from(content.origins.len()).unwrap_or(u16::MAX);
            let parsed =
                parse::parse(std::path::Path::new(&text.label), &text.text).map_err(|source| {
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
    guards
        .check(spec, &content.entries, &content.origins, previous_len)
        .map_err(|source| ListError::Guard {
            list: spec.name.clone(),
            source,
        })?;
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
}
