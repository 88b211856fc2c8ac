//! Finding and opening the cgroup v2 directory the programs attach to.

use std::{
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// `CGROUP2_SUPER_MAGIC` from linux/magic.h.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to read /proc/self/mounts")]
    Mounts(#[source] std::io::Error),
    #[error("no cgroup2 file system is mounted (looked in /proc/self/mounts)")]
    NoCgroup2,
    #[error("failed to open cgroup {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a cgroup v2 directory", path.display())]
    NotCgroup2 { path: PathBuf },
}

/// The mount point of the cgroup v2 hierarchy in a `/proc/self/mounts` text.
pub fn cgroup2_mount_point(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_field(target)))
    })
}

/// The kernel writes space, tab, newline and backslash in mount paths as `\040`-style octal.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("0");
            out.push(u8::from_str_radix(octal, 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The root of this host's cgroup v2 hierarchy, from `/proc/self/mounts`.
pub fn default_root() -> Result<PathBuf, CgroupError> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").map_err(CgroupError::Mounts)?;
    cgroup2_mount_point(&mounts).ok_or(CgroupError::NoCgroup2)
}

/// Opens a cgroup v2 directory for attaching, checking that it really is one.
pub fn open(path: &Path) -> Result<File, CgroupError> {
    let file = File::open(path).map_err(|source| CgroupError::Open {
        path: path.to_owned(),
        source,
    })?;
    if !is_cgroup2(&file) {
        return Err(CgroupError::NotCgroup2 {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

fn is_cgroup2(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|stat| stat.f_type == CGROUP2_SUPER_MAGIC)
}

/// The id the kernel reports for a cgroup (`bpf_get_current_cgroup_id`): its directory's inode.
pub fn id(path: &Path) -> Result<u64, CgroupError> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| CgroupError::Open {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_and_unified_layouts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_mount_point(hybrid),
            Some("/sys/fs/cgroup/unified".into())
        );
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(cgroup2_mount_point(unified), Some("/sys/fs/cgroup".into()));
        assert_eq!(cgroup2_mount_point("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn unescapes_octal_in_mount_paths() {
        let mounts = "none /mnt/with\\040space cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_mount_point(mounts), Some("/mnt/with space".into()));
    }
}
