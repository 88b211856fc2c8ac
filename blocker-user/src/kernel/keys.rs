//! Encoding prefixes as LPM-trie keys: a host-order `u32` prefix length followed by the address
//! bytes in network order, which is what the kernel's `bpf_lpm_trie_key` expects.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::lpm_trie::Key;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub fn v4(net: Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

pub fn v6(net: Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

/// The prefix a v4 key holds; `None` for a prefix length over 32 (never written by us).
pub fn decode_v4(key: &Key<[u8; 4]>) -> Option<IpNet> {
    let len = u8::try_from(key.prefix_len()).ok()?;
    Ipv4Net::new(Ipv4Addr::from(key.data()), len)
        .ok()
        .map(IpNet::V4)
}

/// The prefix a v6 key holds.
pub fn decode_v6(key: &Key<[u8; 16]>) -> Option<IpNet> {
    let len = u8::try_from(key.prefix_len()).ok()?;
    Ipv6Net::new(Ipv6Addr::from(key.data()), len)
        .ok()
        .map(IpNet::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw bytes the kernel sees for a key.
    fn bytes<K: aya::Pod>(key: &Key<K>) -> Vec<u8> {
        // SAFETY: Key<K> is repr(C, packed) plain data; reading its bytes is sound.
        unsafe {
            std::slice::from_raw_parts((key as *const Key<K>).cast::<u8>(), size_of::<Key<K>>())
        }
        .to_vec()
    }

    #[test]
    fn v4_key_is_prefix_len_then_network_order_address() {
        let key = v4("192.0.2.0/24".parse().expect("net"));
        let mut expected = 24u32.to_ne_bytes().to_vec();
        expected.extend([192, 0, 2, 0]);
        assert_eq!(bytes(&key), expected);
    }

    #[test]
    fn keys_decode_back_to_their_prefix() {
        let net4: Ipv4Net = "198.51.100.0/22".parse().expect("net");
        assert_eq!(decode_v4(&v4(net4)), Some(IpNet::V4(net4)));
        let net6: Ipv6Net = "2a03:2480:68::/47".parse().expect("net");
        assert_eq!(decode_v6(&v6(net6)), Some(IpNet::V6(net6)));
    }

    #[test]
    fn v6_key_clears_host_bits_and_keeps_order() {
        let key = v6("2001:db8::/32".parse().expect("net"));
        let mut expected = 32u32.to_ne_bytes().to_vec();
        expected.extend([0x20, 0x01, 0x0d, 0xb8]);
        expected.extend([0u8; 12]);
        assert_eq!(bytes(&key), expected);
        assert_eq!(size_of::<Key<[u8; 16]>>(), 20);
    }
}
