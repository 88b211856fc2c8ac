//! Fuzzes the list parser with arbitrary text: it must never panic, every accepted entry must be
//! canonical (no host bits), and every error must name a line that exists.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.netset");
    match blocker_user::lists::parse::parse(path, text) {
        Ok(parsed) => {
            for entry in parsed.entries {
                assert_eq!(entry.net, entry.net.trunc());
                assert!(entry.line >= 1 && entry.line as usize <= text.lines().count());
            }
        }
        Err(err) => assert!(err.line >= 1 && err.line as usize <= text.lines().count()),
    }
});
