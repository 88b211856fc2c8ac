//! Encoding prefixes as LPM-trie keys: a host-order `u32` prefix length followed by the address
//! bytes in network order, which is what the kernel's `bpf_lpm_trie_key` expects.

use aya::maps::lpm_trie::Key;
use ipnet::{Ipv4Net, Ipv6Net};

pub fn v4(net: Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

pub fn v6(net: Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
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
    fn v6_key_clears_host_bits_and_keeps_order() {
        let key = v6("2001:db8::/32".parse().expect("net"));
        let mut expected = 32u32.to_ne_bytes().to_vec();
        expected.extend([0x20, 0x01, 0x0d, 0xb8]);
        expected.extend([0u8; 12]);
        assert_eq!(bytes(&key), expected);
        assert_eq!(size_of::<Key<[u8; 16]>>(), 20);
    }
}
