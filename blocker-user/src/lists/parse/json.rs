//! Spamhaus DROP's JSON-lines form: one object per line with a `cidr` key, and a trailing
//! metadata object (`"type": "metadata"`).

use serde::Deserialize;

use super::{Sink, text::Line};

#[derive(Deserialize)]
struct Record {
    cidr: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
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
        match serde_json::from_str::<Record>(content) {
            Ok(Record {
                cidr: Some(cidr), ..
            }) => sink.token(cidr.trim(), line.number, text, false),
            Ok(Record {
                kind: Some(kind), ..
            }) if kind == "metadata" => {}
            Ok(_) => sink.skip(line.number, text, "JSON object without a cidr"),
            Err(_) => sink.skip(line.number, text, "not a JSON object"),
        }
    }
}
