//! IPv4 prefixes of /24 or shorter as a bitmap of the 2^24 /24 blocks. Marking one is a word
//! write or a few, and reading them back in order is one walk of 2 MiB, where sorting them
//! (three in four prefixes of a large published list are /24s or shorter) was most of the
//! aggregation of a million-prefix list. Longer prefixes still go through the sort.

/// One bit per /24 block of the IPv4 space.
pub struct Blocks {
    words: Vec<u64>,
}

const BLOCKS: usize = 1 << 24;

impl Blocks {
    pub fn new() -> Self {
        Self {
            words: vec![0; BLOCKS / 64],
        }
    }

    /// Marks the blocks holding `first..=last` (addresses of a /24 or shorter prefix, so
    /// whole blocks).
    pub fn mark(&mut self, first: u32, last: u32) {
        let (first, last) = ((first >> 8) as usize, (last >> 8) as usize);
        let (lo, hi) = (first / 64, last / 64);
        let lo_mask = u64::MAX << (first % 64);
        let hi_mask = u64::MAX >> (63 - last % 64);
        if lo == hi {
            self.words[lo] |= lo_mask & hi_mask;
            return;
        }
        self.words[lo] |= lo_mask;
        self.words[lo + 1..hi].fill(u64::MAX);
        self.words[hi] |= hi_mask;
    }

    /// The longest runs of marked blocks, in order, as inclusive address ranges.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut from = 0;
        std::iter::from_fn(move || {
            let start = self.next(from, false)?;
            let end = self.next(start, true).unwrap_or(BLOCKS);
            from = end;
            Some(((start as u64) << 8, ((end as u64) << 8) - 1))
        })
    }

    /// The first block at or after `from` that is marked (or, with `clear`, that is not).
    fn next(&self, from: usize, clear: bool) -> Option<usize> {
        let flip = if clear { u64::MAX } else { 0 };
        let mut at = from / 64;
        let mut word = (self.words.get(at)? ^ flip) & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(at * 64 + word.trailing_zeros() as usize);
            }
            at += 1;
            word = self.words.get(at)? ^ flip;
        }
    }
}

/// Two streams of ranges, each sorted by first address, as one.
pub fn interleave<T: Ord + Copy>(
    a: impl Iterator<Item = (T, T)>,
    b: impl Iterator<Item = (T, T)>,
) -> impl Iterator<Item = (T, T)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_span_words_and_the_ends_of_the_space() {
        let mut blocks = Blocks::new();
        blocks.mark(0, 0x0000_00ff);
        blocks.mark(0x0a00_3f00, 0x0a00_40ff);
        blocks.mark(0x0b00_0000, 0x0bff_ffff);
        blocks.mark(0xffff_ff00, u32::MAX);
        let runs: Vec<_> = blocks.runs().collect();
        assert_eq!(
            runs,
            [
                (0, 0xff),
                (0x0a00_3f00, 0x0a00_40ff),
                (0x0b00_0000, 0x0bff_ffff),
                (0xffff_ff00, 0xffff_ffff)
            ]
        );
    }
}
