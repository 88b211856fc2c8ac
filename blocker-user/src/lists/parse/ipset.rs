//! `ipset save` and `ipset restore` files. Every set in the file contributes its elements;
//! set management commands are accepted and have nothing to add; an element with `nomatch` is
//! an exception carved out of the list.

use super::{Sink, text::Line};

/// ipset commands that declare or manage sets rather than add elements.
const MANAGEMENT: [&str; 9] = [
    "create", "flush", "destroy", "swap", "rename", "list", "save", "test", "del",
];

/// Whether `line` starts with an ipset command (the detection of this format).
pub fn is_command(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let first = match words.next() {
        Some("-exist" | "-!") => words.next(),
        other => other,
    };
    first.is_some_and(|w| w == "add" || MANAGEMENT.contains(&w))
}

pub fn read<'a>(lines: impl Iterator<Item = Line<'a>>, sink: &mut Sink<'_>) {
    for line in lines {
        let Some(text) = sink.text(&line) else {
            continue;
        };
        let content = text.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        // `-exist` (or `-!`) may stand before the command or among its options.
        let mut words = content
            .split_whitespace()
            .filter(|w| *w != "-exist" && *w != "-!");
        match words.next() {
            Some("add") => {}
            Some("COMMIT") => continue,
            Some(word) if MANAGEMENT.contains(&word) => {
                if word == "del" {
                    sink.warn(
                        line.number,
                        "ipset del ignored: the list is loaded whole each time".into(),
                    );
                }
                continue;
            }
            _ => {
                sink.skip(line.number, text, "not an ipset command");
                continue;
            }
        }
        let Some(_set) = words.next() else {
            sink.skip(line.number, text, "ipset add without a set name");
            continue;
        };
        let Some(element) = words.next() else {
            sink.skip(line.number, text, "ipset add without an element");
            continue;
        };
        // hash:ip,port and friends: the element is more specific than an address, so blocking
        // the whole address would block more than the set does.
        if element.contains(',') {
            sink.skip(
                line.number,
                text,
                "ipset elements with a port or interface are not supported",
            );
            continue;
        }
        let exception = words.any(|w| w == "nomatch");
        sink.token(element, line.number, || text, exception);
    }
}
