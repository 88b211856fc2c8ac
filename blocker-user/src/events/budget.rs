//! The line budget: how many event lines a second the sinks get, per uid and in total, so that
//! any local user connecting to thousands of listed addresses cannot flood the journal (and,
//! through journald's per-service rate limit, silence vendorwall's own warnings) or fill the
//! disk. Beyond the budget an attempt is not dropped: it is folded into one summary line per
//! process and list a second (attempts, distinct destinations, first and last), so `count`
//! summed over all lines still equals the attempts exactly.
//!
//! Only event lines pass through here; the daemon's own log (stderr) never does.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use super::EventRecord;

/// Summary lines a second: beyond this many (process, list) pairs, further processes of one
/// user share that user's summary (pid 0), so a fork flood cannot multiply the lines either.
const MAX_SUMMARIES: usize = 64;
/// Distinct destinations remembered per summary; beyond it the figure is a lower bound.
const MAX_DISTINCT: usize = 1 << 16;

/// Lines a second allowed (0: no limit).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub total: u32,
    pub per_uid: u32,
}

/// What identifies one summary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    uid: u32,
    /// 0 once a user has more processes over budget than summaries allow.
    pid: u32,
    list: String,
    audited: bool,
}

struct Summary {
    template: EventRecord,
    attempts: u64,
    destinations: HashSet<IpAddr>,
    capped: bool,
    last: String,
}

pub struct Budget {
    limits: Limits,
    second: Instant,
    total: u32,
    by_uid: HashMap<u32, u32>,
    summaries: HashMap<Key, Summary>,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            second: Instant::now(),
            total: 0,
            by_uid: HashMap::new(),
            summaries: HashMap::new(),
        }
    }

    /// Whether `record` (a line about to be published) fits this second's budget; if not, it
    /// is counted into its summary and must not be published.
    pub fn admit(&mut self, record: &EventRecord, now: Instant) -> bool {
        if now.duration_since(self.second) >= Duration::from_secs(1) {
            self.second = now;
            self.total = 0;
            self.by_uid.clear();
        }
        let used = self.by_uid.entry(record.uid).or_insert(0);
        let within = |used: u32, limit: u32| limit == 0 || used < limit;
        if within(self.total, self.limits.total) && within(*used, self.limits.per_uid) {
            self.total += 1;
            *used += 1;
            return true;
        }
        self.absorb(record);
        false
    }

    fn absorb(&mut self, record: &EventRecord) {
        let mut key = Key {
            uid: record.uid,
            pid: record.pid,
            list: record.list.clone(),
            audited: record.action == "audited",
        };
        if !self.summaries.contains_key(&key) && self.summaries.len() >= MAX_SUMMARIES {
            key.pid = 0;
        }
        let pid = key.pid;
        let summary = self.summaries.entry(key).or_insert_with(|| Summary {
            template: EventRecord {
                pid,
                ..record.clone()
            },
            attempts: 0,
            destinations: HashSet::new(),
            capped: false,
            last: record.last.clone(),
        });
        summary.attempts += record.count;
        summary.last.clone_from(&record.last);
        if let Ok(dst) = record.dst.parse() {
            if summary.destinations.len() < MAX_DISTINCT {
                summary.destinations.insert(dst);
            } else if !summary.destinations.contains(&dst) {
                summary.capped = true;
            }
        }
    }

    /// The summary lines of what did not fit since the last call (the pipeline's one-second
    /// tick, and shutdown): published whatever the budget says, at most `MAX_SUMMARIES` pairs
    /// plus one per user.
    pub fn summaries(&mut self) -> Vec<EventRecord> {
        self.summaries
            .drain()
            .map(|(_, s)| EventRecord {
                count: s.attempts,
                repeat: true,
                last: s.last,
                limited: Some(super::record::Limited {
                    destinations: s.destinations.len() as u64,
                    more_destinations: s.capped,
                }),
                ..s.template
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uid: u32, pid: u32, dst: &str) -> EventRecord {
        EventRecord {
            dst: dst.into(),
            pid,
            tid: pid,
            uid,
            ..EventRecord::sample()
        }
    }

    #[test]
    fn over_budget_attempts_are_summarised_with_exact_counts() {
        let mut budget = Budget::new(Limits {
            total: 10,
            per_uid: 3,
        });
        let now = Instant::now();
        let mut published = 0;
        for i in 0..1000u32 {
            let (uid, pid) = if i % 2 == 0 { (1000, 7) } else { (1001, 8) };
            if budget.admit(
                &record(uid, pid, &format!("10.0.{}.{}", i / 256, i % 256)),
                now,
            ) {
                published += 1;
            }
        }
        assert_eq!(published, 6, "3 lines a second per uid");
        let summaries = budget.summaries();
        assert_eq!(summaries.len(), 2, "one per process and list");
        let total: u64 = summaries.iter().map(|s| s.count).sum();
        assert_eq!(total + published, 1000);
        assert!(
            summaries
                .iter()
                .all(|s| s.limited.as_ref().is_some_and(|l| l.destinations == 497))
        );
        // A new second, a new budget.
        assert!(budget.admit(&record(1000, 7, "10.0.0.1"), now + Duration::from_secs(1)));
        assert!(budget.summaries().is_empty());
    }

    #[test]
    fn many_processes_of_one_user_share_a_summary() {
        let mut budget = Budget::new(Limits {
            total: 0,
            per_uid: 1,
        });
        let now = Instant::now();
        for pid in 0..10_000u32 {
            budget.admit(&record(1000, pid + 1, "10.0.0.1"), now);
        }
        let summaries = budget.summaries();
        assert!(summaries.len() <= MAX_SUMMARIES + 1, "{}", summaries.len());
        assert_eq!(summaries.iter().map(|s| s.count).sum::<u64>(), 9_999);
    }
}
