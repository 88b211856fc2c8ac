//! Raw BPF syscalls the tests use to play the attacker: detaching one of vendorwall's links the
//! way `bpftool link detach` does.

const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_DETACH: libc::c_long = 34;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 4]) -> std::io::Result<libc::c_long> {
    // SAFETY: a zeroed bpf_attr-sized buffer holding plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(attr)) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Detaches the link with id `link_id` (BPF_LINK_DETACH), leaving its pin in place.
pub fn detach_link(link_id: u32) {
    let mut attr = [0u64; 4];
    attr[0] = u64::from(link_id);
    let fd = bpf(BPF_LINK_GET_FD_BY_ID, &mut attr).expect("BPF_LINK_GET_FD_BY_ID");
    let mut attr = [0u64; 4];
    attr[0] = fd as u64;
    let result = bpf(BPF_LINK_DETACH, &mut attr);
    // SAFETY: closing the fd we just got.
    unsafe { libc::close(fd as i32) };
    result.expect("BPF_LINK_DETACH");
}

/// Whether a link with this id still exists in the kernel.
pub fn link_exists(link_id: u32) -> bool {
    let mut attr = [0u64; 4];
    attr[0] = u64::from(link_id);
    match bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => {
            // SAFETY: closing the fd we just got.
            unsafe { libc::close(fd as i32) };
            true
        }
        Err(_) => false,
    }
}
