//! The blocked IPv6 prefixes (`BLOCK_V6`): cut into disjoint pieces, sorted by address, in the
//! two halves of `halves.rs`, which the programs binary-search. A change of any IPv6 prefix
//! rewrites the inactive half whole and then switches to it, so a prefix listed before and
//! after is found throughout.
//!
//! Where listed prefixes nest (a /32 of one list holding a /48 of another) the outer one is cut
//! around the inner one, so the inner one wins as in a longest-prefix trie; every piece keeps
//! the value, and the length, of the listed prefix it was cut from. Why not the LPM trie: an
//! insert walks the trie and took about 1.6 µs at a million prefixes (1.7 s for a list); the
//! array is one batched write of 24 bytes a piece.

use std::{borrow::Borrow, collections::HashMap, net::Ipv6Addr, os::fd::RawFd};

use aya::maps::{Array, MapData, MapError};
use blocker_common::{ListRef, V6Piece, map_names};
use ipnet::{IpNet, Ipv6Net};

use super::{KernelError, halves};

const NAME: &str = map_names::BLOCK_V6;

/// Elements per BPF_MAP_UPDATE_BATCH call.
const BATCH: usize = 1 << 15;

/// A listed prefix still open while the prefixes inside it are cut out of it.
struct Open {
    end: u128,
    value: ListRef,
    /// The first address of it not yet covered by a piece; `None` once all are.
    cursor: Option<u128>,
}

/// Calls `emit` with the disjoint pieces of `prefixes` (sorted by prefix: by address, the
/// shorter of two at one address first, as `IpNet` orders them), in address order. Each
/// piece's value is its prefix's, tagged with that prefix's length.
pub fn pieces(prefixes: impl Iterator<Item = (Ipv6Net, ListRef)>, mut emit: impl FnMut(V6Piece)) {
    let mut open: Vec<Open> = Vec::new();
    for (net, value) in prefixes {
        let net = net.trunc();
        let (start, end) = (u128::from(net.network()), u128::from(net.broadcast()));
        let value = value.with_prefix_len(net.prefix_len());
        // Close the open prefixes that do not hold this one: what is left of them comes
        // before it.
        while let Some(outer) = open.last() {
            if outer.end >= end {
                break;
            }
            let outer = open.pop().expect("checked above");
            if let Some(cursor) = outer.cursor {
                cover(cursor, outer.end, outer.value, &mut emit);
            }
        }
        // The part of the prefix holding this one that comes before it.
        if let Some(outer) = open.last_mut() {
            if let Some(cursor) = outer.cursor.filter(|&c| c < start) {
                cover(cursor, start - 1, outer.value, &mut emit);
            }
            outer.cursor = end.checked_add(1).filter(|&next| next <= outer.end);
        }
        open.push(Open {
            end,
            value,
            cursor: Some(start),
        });
    }
    while let Some(outer) = open.pop() {
        if let Some(cursor) = outer.cursor {
            cover(cursor, outer.end, outer.value, &mut emit);
        }
    }
}

/// Emits the fewest aligned pieces covering `first..=last`.
fn cover(mut first: u128, last: u128, value: ListRef, emit: &mut impl FnMut(V6Piece)) {
    loop {
        let aligned = first.trailing_zeros().min(128);
        let span = last - first;
        // The largest power of two that fits: log2(span + 1), rounded down.
        let fits = match span.checked_add(1) {
            Some(n) => 127 - n.leading_zeros(),
            None => 128,
        };
        let bits = aligned.min(fits);
        emit(piece(first, 128 - bits as u8, value));
        let size_less_one = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        match first
            .checked_add(size_less_one)
            .and_then(|end| end.checked_add(1))
        {
            Some(next) if next <= last => first = next,
            _ => return,
        }
    }
}

fn piece(addr: u128, len: u8, value: ListRef) -> V6Piece {
    V6Piece {
        hi: (addr >> 64) as u64,
        lo: addr as u64,
        value,
        len,
        _pad: [0; 3],
    }
}

/// The listed prefix a piece was cut from.
fn listed(piece: &V6Piece) -> Option<Ipv6Net> {
    let addr = Ipv6Addr::from(u128::from(piece.hi) << 64 | u128::from(piece.lo));
    Ipv6Net::new(addr, piece.value.prefix_len)
        .ok()
        .map(|n| n.trunc())
}

/// How many pieces the IPv6 prefixes of `set` (sorted) take.
pub fn count_pieces(set: &[(IpNet, ListRef)]) -> usize {
    let mut count = 0;
    pieces(v6_of(set), |_| count += 1);
    count
}

fn v6_of(set: &[(IpNet, ListRef)]) -> impl Iterator<Item = (Ipv6Net, ListRef)> + '_ {
    set.iter().filter_map(|(net, value)| match net {
        IpNet::V6(n) => Some((*n, *value)),
        IpNet::V4(_) => None,
    })
}

fn err(source: MapError) -> KernelError {
    KernelError::Map { name: NAME, source }
}

pub struct SortedV6<'a> {
    pub array: Array<&'a mut MapData, V6Piece>,
    pub fd: RawFd,
}

impl SortedV6<'_> {
    /// Adds every listed prefix of the active half to `out`, its value untagged.
    pub fn read_all(&self, out: &mut HashMap<IpNet, ListRef>) -> Result<(), KernelError> {
        let (base, len) = active_half(&self.array).map_err(err)?;
        for i in 0..len {
            let piece = self.array.get(&(base + 1 + i), 0).map_err(err)?;
            if let Some(net) = listed(&piece) {
                out.insert(IpNet::V6(net), piece.value.with_prefix_len(0));
            }
        }
        Ok(())
    }

    /// Makes the pieces exactly those of the IPv6 prefixes of `set` (sorted by prefix):
    /// written into the inactive half, which then becomes the active one.
    pub fn write_all(&mut self, set: &[(IpNet, ListRef)]) -> Result<(), KernelError> {
        let mut entries = vec![V6Piece::header(0)];
        pieces(v6_of(set), |p| entries.push(p));
        halves::write_all(self.fd, &mut self.array, &LAYOUT, &mut entries)
    }
}

fn number(piece: &V6Piece) -> u64 {
    piece.hi
}

const LAYOUT: halves::Layout<V6Piece> = halves::Layout {
    name: NAME,
    what: "IPv6 map (pieces)",
    key: "maps.block_v6",
    header: V6Piece::header,
    number,
    batch: BATCH,
};

fn active_half<T: Borrow<MapData>>(array: &Array<T, V6Piece>) -> Result<(u32, u32), MapError> {
    halves::active_half(array, number)
}

/// The pinned pieces' answer for `addr` (for `check` without a daemon): the last piece
/// starting at or before it, if it holds it.
pub fn lookup(array: &Array<MapData, V6Piece>, addr: Ipv6Addr) -> Option<ListRef> {
    let (base, len) = active_half(array).ok()?;
    let bits = u128::from(addr);
    let (hi, lo) = ((bits >> 64) as u64, bits as u64);
    let (mut at, mut end) = (0, len);
    while at < end {
        let mid = at + (end - at) / 2;
        if array.get(&(base + 1 + mid), 0).ok()?.starts_after(hi, lo) {
            end = mid;
        } else {
            at = mid + 1;
        }
    }
    let piece = array.get(&(base + at.checked_sub(1)? + 1), 0).ok()?;
    piece.holds(hi, lo).then_some(piece.value)
}

/// The number of listed prefixes the active half of a pinned array holds.
pub fn count(array: &Array<MapData, V6Piece>) -> usize {
    let Ok((base, len)) = active_half(array) else {
        return 0;
    };
    // A prefix cut into pieces is counted once: by its pieces' shared origin.
    let mut cut = std::collections::HashSet::new();
    let mut whole = 0;
    for i in 0..len {
        let Ok(piece) = array.get(&(base + 1 + i), 0) else {
            continue;
        };
        if piece.len == piece.value.prefix_len {
            whole += 1;
        } else if let Some(net) = listed(&piece) {
            cut.insert(net);
        }
    }
    whole + cut.len()
}

#[cfg(test)]
mod tests {
    use blocker_common::Action;
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().expect("test prefix")
    }

    fn all(prefixes: &[(Ipv6Net, ListRef)]) -> Vec<V6Piece> {
        let mut sorted = prefixes.to_vec();
        sorted.sort_by_key(|(n, _)| *n);
        let mut out = Vec::new();
        pieces(sorted.into_iter(), |p| out.push(p));
        out
    }

    /// The longest listed prefix holding `addr`, as an LPM trie answers.
    fn longest(prefixes: &[(Ipv6Net, ListRef)], addr: u128) -> Option<ListRef> {
        prefixes
            .iter()
            .filter(|(n, _)| n.contains(&Ipv6Addr::from(addr)))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(n, v)| v.with_prefix_len(n.prefix_len()))
    }

    /// The programs' search over `pieces`.
    fn search(pieces: &[V6Piece], addr: u128) -> Option<ListRef> {
        let (hi, lo) = ((addr >> 64) as u64, addr as u64);
        let at = pieces.partition_point(|p| !p.starts_after(hi, lo));
        let piece = pieces.get(at.checked_sub(1)?)?;
        piece.holds(hi, lo).then_some(piece.value)
    }

    #[test]
    fn disjoint_prefixes_are_their_own_pieces() {
        let a = ListRef::new(1, Action::Enforce);
        let got = all(&[(net("2001:db8::/32"), a), (net("2a00::/16"), a)]);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].len, got[0].value.prefix_len), (32, 32));
        assert_eq!(got[1].hi >> 48, 0x2a00);
    }

    #[test]
    fn an_inner_prefix_is_cut_out_of_the_outer_one_and_wins() {
        let (outer, inner) = (
            ListRef::new(1, Action::Enforce),
            ListRef::new(2, Action::Audit),
        );
        let set = [
            (net("2001:db8::/32"), outer),
            (net("2001:db8:1::/48"), inner),
        ];
        let got = all(&set);
        // /48 inside a /32: the rest of the /32 takes 16 pieces (/33 .. /48), plus the /48.
        assert_eq!(got.len(), 17);
        assert!(got.windows(2).all(|w| w[1].starts_after(w[0].hi, w[0].lo)));
        for addr in [
            "2001:db8:1::5",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2001:db9::1",
        ] {
            let a = u128::from(addr.parse::<Ipv6Addr>().expect("addr"));
            assert_eq!(search(&got, a), longest(&set, a), "{addr}");
        }
        let read_back: std::collections::HashSet<_> = got.iter().filter_map(listed).collect();
        assert_eq!(read_back.len(), 2);
    }

    #[test]
    fn the_whole_space_is_one_piece() {
        let got = all(&[(net("::/0"), ListRef::new(1, Action::Enforce))]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len, 0);
        assert!(got[0].holds(u64::MAX, u64::MAX));
    }

    fn prefix() -> impl Strategy<Value = (Ipv6Net, ListRef)> {
        // A few top bits and lengths, so prefixes nest often; both ends of the space.
        (0u8..4, any::<u128>(), 0u8..=128, 1u16..4).prop_map(|(top, bits, len, list)| {
            let addr = (u128::from(top) << 126) | (bits >> 2) & (u128::MAX >> 2);
            let addr = if top == 3 {
                u128::MAX - (bits >> 100)
            } else {
                addr
            };
            let net = Ipv6Net::new(Ipv6Addr::from(addr), len)
                .expect("len")
                .trunc();
            (net, ListRef::new(list, Action::Enforce))
        })
    }

    proptest! {
        #[test]
        fn the_search_over_pieces_answers_as_a_longest_prefix_match(
            set in proptest::collection::vec(prefix(), 0..24),
            probes in proptest::collection::vec(any::<u128>(), 0..32),
        ) {
            let mut unique = HashMap::new();
            for (n, v) in set { unique.insert(n, v); }
            let set: Vec<_> = unique.into_iter().collect();
            let got = all(&set);
            // Disjoint and sorted: each starts after the end of the one before.
            let end_of = |p: &V6Piece| {
                (u128::from(p.hi) << 64 | u128::from(p.lo))
                    | u128::MAX.checked_shr(u32::from(p.len)).unwrap_or(0)
            };
            let ordered = got
                .windows(2)
                .all(|w| (u128::from(w[1].hi) << 64 | u128::from(w[1].lo)) > end_of(&w[0]));
            prop_assert!(ordered);
            // Probes: random, and each prefix's first and last address and their neighbours.
            let mut addrs = probes;
            for (n, _) in &set {
                let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
                addrs.extend([a, b, a.wrapping_sub(1), b.wrapping_add(1)]);
            }
            for a in addrs {
                prop_assert_eq!(search(&got, a), longest(&set, a));
            }
            let listed: std::collections::HashSet<_> = got.iter().filter_map(listed).collect();
            let want: std::collections::HashSet<_> = set.iter().map(|(n, _)| *n).collect();
            prop_assert!(listed.is_subset(&want));
        }
    }
}
