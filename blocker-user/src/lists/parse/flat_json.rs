//! A validating reader for the one shape Spamhaus DROP's records have: a JSON object of string
//! keys and string values, none with escapes. Written by hand because serde_json, on such
//! lines, costs more than the rest of the parse (1.75x a plain CIDR line per million lines,
//! over the 1.5x the list stage allows); anything else (numbers, nesting, escapes, a duplicate
//! key, a syntax error) is left to serde_json, so this only ever accepts what serde_json would
//! read the same way (checked against it in the tests).

/// The two fields the reader needs, borrowed from the line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub cidr: Option<&'a str>,
    pub kind: Option<&'a str>,
}

/// `text` as a [`Record`], or `None` when it is not a flat, escape-free, string-valued object.
pub fn record(text: &str) -> Option<Record<'_>> {
    let mut scan = Scan { text, at: 0 };
    let mut record = Record::default();
    scan.blank();
    scan.byte(b'{')?;
    scan.blank();
    if scan.peek() == Some(b'}') {
        scan.at += 1;
    } else {
        loop {
            let key = scan.string()?;
            scan.blank();
            scan.byte(b':')?;
            scan.blank();
            let value = scan.string()?;
            let slot = match key {
                "cidr" => Some(&mut record.cidr),
                "type" => Some(&mut record.kind),
                _ => None,
            };
            if let Some(slot) = slot {
                // serde refuses a duplicate field: leave the line to it.
                if slot.replace(value).is_some() {
                    return None;
                }
            }
            scan.blank();
            match scan.peek()? {
                b',' => {
                    scan.at += 1;
                    scan.blank();
                }
                b'}' => {
                    scan.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    scan.blank();
    (scan.at == text.len()).then_some(record)
}

struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        let len = self.text.as_bytes()[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.at = start + len;
        self.byte(b'"')?;
        // Both ends are ASCII quotes, so the slice falls on character boundaries.
        self.text.get(start..start + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json reads from `text`, in the same shape.
    fn serde(text: &str) -> Option<(Option<String>, Option<String>)> {
        #[derive(serde::Deserialize)]
        struct Full {
            cidr: Option<String>,
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        serde_json::from_str::<Full>(text)
            .ok()
            .map(|f| (f.cidr, f.kind))
    }

    #[test]
    fn accepts_only_what_serde_json_reads_the_same() {
        let cases = [
            r#"{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}"#,
            r#"  { "cidr" : "2001:db8::/32" , "rir":"ripe" }  "#,
            r#"{}"#,
            r#"{"type":"metadata","size":"12"}"#,
            r#"{"type":"metadata","timestamp":1796040000}"#,
            r#"{"cidr":"1.2.3.0/24","cidr":"5.6.7.0/24"}"#,
            r#"{"cidr":"1.2.3.0/24",}"#,
            r#"{"cidr":"1.2.3.0/24""#,
            r#"{"cidr":"1.2.3.0/24"} x"#,
            r#"{"cidr":"1.2\u002e3.0/24"}"#,
            "{\"cidr\":\"1.2.3.0/24\tx\"}",
            r#"{"cidr":1}"#,
            r#"{"cidr":"1.2.3.0/24","n":{"a":"b"}}"#,
            r#"{"cidr":"é/24"}"#,
            r#"{"cidr""1.2.3.0/24"}"#,
            r#"["1.2.3.0/24"]"#,
            r#"{"#,
            "",
        ];
        for case in cases {
            if let Some(record) = record(case) {
                let ours = (
                    record.cidr.map(str::to_owned),
                    record.kind.map(str::to_owned),
                );
                assert_eq!(Some(ours), serde(case), "{case}");
            }
        }
        assert!(record(cases[0]).is_some() && record(cases[1]).is_some());
        assert!(
            record(cases[5]).is_none(),
            "duplicate keys go to serde_json"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_disagrees_with_serde_json(text in r#"[ {}":,a-z0-9./\\\t]{0,40}"#) {
            if let Some(record) = record(&text) {
                let ours = (record.cidr.map(str::to_owned), record.kind.map(str::to_owned));
                proptest::prop_assert_eq!(Some(ours), serde(&text));
            }
        }

        #[test]
        fn reads_every_flat_object(
            fields in proptest::collection::vec(("[a-z]{1,6}", "[a-z0-9./:]{0,12}"), 0..5),
        ) {
            let body: Vec<String> =
                fields.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
            let text = format!("{{{}}}", body.join(", "));
            let keys: std::collections::HashSet<_> = fields.iter().map(|(k, _)| k).collect();
            let duplicate = keys.len() < fields.len();
            let expected = serde(&text);
            match record(&text) {
                Some(r) => proptest::prop_assert_eq!(
                    Some((r.cidr.map(str::to_owned), r.kind.map(str::to_owned))),
                    expected
                ),
                None => proptest::prop_assert!(duplicate, "{} refused", text),
            }
        }
    }
}
