//! A shared read-write mapping of a memory-mappable BPF array (`BPF_F_MMAPABLE`): the daemon
//! reads and writes such maps in place, with atomics, instead of a syscall per element. Used by
//! the /24 bitmap (`seen`) and the learned buckets (`learned`).

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
        // SAFETY: a shared read-write mapping of an mmapable BPF array (the kernel refuses a
        // length past the array's data); no existing memory is replaced.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                map.fd().as_fd(),
                0,
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
