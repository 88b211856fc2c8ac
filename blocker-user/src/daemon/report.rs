//! What a load says about its lists, logged once per load: warnings, the first few malformed
//! lines of each list and a count of the rest (not a line per bad entry of a million-line
//! file), lists served from a cached copy, and lists not enforced at all.

use tracing::{error, warn};

use crate::lists::ListSet;

pub fn log_lists(lists: &ListSet) {
    for list in lists.lists() {
        for warning in &list.warnings {
            warn!("{warning}");
        }
        if list.skipped_lines > 0 {
            for line in &list.skipped {
                warn!("list {}: skipped {line}", list.spec.name);
            }
            let more = list.skipped_lines.saturating_sub(list.skipped.len());
            warn!(
                "list {}: {} malformed line(s) skipped{}; {} entries in force",
                list.spec.name,
                list.skipped_lines,
                if more > 0 {
                    format!(" ({more} not shown)")
                } else {
                    String::new()
                },
                list.entries.len()
            );
        }
        if let Some(err) = &list.last_error {
            warn!("list {}: {err}", list.spec.name);
        }
    }
    for failed in lists.failed() {
        error!(
            "list {} is NOT enforced: {}; retried on every refresh",
            failed.spec.name, failed.error
        );
    }
}
