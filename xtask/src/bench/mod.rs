//! `cargo xtask bench`: vendorwall measured side by side with no filter, nftables and
//! iptables+ipset, in one run, written to docs/BENCHMARKS.md.
//!
//! Rules kept: everything attaches only to a cgroup the bench creates, every peer rule matches
//! only the bench uid's traffic, all of it is removed afterwards (guards, also on failure), and
//! the only destinations are loopback addresses.

mod firewalls;
mod prefixes;

use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{bootstrap, shell};
use firewalls::{BENCH_UID, Ipset, Nft};

#[derive(clap::Args)]
pub struct Args {
    /// Smaller sets (1k, 10k, 100k) and fewer runs: a couple of minutes.
    #[arg(long)]
    pub quick: bool,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Operations per run.
    #[arg(long, default_value_t = 10_000)]
    pub ops: u32,
}

/// The three operations measured per configuration.
const KINDS: [&str; 3] = ["tcp", "tcp-closed", "udp"];

pub fn run(args: &Args) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench loads BPF programs and firewall rules: run as root");
    }
    bootstrap::ensure()?;
    ensure_packages()?;
    shell::run(shell::cargo().args([
        "build",
        "--release",
        "--package",
        "blocker-user",
        "--package",
        "vendorwall-e2e",
        "--bin",
        "vendorwall",
        "--bin",
        "vw-probe",
    ]))?;
    let root = shell::workspace_root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let sizes: &[usize] = if args.quick {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    let runs = if args.quick {
        args.runs.min(3)
    } else {
        args.runs
    };

    let cgroup = BenchCgroup::new()?;
    let acceptor = Acceptor::start()?;
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let targets = [
        format!("127.0.0.1:{}", acceptor.port),
        format!("127.0.0.1:{closed_port}"),
        "127.0.0.1:9".to_owned(),
    ];
    let probe = Probe {
        bin: root.join("target/release/vw-probe"),
        cgroup: cgroup.path.clone(),
        targets,
        runs,
        ops: args.ops,
    };
    let mut report = Report::default();

    // Every configuration is measured between two no-filter baselines and compared with their
    // mean, so slow drift of the machine (it is shared) cancels out of the ratios.
    eprintln!("bench: baseline");
    report.baseline(&probe)?;
    for &size in sizes {
        let prefixes = prefixes::generate(size, 0x5eed + size as u64);
        let list = out_dir.join(format!("bench-{size}.netset"));
        prefixes::write(&list, &prefixes)?;
        let label = human(size);
        let largest = size == *sizes.last().unwrap_or(&0);

        eprintln!("bench: vendorwall, {label} prefixes");
        let vw = Vendorwall::start(&root, &cgroup.path, &list, &out_dir)?;
        let costs = probe.measure()?;
        // The kernel's share: the hook runs for every process once any program is attached,
        // so a process in a cgroup with no program still pays its fixed part.
        let hook_only = if largest {
            Some(probe.measure_in(&cgroup.sibling, runs)?)
        } else {
            None
        };
        // Statistics on only for a separate run: timing every call slows every call.
        let run_ns = {
            let stats = BpfStats::enable()?;
            probe.measure_in(&cgroup.path, 1)?;
            stats.run_time_per_call(&vw.program_ids()?)
        };
        let state = vw.state()?;
        report.loads.push(Load {
            tool: format!("vendorwall, {label}"),
            seconds: state.sync_ms / 1000.0,
            extra: format!(
                "kernel sync; before it: parse {:.0} ms, aggregate {:.0} ms; {} kernel prefixes",
                state.lists_ms, state.aggregate_ms, state.kernel_prefixes
            ),
        });
        if largest {
            report.memory = Some(vw.memory()?);
            report.change = Some(vw.one_percent_change(&list, &prefixes)?);
        }
        report
            .rows
            .push(Row::config(&format!("vendorwall, {label}"), costs, run_ns));
        if let Some(costs) = hook_only {
            report.rows.push(Row::config(
                &format!("kernel hook only (vendorwall, {label}, attached to another cgroup)"),
                costs,
                None,
            ));
        }
        drop(vw);
        report.baseline(&probe)?;

        // The guards (`_rules`) keep each peer's rules in place while it is measured.
        let nft = Nft::load(&prefixes).map(|n| (n.load_time, n));
        report.peer(
            &probe,
            nft,
            [
                &format!("nft -f, {label}"),
                "interval set",
                &format!("nftables set, {label}"),
            ],
        )?;
        let ipset = Ipset::load(&prefixes).map(|i| (i.load_time, i));
        report.peer(
            &probe,
            ipset,
            [
                &format!("ipset restore, {label}"),
                "hash:net",
                &format!("iptables + ipset, {label}"),
            ],
        )?;
    }
    eprintln!("bench: event throughput");
    match event_throughput(&root, &cgroup.path, &out_dir, &probe) {
        Ok(t) => report.throughput = Some(t),
        Err(err) => report.notes.push(format!("event throughput: {err:#}")),
    }

    let text = report.render(args, runs)?;
    let path = root.join("docs/BENCHMARKS.md");
    std::fs::write(&path, &text).with_context(|| format!("failed to write {}", path.display()))?;
    println!("{text}");
    eprintln!("bench: written to {}", path.display());
    Ok(())
}

fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = [
        ("nft", "nftables"),
        ("ipset", "ipset"),
        ("iptables", "iptables"),
    ]
    .into_iter()
    .filter(|(bin, _)| shell::output(Command::new("which").arg(bin)).is_none())
    .map(|(_, package)| package)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    shell::run(Command::new("apt-get").args(["update", "-qq"]))?;
    shell::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing),
    )
}

fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A child cgroup for the bench, removed on drop; never the root.
/// The cgroup the bench attaches to, and an empty sibling for the kernel-hook-only row.
struct BenchCgroup {
    path: PathBuf,
    sibling: PathBuf,
}

impl BenchCgroup {
    fn new() -> anyhow::Result<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let root = mounts
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
            })
            .context("no cgroup2 mount")?;
        let id = std::process::id();
        let path = root.join(format!("vendorwall-bench-{id}"));
        let sibling = root.join(format!("vendorwall-bench-{id}-empty"));
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        let cgroup = Self {
            path,
            sibling: sibling.clone(),
        };
        std::fs::create_dir(&sibling).with_context(|| format!("mkdir {}", sibling.display()))?;
        Ok(cgroup)
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        for dir in [&self.path, &self.sibling] {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Accepts and drops connections so the listener's backlog never fills.
struct Acceptor {
    port: u16,
}

impl Acceptor {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        // std listens with a backlog of 128: a few milliseconds without the accepting threads
        // on a CPU overflow it, and one dropped handshake costs a 1 s SYN retransmit, 100 µs
        // per operation averaged over a run. Listening again raises it (capped by somaxconn).
        use std::os::fd::AsRawFd as _;
        // SAFETY: listen(2) on a socket we own.
        if unsafe { libc::listen(listener.as_raw_fd(), 65535) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // Two accepting threads, so the backlog never overflows into SYN retransmits.
        for _ in 0..2 {
            let listener = listener.try_clone()?;
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    drop(stream);
                }
            });
        }
        Ok(Self { port })
    }
}

/// Runs the probe in the bench cgroup as the bench uid.
struct Probe {
    bin: PathBuf,
    cgroup: PathBuf,
    targets: [String; 3],
    runs: usize,
    ops: u32,
}

impl Probe {
    /// Median ns per operation for each of [`KINDS`], run in the bench cgroup.
    fn measure(&self) -> anyhow::Result<[f64; 3]> {
        self.settle()?;
        self.measure_in(&self.cgroup, self.runs)
    }

    /// Lets the kernel finish what the last set-up or tear-down left behind before measuring:
    /// freeing a million map entries or set elements runs in RCU callbacks for a while after
    /// the command returns, and a baseline measured meanwhile came out up to 3x slower.
    fn settle(&self) -> anyhow::Result<()> {
        std::thread::sleep(Duration::from_millis(1500));
        // One discarded run warms caches and the listener's accept path.
        self.measure_in(&self.cgroup, 1).map(drop)
    }

    /// Median ns per operation for each of [`KINDS`] over `runs` runs in `cgroup`.
    fn measure_in(&self, cgroup: &Path, runs: usize) -> anyhow::Result<[f64; 3]> {
        let mut medians = [0.0; 3];
        for (i, kind) in KINDS.iter().enumerate() {
            let mut samples = Vec::new();
            for _ in 0..runs.max(1) {
                samples.push(self.once(cgroup, kind, &self.targets[i])?);
            }
            samples.sort_by(f64::total_cmp);
            medians[i] = samples[samples.len() / 2];
        }
        Ok(medians)
    }

    fn once(&self, cgroup: &Path, kind: &str, target: &str) -> anyhow::Result<f64> {
        // A UDP send is a few microseconds: five times the operations give its runs about the
        // length of a TCP run, so one scheduling hiccup weighs as little.
        let ops = if kind == "udp" {
            self.ops.saturating_mul(5)
        } else {
            self.ops
        };
        let mut child = Command::new(&self.bin)
            .args(["bench", kind, target, &ops.to_string()])
            .uid(BENCH_UID)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        std::fs::write(cgroup.join("cgroup.procs"), child.id().to_string())?;
        child.stdin.take().context("stdin")?.write_all(b"go\n")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        child.wait()?;
        let ns = field(&line, "ns_per_op").context("probe output")?;
        let errors = field(&line, "errors").unwrap_or(0.0);
        if errors > 0.0 {
            bail!("{kind} to {target}: {errors} operations failed: the bench traffic was refused");
        }
        Ok(ns)
    }
}

/// A number field from a JSON line.
fn field(line: &str, name: &str) -> Option<f64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?[name].as_f64()
}

/// vendorwall running on the bench cgroup with its own pin and run directories.
struct Vendorwall {
    bin: PathBuf,
    child: Child,
    dir: PathBuf,
}

struct DaemonNumbers {
    lists_ms: f64,
    aggregate_ms: f64,
    sync_ms: f64,
    kernel_prefixes: f64,
}

impl Vendorwall {
    fn start(root: &Path, cgroup: &Path, list: &Path, out: &Path) -> anyhow::Result<Self> {
        let dir = out.join(format!("vw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("config.toml"), "[events]\nstdout = false\n")?;
        let bin = root.join("target/release/vendorwall");
        let mut vw = Self {
            child: Command::new(&bin)
                .args(global(&dir))
                .arg("run")
                .arg("--cgroup")
                .arg(cgroup)
                .arg("--list")
                .arg(list)
                .args(["--max-v4", "2097152"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
            bin,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        while !vw.dir.join("run/vendorwall.pid").exists() {
            if Instant::now() > deadline || vw.child.try_wait()?.is_some() {
                bail!("vendorwall did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(vw)
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.bin)
            .args(global(&self.dir))
            .args(["status", "--json"])
            .output()?;
        serde_json::from_slice(&out.stdout).context("vendorwall status --json")
    }

    fn state(&self) -> anyhow::Result<DaemonNumbers> {
        let status = self.status()?;
        let timings = &status["daemon"]["timings"];
        let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        Ok(DaemonNumbers {
            lists_ms: number(&timings["lists_ms"]),
            aggregate_ms: number(&timings["aggregate_ms"]),
            sync_ms: number(&timings["sync_ms"]),
            kernel_prefixes: number(&status["daemon"]["kernel_prefixes"]),
        })
    }

    fn program_ids(&self) -> anyhow::Result<Vec<u32>> {
        let status = self.status()?;
        Ok(status["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["kernel"]["program_id"].as_u64())
            .filter_map(|id| u32::try_from(id).ok())
            .collect())
    }

    /// Daemon RSS and kernel map memory, in MiB.
    fn memory(&self) -> anyhow::Result<(f64, f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let memlock: f64 = self.status()?["map_memory"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| pair[1].as_f64())
            .sum();
        Ok((
            kb("VmRSS:") / 1024.0,
            kb("VmHWM:") / 1024.0,
            memlock / (1024.0 * 1024.0),
        ))
    }

    /// Replaces 1% of the list and reloads; returns (sync ms, whole reload ms).
    fn one_percent_change(&self, list: &Path, prefixes: &[String]) -> anyhow::Result<(f64, f64)> {
        let mut changed = prefixes.to_vec();
        let replacements = prefixes::generate(prefixes.len() / 100, 0x00c4_a96e);
        let step = 100;
        for (i, replacement) in replacements.into_iter().enumerate() {
            if let Some(slot) = changed.get_mut(i * step) {
                *slot = replacement;
            }
        }
        prefixes::write(list, &changed)?;
        let start = Instant::now();
        let out = Command::new(&self.bin)
            .args(global(&self.dir))
            .arg("reload")
            .output()?;
        let total = start.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!("reload failed: {}", String::from_utf8_lossy(&out.stdout));
        }
        Ok((self.state()?.sync_ms, total))
    }
}

fn global(dir: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        dir.join("config.toml").display().to_string(),
        "--pin-dir".into(),
        format!("/sys/fs/bpf/vendorwall-bench-{}", std::process::id()),
        "--run-dir".into(),
        dir.join("run").display().to_string(),
    ]
}

impl Drop for Vendorwall {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin)
            .args(global(&self.dir))
            .arg("unload")
            .stdout(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kernel BPF run-time statistics, on while this lives.
struct BpfStats;

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")?;
        Ok(Self)
    }

    /// Average run time of the connect4 and sendmsg4 programs per call, ns.
    fn run_time_per_call(&self, ids: &[u32]) -> Option<f64> {
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
fn prog_stats(id: u32) -> Option<(f64, f64)> {
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

/// How to read the tables; the numbers above are this run's, the reasons hold across runs.
const COST_NOTES: &str = "
## Where the cost goes

- The programs' own run time (last column) comes from the kernel's statistics
  (`kernel.bpf_stats_enabled`), switched on only for a separate run after the measured ones:
  timing every call slows every call. For an unlisted IPv4 destination the program reads one
  word of the /24 bitmap (`BLOCK_SEEN_V4`) and stops, so its time does not grow with the
  number of prefixes; hashes and trie are consulted only inside a listed /24. The unlisted
  path is the same at every size, so the differences between the vendorwall rows of one run
  are this machine's noise: read their spread as the uncertainty of each figure.
- The rest of vendorwall's added cost on an unconnected UDP send is the kernel's cgroup
  `sendmsg` hook itself. Once any cgroup `sock_addr` program is attached anywhere, every
  unconnected UDP send locks its socket, runs its cgroup's program array and releases the
  socket again (`lock_sock`, `__cgroup_bpf_run_filter_sock_addr`, `release_sock` with
  `ip4_datagram_release_cb`, seen with `perf record -e cpu-clock -g`). The \"kernel hook only\"
  row measures that part alone: a process in a cgroup with no program, while vendorwall is
  attached to another. It is the floor for any tool that refuses unconnected UDP at the
  socket (the alternative, a per-packet egress filter, is what nftables and ipset pay).
  Connected sockets (TCP, connected UDP) pay only at `connect()`.
- Loading: IPv4 /32s and /24s (most of any large list) go to two hashes, written with
  `BPF_MAP_UPDATE_BATCH` by one thread per CPU (the kernel locks hash buckets, not the whole
  map); the other lengths go to the LPM trie, whose inserts take one lock and walk the trie.
  Reloads diff against the set last written, in one merge over sorted prefixes, and write only
  the difference.
- Resident memory holds the parsed lists with the source line of every entry (to explain
  each block), the index `check` and events use, and the set last written to the kernel
  (so reloads need not read a million entries back). Freed load-time memory is returned to
  the system after each sync; the peak while loading is about twice the steady state.
";

struct Load {
    tool: String,
    seconds: f64,
    extra: String,
}

/// Sustained event delivery under a flood of refused connects.
struct Throughput {
    seconds: f64,
    attempts: u64,
    lines: u64,
    dropped_kernel: u64,
    missed_sink: u64,
}

/// Floods refused connects from two probes for a few seconds with aggregation off, and counts
/// what reached the JSON sink (a file), what the kernel dropped, and what the sink missed.
fn event_throughput(
    root: &Path,
    cgroup: &Path,
    out: &Path,
    probe: &Probe,
) -> anyhow::Result<Throughput> {
    let dir = out.join(format!("vw-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sink = dir.join("events.jsonl");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[events]\nstdout = false\naggregate_window = \"0s\"\nfile = {:?}\n",
            sink.display().to_string()
        ),
    )?;
    let list = dir.join("flood.netset");
    std::fs::write(&list, "127.0.0.66\n")?;
    let bin = root.join("target/release/vendorwall");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--config".to_owned(),
            dir.join("config.toml").display().to_string(),
            "--pin-dir".to_owned(),
            format!("/sys/fs/bpf/vendorwall-bench-events-{}", std::process::id()),
            "--run-dir".to_owned(),
            dir.join("run").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let mut daemon = Command::new(&bin)
        .args(args(&[
            "run",
            "--cgroup",
            &cgroup.display().to_string(),
            "--list",
            &list.display().to_string(),
        ]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let unload = || {
        let _ = Command::new(&bin)
            .args(args(&["unload"]))
            .stdout(Stdio::null())
            .status();
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("run/vendorwall.pid").exists() {
        if Instant::now() > deadline || daemon.try_wait()?.is_some() {
            unload();
            bail!("vendorwall did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = 5.0;
    let mut hammers = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(&probe.bin)
            .args([
                "hammer",
                "127.0.0.66:9",
                &((seconds * 1000.0) as u64).to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        std::fs::write(probe.cgroup.join("cgroup.procs"), child.id().to_string())?;
        child.stdin.as_mut().context("stdin")?.write_all(b"go\n")?;
        hammers.push(child);
    }
    // Closing a hammer's stdin stops it, so let them run first, then stop them explicitly.
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let mut attempts = 0u64;
    for mut child in hammers {
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(b"stop\n");
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        attempts += text
            .lines()
            .filter_map(|l| field(l, "refused"))
            .map(|n| n as u64)
            .sum::<u64>();
    }
    // Let the daemon finish writing, then stop it so the file sink flushes.
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new(&bin)
        .args(args(&["status", "--json"]))
        .output()?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let dropped_kernel = status["counters"]["events_dropped"].as_u64().unwrap_or(0);
    // SAFETY: SIGTERM to the daemon we started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    daemon.wait()?;
    unload();
    let text = std::fs::read_to_string(&sink).unwrap_or_default();
    let lines = text
        .lines()
        .filter(|l| l.contains("\"type\":\"event\""))
        .count() as u64;
    let missed_sink = text
        .lines()
        .filter(|l| l.contains("\"type\":\"missed\""))
        .filter_map(|l| field(l, "count"))
        .map(|n| n as u64)
        .sum();
    Ok(Throughput {
        seconds,
        attempts,
        lines,
        dropped_kernel,
        missed_sink,
    })
}

/// One line of the per-operation table.
struct Row {
    name: String,
    /// Median ns per operation, per [`KINDS`].
    costs: [f64; 3],
    /// The programs' own run time per call, from kernel statistics.
    bpf_ns: Option<f64>,
    /// A no-filter measurement.
    baseline: bool,
}

impl Row {
    fn config(name: &str, costs: [f64; 3], bpf_ns: Option<f64>) -> Self {
        Self {
            name: name.to_owned(),
            costs,
            bpf_ns,
            baseline: false,
        }
    }

    /// Added cost in percent over `base`, per kind.
    fn added(&self, base: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|i| (self.costs[i] / base[i] - 1.0) * 100.0)
    }
}

#[derive(Default)]
struct Report {
    throughput: Option<Throughput>,
    rows: Vec<Row>,
    loads: Vec<Load>,
    memory: Option<(f64, f64, f64)>,
    change: Option<(f64, f64)>,
    notes: Vec<String>,
}

impl Report {
    fn render(&self, args: &Args, runs: usize) -> anyhow::Result<String> {
        let machine = machine();
        let command = if args.quick {
            "cargo xtask bench --quick"
        } else {
            "cargo xtask bench"
        };
        let mut s = String::new();
        writeln!(s, "# Benchmarks\n")?;
        writeln!(
            s,
            "Produced by `{command}` ({runs} runs of {} operations each, {} for UDP; medians), on {machine}.",
            args.ops,
            args.ops.saturating_mul(5)
        )?;
        writeln!(
            s,
            "Every figure in a table comes from the same run, so ratios compare like with like. The"
        )?;
        writeln!(
            s,
            "bench traffic goes to 127.0.0.1 (never listed), so these are the costs every unlisted"
        )?;
        writeln!(
            s,
            "connection pays; the peers' rules match only the bench uid, vendorwall is attached to a"
        )?;
        writeln!(
            s,
            "cgroup holding only the bench process. Each configuration is measured between two"
        )?;
        writeln!(
            s,
            "no-filter baselines and its percentage is against their mean, so drift of the machine"
        )?;
        writeln!(s, "between configurations cancels out.\n")?;
        writeln!(s, "## Per-operation cost\n")?;
        writeln!(
            s,
            "| configuration | TCP connect (listener) | TCP connect (closed port) | UDP sendto | BPF program run time |"
        )?;
        writeln!(s, "|---|---|---|---|---|")?;
        let baselines: Vec<&Row> = self.rows.iter().filter(|r| r.baseline).collect();
        if let Some(first) = baselines.first() {
            write!(s, "| no filter (first baseline) |")?;
            for c in first.costs {
                write!(s, " {:.2} µs |", c / 1000.0)?;
            }
            writeln!(s, " - |")?;
        }
        for (index, row) in self.rows.iter().enumerate() {
            if row.baseline {
                continue;
            }
            write!(s, "| {} |", row.name)?;
            let added = row.added(self.paired_base(index));
            for (c, a) in row.costs.iter().zip(added) {
                write!(s, " {:.2} µs ({a:+.1}%) |", c / 1000.0)?;
            }
            writeln!(
                s,
                " {} |",
                row.bpf_ns
                    .map_or("-".into(), |ns| format!("{ns:.0} ns per call"))
            )?;
        }
        if baselines.len() > 1 {
            write!(
                s,
                "\nThe {} no-filter baselines of this run spread by",
                baselines.len()
            )?;
            for (i, kind) in ["TCP (listener)", "TCP (closed)", "UDP"].iter().enumerate() {
                let (lo, hi) = baselines.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
                    (lo.min(r.costs[i]), hi.max(r.costs[i]))
                });
                write!(
                    s,
                    "{} {kind} {:.1}%",
                    if i == 0 { "" } else { "," },
                    (hi / lo - 1.0) * 100.0
                )?;
            }
            writeln!(
                s,
                " (max/min): the size of effect a single unpaired comparison could not see."
            )?;
        }
        self.render_targets(&mut s)?;
        writeln!(s, "\n## Loading\n")?;
        writeln!(s, "| what | seconds | notes |")?;
        writeln!(s, "|---|---|---|")?;
        for l in &self.loads {
            writeln!(s, "| {} | {:.3} | {} |", l.tool, l.seconds, l.extra)?;
        }
        if let Some((sync, total)) = self.change {
            writeln!(
                s,
                "| vendorwall, 1% of the largest list changed (reload) | {:.3} | kernel sync {sync:.0} ms of {total:.0} ms end to end (parse and aggregate included) |",
                sync / 1000.0
            )?;
        }
        if let Some((rss, peak, kernel)) = self.memory {
            writeln!(s, "\n## Memory at the largest size\n")?;
            writeln!(
                s,
                "| daemon RSS | daemon peak RSS | kernel map memory (memlock) |"
            )?;
            writeln!(s, "|---|---|---|")?;
            writeln!(s, "| {rss:.1} MiB | {peak:.1} MiB | {kernel:.1} MiB |")?;
        }
        if let Some(t) = &self.throughput {
            writeln!(s, "\n## Event throughput\n")?;
            writeln!(
                s,
                "Two processes refused as fast as they can for {:.0} s, aggregation off, every event a JSON",
                t.seconds
            )?;
            writeln!(
                s,
                "line in the file sink (enrichment from /proc included).\n"
            )?;
            writeln!(
                s,
                "| refused attempts | events written | events/s written | dropped in the kernel (ring full) | missed by the sink | accounted for |"
            )?;
            writeln!(s, "|---|---|---|---|---|---|")?;
            writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} of {} |",
                t.attempts,
                t.lines,
                t.lines as f64 / t.seconds,
                t.dropped_kernel,
                t.missed_sink,
                t.lines + t.dropped_kernel + t.missed_sink,
                t.attempts
            )?;
        }
        s.push_str(COST_NOTES);
        if !self.notes.is_empty() {
            writeln!(s, "\n## Notes\n")?;
            for n in &self.notes {
                writeln!(s, "- {n}")?;
            }
        }
        Ok(s)
    }
}

impl Report {
    /// Records a peer: its load time and, while its rules (`_rules`) are in place, its
    /// per-operation costs; a peer that failed to load becomes a note. `names` are the load
    /// row, its note and the cost row.
    fn peer<G>(
        &mut self,
        probe: &Probe,
        loaded: anyhow::Result<(Duration, G)>,
        [tool, extra, row]: [&str; 3],
    ) -> anyhow::Result<()> {
        eprintln!("bench: {row}");
        match loaded {
            Ok((load_time, _rules)) => {
                self.loads.push(Load {
                    tool: tool.to_owned(),
                    seconds: load_time.as_secs_f64(),
                    extra: extra.to_owned(),
                });
                self.rows.push(Row::config(row, probe.measure()?, None));
            }
            Err(err) => {
                self.notes.push(format!("{row}: {err:#}"));
                return Ok(());
            }
        }
        // The rules are gone now (the guard dropped with the match arm).
        self.baseline(probe)
    }

    /// Measures no filter at all and records it as a baseline.
    fn baseline(&mut self, probe: &Probe) -> anyhow::Result<()> {
        self.rows.push(Row {
            name: "no filter".into(),
            costs: probe.measure()?,
            bpf_ns: None,
            baseline: true,
        });
        Ok(())
    }

    /// The mean of the baselines measured just before and just after row `index`.
    fn paired_base(&self, index: usize) -> [f64; 3] {
        let before = self.rows[..index].iter().rev().find(|r| r.baseline);
        let after = self.rows[index..].iter().find(|r| r.baseline);
        match (before, after) {
            (Some(b), Some(a)) => std::array::from_fn(|i| (b.costs[i] + a.costs[i]) / 2.0),
            (Some(only), None) | (None, Some(only)) => only.costs,
            (None, None) => [f64::NAN; 3],
        }
    }

    /// The issue's targets, judged from this run's numbers.
    fn render_targets(&self, s: &mut String) -> anyhow::Result<()> {
        let last = |prefix: &str| {
            self.rows
                .iter()
                .enumerate()
                .rev()
                .find(|(_, r)| !r.baseline && r.name.starts_with(prefix))
                .map(|(i, r)| r.added(self.paired_base(i)))
        };
        let (Some(vw), Some(nft), Some(ipset)) =
            (last("vendorwall"), last("nftables"), last("iptables"))
        else {
            return Ok(());
        };
        let hook = last("kernel hook only");
        let size = self
            .rows
            .iter()
            .rev()
            .find(|r| r.name.starts_with("vendorwall, "))
            .map_or("", |r| r.name.trim_start_matches("vendorwall, "));
        writeln!(s, "\n## Targets at {size} prefixes\n")?;
        writeln!(s, "| target | measured | met |")?;
        writeln!(s, "|---|---|---|")?;
        for (i, kind) in [
            "TCP connect (listener)",
            "TCP connect (closed port)",
            "UDP sendto",
        ]
        .iter()
        .enumerate()
        {
            let below = vw[i] < nft[i] && vw[i] < ipset[i];
            writeln!(
                s,
                "| {kind}: added cost ≤ 3% and below nftables and ipset | {:+.1}% (nftables {:+.1}%, ipset {:+.1}%{}) | {} |",
                vw[i],
                nft[i],
                ipset[i],
                hook.map_or(String::new(), |h| format!(
                    "; the kernel's hook alone, no program run: {:+.1}%",
                    h[i]
                )),
                yes(vw[i] <= 3.0 && below),
            )?;
        }
        let find_load = |prefix: &str| {
            self.loads
                .iter()
                .rev()
                .find(|l| l.tool.starts_with(prefix))
                .map(|l| l.seconds)
        };
        if let (Some(vw_load), Some(ipset_load)) =
            (find_load("vendorwall, "), find_load("ipset restore"))
        {
            writeln!(
                s,
                "| full load into the kernel maps ≤ 1 s and faster than `ipset restore` (parsing and aggregation: see Loading) | {vw_load:.3} s (ipset {ipset_load:.3} s) | {} |",
                yes(vw_load <= 1.0 && vw_load < ipset_load)
            )?;
        }
        if let Some((sync, _)) = self.change {
            writeln!(
                s,
                "| 1% change applied ≤ 100 ms | {sync:.0} ms | {} |",
                yes(sync <= 100.0)
            )?;
        }
        if let Some((rss, peak, _)) = self.memory {
            writeln!(
                s,
                "| daemon RSS ≤ 64 MiB | {rss:.1} MiB (peak while loading {peak:.1} MiB) | {} |",
                yes(rss <= 64.0)
            )?;
        }
        Ok(())
    }
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = shell::output(Command::new("uname").arg("-r")).unwrap_or_default();
    format!(
        "{} × {cpu}, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )
}
