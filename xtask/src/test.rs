//! `cargo xtask test`: bootstrap, build the daemon, run unit and end-to-end tests.
//!
//! The end-to-end tests load real BPF programs and create cgroups and network namespaces, so they
//! need root; they never attach to the host's root cgroup.

use anyhow::bail;

use crate::{bootstrap, deb, install, kernels, shell, testbed, vm};

/// The end-to-end tests the kernel matrix runs on every kernel.
const MATRIX_TESTS: [&str; 7] = [
    "enforcement",
    "bypass",
    "persistence",
    "refresh",
    "verdict",
    "names",
    "compliance",
];

#[derive(clap::Args)]
pub struct Args {
    /// Also run the kernel-matrix tests on this kernel in QEMU (5.10, 6.1, 6.12); repeatable.
    #[arg(long = "kernel", value_name = "VERSION")]
    pub kernel: Vec<String>,
    /// `all` (the default: every kernel of the matrix) or `none` (this machine's kernel only).
    #[arg(long, value_name = "all|none")]
    pub kernels: Option<String>,
    /// Arguments passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the end-to-end tests load BPF programs and create cgroups: run as root");
    }
    bootstrap::ensure()?;
    // The e2e tests run the real binary; build it first so they never test a stale one.
    shell::run(shell::cargo().args(["build", "--package", "blocker-user", "--bins"]))?;
    // The packaging tests inspect a .deb and a staging install made from the same files.
    deb::run(&deb::Args {})?;
    let root = shell::workspace_root();
    let staging = root.join("target/xtask-install-root");
    let _ = std::fs::remove_dir_all(&staging);
    install::install(&install::Args {
        root: staging.clone(),
    })?;
    let deb = std::fs::read_dir(root.join("target/debian"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| anyhow::anyhow!("cargo deb produced no .deb in target/debian"))?;
    // The packaging tests run lintian on the .deb, render the manual pages, load the
    // completions in each shell, check the Prometheus rules with promtool, and render the
    // HTML report.
    shell::ensure_packages(&[
        ("lintian", "lintian"),
        ("man", "man-db"),
        ("zsh", "zsh"),
        ("fish", "fish"),
        // The compliance report's HTML form is rendered in headless Chromium.
        ("chromium", "chromium"),
    ])?;
    let promtool = crate::tools::promtool()?;
    // The systemd tests boot the installed unit in a container on this cached rootfs.
    let rootfs = testbed::ensure()?;
    let env = [
        ("VENDORWALL_DEB", deb),
        ("VENDORWALL_INSTALL_ROOT", staging),
        ("VENDORWALL_TESTBED_ROOTFS", rootfs),
        ("VENDORWALL_PROMTOOL", promtool),
    ];
    let selected = selected_kernels(args)?;
    // Made before any test runs, so a download failure says so instead of failing tests.
    let prepared: Vec<kernels::Kernel> = selected
        .iter()
        .map(|k| kernels::ensure(k))
        .collect::<anyhow::Result<_>>()?;
    let host = shell::run(
        shell::cargo()
            .args(["test", "--no-fail-fast", "--"])
            .args(&args.test_args)
            .envs(env.clone()),
    );
    let mut failed = Vec::new();
    if let Err(err) = host {
        eprintln!("xtask: {err:#}");
        failed.push(format!("this machine's kernel ({})", uname()));
    }
    for kernel in &prepared {
        eprintln!(
            "xtask: kernel matrix: {} ({}) in QEMU",
            kernel.name, kernel.release
        );
        let mut cmd = shell::cargo();
        cmd.args(["test", "--no-fail-fast", "-p", "vendorwall-e2e"]);
        for test in MATRIX_TESTS {
            cmd.args(["--test", test]);
        }
        cmd.arg("--").args(&args.test_args).envs(env.clone()).env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            vm::runner(&kernel.name)?,
        );
        if let Err(err) = shell::run(&mut cmd) {
            eprintln!("xtask: {err:#}");
            failed.push(format!("{} ({})", kernel.name, kernel.release));
        }
    }
    if !failed.is_empty() {
        bail!("tests failed on: {}", failed.join(", "));
    }
    Ok(())
}

fn selected_kernels(args: &Args) -> anyhow::Result<Vec<String>> {
    let mut chosen = args.kernel.clone();
    match args.kernels.as_deref() {
        None if chosen.is_empty() => chosen = kernels::MATRIX.map(|(n, _)| n.to_owned()).to_vec(),
        None => {}
        Some("all") => chosen = kernels::MATRIX.map(|(n, _)| n.to_owned()).to_vec(),
        Some("none") => chosen.clear(),
        Some(other) => bail!("--kernels takes all or none, not {other:?}"),
    }
    Ok(chosen)
}

fn uname() -> String {
    shell::output(std::process::Command::new("uname").arg("-r"))
        .map_or_else(|| "unknown".to_owned(), |r| r.trim().to_owned())
}
