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

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
/// `BPF_F_ALLOW_OVERRIDE` and `BPF_F_ALLOW_MULTI`.
pub const ALLOW_OVERRIDE: u32 = 1;
pub const ALLOW_MULTI: u32 = 2;

/// Loads a connect4 program that allows everything (`r0 = 1; exit`), as an attacker would, and
/// attaches it to the cgroup directory `cgroup` with `flags`. Returns the program fd; the
/// attachment ends when the cgroup is removed.
pub fn attach_allow_all_connect4(cgroup: &std::path::Path, flags: u32) -> std::io::Result<i32> {
    // mov64 r0, 1 ; exit
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 1, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = c"GPL";
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (64 KiB by default): lift it, as
    // the daemon does, or the load fails with EPERM.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // Best effort: without CAP_SYS_RESOURCE (some sandboxes drop it) the limit stays, which
    // only matters on those old kernels; the load below reports what the kernel says.
    // SAFETY: setrlimit with a valid rlimit struct.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, ..., and
    // expected_attach_type at byte 68.
    let mut attr = [0u64; 16];
    attr[0] = u64::from(BPF_PROG_TYPE_CGROUP_SOCK_ADDR) | (2u64 << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[8] = u64::from(BPF_CGROUP_INET4_CONNECT) << 32;
    // SAFETY: a bpf_attr-sized zeroed buffer with pointers to live locals.
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    if prog < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let dir = std::fs::File::open(cgroup)?;
    use std::os::fd::AsRawFd as _;
    let mut attach = [0u64; 4];
    attach[0] = u64::from(dir.as_raw_fd() as u32) | ((prog as u64) << 32);
    attach[1] = u64::from(BPF_CGROUP_INET4_CONNECT) | (u64::from(flags) << 32);
    // SAFETY: as above.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            attach.as_mut_ptr(),
            size_of_val(&attach),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(prog as i32)
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

fn bpf_attr(cmd: libc::c_long, attr: &mut [u64; 10]) -> std::io::Result<libc::c_long> {
    // SAFETY: an 80-byte, zero-initialised bpf_attr holding plain integers and pointers to
    // buffers that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(attr)) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An fd of the program behind the link pinned at `link_pin` (BPF_OBJ_GET, then the link's
/// info for its program id, then BPF_PROG_GET_FD_BY_ID).
pub fn prog_of_link_pin(link_pin: &std::path::Path) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd as _;
    let path = std::ffi::CString::new(link_pin.as_os_str().as_encoded_bytes()).expect("path");
    let mut attr = [0u64; 10];
    attr[0] = path.as_ptr() as u64;
    let link = bpf_attr(BPF_OBJ_GET, &mut attr)
        .unwrap_or_else(|err| panic!("BPF_OBJ_GET {}: {err}", link_pin.display()));
    // struct bpf_link_info starts with type, id, prog_id (u32 each).
    let mut info = [0u32; 32];
    let mut attr = [0u64; 10];
    attr[0] = (link as u64) | ((size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    let got = bpf_attr(BPF_OBJ_GET_INFO_BY_FD, &mut attr);
    // SAFETY: closing the link fd we opened.
    unsafe { libc::close(link as i32) };
    got.expect("BPF_OBJ_GET_INFO_BY_FD");
    let mut attr = [0u64; 10];
    attr[0] = u64::from(info[2]);
    let prog = bpf_attr(BPF_PROG_GET_FD_BY_ID, &mut attr).expect("BPF_PROG_GET_FD_BY_ID");
    // SAFETY: a fresh fd the kernel just returned, owned from here on.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(prog as i32) }
}

/// Runs `prog` once on `packet` (BPF_PROG_TEST_RUN) and returns its return value. For a
/// cgroup_skb program the packet starts with an Ethernet header; the program sees the skb
/// from the network header on, as on a real ingress.
pub fn test_run(prog: &std::os::fd::OwnedFd, packet: &[u8]) -> u32 {
    use std::os::fd::AsRawFd as _;
    let mut attr = [0u64; 10];
    attr[0] = prog.as_raw_fd() as u64;
    attr[1] = packet.len() as u64;
    attr[2] = packet.as_ptr() as u64;
    attr[4] = 1; // repeat
    bpf_attr(BPF_PROG_TEST_RUN, &mut attr).expect("BPF_PROG_TEST_RUN");
    (attr[0] >> 32) as u32
}
