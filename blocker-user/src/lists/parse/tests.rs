use std::io::Write as _;

use super::*;

fn parsed(text: &[u8]) -> Parsed {
    parse(Path::new("t"), text, Format::Auto).expect("decodes")
}

fn nets(text: &str) -> Vec<String> {
    let p = parsed(text.as_bytes());
    assert_eq!(p.skipped_count, 0, "{:?}", p.skipped);
    p.entries.iter().map(|e| e.net.to_string()).collect()
}

#[test]
fn plain_addresses_cidrs_and_comments() {
    let text = "# header\n\n1.2.3.4\n10.0.0.0/8 # trailing\n2001:db8::/32\n::1\n; semi\n";
    assert_eq!(
        nets(text),
        ["1.2.3.4/32", "10.0.0.0/8", "2001:db8::/32", "::1/128"]
    );
}

#[test]
fn line_numbers_point_at_the_source_line() {
    let p = parsed(b"# c\n1.2.3.4\n\n5.6.7.0/24\n");
    let lines: Vec<u32> = p.entries.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 4]);
}

#[test]
fn spamhaus_drop_text_and_json_lines() {
    assert_eq!(
        nets("; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n; EOF\n"),
        ["1.10.16.0/20"]
    );
    let json = concat!(
        "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n",
        "{\"cidr\":\"2001:db8::/32\",\"sblid\":\"SBL1\",\"rir\":\"ripencc\"}\n",
        "{\"type\":\"metadata\",\"timestamp\":1700000000,\"size\":2,\"records\":2}\n"
    );
    let p = parsed(json.as_bytes());
    assert_eq!(p.format, Format::SpamhausJson);
    assert_eq!(nets(json), ["1.10.16.0/20", "2001:db8::/32"]);
}

#[test]
fn ipset_save_and_restore_files_with_several_sets() {
    let text = "create a hash:net family inet hashsize 1024 maxelem 65536\n\
                flush a\n\
                add a 192.0.2.0/24\n\
                add -exist a 198.51.100.7 timeout 0\n\
                -exist create b hash:ip family inet6\n\
                add b 2001:db8::1 comment \"x # y\"\n\
                add a 192.0.2.128/25 nomatch\n\
                swap a b\n\
                destroy b\n\
                COMMIT\n";
    let p = parsed(text.as_bytes());
    assert_eq!(p.format, Format::Ipset);
    assert_eq!(p.skipped_count, 0, "{:?}", p.skipped);
    let got: Vec<(String, bool)> = p
        .entries
        .iter()
        .map(|e| (e.net.to_string(), e.exception))
        .collect();
    assert_eq!(
        got,
        [
            ("192.0.2.0/24".to_owned(), false),
            ("198.51.100.7/32".to_owned(), false),
            ("2001:db8::1/128".to_owned(), false),
            ("192.0.2.128/25".to_owned(), true),
        ]
    );
}

#[test]
fn dshield_start_end_prefix_columns() {
    let text = "# DShield block list\n#\tStart\tEnd\tNetblock\tAttacks\n\
                61.12.0.0\t61.12.0.255\t24\t3000\tExample\n\
                192.0.2.0 192.0.2.127 25\n";
    assert_eq!(nets(text), ["61.12.0.0/24", "192.0.2.0/25"]);
}

#[test]
fn extra_columns_after_the_address() {
    assert_eq!(
        nets("1.2.3.4\t17\n5.6.7.0/24 9.5 2026-11-30\n10.0.0.1,42,comment\n"),
        ["1.2.3.4/32", "5.6.7.0/24", "10.0.0.1/32"]
    );
}

#[test]
fn csv_with_a_header_naming_the_address_column() {
    let text = "first_seen,ip_address,score\n\
                2026-11-01,192.0.2.1,9\n\
                \"2026-11-02\",\"198.51.100.0/24\",\"3\"\n\
                2026-11-03,,1\n";
    let p = parsed(text.as_bytes());
    assert_eq!(p.format, Format::Csv);
    let got: Vec<(String, u32)> = p
        .entries
        .iter()
        .map(|e| (e.net.to_string(), e.line))
        .collect();
    assert_eq!(
        got,
        [
            ("192.0.2.1/32".to_owned(), 2),
            ("198.51.100.0/24".to_owned(), 3)
        ]
    );
    assert_eq!(p.skipped_count, 1);
    assert_eq!(p.skipped[0].line, 4);
}

#[test]
fn crlf_bom_trailing_blanks_and_gzip() {
    let text = b"\xef\xbb\xbf# list\r\n1.2.3.4  \r\n10.0.0.0/8\t\r\n";
    assert_eq!(
        parsed(text)
            .entries
            .iter()
            .map(|e| e.net.to_string())
            .collect::<Vec<_>>(),
        ["1.2.3.4/32", "10.0.0.0/8"]
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert_eq!(parsed(&gz).entries.len(), 2);
    let err = parse(Path::new("c.gz"), &gz[..gz.len() / 2], Format::Auto).expect_err("cut");
    assert_eq!(err.reason, "corrupt gzip data");
}

#[test]
fn ranges_become_minimal_cidrs() {
    assert_eq!(nets("10.0.0.0-10.0.0.255\n"), ["10.0.0.0/24"]);
    assert_eq!(
        nets("10.0.0.1-10.0.0.6\n"),
        ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
    );
}

#[test]
fn host_bits_are_cleared_with_a_warning() {
    let p = parse(Path::new("lists/a.netset"), b"10.1.2.3/8\n", Format::Auto).expect("ok");
    assert_eq!(p.entries[0].net.to_string(), "10.0.0.0/8");
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].to_string().starts_with("lists/a.netset:1: "));
}

#[test]
fn malformed_lines_are_skipped_counted_and_named() {
    for (text, reason) in [
        ("1.2.3.4\n999.1.1.1\n", "invalid IP address"),
        ("1.2.3.0/33\n", "invalid CIDR"),
        ("1.2.3.9-1.2.3.1\n", "range ends before it starts"),
        ("1.2.3.4-::1\n", "range mixes IPv4 and IPv6"),
        ("1.2.3.4-foo\n", "invalid range end"),
        ("not-an-ip\n", "invalid IP address"),
    ] {
        let p =
            parse(Path::new("lists/bad.netset"), text.as_bytes(), Format::Auto).expect("decodes");
        assert_eq!(p.skipped_count, 1, "{text}");
        let line = text.lines().count() as u32;
        let skipped = &p.skipped[0];
        assert_eq!((skipped.reason, skipped.line), (reason, line), "{text}");
        assert_eq!(
            skipped.to_string(),
            format!(
                "lists/bad.netset:{line}: {reason}: {:?}",
                text.lines().last().unwrap_or_default()
            )
        );
    }
    let p = parsed(b"1.2.3.4\n\xff\xfe\n5.6.7.8\n");
    assert_eq!((p.entries.len(), p.skipped_count), (2, 1));
    assert_eq!(p.skipped[0].reason, "not UTF-8 text");
}

#[test]
fn only_the_first_skipped_lines_are_kept_but_all_are_counted() {
    let text: String = (0..1000).map(|i| format!("bad{i}\n")).collect();
    let p = parsed(text.as_bytes());
    assert_eq!(p.skipped_count, 1000);
    assert_eq!(p.skipped.len(), SKIPPED_KEPT);
}

#[test]
fn an_explicit_format_overrides_detection() {
    let p = parse(
        Path::new("t"),
        b"192.0.2.9\nadd s 192.0.2.1\n",
        Format::Columns,
    )
    .expect("ok");
    assert_eq!(p.skipped_count, 1, "as columns, `add` is not an address");
}

#[test]
fn a_header_row_before_the_data_is_not_a_malformed_line() {
    let p = parsed(b"# c\nStart\tEnd\tNetblock\n192.0.2.0\t192.0.2.255\t24\nbogus\n");
    assert_eq!(p.entries.len(), 1);
    assert_eq!(p.skipped_count, 1, "only the line after the data started");
}

/// The single pass over a whole file that [`read_columns`] must agree with.
fn one_pass(text: &[u8]) -> Parsed {
    let mut sink = Sink::new(Path::new("t"), Format::Columns);
    columns::read(text::lines(text), &mut sink, true);
    sink.parsed
}

fn summary(p: &Parsed) -> (Vec<Entry>, Vec<String>, Vec<String>, usize) {
    (
        p.entries.clone(),
        p.warnings.iter().map(ToString::to_string).collect(),
        p.skipped.iter().map(ToString::to_string).collect(),
        p.skipped_count,
    )
}

#[test]
fn a_large_file_read_in_halves_gives_what_one_pass_gives() {
    // Past HALVES_AT, with every kind of line on both sides of the middle: comments, blanks,
    // CRLF, extra columns, ranges, host bits, IPv6, and malformed lines past SKIPPED_KEPT.
    let mut text = String::from("Start\tEnd\tNetblock\n");
    let mut i = 0u32;
    while text.len() < 2 * HALVES_AT {
        let (b, c) = ((i >> 8) & 0xff, i & 0xff);
        text.push_str(&match i % 9 {
            0 => format!("# comment {i}\n\n"),
            1 => format!("10.{b}.{c}.0/24\r\n"),
            2 => format!("10.{b}.{c}.7\t{i}\n"),
            3 => format!("11.{b}.{c}.0\t11.{b}.{c}.255\t24\n"),
            4 => format!("12.{b}.{c}.9/24 ; host bits\n"),
            5 => format!("2001:db8:{b:x}:{c:x}::/64\n"),
            6 if i % 1000 == 6 => format!("bogus{i}\n"),
            _ => format!("13.{b}.{c}.1\n"),
        });
        i += 1;
    }
    text.push_str("198.51.100.0/24\n");
    let halves = parse(Path::new("t"), text.as_bytes(), Format::Columns).expect("decodes");
    let whole = one_pass(text.as_bytes());
    assert!(whole.skipped_count > SKIPPED_KEPT && whole.warnings.len() > 1000);
    assert_eq!(summary(&halves), summary(&whole));
    let last = halves.entries.last().map(|e| e.line);
    assert_eq!(
        last,
        Some(text.lines().count() as u32),
        "numbered through the end"
    );
}

#[test]
fn a_header_row_in_the_second_half_is_found_when_the_first_has_no_data() {
    let mut text = "# a long preamble\n".repeat(HALVES_AT / 8);
    text.push_str("Start\tEnd\tNetblock\n192.0.2.0\t192.0.2.255\t24\nbogus\n");
    let halves = parse(Path::new("t"), text.as_bytes(), Format::Columns).expect("decodes");
    assert_eq!(summary(&halves), summary(&one_pass(text.as_bytes())));
    assert_eq!((halves.entries.len(), halves.skipped_count), (1, 1));
}
