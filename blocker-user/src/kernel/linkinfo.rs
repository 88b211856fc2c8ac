//! Reading a pinned link's target cgroup straight from the kernel.
//!
//! The syscalls are made by hand because aya 0.14's `LinkInfo` exposes the link and program ids
//! but not the `cgroup` member of `bpf_link_info`, and that member is how we notice a link that
//! someone detached (`bpftool link detach`, `BPF_LINK_DETACH`): the kernel then reports cgroup
//! id 0. The layouts are aya's own (aya-obj's generated kernel bindings).

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_link_info};

/// What the kernel says about one cgroup link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CgroupLink {
    pub link_id: u32,
    pub program_id: u32,
    /// 0 when the link was detached.
    pub cgroup_id: u64,
    pub attach_type: u32,
}

fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a full bpf_attr, and pointers inside it point to live buffers owned by
    // the caller.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is plain data; all-zero is the kernel's "unset" for every field.
    unsafe { std::mem::zeroed() }
}

/// Opens a pinned object.
fn obj_get(path: &Path) -> std::io::Result<OwnedFd> {
    let c_path =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = c_path.as_ptr() as u64;
    let fd = bpf(bpf_cmd::BPF_OBJ_GET, &mut attr)?;
    let fd = RawFd::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this new fd; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads `bpf_link_info` of the link pinned at `path`.
pub fn read(path: &Path) -> std::io::Result<CgroupLink> {
    let fd = obj_get(path)?;
    // SAFETY: plain data; the kernel fills what it has and requires the rest to be zero.
    let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<bpf_link_info>() as u32;
    attr.info.info = &mut info as *mut bpf_link_info as u64;
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // SAFETY: a cgroup link's info fills the `cgroup` member; for any other link type these
    // bytes are another member's and the caller sees a cgroup id that matches nothing.
    let cgroup = unsafe { info.__bindgen_anon_1.cgroup };
    Ok(CgroupLink {
        link_id: info.id,
        program_id: info.prog_id,
        cgroup_id: cgroup.cgroup_id,
        attach_type: cgroup.attach_type,
    })
}
