//! Parsing list files into prefixes, in the formats operators already have. The format is
//! detected per file (`format = "..."` on a list overrides it):
//!
//! - `columns` (the default): one address, CIDR or `a-b` range per line, as in FireHOL
//!   netsets, plain address lists and Spamhaus DROP's text form; anything after the address is
//!   an extra column and ignored (a count, a score, a date), separated by tabs, spaces or
//!   commas; `#` and `;` start comments. Two addresses of one family in the first two columns
//!   are a range (DShield's block list: start, end, prefix length).
//! - `ipset`: `ipset save` / `ipset restore` files (`create`, `flush`, `destroy`, `swap`,
//!   `-exist`, `add SET ADDR [options]`; an `add` with `nomatch` is an exception).
//! - `csv`: comma-separated with a header row naming the address column (`ip`, `address`,
//!   `cidr`, `network`, ...).
//! - `spamhaus-json`: Spamhaus DROP's JSON lines (`{"cidr": ...}` objects and a trailing
//!   metadata object).
//!
//! Any of these may be gzip-compressed and may carry a UTF-8 byte-order mark, CRLF line endings
//! or trailing blanks (`text`). A line that cannot be understood is skipped and counted, with
//! its line number and text; a strict list turns the first one into an error.

mod columns;
mod csv;
mod flat_json;
mod ipset;
mod ipv6;
mod json;
pub mod text;
mod token;

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use token::host_net;

/// How a list file is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Detected from the file's first lines.
    #[default]
    Auto,
    Columns,
    Ipset,
    Csv,
    SpamhausJson,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Columns => "columns",
            Self::Ipset => "ipset",
            Self::Csv => "csv",
            Self::SpamhausJson => "spamhaus-json",
        }
    }
}

/// One prefix and the line it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub net: IpNet,
    /// 1-based line number in the source file.
    pub line: u32,
    /// An ipset `nomatch` element: carved out of the list's other entries, never blocked.
    pub exception: bool,
}

/// A line that could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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

/// Skipped lines kept in full per file; the rest are only counted.
pub const SKIPPED_KEPT: usize = 5;

/// The parsed content of one file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub warnings: Vec<Warning>,
    /// The first [`SKIPPED_KEPT`] malformed lines.
    pub skipped: Vec<ParseError>,
    /// Every malformed line, counted.
    pub skipped_count: usize,
    /// The format the file was read as.
    pub format: Format,
}

/// Collects what the format readers find.
pub(crate) struct Sink<'a> {
    path: &'a Path,
    parsed: Parsed,
}

impl<'a> Sink<'a> {
    fn new(path: &'a Path, format: Format) -> Self {
        Self {
            path,
            parsed: Parsed {
                format,
                ..Parsed::default()
            },
        }
    }

    /// Adds what `later` collected from the lines after this one's.
    fn append(&mut self, later: Sink<'_>) {
        let later = later.parsed;
        self.parsed.entries.extend_from_slice(&later.entries);
        self.parsed.warnings.extend(later.warnings);
        self.parsed.skipped_count += later.skipped_count;
        let room = SKIPPED_KEPT.saturating_sub(self.parsed.skipped.len());
        self.parsed
            .skipped
            .extend(later.skipped.into_iter().take(room));
    }

    pub(crate) fn entry(&mut self, net: IpNet, line: u32, exception: bool) {
        self.parsed.entries.push(Entry {
            net,
            line,
            exception,
        });
    }

    pub(crate) fn warn(&mut self, line: u32, message: String) {
        self.parsed.warnings.push(Warning {
            path: self.path.to_owned(),
            line,
            message,
        });
    }

    pub(crate) fn skip(&mut self, line: u32, text: &str, reason: &'static str) {
        self.parsed.skipped_count += 1;
        if self.parsed.skipped.len() < SKIPPED_KEPT {
            self.parsed.skipped.push(ParseError {
                path: self.path.to_owned(),
                line,
                text: text.to_owned(),
                reason,
            });
        }
    }

    /// The text of `line` when it is UTF-8 (a line that is not is skipped here).
    pub(crate) fn text<'l>(&mut self, line: &text::Line<'l>) -> Option<&'l str> {
        match line.text {
            Ok(text) => Some(text),
            Err(_) => {
                self.skip(line.number, &line.shown(), "not UTF-8 text");
                None
            }
        }
    }

    /// Parses one token (address, CIDR or range) found on `line`, or skips the line. `raw` gives
    /// the line's text for the message; it is only called for a skipped line, so formats that
    /// must rebuild it (CSV) pay nothing on good lines.
    pub(crate) fn token<R: AsRef<str>>(
        &mut self,
        token: &str,
        line: u32,
        raw: impl FnOnce() -> R,
        exception: bool,
    ) {
        let path = self.path;
        let parsed = &mut self.parsed;
        let result = token::parse(token, |net| {
            parsed.entries.push(Entry {
                net,
                line,
                exception,
            })
        });
        match result {
            Ok(Some(message)) => parsed.warnings.push(Warning {
                path: path.to_owned(),
                line,
                message,
            }),
            Ok(None) => {}
            Err(reason) => self.skip(line, raw().as_ref(), reason),
        }
    }
}

/// Parses a list file's bytes (`path` is only used in messages). Only an undecodable file
/// (corrupt gzip) is an error; malformed lines are skipped and counted in [`Parsed`].
pub fn parse(path: &Path, bytes: &[u8], format: Format) -> Result<Parsed, ParseError> {
    let decoded = text::decode(bytes).map_err(|reason| ParseError {
        path: path.to_owned(),
        line: 0,
        text: String::new(),
        reason,
    })?;
    let lines = text::lines(&decoded);
    let format = match format {
        Format::Auto => detect(lines.clone()),
        chosen => chosen,
    };
    let mut sink = Sink::new(path, format);
    // One entry a line, nearly always: room for them all at once, so a million-line file is
    // not copied through a doubling vector (which held up to half as much again at its peak).
    let line_count = line_ends(&decoded);
    sink.parsed.entries.reserve(line_count + 1);
    match format {
        Format::Auto | Format::Columns => read_columns(path, &decoded, line_count, &mut sink),
        Format::Ipset => ipset::read(lines, &mut sink),
        Format::Csv => csv::read(&decoded, &mut sink),
        Format::SpamhausJson => json::read(lines, &mut sink),
    }
    Ok(sink.parsed)
}

/// Files from this size on are read in two halves at once (a million-line list is about
/// 15 MiB): parsing is most of a large list's load, and a server has a second core for it.
const HALVES_AT: usize = 4 << 20;

fn line_ends(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

/// Reads a `columns` file, a large one in two halves on two threads: the second half is
/// split at a line end and numbered on from the first, and its findings follow the first's,
/// so the result is the one a single pass gives. `line_ends_total` counts the file's newlines.
fn read_columns(path: &Path, decoded: &[u8], line_ends_total: usize, sink: &mut Sink<'_>) {
    let middle = decoded.len() / 2;
    let split = (decoded.len() >= HALVES_AT)
        .then(|| memchr::memchr(b'\n', &decoded[middle..]))
        .flatten()
        .map(|at| middle + at + 1);
    let Some(split) = split else {
        columns::read(text::lines(decoded), sink, true);
        return;
    };
    let (first, second) = decoded.split_at(split);
    let first_ends = line_ends(first);
    let before = u32::try_from(first_ends).unwrap_or(u32::MAX);
    let format = sink.parsed.format;
    let read_second = |before_data| {
        let mut later = Sink::new(path, format);
        later
            .parsed
            .entries
            .reserve(line_ends_total - first_ends + 1);
        columns::read(text::lines_after(second, before), &mut later, before_data);
        later
    };
    let (mut later, header_open) = std::thread::scope(|scope| {
        let later = scope.spawn(|| read_second(false));
        let header_open = columns::read(text::lines(first), sink, true);
        // A panic on the other thread is this one's.
        let later = later
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (later, header_open)
    });
    // No content line in the whole first half: the second's first one may be a header row
    // after all, so it is read again as a single pass would.
    if header_open {
        later = read_second(true);
    }
    sink.append(later);
}

/// The format of a file, from its first line with content.
fn detect<'a>(mut lines: impl Iterator<Item = text::Line<'a>>) -> Format {
    let Some(first) = lines.find_map(|l| {
        let t = l.text.ok()?.trim();
        (!t.is_empty() && !t.starts_with('#') && !t.starts_with(';')).then_some(t)
    }) else {
        return Format::Columns;
    };
    if first.starts_with('{') {
        return Format::SpamhausJson;
    }
    if ipset::is_command(first) {
        return Format::Ipset;
    }
    if csv::is_header(first) {
        return Format::Csv;
    }
    Format::Columns
}

#[cfg(test)]
mod tests;
