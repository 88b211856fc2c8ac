//! Fuzzes the list parser with raw bytes in every format. It must never panic, and what it
//! accepts must be what the input says (an oracle, not only the absence of crashes):
//! - every entry is canonical (no host bits) and names a line that exists;
//! - a one-line input that is exactly an address or CIDR yields exactly that prefix;
//! - the prefixes of a one-line `a-b` range cover exactly the addresses from a to b.
#![no_main]

use std::net::IpAddr;

use blocker_user::lists::parse::{Format, parse};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 5] = [
    Format::Auto,
    Format::Columns,
    Format::Ipset,
    Format::Csv,
    Format::SpamhausJson,
];

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.list");
    let lines = data.split(|&b| b == b'\n').count() as u32;
    for format in FORMATS {
        let Ok(parsed) = parse(path, data, format) else {
            continue;
        };
        for entry in &parsed.entries {
            assert_eq!(entry.net, entry.net.trunc());
            // Gzip input expands into more lines than the raw bytes have.
            if !data.starts_with(&[0x1f, 0x8b]) {
                assert!(entry.line >= 1 && entry.line <= lines, "{entry:?}");
            }
        }
        assert!(parsed.skipped.len() <= parsed.skipped_count);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let token = text.trim();
    if token.is_empty() || token.contains(['\n', '#', ';', ' ', '\t', ',']) {
        return;
    }
    let Ok(parsed) = parse(path, data, Format::Columns) else {
        return;
    };
    let got: Vec<IpNet> = parsed.entries.iter().map(|e| e.net).collect();
    if let Ok(net) = token.parse::<IpNet>() {
        assert_eq!(got, [net.trunc()]);
    } else if let Ok(addr) = token.parse::<IpAddr>() {
        assert_eq!(got, [IpNet::from(addr)]);
    } else if let Some((a, b)) = token.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>())
        && a.is_ipv4() == b.is_ipv4()
        && a <= b
    {
        // Contiguous, in order, from a to b exactly.
        assert_eq!(got.first().map(IpNet::network), Some(a));
        assert_eq!(got.last().map(IpNet::broadcast), Some(b));
        for pair in got.windows(2) {
            let next = match pair[0].broadcast() {
                IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + 1).into()),
                IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + 1).into()),
            };
            assert_eq!(pair[1].network(), next);
        }
    }
});
