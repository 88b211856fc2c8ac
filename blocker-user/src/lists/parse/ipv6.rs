//! Reading an IPv6 address in its common text forms (eight groups, or fewer around one `::`)
//! in one pass. Written by hand because the standard parser, at each group, first tries an
//! embedded IPv4 address: on a million-line IPv6 list that costs about a third of the parse.
//! Anything else (an embedded IPv4 tail, a malformed token) is left to the standard parser,
//! so what is accepted and how it reads never differs from it (checked by a property test).

use std::net::Ipv6Addr;

/// One group of 1 to 4 hex digits at `s[*at..]`.
fn group(s: &[u8], at: &mut usize) -> Option<u16> {
    let start = *at;
    let mut value = 0u16;
    while let Some(digit) = s.get(*at).and_then(|&b| (b as char).to_digit(16)) {
        if *at - start == 4 {
            return None;
        }
        value = value << 4 | digit as u16;
        *at += 1;
    }
    (*at > start).then_some(value)
}

/// Up to `limit` groups separated by single colons from `s[*at..]`, until the end or a
/// second colon (`::`, left at `*at`).
fn groups(s: &[u8], at: &mut usize, out: &mut [u16; 8], limit: usize) -> Option<usize> {
    let mut count = 0;
    loop {
        if count == limit {
            return None;
        }
        out[count] = group(s, at)?;
        count += 1;
        match s.get(*at) {
            None => return Some(count),
            Some(b':') if s.get(*at + 1) == Some(&b':') => return Some(count),
            Some(b':') => *at += 1,
            Some(_) => return None,
        }
    }
}

/// `text` as an IPv6 address, or `None` when it is not in one of the plain forms (the caller
/// then asks the standard parser).
pub fn plain(text: &str) -> Option<Ipv6Addr> {
    let s = text.as_bytes();
    let (mut head, mut tail) = ([0u16; 8], [0u16; 8]);
    let mut at = 0;
    let head_len = if s.starts_with(b"::") {
        0
    } else {
        let n = groups(s, &mut at, &mut head, 8)?;
        if at == s.len() {
            return (n == 8).then(|| Ipv6Addr::from(head));
        }
        n
    };
    // At `::`, which stands for at least one zero group.
    at += 2;
    let tail_len = if at == s.len() {
        0
    } else {
        groups(s, &mut at, &mut tail, 7 - head_len)?
    };
    if at != s.len() {
        return None;
    }
    let mut all = head;
    all[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    Some(Ipv6Addr::from(all))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn common_forms() {
        for text in [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:0:0:0:0:1",
            "fe80::1:2:3:4:5:6",
            "1:2:3:4:5:6:7:8",
            "ABCD:ef01::",
        ] {
            assert_eq!(plain(text), text.parse().ok(), "{text}");
        }
        for text in [
            "",
            ":",
            ":::",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::8",
            "12345::",
            "1::2::3",
            "::ffff:1.2.3.4",
            "g::",
            "1:2",
        ] {
            assert_eq!(plain(text), None, "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Never accepts what the standard parser refuses, and reads alike what both accept.
        #[test]
        fn never_differs_from_the_standard_parser(text in "[0-9a-fA-F:.]{0,42}") {
            if let Some(addr) = plain(&text) {
                prop_assert_eq!(Some(addr), text.parse::<Ipv6Addr>().ok());
            }
        }

        /// Reads every address the way the standard library writes it (and fully expanded).
        #[test]
        fn reads_every_written_address(bits: u128, zeros in 0usize..8) {
            // Zeroed runs make the `::` forms common.
            let bits = bits & !(u128::MAX >> (zeros * 16)).rotate_right(16 * (zeros as u32 % 3));
            let addr = Ipv6Addr::from(bits);
            prop_assert_eq!(plain(&addr.to_string()), Some(addr));
            let full = addr.segments().map(|g| format!("{g:x}")).join(":");
            prop_assert_eq!(plain(&full), Some(addr));
        }
    }
}
