//! The `BLOCK_SEEN_V4` bitmap, one bit per IPv4 /24 that any blocked IPv4 entry overlaps. The
//! programs read it before any other lookup, so an unlisted destination costs one array read.
//!
//! The daemon maps the array (`BPF_F_MMAPABLE`) and stores words in place: no syscall per word,
//! and the current content is readable after a restart. Order keeps it fail-closed: bits for new
//! entries are set before the entries are written, and bits of removed entries are cleared only
//! after the entries are gone, so the bitmap never hides a blocked /24.

use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::MapData;
use blocker_common::{SEEN_V4_WORDS, seen_v4_slot};
use ipnet::Ipv4Net;

use super::mapping::ArrayMapping;

/// The words a set of IPv4 prefixes needs set.
pub fn bits_of<'a>(nets: impl IntoIterator<Item = &'a Ipv4Net>) -> Vec<u64> {
    let mut words = vec![0u64; SEEN_V4_WORDS as usize];
    for net in nets {
        let (word, mask) = seen_v4_slot(net.network().octets());
        if net.prefix_len() >= 24 {
            words[word as usize] |= mask;
            continue;
        }
        // A shorter prefix covers 2^(24 - len) consecutive /24s: whole words where it can.
        let first = u32::from(net.network()) >> 8;
        let count = 1u32 << (24 - net.prefix_len());
        for block in first..first + count {
            if block % 64 == 0 && block + 64 <= first + count {
                words[(block / 64) as usize] = u64::MAX;
            } else {
                words[(block / 64) as usize] |= 1 << (block % 64);
            }
        }
    }
    words
}

/// A shared mapping of the kernel's bitmap.
pub struct SeenBitmap {
    mapping: ArrayMapping,
}

const BYTES: usize = SEEN_V4_WORDS as usize * size_of::<u64>();

impl SeenBitmap {
    /// Maps the array behind `map`.
    pub fn map(map: &MapData) -> std::io::Result<Self> {
        ArrayMapping::map(map, BYTES).map(|mapping| Self { mapping })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the page-aligned mapping holds SEEN_V4_WORDS u64 words for as long as self
        // lives, accessed only through atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.mapping.as_ptr().cast::<AtomicU64>(),
                SEEN_V4_WORDS as usize,
            )
        }
    }

    /// Sets every bit of `wanted` (keeping the bits already set). Before entries are written.
    pub fn widen(&self, wanted: &[u64]) {
        for (word, &bits) in self.words().iter().zip(wanted) {
            if word.load(Ordering::Relaxed) & bits != bits {
                word.fetch_or(bits, Ordering::Release);
            }
        }
    }

    /// Makes the bitmap exactly `wanted`. After entries are deleted.
    pub fn narrow(&self, wanted: &[u64]) {
        for (word, &bits) in self.words().iter().zip(wanted) {
            if word.load(Ordering::Relaxed) != bits {
                word.store(bits, Ordering::Release);
            }
        }
    }

    /// Whether the /24 of `addr` is marked.
    pub fn is_set(&self, addr: [u8; 4]) -> bool {
        let (word, mask) = seen_v4_slot(addr);
        self.words()[word as usize].load(Ordering::Acquire) & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[u64], addr: [u8; 4]) -> bool {
        let (word, mask) = seen_v4_slot(addr);
        words[word as usize] & mask != 0
    }

    #[test]
    fn marks_exactly_the_slash24s_a_prefix_overlaps() {
        let nets: Vec<Ipv4Net> = ["192.0.2.7/32", "198.51.100.128/25", "10.8.0.0/14"]
            .iter()
            .map(|s| s.parse().expect("test prefix"))
            .collect();
        let words = bits_of(&nets);
        assert!(set(&words, [192, 0, 2, 200]));
        assert!(!set(&words, [192, 0, 3, 7]));
        assert!(set(&words, [198, 51, 100, 1]));
        // 10.8.0.0/14 = 10.8.0.0 - 10.11.255.255.
        assert!(!set(&words, [10, 7, 255, 1]));
        assert!(set(&words, [10, 8, 0, 1]));
        assert!(set(&words, [10, 11, 255, 1]));
        assert!(!set(&words, [10, 12, 0, 1]));
        let bits: u32 = words.iter().map(|w| w.count_ones()).sum();
        assert_eq!(bits, 1 + 1 + 4 * 256);
    }

    #[test]
    fn a_short_prefix_not_aligned_to_a_word_sets_only_its_bits() {
        // 1.2.32.0/19: 32 /24s starting mid-word.
        let net: Ipv4Net = "1.2.32.0/19".parse().expect("test prefix");
        let words = bits_of([&net]);
        let bits: u32 = words.iter().map(|w| w.count_ones()).sum();
        assert_eq!(bits, 32);
        assert!(set(&words, [1, 2, 63, 0]) && !set(&words, [1, 2, 64, 0]));
    }
}
