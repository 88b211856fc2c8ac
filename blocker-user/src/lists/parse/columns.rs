//! Line-per-entry lists: an address, CIDR or range in the first column, extra columns ignored
//! (FireHOL netsets, plain lists, Spamhaus DROP text, `IP<TAB>count` lists), and DShield's
//! `start end prefix-length` block list.

use std::net::IpAddr;

use super::{Sink, text::Line, token};

/// Reads `lines` into `sink`. `before_data`: no content line came before these (the first one
/// may then be a header row). Returns whether that is still so after them.
pub fn read<'a>(
    lines: impl Iterator<Item = Line<'a>>,
    sink: &mut Sink<'_>,
    mut before_data: bool,
) -> bool {
    for line in lines {
        let Some(text) = sink.text(&line) else {
            continue;
        };
        // Nearly every line of a large list is one bare address or CIDR: read it whole, before
        // the comment, blank and column handling it does not need (a third of the parse).
        if let Some(net) = token::plain(text) {
            sink.entry(net, line.number, false);
            before_data = false;
            continue;
        }
        // Bytes, not chars: a byte search over long DShield lines costs a fraction of a char one.
        let end = text
            .bytes()
            .position(|b| b == b'#' || b == b';')
            .unwrap_or(text.len());
        let content = text[..end].trim();
        if content.is_empty() {
            continue;
        }
        let mut columns = content
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|c| !c.is_empty());
        let first = columns.next().unwrap_or_default();
        // A header row before the data (DShield's `Start End Netblock ...`): words, no digits.
        if std::mem::take(&mut before_data)
            && first.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
        {
            continue;
        }
        // DShield: two addresses of one family are the start and end of a range. Only looked
        // at with a second column, and not for a CIDR (not an address).
        if !first.contains('/')
            && let Some(second) = columns.next()
            && let (Ok(start), Ok(end)) = (first.parse::<IpAddr>(), second.parse::<IpAddr>())
            && start.is_ipv4() == end.is_ipv4()
        {
            // range_into checks the ends before it pushes anything, so an error leaves no
            // partial range behind.
            if let Err(reason) =
                token::range_into(start, end, |net| sink.entry(net, line.number, false))
            {
                sink.skip(line.number, text, reason);
            }
            continue;
        }
        sink.token(first, line.number, || text, false);
    }
    before_data
}
