//! Reading a pinned link's target cgroup straight from the kernel.
//!
//! Written by hand because aya 0.14's `LinkInfo` exposes the link and program ids but not the
//! `cgroup` member of `bpf_link_info`, and that member is how we notice a link that someone
//! detached (`bpftool link detach`, `BPF_LINK_DETACH`): the kernel then reports cgroup id 0.

use std::{
    ffi::CString,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

/// `BPF_OBJ_GET` and `BPF_OBJ_GET_INFO_BY_FD` from linux/bpf.h.
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// What the kernel says about one cgroup link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CgroupLink {
    pub link_id: u32,
    pub program_id: u32,
    /// 0 when the link was detached.
    pub cgroup_id: u64,
    pub attach_type: u32,
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 4]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zeroed bpf_attr-sized buffer (32 bytes is enough for both commands),
    // and pointers inside it point to live buffers owned by the caller.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a pinned object.
fn obj_get(path: &Path) -> std::io::Result<OwnedFd> {
    let c_path =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; }
    let mut attr = [0u64; 4];
    attr[0] = c_path.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    let fd = RawFd::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this new fd; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads `bpf_link_info` of the link pinned at `path`.
pub fn read(path: &Path) -> std::io::Result<CgroupLink> {
    use std::os::fd::AsRawFd as _;
    let fd = obj_get(path)?;
    // struct bpf_link_info: u32 type, id, prog_id; then an 8-aligned union at offset 16 whose
    // cgroup member is { u64 cgroup_id; u32 attach_type; }. 16 u64s exceed its size; the kernel
    // copies only what it has and requires the unused tail to be zero.
    let mut info = [0u64; 16];
    // struct { __u32 bpf_fd; __u32 info_len; __aligned_u64 info; }
    let mut attr = [0u64; 4];
    attr[0] = u64::from(fd.as_raw_fd() as u32) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(CgroupLink {
        link_id: (info[0] >> 32) as u32,
        program_id: info[1] as u32,
        cgroup_id: info[2],
        attach_type: info[3] as u32,
    })
}
