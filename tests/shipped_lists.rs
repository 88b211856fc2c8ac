//! The shipped vendor lists (issue 3): every list parses, every prefix is canonical, and every
//! manifest names its source and the date of its data. Needs no root.

use std::{net::IpAddr, path::Path};

use blocker_user::lists::{manifest::Manifest, parse};

#[test]
fn every_shipped_list_parses_is_canonical_and_has_provenance() {
    let dir = vendorwall_e2e::repo_root().join("blocklists");
    let manifests = Manifest::all(&dir).expect("manifests load");
    assert!(
        manifests.len() >= 8,
        "expected every vendor's manifest in {}",
        dir.display()
    );
    let mut defaults = 0;
    for (path, manifest) in &manifests {
        let file = path.display();
        assert_eq!(
            Some(manifest.name.as_str()),
            path.file_stem().and_then(|s| s.to_str()),
            "{file}: name must match the file name"
        );
        assert!(
            !manifest.data_source.trim().is_empty(),
            "{file}: no data_source"
        );
        let date = manifest.data_date.as_bytes();
        assert!(
            date.len() == 10 && date[4] == b'-' && date[7] == b'-',
            "{file}: data_date must be YYYY-MM-DD"
        );
        assert!(!manifest.references.is_empty(), "{file}: no references");
        assert!(!manifest.reason.trim().is_empty(), "{file}: no reason");
        if manifest.sources.is_empty() {
            assert!(
                !manifest.notes.is_empty(),
                "{file}: a vendor without prefixes must say why"
            );
        }
        defaults += usize::from(manifest.default);
        for source in &manifest.sources {
            let (list, text) = with_provenance(&dir, source, &file.to_string());
            let parsed = parse::parse(Path::new(&list), text.as_bytes(), parse::Format::Auto)
                .unwrap_or_else(|err| panic!("{err}"));
            // Malformed lines would be skipped at run time: a shipped list has none.
            assert_eq!(
                parsed.skipped_count,
                0,
                "{}: malformed lines {:?}",
                list.display(),
                parsed.skipped
            );
            assert!(
                parsed.warnings.is_empty(),
                "not canonical: {:?}",
                parsed.warnings
            );
            assert!(!parsed.entries.is_empty(), "{}: empty", list.display());
            // The parser truncates host bits and reads many spellings; the shipped text
            // itself must already be canonical, so what a reviewer reads is what is enforced.
            for (n, line) in text.lines().enumerate() {
                let token = line.split('#').next().unwrap_or_default().trim();
                if token.is_empty() {
                    continue;
                }
                assert_eq!(
                    canonical(token).as_deref(),
                    Some(token),
                    "{}:{}: not a canonical prefix",
                    list.display(),
                    n + 1
                );
            }
        }
    }
    assert!(defaults >= 1, "at least one list must be on by default");
}

/// Every vendor, the four without prefixes included, ships names with their provenance, and
/// every line of them is read (a skipped line would be a name silently not blocked).
#[test]
fn every_vendor_ships_domain_names_with_provenance() {
    let dir = vendorwall_e2e::repo_root().join("blocklists");
    for (path, manifest) in Manifest::all(&dir).expect("manifests load") {
        let file = path.display();
        assert!(
            !manifest.domain_sources.is_empty(),
            "{file}: no domain_sources"
        );
        assert!(
            manifest
                .domain_data_source
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty()),
            "{file}: no domain_data_source"
        );
        let date = manifest.domain_data_date.clone().unwrap_or_default();
        assert!(
            date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
            "{file}: domain_data_date must be YYYY-MM-DD"
        );
        for source in &manifest.domain_sources {
            let (list, text) = with_provenance(&dir, source, &file.to_string());
            let parsed =
                blocker_user::names::parse::parse_names(&list.display().to_string(), &text);
            assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
            assert!(!parsed.names.is_empty(), "{}: no names", list.display());
        }
    }
}

/// The text of a shipped file `source` of `manifest`, whose header must name its source and
/// the date of its data.
fn with_provenance(dir: &Path, source: &str, manifest: &str) -> (std::path::PathBuf, String) {
    let list = dir.join(source);
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|err| panic!("{manifest}: source {}: {err}", list.display()));
    assert!(
        text.contains("# source: "),
        "{}: header names no source",
        list.display()
    );
    assert!(
        text.contains("# data-date: "),
        "{}: header has no date",
        list.display()
    );
    (list, text)
}

/// The canonical text of a prefix or address (host bits clear, shortest form), if it is one.
fn canonical(token: &str) -> Option<String> {
    if token.contains('/') {
        let net: ipnet::IpNet = token.parse().ok()?;
        Some(net.trunc().to_string())
    } else {
        Some(token.parse::<IpAddr>().ok()?.to_string())
    }
}

#[test]
fn the_canonical_check_refuses_host_bits_and_odd_spellings() {
    assert_eq!(
        canonical("77.74.176.0/21").as_deref(),
        Some("77.74.176.0/21")
    );
    assert_ne!(
        canonical("77.74.177.0/21").as_deref(),
        Some("77.74.177.0/21")
    );
    assert_ne!(canonical("2001:DB8::/32").as_deref(), Some("2001:DB8::/32"));
    assert_ne!(canonical("010.1.2.3").as_deref(), Some("010.1.2.3"));
}
