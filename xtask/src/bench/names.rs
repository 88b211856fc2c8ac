//! The DNS learner's cost. It runs for every packet a covered socket receives, so what matters
//! is what it adds to traffic that is not DNS: loopback TCP bulk receive and UDP receive, each
//! measured A/B interleaved in one run (the receiver alternates between a cgroup with no program
//! and the cgroup vendorwall enforces, many times), with a 95% confidence interval of the ratio.
//! Then its time per DNS answer and per non-DNS packet, as the kernel measures a program
//! (`BPF_PROG_TEST_RUN`'s duration), and the unlisted-connect cost with the learner attached
//! against a daemon with `[names] learn = false`, A/B interleaved the same way.

use std::{
    io::Write as _,
    net::{TcpListener, UdpSocket},
    path::Path,
};

use anyhow::{Context as _, bail};

use super::{
    KINDS,
    ab::{Ratio, interleaved},
    bpf_stats::BpfStats,
    cgroup::BenchCgroup,
    probe::Probe,
    vendorwall::Vendorwall,
};

/// Pins the calling thread to `cpu`, so a sender and a receiver do not trade places on the
/// two CPUs between runs (the largest source of noise in receive rates here).
pub(super) fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The CPUs senders and receivers are pinned to: two different ones when there are two.
fn cpus() -> (Option<usize>, Option<usize>) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n >= 2 {
        (Some(0), Some(1))
    } else {
        (None, None)
    }
}

pub(super) struct NamesCost {
    /// TCP bulk receive (ns per 64 KiB) and UDP receive (ns per datagram): no program vs the
    /// enforced cgroup with the learner attached.
    pub(super) receive: [Ratio; 2],
    /// The learner's own run time per packet during those receives (kernel statistics).
    pub(super) per_packet_ns: Option<f64>,
    /// Kernel-measured ns per run: a listed answer (CNAME and two A records, learned), an
    /// unlisted answer, a TCP segment that is not DNS.
    pub(super) test_run_ns: [f64; 3],
    /// Unlisted connect cost per [`KINDS`]: learner off (A) vs learner attached (B).
    pub(super) connect: [Ratio; 3],
}

/// A TCP peer that streams zeros to whoever connects, until they close.
struct Streamer {
    port: u16,
}

impl Streamer {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    if let (_, Some(cpu)) = cpus() {
                        pin(cpu);
                    }
                    let chunk = vec![0u8; 65536];
                    while stream.write_all(&chunk).is_ok() {}
                });
            }
        });
        Ok(Self { port })
    }
}

/// A UDP peer: on a `go` datagram it sends 64-byte datagrams to the sender until they stop
/// arriving (the receiver's socket closed: ECONNREFUSED on the connected socket).
struct Blaster {
    port: u16,
}

impl Blaster {
    fn start() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let port = socket.local_addr()?.port();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            while let Ok((_, peer)) = socket.recv_from(&mut buf) {
                std::thread::spawn(move || {
                    if let (_, Some(cpu)) = cpus() {
                        pin(cpu);
                    }
                    let Ok(out) = UdpSocket::bind("127.0.0.1:0") else {
                        return;
                    };
                    if out.connect(peer).is_err() {
                        return;
                    }
                    let payload = [7u8; 64];
                    let mut failures = 0;
                    // A full receive queue drops silently; only a closed port errors, and the
                    // ICMP error can take a few sends to arrive.
                    while failures < 3 {
                        if out.send(&payload).is_err() {
                            failures += 1;
                        }
                    }
                });
            }
        });
        Ok(Self { port })
    }
}

const NAMES_CONFIG: &str = "[[lists]]\nname = \"bench-names\"\ndomains = [\"listed.example\"]\n\
[names]\nwarm_start = false\nflush_resolved = false\n[events]\nstdout = false\n";

pub(super) fn measure(
    root: &Path,
    cgroup: &BenchCgroup,
    out: &Path,
    probe: &Probe,
) -> anyhow::Result<NamesCost> {
    let learning = Vendorwall::start_configured(root, &cgroup.path, out, "learner", NAMES_CONFIG)?;
    let learner = learning.programs(|name| name == "vw_dns_ingress")?;
    if learner.is_empty() {
        bail!("the DNS learner is not attached (this kernel cannot run it?)");
    }
    let off = NAMES_CONFIG.replace("[names]\n", "[names]\nlearn = false\n");
    let without = Vendorwall::start_configured(root, &cgroup.other, out, "no-learner", &off)?;
    let streamer = Streamer::start()?;
    let blaster = Blaster::start()?;
    let pairs = (probe.runs * 4).max(12);
    probe.settle()?;

    let receiver = cpus().0;
    let receive_kinds = [
        ("recv-tcp", format!("127.0.0.1:{}", streamer.port), 6_000u32),
        ("recv-udp", format!("127.0.0.1:{}", blaster.port), 100_000),
    ];
    let mut receive = Vec::new();
    for (kind, target, count) in &receive_kinds {
        let run = |cg: &Path| probe.once_with(cg, kind, target, *count, receiver);
        receive.push(interleaved(
            pairs,
            || run(&cgroup.sibling),
            || run(&cgroup.path),
        )?);
    }
    let per_packet_ns = {
        let stats = BpfStats::enable()?;
        for (kind, target, count) in &receive_kinds {
            probe.once_with(&cgroup.path, kind, target, *count, receiver)?;
        }
        stats.run_time_per_call(&learner)
    };

    let test_run_ns = [
        test_run(learner[0], &packet(&listed_answer(), 17))?,
        test_run(learner[0], &packet(&unlisted_answer(), 17))?,
        test_run(learner[0], &packet(&[0u8; 64], 6))?,
    ];

    let mut connect = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        let target = &probe.targets[i];
        connect.push(interleaved(
            pairs,
            || probe.once(&cgroup.other, kind, target),
            || probe.once(&cgroup.path, kind, target),
        )?);
    }
    drop((learning, without));
    Ok(NamesCost {
        receive: [receive[0], receive[1]],
        per_packet_ns,
        test_run_ns,
        connect: [connect[0], connect[1], connect[2]],
    })
}

/// The average run time of program `id` on `packet` over 100,000 runs, as the kernel
/// measures it (`BPF_PROG_TEST_RUN`'s duration).
fn test_run(id: u32, packet: &[u8]) -> anyhow::Result<f64> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    let mut attr = [0u64; 10];
    attr[0] = u64::from(id);
    // SAFETY: an 80-byte zeroed bpf_attr holding the id.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_GET_FD_BY_ID, attr.as_mut_ptr(), 80) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_PROG_GET_FD_BY_ID");
    }
    let mut attr = [0u64; 10];
    attr[0] = fd as u64;
    attr[1] = packet.len() as u64;
    attr[2] = packet.as_ptr() as u64;
    attr[4] = 100_000; // repeat
    // SAFETY: the attr points at `packet`, alive for the call; no output buffer.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, attr.as_mut_ptr(), 80) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the fd we got.
    unsafe { libc::close(fd as i32) };
    if rc < 0 {
        return Err(err).context("BPF_PROG_TEST_RUN");
    }
    // `duration` is the u32 at byte 36: the average ns per run.
    Ok((attr[4] >> 32) as f64)
}

/// Ethernet, IPv4, then a UDP header from port 53 (`protocol` 17) or a TCP header (6), then
/// `payload`.
fn packet(payload: &[u8], protocol: u8) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    p.extend([0x08, 0x00, 0x45, 0]);
    let l4 = if protocol == 17 { 8 } else { 20 };
    p.extend(((20 + l4 + payload.len()) as u16).to_be_bytes());
    p.extend([
        0, 0, 0x40, 0, 64, protocol, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
    ]);
    if protocol == 17 {
        p.extend(53u16.to_be_bytes());
        p.extend(40000u16.to_be_bytes());
        p.extend(((8 + payload.len()) as u16).to_be_bytes());
        p.extend([0, 0]);
    } else {
        p.extend(40000u16.to_be_bytes());
        p.extend(443u16.to_be_bytes());
        p.extend([0; 8]);
        p.extend([0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    }
    p.extend(payload);
    p
}

fn name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend(label.as_bytes());
    }
    out.push(0);
}

/// `www.listed.example` CNAME `edge.cdn.example`, which has two A records (compressed).
fn listed_answer() -> Vec<u8> {
    answer("www.listed.example", true)
}

fn unlisted_answer() -> Vec<u8> {
    answer("www.unlisted.example", true)
}

fn answer(question: &str, chain: bool) -> Vec<u8> {
    let mut m = vec![
        0x12,
        0x34,
        0x81,
        0x80,
        0,
        1,
        0,
        if chain { 3 } else { 2 },
        0,
        0,
        0,
        0,
    ];
    name(&mut m, question);
    m.extend([0, 1, 0, 1]);
    // CNAME, owner: a pointer to the question.
    m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10]);
    let mut target = Vec::new();
    name(&mut target, "edge.cdn.example");
    m.extend((target.len() as u16).to_be_bytes());
    let target_at = m.len() as u16;
    m.extend(target);
    for last in [1u8, 2] {
        m.extend((0xc000 | target_at).to_be_bytes());
        m.extend([0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 198, 51, 100, last]);
    }
    m
}
