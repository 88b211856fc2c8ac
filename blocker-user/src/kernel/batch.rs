//! `BPF_MAP_UPDATE_BATCH`: many key/value pairs per syscall. Loading a million prefixes one
//! `BPF_MAP_UPDATE_ELEM` at a time spends most of its time entering and leaving the kernel.
//!
//! Written by hand because aya 0.14 exposes no batch operations. The kernel has them for LPM
//! tries (generic_map_update_batch); where a kernel lacks them the caller falls back to single
//! updates.

use std::os::fd::RawFd;

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Writes `count` keys (`key_size` bytes each, back to back at `keys`) with their values
/// (`value_size` bytes each at `values`). Returns how many were written before any error.
///
/// # Safety
/// `keys` and `values` must point at `count` valid, initialized elements of the map's key and
/// value sizes.
pub unsafe fn update(
    map_fd: RawFd,
    keys: *const u8,
    values: *const u8,
    count: u32,
) -> (u32, std::io::Result<()>) {
    // struct { u64 in_batch, out_batch, keys, values; u32 count, map_fd; u64 elem_flags, flags; }
    let mut attr = [0u64; 7];
    attr[2] = keys as u64;
    attr[3] = values as u64;
    attr[4] = u64::from(count) | (u64::from(map_fd as u32) << 32);
    // SAFETY: the attr buffer is bpf_attr-sized for this command; the caller vouches for the
    // element pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_BATCH,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    // The kernel reports how many elements it processed in `count`, also on error.
    let done = attr[4] as u32;
    if rc < 0 {
        (done, Err(std::io::Error::last_os_error()))
    } else {
        (done, Ok(()))
    }
}
