//! CSV exports with a header row naming the address column (quoted fields allowed, parsed by
//! the `csv` crate).

use super::Sink;

/// Header names taken as the address column, compared without case.
const ADDRESS_COLUMNS: [&str; 12] = [
    "ip",
    "ip_address",
    "ipaddress",
    "ip address",
    "address",
    "addr",
    "cidr",
    "network",
    "prefix",
    "subnet",
    "net",
    "range",
];

fn is_address_column(name: &str) -> bool {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    ADDRESS_COLUMNS.contains(&name.as_str())
}

/// Whether `line` is a CSV header naming an address column (the detection of this format).
pub fn is_header(line: &str) -> bool {
    line.contains(',') && line.split(',').any(is_address_column)
}

pub fn read(bytes: &[u8], sink: &mut Sink<'_>) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .comment(Some(b'#'))
        // Only the address field is trimmed (below): trimming every field costs a third of
        // the parse time.
        .trim(csv::Trim::Headers)
        .from_reader(bytes);
    let column = match reader.byte_headers() {
        Ok(headers) => headers
            .iter()
            .position(|h| std::str::from_utf8(h).is_ok_and(is_address_column)),
        Err(_) => None,
    };
    let Some(column) = column else {
        sink.skip(
            1,
            "",
            "CSV header names no address column (ip, cidr, network, ...)",
        );
        return;
    };
    for record in reader.byte_records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err
                    .position()
                    .map_or(0, |p| u32::try_from(p.line()).unwrap_or(u32::MAX));
                sink.skip(line, "", "malformed CSV record");
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| u32::try_from(p.line()).unwrap_or(u32::MAX));
        match record
            .get(column)
            .map(|f| std::str::from_utf8(f.trim_ascii()))
        {
            Some(Ok(field)) if !field.is_empty() => {
                sink.token(field, line, || shown(&record), false);
            }
            Some(Ok(_)) | None => {
                sink.skip(line, &shown(&record), "no address in the address column")
            }
            Some(Err(_)) => sink.skip(line, &shown(&record), "not UTF-8 text"),
        }
    }
}

/// The record as the operator would see it in the file (fields rejoined with commas).
fn shown(record: &csv::ByteRecord) -> String {
    let fields: Vec<_> = record.iter().map(String::from_utf8_lossy).collect();
    fields.join(",")
}
