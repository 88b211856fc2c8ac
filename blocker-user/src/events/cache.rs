//! Short-lived caches for enrichment, so a flood of attempts from one process costs one set of
//! /proc reads and one user look-up rather than one per event. Process entries live one second:
//! long enough to absorb a flood, short enough that a reused pid is not described as its
//! predecessor for long.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use super::process::{self, ProcessInfo};

const PROCESS_TTL: Duration = Duration::from_secs(1);
const USER_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ProcessCache {
    processes: HashMap<u32, (Instant, ProcessInfo)>,
    users: HashMap<u32, (Instant, Option<String>)>,
    /// Executable path -> owning package, indexed off the loop.
    packages: Option<crate::software::owners::Owners>,
}

impl ProcessCache {
    pub fn process(&mut self, pid: u32) -> ProcessInfo {
        let now = Instant::now();
        if let Some((at, info)) = self.processes.get(&pid)
            && now.duration_since(*at) < PROCESS_TTL
        {
            return info.clone();
        }
        let mut info = process::read(Path::new("/proc"), pid);
        let packages = self
            .packages
            .get_or_insert_with(|| crate::software::owners::Owners::start(Path::new("/")));
        info.package = info.exe.as_deref().and_then(|exe| packages.lookup(exe));
        self.processes.insert(pid, (now, info.clone()));
        info
    }

    /// Starts indexing the package databases now rather than at the first event.
    pub fn index_packages(&mut self) {
        self.packages
            .get_or_insert_with(|| crate::software::owners::Owners::start(Path::new("/")));
    }

    pub fn user(&mut self, uid: u32) -> Option<String> {
        let now = Instant::now();
        if let Some((at, name)) = self.users.get(&uid)
            && now.duration_since(*at) < USER_TTL
        {
            return name.clone();
        }
        let name = uzers::get_user_by_uid(uid).map(|u| u.name().to_string_lossy().into_owned());
        self.users.insert(uid, (now, name.clone()));
        name
    }

    /// Forgets expired entries.
    pub fn expire(&mut self, now: Instant) {
        self.processes
            .retain(|_, (at, _)| now.duration_since(*at) < PROCESS_TTL);
        self.users
            .retain(|_, (at, _)| now.duration_since(*at) < USER_TTL);
    }
}
