//! The kernel matrix's kernels: Debian's stock `linux-image` packages of bullseye (5.10),
//! bookworm (6.1) and trixie (6.12), fetched with `apt-get download` through a private apt state
//! (the host's apt configuration is never touched), unpacked, and prepared for `vm.rs`: the
//! uncompressed `vmlinux` (QEMU boots it directly through its PVH note, skipping the
//! self-decompression that costs seconds under emulation) and a busybox initramfs with the
//! modules the VM needs. Everything is cached under /var/cache/vendorwall/kernels.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::shell;

const CACHE: &str = "/var/cache/vendorwall/kernels";

/// The kernels `--kernels all` runs, by the name `--kernel` takes, and their Debian suite.
pub const MATRIX: [(&str, &str); 3] = [
    ("5.10", "bullseye"),
    ("6.1", "bookworm"),
    ("6.12", "trixie"),
];

/// Modules loaded at boot (with their dependencies): the 9p root, its overlay, the veth pairs
/// the tests create, and sock_diag for TCP and UDP (the daemon ends connections to newly
/// listed ranges through it; a real host loads these on demand). Whatever a kernel builds in
/// is simply not found as a module.
const MODULES: [&str; 8] = [
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "overlay",
    "veth",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
];

/// A kernel ready to boot.
pub struct Kernel {
    pub name: String,
    pub release: String,
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
}

/// The kernel named `name` (one of [`MATRIX`]), fetched and prepared on first use.
pub fn ensure(name: &str) -> anyhow::Result<Kernel> {
    let Some(&(_, suite)) = MATRIX.iter().find(|(n, _)| *n == name) else {
        bail!(
            "unknown kernel {name:?}: one of {}",
            MATRIX.map(|(n, _)| n).join(", ")
        );
    };
    ensure_tools()?;
    let dir = Path::new(CACHE).join(name);
    // The stamp names the release and the module set: a changed set rebuilds the initramfs.
    let ready = dir.join("ready");
    let modules = MODULES.join(" ");
    if let Ok(stamp) = std::fs::read_to_string(&ready)
        && let Some((release, built_with)) = stamp.trim().split_once('\n')
        && built_with == modules
    {
        return Ok(kernel(name, &dir, release));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let deb = match find_deb(&dir) {
        Some(deb) => deb,
        None => download(suite, &dir)?,
    };
    let unpacked = dir.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    shell::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let modules_root = if unpacked.join("usr/lib/modules").is_dir() {
        unpacked.join("usr")
    } else {
        unpacked.clone()
    };
    let release = only_entry(&modules_root.join("lib/modules"))?;
    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{release}"));
    extract_vmlinux(&vmlinuz, &dir.join("vmlinux"))?;
    shell::run(
        Command::new("depmod")
            .arg("-b")
            .arg(&modules_root)
            .arg(&release),
    )?;
    initramfs(&modules_root.join("lib/modules").join(&release), &dir)?;
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::write(&ready, format!("{release}\n{modules}\n"))?;
    Ok(kernel(name, &dir, &release))
}

fn kernel(name: &str, dir: &Path, release: &str) -> Kernel {
    Kernel {
        name: name.to_owned(),
        release: release.to_owned(),
        vmlinux: dir.join("vmlinux"),
        initramfs: dir.join("initramfs.cpio"),
    }
}

fn ensure_tools() -> anyhow::Result<()> {
    shell::ensure_packages(&[
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("depmod", "kmod"),
        ("xz", "xz-utils"),
        ("zstd", "zstd"),
    ])
}

/// `apt-get download` of the suite's current `linux-image-amd64` target, with apt state of
/// its own under `dir`.
fn download(suite: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let apt = dir.join("apt");
    for sub in ["state/lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(sub))?;
    }
    let sources = apt.join("sources.list");
    std::fs::write(
        &sources,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {suite} main\n",
            crate::testbed::apt_mirror()
        ),
    )?;
    let options = |cmd: &mut Command| {
        cmd.arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", sources.display()))
            .args(["-o", "Dir::Etc::SourceParts=/nonexistent"])
            .arg("-o")
            .arg(format!("Dir::State={}", apt.join("state").display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", apt.join("cache").display()))
            .args(["-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]);
    };
    let mut update = Command::new("apt-get");
    options(&mut update);
    shell::run(update.args(["update", "-qq"]))?;
    let mut show = Command::new("apt-cache");
    options(&mut show);
    let info = shell::output(show.args(["show", "linux-image-amd64"]))
        .context("apt-cache show linux-image-amd64 failed")?;
    let package = info
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .and_then(|d| d.split([' ', ',']).next())
        .context("linux-image-amd64 names no kernel package")?
        .to_owned();
    let mut get = Command::new("apt-get");
    options(&mut get);
    shell::run(get.args(["download", &package]).current_dir(dir))?;
    find_deb(dir).with_context(|| format!("apt-get download {package} left no .deb"))
}

fn find_deb(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
}

fn only_entry(dir: &Path) -> anyhow::Result<String> {
    let mut names = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let first = names
        .next()
        .with_context(|| format!("{} is empty", dir.display()))?;
    Ok(first)
}

/// The uncompressed kernel inside a bzImage: the payload starts at the first xz or zstd magic
/// (Debian uses xz up to 6.1 and zstd since), decompressed up to its own end.
fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> anyhow::Result<()> {
    let image =
        std::fs::read(vmlinuz).with_context(|| format!("failed to read {}", vmlinuz.display()))?;
    let find = |magic: &[u8]| image.windows(magic.len()).position(|w| w == magic);
    let (offset, tool) = match (find(b"\xfd7zXZ\x00"), find(b"\x28\xb5\x2f\xfd")) {
        (Some(xz), _) => (xz, "xz"),
        (None, Some(zstd)) => (zstd, "zstd"),
        (None, None) => bail!("{}: no xz or zstd payload", vmlinuz.display()),
    };
    let payload = out.with_extension("payload");
    std::fs::write(&payload, &image[offset..])?;
    // Trailing bytes after the stream make both tools complain; the stream itself is complete.
    let output = Command::new(tool)
        .args(["-dc", "-q"])
        .arg(&payload)
        .output()
        .with_context(|| format!("failed to run {tool}"))?;
    let _ = std::fs::remove_file(&payload);
    if !output.stdout.starts_with(b"\x7fELF") {
        bail!("{}: {tool} gave no ELF kernel", vmlinuz.display());
    }
    std::fs::write(out, &output.stdout)?;
    Ok(())
}

/// A newc cpio with busybox, `init` (from `vm.rs`) and [`MODULES`] with their dependencies,
/// decompressed, in load order (`modules.list`).
fn initramfs(modules: &Path, dir: &Path) -> anyhow::Result<()> {
    let root = dir.join("initramfs");
    let _ = std::fs::remove_dir_all(&root);
    for sub in [
        "bin",
        "lib/modules",
        "proc",
        "sys",
        "dev",
        "host",
        "newroot",
        "rw",
    ] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    let busybox = shell::output(Command::new("which").arg("busybox")).context("busybox")?;
    std::fs::copy(busybox.trim(), root.join("bin/busybox"))?;
    let init = root.join("init");
    std::fs::write(&init, crate::vm::INIT)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;

    let deps = std::fs::read_to_string(modules.join("modules.dep"))?;
    let dep_of = |name: &str| {
        deps.lines().find_map(|line| {
            let (module, rest) = line.split_once(':')?;
            let file = Path::new(module).file_name()?.to_str()?;
            let stem = file.split(".ko").next()?;
            (stem.replace('-', "_") == name).then(|| {
                let mut order: Vec<String> =
                    rest.split_whitespace().rev().map(str::to_owned).collect();
                order.push(module.to_owned());
                order
            })
        })
    };
    let mut loaded = BTreeSet::new();
    let mut list = String::new();
    for name in MODULES {
        for module in dep_of(name).unwrap_or_default() {
            if !loaded.insert(module.clone()) {
                continue;
            }
            let file = Path::new(&module)
                .file_name()
                .and_then(|f| f.to_str())
                .context("module name")?;
            let plain = file
                .trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .to_owned();
            let source = modules.join(&module);
            let bytes = if file.ends_with(".xz") || file.ends_with(".zst") {
                let tool = if file.ends_with(".xz") { "xz" } else { "zstd" };
                let out = Command::new(tool).args(["-dc"]).arg(&source).output()?;
                if !out.status.success() {
                    bail!("{tool} -d {} failed", source.display());
                }
                out.stdout
            } else {
                std::fs::read(&source)?
            };
            std::fs::write(root.join("lib/modules").join(&plain), bytes)?;
            list.push_str(&plain);
            list.push('\n');
        }
    }
    std::fs::write(root.join("modules.list"), list)?;
    let cpio = std::fs::File::create(dir.join("initramfs.cpio"))?;
    let files = shell::output(Command::new("find").arg(".").current_dir(&root))
        .context("find in the initramfs tree")?;
    let mut child = Command::new("busybox")
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&root)
        .stdin(std::process::Stdio::piped())
        .stdout(cpio)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("busybox cpio")?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .context("cpio stdin")?
        .write_all(files.as_bytes())?;
    if !child.wait()?.success() {
        bail!("busybox cpio failed");
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
