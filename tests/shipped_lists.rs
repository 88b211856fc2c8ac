//! The shipped vendor lists (issue 3): every list parses, every prefix is canonical, and every
//! manifest names its source and the date of its data. Needs no root.

use std::path::Path;

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
            let list = dir.join(source);
            let text = std::fs::read_to_string(&list)
                .unwrap_or_else(|err| panic!("{file}: source {}: {err}", list.display()));
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
            for entry in &parsed.entries {
                assert_eq!(
                    entry.net,
                    entry.net.trunc(),
                    "{}:{}",
                    list.display(),
                    entry.line
                );
            }
        }
    }
    assert!(defaults >= 1, "at least one list must be on by default");
}
