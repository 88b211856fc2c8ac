//! Spamhaus DROP's JSON-lines form: one object per line with a `cidr` key, and a trailing
//! metadata object (`"type": "metadata"`). Records of the published shape take the fast path in
//! `flat_json`; any other line is read by serde_json.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Sink, flat_json, text::Line};

/// Borrowed from the line where it holds no escapes: no allocation per record.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    cidr: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

pub fn read<'a>(lines: impl Iterator<Item = Line<'a>>, sink: &mut Sink<'_>) {
    for line in lines {
        let Some(text) = sink.text(&line) else {
            continue;
        };
        let content = text.trim();
        if content.is_empty() || content.starts_with('#') || content.starts_with(';') {
            continue;
        }
        let record = match flat_json::record(content) {
            Some(flat) => Ok(Record {
                cidr: flat.cidr.map(Cow::Borrowed),
                kind: flat.kind.map(Cow::Borrowed),
            }),
            None => serde_json::from_str::<Record>(content),
        };
        match record {
            Ok(Record {
                cidr: Some(cidr), ..
            }) => sink.token(cidr.trim(), line.number, || text, false),
            Ok(Record {
                kind: Some(kind), ..
            }) if kind == "metadata" => {}
            Ok(_) => sink.skip(line.number, text, "JSON object without a cidr"),
            Err(_) => sink.skip(line.number, text, "not a JSON object"),
        }
    }
}
