//! `BPF_MAP_UPDATE_BATCH`: many key/value pairs per syscall. Loading a million prefixes one
//! `BPF_MAP_UPDATE_ELEM` at a time spends most of its time entering and leaving the kernel.
//!
//! The syscall is made by hand because aya 0.14 exposes no batch operations; the `bpf_attr`
//! layout is aya's own (aya-obj's generated kernel bindings). Where a kernel lacks batch
//! support for a map type (LPM tries before 5.13: ENOTSUPP) the caller falls back to single
//! updates.

use std::os::fd::RawFd;

use aya_obj::generated::{bpf_attr, bpf_cmd};

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
    // SAFETY: bpf_attr is plain data; all-zero is the kernel's "unset" for every field.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.batch.keys = keys as u64;
    attr.batch.values = values as u64;
    attr.batch.count = count;
    attr.batch.map_fd = map_fd as u32;
    // SAFETY: a full bpf_attr for this command; the caller vouches for the element pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_MAP_UPDATE_BATCH as libc::c_long,
            &mut attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    // The kernel reports how many elements it processed in `count`, also on error.
    // SAFETY: reading the member written above.
    let done = unsafe { attr.batch.count };
    if rc < 0 {
        (done, Err(std::io::Error::last_os_error()))
    } else {
        (done, Ok(()))
    }
}

/// Writes `values` at `keys` of an array map, in one batch, or one element at a time where
/// the kernel has no batch support (before 5.6: EINVAL; ENOTSUPP). Array writes are
/// idempotent, so whatever a refused batch wrote is simply written again.
pub fn write_array<V: aya::Pod>(
    fd: RawFd,
    array: &mut aya::maps::Array<&mut aya::maps::MapData, V>,
    keys: &[u32],
    values: &[V],
    name: &'static str,
) -> Result<(), super::KernelError> {
    let map_err = |source| super::KernelError::Map { name, source };
    let count = keys.len().min(values.len());
    // SAFETY: `count` u32 keys and as many values of the array's value type.
    let (_done, result) = unsafe {
        update(
            fd,
            keys.as_ptr().cast(),
            values.as_ptr().cast(),
            count as u32,
        )
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(524)) => keys
            .iter()
            .zip(values)
            .try_for_each(|(&key, value)| array.set(key, value, 0).map_err(map_err)),
        Err(e) => Err(map_err(aya::maps::MapError::SyscallError(
            aya::sys::SyscallError {
                call: "bpf_map_update_batch",
                io_error: e,
            },
        ))),
    }
}
