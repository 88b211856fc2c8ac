//! The layout the sorted arrays share (`BLOCK_HOSTS_V4`, `BLOCK_V6`): element 0 says where the
//! active half starts, then two halves of `capacity + 1` elements, each a length and that
//! many sorted entries. A rewrite fills the inactive half and then points element 0 at it (one
//! aligned 8-byte write), so the programs see the old set or the new one, never a mix. Before
//! the first write element 0 is 0, which points at itself: a length of 0.

use std::borrow::Borrow;

use aya::maps::{Array, MapData, MapError};

/// The array's length for `capacity` entries a half.
pub const fn array_len(capacity: u32) -> u32 {
    1 + 2 * (capacity + 1)
}

/// The entries a half of an array of `len` elements holds.
pub const fn capacity_of(len: u32) -> u32 {
    (len.saturating_sub(1) / 2).saturating_sub(1)
}

/// Where the half other than the one at `base` starts.
const fn other_half(base: u32, capacity: u32) -> u32 {
    if base == 1 { capacity + 2 } else { 1 }
}

/// Where the active half starts and how many entries it holds (none before the first
/// write); `number` reads the number an element holds (element 0's base, a half's length).
pub fn active_half<T: Borrow<MapData>, V: aya::Pod>(
    array: &Array<T, V>,
    number: impl Fn(&V) -> u64,
) -> Result<(u32, u32), MapError> {
    let base = u32::try_from(number(&array.get(&0, 0)?)).unwrap_or(0);
    if base == 0 {
        return Ok((0, 0));
    }
    let len = u32::try_from(number(&array.get(&base, 0)?)).unwrap_or(0);
    Ok((base, len.min(capacity_of(array.len()))))
}

/// One sorted array's element type and names, for [`write_all`].
pub struct Layout<V> {
    /// The map's name.
    pub name: &'static str,
    /// What an error calls it, and the config key that sets its size.
    pub what: &'static str,
    pub key: &'static str,
    /// An element holding only a number: element 0's base, a half's length.
    pub header: fn(u64) -> V,
    /// The number such an element holds.
    pub number: fn(&V) -> u64,
    /// Elements per BPF_MAP_UPDATE_BATCH call.
    pub batch: usize,
}

/// Makes the active half hold exactly `entries[1..]` (sorted; `entries[0]` is the slot for
/// the length): written into the inactive half, which then becomes the active one. Refused
/// before anything is written when they do not fit a half.
pub fn write_all<V: aya::Pod>(
    fd: std::os::fd::RawFd,
    array: &mut Array<&mut MapData, V>,
    layout: &Layout<V>,
    entries: &mut [V],
) -> Result<(), super::KernelError> {
    let err = |source| super::KernelError::Map {
        name: layout.name,
        source,
    };
    let capacity = capacity_of(array.len());
    let count = entries.len().saturating_sub(1);
    if count > capacity as usize {
        return Err(super::KernelError::TooManyEntries {
            name: layout.what,
            key: layout.key,
            capacity,
            needed: count,
        });
    }
    let (base, _) = active_half(array, layout.number).map_err(err)?;
    if let Some(slot) = entries.first_mut() {
        *slot = (layout.header)(count as u64);
    }
    let next = other_half(base, capacity);
    if !write_mapped(fd, array.len(), next, entries) {
        let indices: Vec<u32> = (next..next + entries.len() as u32).collect();
        for (keys, values) in indices
            .chunks(layout.batch)
            .zip(entries.chunks(layout.batch))
        {
            super::batch::write_array(fd, array, keys, values, layout.name)?;
        }
    }
    // The half is whole before element 0 points at it (the syscall below writes element 0).
    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
    array
        .set(0, (layout.header)(u64::from(next)), 0)
        .map_err(err)
}

/// Copies `entries` to elements `at..` through mappings of the array (`BPF_F_MMAPABLE`): a
/// memory copy, where a batched update spent about 0.6 µs an element in the kernel (0.6 s for
/// a million IPv6 pieces). False when the array cannot be mapped (one pinned by a release
/// without the flag, until its next generation), so the caller writes it by syscall instead.
fn write_mapped<V: aya::Pod>(fd: std::os::fd::RawFd, len: u32, at: u32, entries: &[V]) -> bool {
    // The kernel lays array elements out every round_up(value_size, 8) bytes.
    let size = size_of::<V>();
    if !size.is_multiple_of(8) || at as usize + entries.len() > len as usize {
        return false;
    }
    // SAFETY: `entries` is plain data (`Pod`) of `size_of_val` bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts(entries.as_ptr().cast::<u8>(), size_of_val(entries)) };
    let start = at as usize * size;
    super::mapping::for_windows(fd, start..start + bytes.len(), |mapping, offset| {
        // The part of the entries' bytes this window holds; the half written is the inactive
        // one, which no program run reads (see the module doc).
        let from = start.max(offset);
        let to = (start + bytes.len()).min(offset + mapping.len());
        let src = &bytes[from - start..to - start];
        // SAFETY: `from - offset + src.len()` is at most the mapping's length.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                mapping.as_ptr().add(from - offset),
                src.len(),
            );
        }
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_trip_their_capacity_and_alternate() {
        for capacity in [1, 4096, 1 << 22] {
            assert_eq!(capacity_of(array_len(capacity)), capacity);
            let second = other_half(0, capacity);
            assert_eq!(second, 1, "the first write goes to the first half");
            assert_eq!(other_half(1, capacity), capacity + 2);
            assert_eq!(other_half(capacity + 2, capacity), 1);
            // The second half ends at the array's end.
            assert_eq!(capacity + 2 + capacity + 1, array_len(capacity));
        }
    }
}
