//! Domain files: one name a line, `#` comments, and hosts-file lines (`0.0.0.0 name ...`),
//! as blocklists for DNS sinkholes publish them; also v2fly/domain-list-community's `data/`
//! files (`domain:` and `full:` prefixes, `@attribute` tags). A line vendorwall cannot honour
//! (a v2fly `regexp:`, `keyword:` or `include:` rule) or a malformed one is skipped and
//! reported with its file and line, like a malformed prefix line.
//!
//! A `full:` name is blocked with the names below it, like every listed name: the learner
//! matches suffixes only.

use std::net::IpAddr;

use super::domain::Domain;

/// A name and the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameLine {
    pub domain: Domain,
    pub line: u32,
}

/// What a domain file held.
#[derive(Debug, Default)]
pub struct ParsedNames {
    pub names: Vec<NameLine>,
    /// Malformed lines, as `label:line: reason`.
    pub skipped: Vec<String>,
}

/// Parses the text of `label` (a path or URL, for messages).
pub fn parse_names(label: &str, text: &str) -> ParsedNames {
    let mut parsed = ParsedNames::default();
    for (i, raw) in text.lines().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let content = raw.split('#').next().unwrap_or("").trim();
        let content = content.strip_prefix('\u{feff}').unwrap_or(content);
        if content.is_empty() {
            continue;
        }
        let mut tokens = content.split_whitespace().peekable();
        // hosts-file form: an address, then the names it maps.
        if tokens.peek().is_some_and(|t| t.parse::<IpAddr>().is_ok()) {
            tokens.next();
        }
        let mut any = false;
        for token in tokens {
            // v2fly attributes (`@cn`, `@!cn`) qualify the name; they are not names.
            if token.starts_with('@') {
                continue;
            }
            any = true;
            if let Some((kind, _)) = token.split_once(':')
                && matches!(kind, "regexp" | "keyword" | "include")
            {
                parsed.skipped.push(format!(
                    "{label}:{line}: a v2fly `{kind}:` rule is not supported (list the names it stands for)"
                ));
                continue;
            }
            let token = token
                .strip_prefix("full:")
                .or_else(|| token.strip_prefix("domain:"))
                .unwrap_or(token);
            match Domain::parse(token) {
                Ok(domain) => parsed.names.push(NameLine { domain, line }),
                Err(err) => parsed.skipped.push(format!("{label}:{line}: {err}")),
            }
        }
        if !any {
            parsed
                .skipped
                .push(format!("{label}:{line}: an address without a name"));
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hosts_lines_with_comments() {
        let text = "# Kaspersky update hosts\nkaspersky.com\n0.0.0.0 upd.kaspersky.com ksn.kaspersky-labs.com # KSN\n\n127.0.0.1\nbad!name.com\n";
        let parsed = parse_names("k.domains", text);
        let names: Vec<(String, u32)> = parsed
            .names
            .iter()
            .map(|n| (n.domain.to_string(), n.line))
            .collect();
        assert_eq!(
            names,
            [
                ("kaspersky.com".into(), 2),
                ("upd.kaspersky.com".into(), 3),
                ("ksn.kaspersky-labs.com".into(), 3)
            ]
        );
        assert_eq!(parsed.skipped.len(), 2);
        assert!(parsed.skipped[0].starts_with("k.domains:5: "));
        assert!(parsed.skipped[1].starts_with("k.domains:6: "));
    }

    #[test]
    fn v2fly_lines_are_read_and_their_unsupported_rules_reported() {
        let text = "kaspersky.com\nfull:s00.upd.kaspersky.com @cn\ndomain:kaspersky.ru @!cn\nregexp:^k.*$\ninclude:other\n";
        let parsed = parse_names("v2fly", text);
        let names: Vec<String> = parsed.names.iter().map(|n| n.domain.to_string()).collect();
        assert_eq!(
            names,
            ["kaspersky.com", "s00.upd.kaspersky.com", "kaspersky.ru"]
        );
        assert_eq!(parsed.skipped.len(), 2, "{:?}", parsed.skipped);
        assert!(parsed.skipped[0].contains("v2fly:4: a v2fly `regexp:`"));
    }
}
