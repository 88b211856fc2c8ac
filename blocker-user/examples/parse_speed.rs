//! Parse time per million lines for each list format, printed as one JSON object per format.
//! Run by `cargo xtask bench` (release build) so docs/BENCHMARKS.md compares the formats
//! against plain CIDR lines in one run.

use std::{path::Path, time::Instant};

use blocker_user::lists::parse::{Format, parse};

const LINES: u32 = 1_000_000;
const RUNS: usize = 7;

/// The `i`-th distinct /24 network, spread over the unicast space.
fn octets(i: u32) -> [u8; 3] {
    let n = i + (1 << 16);
    [(n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// Each format's name, the format it is read as, and one line for prefix `i`.
type Line = fn(u32) -> String;

const FORMATS: [(&str, Format, Line); 7] = [
    ("plain CIDR", Format::Columns, |i| {
        let [a, b, c] = octets(i);
        format!("{a}.{b}.{c}.0/24\n")
    }),
    ("netset with comments", Format::Columns, |i| {
        let [a, b, c] = octets(i);
        format!("{a}.{b}.{c}.0/24 # listed 2026-11-01\n")
    }),
    ("extra columns (address, count)", Format::Columns, |i| {
        let [a, b, c] = octets(i);
        format!("{a}.{b}.{c}.1\t{}\n", i % 97)
    }),
    ("DShield (start, end, size, ...)", Format::Columns, |i| {
        let [a, b, c] = octets(i);
        format!(
            "{a}.{b}.{c}.0\t{a}.{b}.{c}.255\t24\t1200\tExample Net\tXX\tabuse@example.invalid\n"
        )
    }),
    ("ipset save", Format::Ipset, |i| {
        let [a, b, c] = octets(i);
        format!("add vw {a}.{b}.{c}.0/24\n")
    }),
    ("CSV", Format::Csv, |i| {
        let [a, b, c] = octets(i);
        format!("2026-11-01,\"{a}.{b}.{c}.1\",90,\"scanner, persistent\"\n")
    }),
    ("Spamhaus DROP JSON", Format::SpamhausJson, |i| {
        let [a, b, c] = octets(i);
        format!("{{\"cidr\":\"{a}.{b}.{c}.0/24\",\"sblid\":\"SBL{i}\",\"rir\":\"arin\"}}\n")
    }),
];

fn main() -> anyhow::Result<()> {
    let path = Path::new("bench-list");
    let texts: Vec<String> = FORMATS
        .iter()
        .map(|(_, format, line)| {
            let mut text = match format {
                Format::Csv => "first_seen,ip_address,score,comment\n".to_owned(),
                Format::Ipset => "create vw hash:net family inet\n".to_owned(),
                _ => String::new(),
            };
            (0..LINES).for_each(|i| text.push_str(&line(i)));
            text
        })
        .collect();
    // Rounds interleave the formats, so a slow spell of the machine hits all of them alike;
    // the fastest round is the figure (the parse is CPU-bound: slower rounds are noise).
    let mut best = [f64::INFINITY; FORMATS.len()];
    for _ in 0..RUNS {
        for (i, (name, format, _)) in FORMATS.iter().enumerate() {
            let start = Instant::now();
            let parsed = parse(path, texts[i].as_bytes(), *format)?;
            best[i] = best[i].min(start.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(
                parsed.entries.len() == LINES as usize && parsed.skipped_count == 0,
                "{name}: {} entries, {} skipped, of {LINES} lines",
                parsed.entries.len(),
                parsed.skipped_count
            );
        }
    }
    for ((name, _, _), ms) in FORMATS.iter().zip(best) {
        println!(
            "{}",
            serde_json::json!({ "format": name, "ms_per_million": ms * 1e6 / f64::from(LINES) })
        );
    }
    Ok(())
}
