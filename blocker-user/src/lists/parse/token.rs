//! One address, CIDR or `a-b` range into prefixes.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};

/// `token` when it is a bare address or CIDR in canonical form (see [`plain_v4`]): exactly
/// what [`parse`] would push for it, with no warning.
pub fn plain(token: &str) -> Option<IpNet> {
    plain_v4(token.as_bytes())
        .map(IpNet::V4)
        .or_else(|| plain_v6(token).map(IpNet::V6))
}

/// Parses `token`, handing each prefix to `push`. Returns a warning to report, if any.
pub fn parse(token: &str, mut push: impl FnMut(IpNet)) -> Result<Option<String>, &'static str> {
    if let Some(net) = plain(token) {
        push(net);
        return Ok(None);
    }
    // A range is `start-end` with an address before the dash; anything else with a dash (a
    // stray word, a host name) is reported as an invalid address, which is what it is.
    let range = token
        .split_once('-')
        .and_then(|(start, end)| Some((start.parse::<IpAddr>().ok()?, end)));
    if let Some((start, end)) = range {
        let end: IpAddr = end.parse().map_err(|_| "invalid range end")?;
        return range_into(start, end, push).map(|()| None);
    }
    if token.contains('/') {
        let net: IpNet = token.parse().map_err(|_| "invalid CIDR")?;
        let trunc = net.trunc();
        push(trunc);
        return Ok((trunc != net).then(|| {
            format!("{net} has host bits set; using {trunc}, which blocks the whole network")
        }));
    }
    let addr: IpAddr = token.parse().map_err(|_| "invalid IP address")?;
    push(host_net(addr));
    Ok(None)
}

/// The common case of a large list, `a.b.c.d` or `a.b.c.d/len` in canonical form with no host
/// bits set, read in one pass. Parsing is most of a reload at a million lines, and the
/// standard parsers (tried first for a range, then for a CIDR) read each such token two or
/// three times. Anything else (leading zeros, host bits, IPv6, ranges) returns `None` and takes
/// the general path, so this accepts a strict subset of it with the same result.
fn plain_v4(token: &[u8]) -> Option<Ipv4Net> {
    let mut at = 0;
    let mut octets = [0u8; 4];
    for (k, octet) in octets.iter_mut().enumerate() {
        let (value, next) = decimal(token, at, 3)?;
        *octet = u8::try_from(value).ok()?;
        at = next;
        if k < 3 {
            if token.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
    }
    let len = match token.get(at) {
        None => 32,
        Some(b'/') => {
            let (len, end) = decimal(token, at + 1, 2)?;
            if end != token.len() || len > 32 {
                return None;
            }
            len as u8
        }
        Some(_) => return None,
    };
    // Host bits set: the general path warns about them. Masked here (not `trunc`, which
    // builds a second network to compare with).
    let addr = u32::from_be_bytes(octets);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    if addr & !mask != 0 {
        return None;
    }
    Ipv4Net::new(addr.into(), len).ok()
}

/// The IPv6 counterpart of [`plain_v4`]: `addr/len` or `addr` with no host bits set, the
/// address read once by the standard parser (the general path reads it as IPv4 first, then
/// again as IPv6, through `ipnet`'s copy of that parser).
fn plain_v6(token: &str) -> Option<Ipv6Net> {
    if !token.contains(':') || token.contains('-') {
        return None;
    }
    let (addr, len) = match token.split_once('/') {
        Some((addr, len)) => {
            let (value, end) = decimal(len.as_bytes(), 0, 3)?;
            if end != len.len() || value > 128 {
                return None;
            }
            (addr, value as u8)
        }
        None => (token, 128),
    };
    let addr = match super::ipv6::plain(addr) {
        Some(addr) => addr,
        None => addr.parse().ok()?,
    };
    let net = Ipv6Net::new(addr, len).ok()?;
    (net.trunc() == net).then_some(net)
}

/// The decimal of 1 to `max_digits` digits at `token[at..]` without a leading zero, and where
/// it ends.
fn decimal(token: &[u8], at: usize, max_digits: usize) -> Option<(u16, usize)> {
    let mut end = at;
    let mut value = 0u16;
    while let Some(d) = token.get(end).filter(|d| d.is_ascii_digit()) {
        if end - at == max_digits {
            return None;
        }
        value = value * 10 + u16::from(d - b'0');
        end += 1;
    }
    let digits = end - at;
    (digits > 0 && (digits == 1 || token[at] != b'0')).then_some((value, end))
}

/// The fewest prefixes covering `start..=end` exactly.
pub fn range_into(
    start: IpAddr,
    end: IpAddr,
    mut push: impl FnMut(IpNet),
) -> Result<(), &'static str> {
    match (start, end) {
        (IpAddr::V4(start), IpAddr::V4(end)) if start <= end => {
            Ipv4Subnets::new(start, end, 0).for_each(|net| push(net.into()));
        }
        (IpAddr::V6(start), IpAddr::V6(end)) if start <= end => {
            Ipv6Subnets::new(start, end, 0).for_each(|net| push(net.into()));
        }
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            return Err("range ends before it starts");
        }
        _ => return Err("range mixes IPv4 and IPv6"),
    }
    Ok(())
}

/// The single-address prefix for `addr`.
pub fn host_net(addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::from(v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The general path alone (what `parse` did before the fast path).
    fn general(token: &str) -> Option<IpNet> {
        if token.contains('-') {
            return None;
        }
        if token.contains('/') {
            let net: IpNet = token.parse().ok()?;
            return (net.trunc() == net).then_some(net);
        }
        token.parse::<IpAddr>().ok().map(host_net)
    }

    #[test]
    fn the_fast_path_takes_canonical_tokens_and_leaves_the_rest() {
        for (token, net) in [
            ("192.0.2.0/24", Some("192.0.2.0/24")),
            ("192.0.2.7", Some("192.0.2.7/32")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("255.255.255.255/32", Some("255.255.255.255/32")),
        ] {
            assert_eq!(
                plain_v4(token.as_bytes()).map(IpNet::V4),
                net.map(|n| n.parse().expect("valid test prefix")),
                "{token}"
            );
        }
        for token in [
            "192.0.2.1/24",
            "192.0.02.0/24",
            "192.0.2.0/024",
            "192.0.2.0/33",
            "256.0.0.0",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4/",
            "1..2.3",
            "::1",
            "1.2.3.4-1.2.3.9",
            "",
            "1.2.3.4 ",
        ] {
            assert_eq!(plain_v4(token.as_bytes()), None, "{token}");
        }
    }

    proptest! {
        /// Whatever the fast path accepts, the general path reads the same way.
        #[test]
        fn the_fast_path_agrees_with_the_general_one(
            token in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?|[0-9./]{0,20}"
        ) {
            if let Some(net) = plain_v4(token.as_bytes()) {
                prop_assert_eq!(Some(IpNet::V4(net)), general(&token), "{}", token);
            }
        }

        /// Whatever the IPv6 fast path accepts, the general path reads the same way.
        #[test]
        fn the_ipv6_fast_path_agrees_with_the_general_one(
            token in "([0-9a-f]{0,4}:){1,8}[0-9a-f]{0,4}(/[0-9]{1,3})?|[0-9a-f:./]{0,24}"
        ) {
            if let Some(net) = plain_v6(&token) {
                prop_assert_eq!(Some(IpNet::V6(net)), general(&token), "{}", token);
            }
        }

        /// Every canonical IPv6 prefix or host takes the fast path.
        #[test]
        fn canonical_ipv6_prefixes_take_the_fast_path(addr in any::<u128>(), len in 0u8..=128, host in any::<bool>()) {
            let net = Ipv6Net::new(addr.into(), len).expect("len <= 128").trunc();
            let token = if host { net.network().to_string() } else { net.to_string() };
            let expected = if host { Ipv6Net::from(net.network()) } else { net };
            prop_assert_eq!(plain_v6(&token), Some(expected));
        }

        /// Every canonical IPv4 prefix or host takes the fast path.
        #[test]
        fn canonical_prefixes_take_the_fast_path(addr in any::<u32>(), len in 0u8..=32, host in any::<bool>()) {
            let net = Ipv4Net::new(addr.into(), len).expect("len <= 32").trunc();
            let token = if host { net.network().to_string() } else { net.to_string() };
            let expected = if host { Ipv4Net::from(net.network()) } else { net };
            prop_assert_eq!(plain_v4(token.as_bytes()), Some(expected));
        }
    }
}
