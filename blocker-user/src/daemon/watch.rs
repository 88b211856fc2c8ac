//! Noticing edits of local list files: a snapshot of each file's modified time and length,
//! compared on a timer by the event loop.

use std::{collections::HashMap, path::PathBuf, time::SystemTime};

use super::Daemon;

/// (modified time, length) of every local list file; `None` for a file that is missing.
pub type Snapshot = HashMap<PathBuf, Option<(SystemTime, u64)>>;

/// The local list files of `specs` as they are now.
pub(super) fn snapshot(specs: &[crate::lists::ListSpec]) -> Snapshot {
    specs
        .iter()
        .flat_map(|s| s.sources.iter().flat_map(|src| src.local_paths()))
        .map(|path| {
            let meta = std::fs::metadata(&path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (path, meta)
        })
        .collect()
}

impl Daemon {
    /// Local list files whose content may have changed since the last load.
    pub(super) fn snapshot_watched(&self) -> Snapshot {
        snapshot(&self.specs)
    }

    /// Whether a watched list file changed (written, replaced, removed) since the last load.
    pub fn lists_changed(&self) -> bool {
        self.snapshot_watched() != self.watched
    }
}
