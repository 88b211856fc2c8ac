//! `cargo xtask vm-run --kernel K -- BINARY ARGS...`: runs one test binary on another kernel,
//! as cargo's `runner` for the kernel matrix. QEMU (TCG: this machine's KVM cannot run these
//! kernels) boots the kernel from `kernels.rs` with the host's `/` shared read-only over 9p
//! under a tmpfs overlay, so the host's test binaries, daemon and tools run unchanged; the job
//! (working directory, environment, command) is a script in a directory shared read-write,
//! which also receives the exit code.

use std::{os::unix::ffi::OsStrExt as _, path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::kernels;

#[derive(clap::Args)]
pub struct Args {
    /// The kernel to boot (5.10, 6.1 or 6.12).
    #[arg(long)]
    pub kernel: String,
    /// The program and its arguments (cargo's runner convention).
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<String>,
}

/// The initramfs's PID 1: modules, the overlay root, the API file systems the tests need,
/// then the job, then power-off.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read m; do insmod /lib/modules/$m 2>/dev/null || echo "vm: insmod $m failed"; done < /modules.list
job=$(sed -n 's/.*vw\.job=\([^ ]*\).*/\1/p' /proc/cmdline)
fail() { echo "vm: $*"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || fail "no 9p root"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "no overlay"
mount -t proc proc /newroot/proc || echo "vm: no /proc"
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts && mount -t devpts devpts /newroot/dev/pts
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup
mount -t bpf -o mode=0700 bpf /newroot/sys/fs/bpf
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot$job && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /newroot$job || fail "no job share"
chroot /newroot /bin/sh $job/job.sh
poweroff -f
"#;

/// Boots tried before a guest that never reaches the job is a failure. Under TCG a guest kernel
/// now and then dies in its own early boot (an `int3` oops while it patches its text, seen on
/// 6.12 in CI, before any test code ran); that is the emulator, not the code under test, so the
/// boot is tried again. A guest that started the job is never retried: whatever it did is the
/// result.
const BOOTS: u32 = 3;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let kernel = kernels::ensure(&args.kernel)?;
    let job = std::env::temp_dir().join(format!("vendorwall-vm-{}", std::process::id()));
    std::fs::create_dir_all(&job)?;
    write_job(&kernel, &job, &args.command)?;
    let mut result = Err(anyhow::anyhow!("no boot was tried"));
    for attempt in 1..=BOOTS {
        result = boot(&kernel, &job);
        match &result {
            Err(e) if !job.join("started").exists() && attempt < BOOTS => eprintln!(
                "xtask: kernel {} never reached the job (boot {attempt} of {BOOTS}: {e:#}); booting again",
                kernel.name
            ),
            _ => break,
        }
    }
    let _ = std::fs::remove_dir_all(&job);
    let code = result?;
    std::process::exit(code);
}

/// The job script: `started` is written before the command runs, so a boot that dies before it
/// is told apart from a job that crashed the guest.
fn write_job(kernel: &kernels::Kernel, job: &Path, command: &[String]) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let mut script = String::from("set -u\n");
    script.push_str(&format!(
        ": > {}\n",
        quote(job.join("started").as_os_str().as_bytes())
    ));
    for (key, value) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            script.push_str(&format!("export {key}={}\n", quote(value.as_bytes())));
        }
    }
    script.push_str(&format!(
        "export VENDORWALL_VM_KERNEL={}\n",
        quote(kernel.name.as_bytes())
    ));
    script.push_str(&format!("cd {}\n", quote(cwd.as_os_str().as_bytes())));
    script.push_str("ip link set lo up\n");
    let words: Vec<String> = command.iter().map(|w| quote(w.as_bytes())).collect();
    script.push_str(&words.join(" "));
    script.push_str(&format!(
        "\necho $? > {}\n",
        quote(job.join("exit").as_os_str().as_bytes())
    ));
    std::fs::write(job.join("job.sh"), script)?;
    Ok(())
}

fn boot(kernel: &kernels::Kernel, job: &Path) -> anyhow::Result<i32> {
    let status = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "3072", "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinux)
        .arg("-initrd")
        .arg(&kernel.initramfs)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet loglevel=3 panic=-1 vw.job={}",
            job.display()
        ))
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=job,security_model=none",
            job.display()
        ))
        .status()
        .context("failed to start qemu-system-x86_64")?;
    if !status.success() {
        bail!("qemu exited with {status}");
    }
    let exit = std::fs::read_to_string(job.join("exit")).with_context(|| {
        format!(
            "the job did not finish on kernel {} ({})",
            kernel.name, kernel.release
        )
    })?;
    exit.trim()
        .parse()
        .with_context(|| format!("bad exit code {exit:?}"))
}

/// `bytes` as one single-quoted shell word.
fn quote(bytes: &[u8]) -> String {
    format!(
        "'{}'",
        String::from_utf8_lossy(bytes).replace('\'', r#"'\''"#)
    )
}

/// The runner cargo uses for the matrix: this xtask binary's `vm-run` for `kernel` (cargo
/// splits it on spaces, so xtask's path must hold none).
pub fn runner(kernel: &str) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("xtask's own path")?;
    let exe = exe.to_str().context("xtask's path is not UTF-8")?;
    if exe.contains(' ') {
        bail!("xtask's path {exe:?} holds a space: cargo's runner cannot be given it");
    }
    Ok(format!("{exe} vm-run --kernel {kernel} --"))
}
