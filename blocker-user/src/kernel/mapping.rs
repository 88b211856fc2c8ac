//! A shared read-write mapping of a memory-mappable BPF array (`BPF_F_MMAPABLE`): the daemon
//! reads and writes such maps in place instead of a syscall per element. Used by the /24 bitmap
//! (`seen`) and the learned buckets (`learned`), with atomics, and to fill the inactive half
//! of the sorted arrays (`halves`).

use std::{os::fd::AsFd as _, ptr::NonNull};

use aya::maps::MapData;

/// The mapping; unmapped when dropped. It keeps the map alive after its fd is closed.
pub struct ArrayMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain shared memory; the users access it only through atomics.
unsafe impl Send for ArrayMapping {}

impl ArrayMapping {
    /// Maps the first `len` bytes of the array behind `map`.
    pub fn map(map: &MapData, len: usize) -> std::io::Result<Self> {
        Self::map_at(map.fd().as_fd(), 0, len)
    }

    /// Maps `len` bytes of the array's data from `offset` (a multiple of the page size).
    pub fn map_at(
        fd: std::os::fd::BorrowedFd<'_>,
        offset: usize,
        len: usize,
    ) -> std::io::Result<Self> {
        // SAFETY: a shared read-write mapping of an mmapable BPF array (the kernel refuses a
        // range past the array's data); no existing memory is replaced.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                offset as u64,
            )
        }?;
        NonNull::new(ptr.cast())
            .map(|ptr| Self { ptr, len })
            .ok_or_else(|| std::io::Error::other("mmap returned null"))
    }

    /// The start of the mapping, page-aligned, valid for `len` bytes while `self` lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for ArrayMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map`; nothing refers to it any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Bytes mapped at a time by [`for_windows`].
const WINDOW: usize = 1 << 20;

/// Calls `write(window, offset)` for successive mappings of the array's bytes `range`, each
/// at most [`WINDOW`] long and starting at byte `offset` of the data (page-aligned, at or
/// before the range). Mapped pages count in the daemon's resident memory while mapped: a
/// window at a time, a 24 MiB array costs the peak 1 MiB, not 24.
pub fn for_windows(
    fd: std::os::fd::RawFd,
    range: std::ops::Range<usize>,
    mut write: impl FnMut(&ArrayMapping, usize),
) -> std::io::Result<()> {
    // SAFETY: the callers pass the fd of a map they hold open for the whole call (a mapping
    // keeps the map alive past it anyway).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let page = rustix::param::page_size();
    let mut offset = range.start - range.start % page;
    while offset < range.end {
        let len = WINDOW.min(range.end - offset);
        let mapping = ArrayMapping::map_at(fd, offset, len)?;
        write(&mapping, offset);
        offset += len;
    }
    Ok(())
}
