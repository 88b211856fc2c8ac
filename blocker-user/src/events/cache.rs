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

/// Executables whose owning package is remembered; beyond, the memory starts over.
const PACKAGES_KEPT: usize = 4096;
const PACKAGE_TTL: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct ProcessCache {
    processes: HashMap<u32, (Instant, ProcessInfo)>,
    users: HashMap<u32, (Instant, Option<String>)>,
    /// Executable path -> owning package: reading the package database costs milliseconds,
    /// and the same few programs make most attempts.
    packages: HashMap<String, (Instant, Option<String>)>,
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
        info.package = info.exe.as_deref().and_then(|exe| self.package(exe, now));
        self.processes.insert(pid, (now, info.clone()));
        info
    }

    fn package(&mut self, exe: &str, now: Instant) -> Option<String> {
        if let Some((at, package)) = self.packages.get(exe)
            && now.duration_since(*at) < PACKAGE_TTL
        {
            return package.clone();
        }
        if self.packages.len() >= PACKAGES_KEPT {
            self.packages.clear();
        }
        let package = crate::software::owner(Path::new("/"), exe);
        self.packages.insert(exe.to_owned(), (now, package.clone()));
        package
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
