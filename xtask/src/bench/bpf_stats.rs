//! The programs' own run time from the kernel's statistics (`kernel.bpf_stats_enabled`),
//! switched on only while needed.

/// Kernel BPF run-time statistics, on while this lives.
pub(super) struct BpfStats;

impl BpfStats {
    pub(super) fn enable() -> anyhow::Result<Self> {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")?;
        Ok(Self)
    }

    /// Average run time of the connect4 and sendmsg4 programs per call, ns.
    pub(super) fn run_time_per_call(&self, ids: &[u32]) -> Option<f64> {
        let (mut time, mut calls) = (0.0, 0.0);
        for &id in ids {
            let (t, c) = prog_stats(id)?;
            time += t;
            calls += c;
        }
        (calls > 0.0).then(|| time / calls)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    }
}

/// (run_time_ns, run_cnt) of program `id`, from its fdinfo.
pub(super) fn prog_stats(id: u32) -> Option<(f64, f64)> {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    let mut attr = [0u64; 4];
    attr[0] = u64::from(id);
    // SAFETY: a zeroed bpf_attr-sized buffer holding the id.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_mut_ptr(),
            32usize,
        )
    };
    if fd < 0 {
        return None;
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok();
    // SAFETY: closing the fd we just got.
    unsafe { libc::close(fd as i32) };
    let info = info?;
    let value = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((value("run_time_ns:")?, value("run_cnt:")?))
}
