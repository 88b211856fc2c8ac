//! Parsing of prefix files: one address, CIDR or range per line, in the formats operators already
//! keep (plain lists and FireHOL netsets, Spamhaus DROP, `ipset save` output).
//!
//! Accepted per line, after stripping `#` and `;` comments and surrounding blanks:
//! - `a.b.c.d`, `2001:db8::1` (a host: /32 or /128)
//! - `a.b.c.d/n`, `2001:db8::/32` (host bits set are cleared, with a warning)
//! - `a.b.c.d-e.f.g.h` (an inclusive range, turned into the fewest CIDRs covering it exactly)
//! - `add SETNAME prefix [options]` (ipset save); `create ...` lines are skipped
//! - `prefix ; SBL123` (Spamhaus DROP: the `;` starts a comment)

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};

/// One prefix and the line it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub net: IpNet,
    /// 1-based line number in the source file.
    pub line: u32,
}

/// A line that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {reason}: {text:?}", path.display())]
pub struct ParseError {
    pub path: PathBuf,
    pub line: u32,
    pub text: String,
    pub reason: &'static str,
}

/// Something accepted but worth telling the operator about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// The parsed content of one file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub warnings: Vec<Warning>,
}

/// Parses the text of a prefix file. `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    for (index, raw) in text.lines().enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        let error = |reason| ParseError {
            path: path.to_owned(),
            line,
            text: raw.to_owned(),
            reason,
        };
        let mut words = content.split_whitespace();
        let first = words.next().unwrap_or_default();
        let token = match first {
            // ipset save: `create SET hash:net ...` declares the set, `add SET PREFIX ...` fills it.
            "create" => continue,
            "add" => {
                let _set = words
                    .next()
                    .ok_or_else(|| error("ipset add without a set name"))?;
                words
                    .next()
                    .ok_or_else(|| error("ipset add without a prefix"))?
            }
            token => {
                if words.next().is_some() {
                    return Err(error("expected one address, CIDR or range per line"));
                }
                token
            }
        };
        parse_token(token, line, &mut parsed.entries, |message| {
            parsed.warnings.push(Warning {
                path: path.to_owned(),
                line,
                message,
            })
        })
        .map_err(error)?;
    }
    Ok(parsed)
}

/// Everything before the first `#` or `;`.
fn strip_comment(line: &str) -> &str {
    line.split(['#', ';']).next().unwrap_or_default()
}

/// Parses one address, CIDR or range and appends its prefixes.
fn parse_token(
    token: &str,
    line: u32,
    out: &mut Vec<Entry>,
    mut warn: impl FnMut(String),
) -> Result<(), &'static str> {
    let push = |out: &mut Vec<Entry>, net: IpNet| out.push(Entry { net, line });
    // A range is `start-end` with an address before the dash; anything else with a dash (a
    // stray word, a host name) is reported as an invalid address, which is what it is.
    let range = token
        .split_once('-')
        .and_then(|(start, end)| Some((start.parse::<IpAddr>().ok()?, end)));
    if let Some((start, end)) = range {
        let end: IpAddr = end.parse().map_err(|_| "invalid range end")?;
        match (start, end) {
            (IpAddr::V4(start), IpAddr::V4(end)) if start <= end => {
                Ipv4Subnets::new(start, end, 0).for_each(|net| push(out, net.into()));
            }
            (IpAddr::V6(start), IpAddr::V6(end)) if start <= end => {
                Ipv6Subnets::new(start, end, 0).for_each(|net| push(out, net.into()));
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                return Err("range ends before it starts");
            }
            _ => return Err("range mixes IPv4 and IPv6"),
        }
        return Ok(());
    }
    if token.contains('/') {
        let net: IpNet = token.parse().map_err(|_| "invalid CIDR")?;
        let trunc = net.trunc();
        if trunc != net {
            warn(format!(
                "{net} has host bits set; using {trunc}, which blocks the whole network"
            ));
        }
        push(out, trunc);
        return Ok(());
    }
    let addr: IpAddr = token.parse().map_err(|_| "invalid IP address")?;
    push(out, host_net(addr));
    Ok(())
}

/// The single-address prefix for `addr`.
pub fn host_net(addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::from(v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &str) -> Vec<String> {
        parse(Path::new("t.netset"), text)
            .expect("parses")
            .entries
            .iter()
            .map(|e| e.net.to_string())
            .collect()
    }

    #[test]
    fn plain_addresses_cidrs_and_comments() {
        let text = "# header\n\n1.2.3.4\n10.0.0.0/8 # trailing\n2001:db8::/32\n::1\n; semi\n";
        assert_eq!(
            nets(text),
            ["1.2.3.4/32", "10.0.0.0/8", "2001:db8::/32", "::1/128"]
        );
    }

    #[test]
    fn line_numbers_point_at_the_source_line() {
        let parsed = parse(Path::new("x"), "# c\n1.2.3.4\n\n5.6.7.0/24\n").expect("parses");
        let lines: Vec<u32> = parsed.entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn spamhaus_drop_lines() {
        let text = "; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n; EOF\n";
        assert_eq!(nets(text), ["1.10.16.0/20"]);
    }

    #[test]
    fn ipset_save_lines() {
        let text = "create blk hash:net family inet\nadd blk 192.0.2.0/24\nadd blk 198.51.100.7 timeout 0\n";
        assert_eq!(nets(text), ["192.0.2.0/24", "198.51.100.7/32"]);
    }

    #[test]
    fn ranges_become_minimal_cidrs() {
        assert_eq!(
            nets("10.0.0.0-10.0.0.255\n"),
            ["10.0.0.0/24"],
            "an aligned range is one prefix"
        );
        assert_eq!(
            nets("10.0.0.1-10.0.0.6\n"),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        let parsed = parse(Path::new("r"), "1.2.3.4-1.2.3.5\n").expect("parses");
        assert!(parsed.entries.iter().all(|e| e.line == 1));
    }

    #[test]
    fn host_bits_are_cleared_with_a_warning() {
        let parsed = parse(Path::new("lists/a.netset"), "10.1.2.3/8\n").expect("parses");
        assert_eq!(parsed.entries[0].net.to_string(), "10.0.0.0/8");
        assert_eq!(parsed.warnings.len(), 1);
        assert!(
            parsed.warnings[0]
                .to_string()
                .starts_with("lists/a.netset:1: ")
        );
    }

    #[test]
    fn malformed_lines_name_file_line_and_text() {
        for (text, reason) in [
            ("1.2.3.4\n999.1.1.1\n", "invalid IP address"),
            ("1.2.3.0/33\n", "invalid CIDR"),
            (
                "1.2.3.4 5.6.7.8\n",
                "expected one address, CIDR or range per line",
            ),
            ("1.2.3.9-1.2.3.1\n", "range ends before it starts"),
            ("1.2.3.4-::1\n", "range mixes IPv4 and IPv6"),
            ("1.2.3.4-foo\n", "invalid range end"),
            ("not-an-ip\n", "invalid IP address"),
            ("add blk\n", "ipset add without a prefix"),
        ] {
            let err = parse(Path::new("lists/bad.netset"), text).expect_err(text);
            assert_eq!(err.reason, reason, "{text}");
            let line = text.lines().count() as u32;
            assert_eq!(err.line, line, "{text}");
            assert!(
                err.to_string()
                    .starts_with(&format!("lists/bad.netset:{line}: "))
            );
        }
    }
}
