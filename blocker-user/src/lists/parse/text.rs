//! From a file's bytes to numbered lines: gzip is undone (by its magic bytes, whatever the file
//! is called), a UTF-8 byte-order mark dropped, CRLF and trailing blanks trimmed. A line that is
//! not UTF-8 is kept as such, so it can be reported and skipped on its own.

use std::{borrow::Cow, io::Read as _};

/// Largest decompressed size accepted: a small gzip file must not expand without bound.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// One line: its 1-based number and its text, or the raw bytes when they are not UTF-8.
pub struct Line<'a> {
    pub number: u32,
    pub text: Result<&'a str, &'a [u8]>,
}

impl Line<'_> {
    /// The text for messages (lossy for non-UTF-8 lines).
    pub fn shown(&self) -> Cow<'_, str> {
        match self.text {
            Ok(text) => Cow::Borrowed(text),
            Err(bytes) => String::from_utf8_lossy(bytes),
        }
    }
}

/// The file's content, decompressed when it is gzip.
pub fn decode(bytes: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|_| "corrupt gzip data")?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err("gzip data expands past 1 GiB");
        }
        return Ok(Cow::Owned(out));
    }
    Ok(Cow::Borrowed(bytes))
}

/// Splits into lines, without the BOM, line ends and trailing blanks. Lazily: a million-line
/// file needs no table of its lines. A file that is UTF-8 as a whole (nearly all) is checked
/// once rather than line by line, which was a tenth of the parse time of a large list.
pub fn lines(bytes: &[u8]) -> Lines<'_> {
    lines_after(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes), 0)
}

/// The lines of `bytes`, a part of a file that starts a line and follows `before` lines of
/// it: numbered from `before + 1`, and no byte-order mark is looked for.
pub fn lines_after(bytes: &[u8], before: u32) -> Lines<'_> {
    let rest = match std::str::from_utf8(bytes) {
        Ok(text) => Rest::Text(text),
        Err(_) => Rest::Bytes(bytes),
    };
    Lines {
        rest: Some(rest),
        number: before,
    }
}

/// The iterator of [`lines`].
#[derive(Clone)]
pub struct Lines<'a> {
    /// What is left to split; `None` after the last line.
    rest: Option<Rest<'a>>,
    number: u32,
}

#[derive(Clone, Copy)]
enum Rest<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        self.number = self.number.saturating_add(1);
        let text = match self.rest.take()? {
            Rest::Text(text) => {
                // memchr's vector search: the line-end search of `str::split_once` was a
                // tenth of a million-line parse. A newline is ASCII, so both sides of it are
                // whole UTF-8.
                let (line, rest) = match memchr::memchr(b'\n', text.as_bytes()) {
                    Some(end) => (&text[..end], Some(Rest::Text(&text[end + 1..]))),
                    None => (text, None),
                };
                self.rest = rest;
                Ok(line.trim_end_matches(|c: char| c.is_ascii_whitespace()))
            }
            Rest::Bytes(bytes) => {
                let (raw, rest) = match memchr::memchr(b'\n', bytes) {
                    Some(end) => (&bytes[..end], Some(Rest::Bytes(&bytes[end + 1..]))),
                    None => (bytes, None),
                };
                self.rest = rest;
                let end = raw
                    .iter()
                    .rposition(|b| !b.is_ascii_whitespace())
                    .map_or(0, |p| p + 1);
                let raw = &raw[..end];
                std::str::from_utf8(raw).map_err(|_| raw)
            }
        };
        Some(Line {
            number: self.number,
            text,
        })
    }
}
