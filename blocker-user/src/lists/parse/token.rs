//! One address, CIDR or `a-b` range into prefixes.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};

/// Parses `token`, handing each prefix to `push`. Returns a warning to report, if any.
pub fn parse(token: &str, mut push: impl FnMut(IpNet)) -> Result<Option<String>, &'static str> {
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
