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
/// file needs no table of its lines.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Line<'_>> + Clone {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes.split(|&b| b == b'\n').enumerate().map(|(i, raw)| {
        let end = raw
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |p| p + 1);
        let raw = &raw[..end];
        Line {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            text: std::str::from_utf8(raw).map_err(|_| raw),
        }
    })
}
