//! Who made a blocked attempt, read from /proc at event time: parent, user name, executable,
//! command line, systemd unit and container id. When the process has already exited, the record
//! says so (`process_gone`) and leaves those fields empty instead of guessing.

use std::path::Path;

use serde::Serialize;

/// Longest command line kept in an event; longer ones end in `...`.
pub const CMDLINE_MAX: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    pub ppid: Option<u32>,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    /// The innermost systemd unit in the process's cgroup path (`foo.service`, `session-3.scope`).
    pub unit: Option<String>,
    /// A 64-hex-digit container id found in the cgroup path (docker, containerd, podman, k8s).
    pub container: Option<String>,
    /// The installed package that owns `exe` (dpkg or rpm database), when one does.
    pub package: Option<String>,
    /// True when /proc no longer had the process when the event was read.
    pub process_gone: bool,
}

/// Reads what /proc says about `pid` (under `proc_root`, normally `/proc`).
pub fn read(proc_root: &Path, pid: u32) -> ProcessInfo {
    let dir = proc_root.join(pid.to_string());
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return ProcessInfo {
            process_gone: true,
            ..ProcessInfo::default()
        };
    };
    let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
    let cgroup_path = cgroup_v2_path(&cgroup);
    ProcessInfo {
        ppid: ppid(&stat),
        exe: std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.display().to_string()),
        cmdline: std::fs::read(dir.join("cmdline"))
            .ok()
            .and_then(|raw| cmdline(&raw)),
        unit: cgroup_path.and_then(unit),
        container: cgroup_path.and_then(container_id),
        package: None,
        process_gone: false,
    }
}

/// Field 4 of /proc/PID/stat, after the parenthesised comm (which may contain spaces).
fn ppid(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// NUL-separated arguments joined by spaces, truncated to [`CMDLINE_MAX`] bytes.
fn cmdline(raw: &[u8]) -> Option<String> {
    let joined = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        return None;
    }
    if joined.len() <= CMDLINE_MAX {
        return Some(joined);
    }
    let mut end = CMDLINE_MAX;
    while !joined.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}...", &joined[..end]))
}

/// The cgroup v2 line of /proc/PID/cgroup (`0::/path`).
fn cgroup_v2_path(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

const UNIT_SUFFIXES: [&str; 6] = [".service", ".scope", ".socket", ".mount", ".swap", ".timer"];

fn unit(path: &str) -> Option<String> {
    path.rsplit('/')
        .find(|c| UNIT_SUFFIXES.iter().any(|s| c.ends_with(s)))
        .map(str::to_owned)
}

fn container_id(path: &str) -> Option<String> {
    path.split('/').rev().find_map(|component| {
        let bytes = component.as_bytes();
        (0..bytes.len().saturating_sub(63)).find_map(|start| {
            let run = &bytes[start..start + 64];
            let boundary_before = start == 0 || !bytes[start - 1].is_ascii_hexdigit();
            let boundary_after = bytes.get(start + 64).is_none_or(|b| !b.is_ascii_hexdigit());
            (boundary_before && boundary_after && run.iter().all(u8::is_ascii_hexdigit))
                .then(|| String::from_utf8_lossy(run).into_owned())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2d9c3b1a0e8f7d6c5b4a3928170615f4e3d2c1b0a9f8e7d6c5b4a392817061";

    #[test]
    fn ppid_survives_spaces_and_parens_in_comm() {
        assert_eq!(ppid("1234 (my (odd) proc) S 77 1234 1234 0 -1"), Some(77));
    }

    #[test]
    fn cmdline_is_joined_and_truncated() {
        assert_eq!(
            cmdline(b"curl\0-s\0http://x\0"),
            Some("curl -s http://x".into())
        );
        assert_eq!(cmdline(b""), None);
        let long = vec![b'a'; 1000];
        let cut = cmdline(&long).expect("non-empty");
        assert_eq!(cut.len(), CMDLINE_MAX + 3);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn units_and_containers_from_cgroup_paths() {
        let cgroup = "0::/system.slice/nginx.service\n";
        let path = cgroup_v2_path(cgroup).expect("v2 line");
        assert_eq!(unit(path), Some("nginx.service".into()));
        assert_eq!(container_id(path), None);
        let docker = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(container_id(&docker), Some(ID.into()));
        assert_eq!(unit(&docker), Some(format!("docker-{ID}.scope")));
        let k8s = format!("/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope");
        assert_eq!(container_id(&k8s), Some(ID.into()));
        assert_eq!(
            unit("/user.slice/user-1000.slice/session-3.scope"),
            Some("session-3.scope".into())
        );
        assert_eq!(unit("/"), None);
    }

    #[test]
    fn a_missing_process_is_reported_as_gone() {
        let info = read(Path::new("/proc"), u32::MAX - 1);
        assert!(info.process_gone);
        assert_eq!(info.exe, None);
        let me = read(Path::new("/proc"), std::process::id());
        assert!(!me.process_gone);
        assert!(me.ppid.is_some() && me.exe.is_some() && me.cmdline.is_some());
    }
}
