//! Durable event history: every event line (after aggregation and the line budget, so counts
//! are exact) in an SQLite database under the state directory. `store` is the database (schema,
//! batched inserts, retention, queries), `sink` the thread that feeds it from the hub without
//! ever holding up the pipeline.

pub mod sink;
pub mod store;

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

pub use store::{Filter, Store, StoreError};

/// `[history]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Store events at all.
    pub enabled: bool,
    /// The database; `history.sqlite` in `cache_dir` (the state directory) when unset.
    pub path: Option<PathBuf>,
    /// Events older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub keep: Duration,
    /// Beyond this size (MiB) the oldest events are deleted first.
    pub max_mib: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            keep: Duration::from_secs(90 * 24 * 3600),
            max_mib: 1024,
        }
    }
}

/// The database's file name in the state directory.
pub const FILE: &str = "history.sqlite";

impl HistoryConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.keep < Duration::from_secs(60) || self.keep > Duration::from_secs(20 * 366 * 86_400)
        {
            return Err((
                "history.keep".into(),
                "must be between 1m and 20 years".into(),
            ));
        }
        if self.max_mib == 0 {
            return Err(("history.max_mib".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// Where the database is, for a config whose state directory is `state_dir`.
    pub fn path_in(&self, state_dir: &std::path::Path) -> PathBuf {
        self.path.clone().unwrap_or_else(|| state_dir.join(FILE))
    }
}
