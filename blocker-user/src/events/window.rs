//! Aggregation of repeats: the first attempt of a (process, destination, list) is reported at
//! once; further attempts within the window are counted and reported as one summary line when
//! the window closes. Summed over lines, `count` equals the number of attempts exactly.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// What identifies "the same" attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub pid: u32,
    pub dst: IpAddr,
    pub list_id: u16,
    pub action: u8,
}

/// Repeats seen in an open window.
#[derive(Debug)]
pub struct Repeats<T> {
    /// The first attempt's details, to build the summary line from.
    pub template: T,
    pub count: u64,
    pub first_boot_ns: u64,
    pub last_boot_ns: u64,
}

struct Open<T> {
    opened: Instant,
    repeats: Option<Repeats<T>>,
}

pub struct Window<T> {
    period: Duration,
    open: HashMap<Key, Open<T>>,
}

/// What to do with an attempt.
pub enum Admission {
    /// First in its window: report it now.
    Report,
    /// Counted into the window's summary.
    Absorbed,
}

impl<T: Clone> Window<T> {
    /// A zero period disables aggregation: every attempt is reported.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            open: HashMap::new(),
        }
    }

    /// Admits one attempt. `template` is only called for the first repeat of a window.
    pub fn admit(
        &mut self,
        key: Key,
        boot_ns: u64,
        now: Instant,
        template: impl FnOnce() -> T,
    ) -> Admission {
        if self.period.is_zero() {
            return Admission::Report;
        }
        match self.open.get_mut(&key) {
            // Inside the window, or past it with a summary not yet handed out by `expire`:
            // count it into that summary, so no attempt is ever lost between the two.
            Some(open)
                if now.duration_since(open.opened) < self.period || open.repeats.is_some() =>
            {
                match &mut open.repeats {
                    Some(r) => {
                        r.count += 1;
                        r.last_boot_ns = boot_ns;
                    }
                    None => {
                        open.repeats = Some(Repeats {
                            template: template(),
                            count: 1,
                            first_boot_ns: boot_ns,
                            last_boot_ns: boot_ns,
                        })
                    }
                }
                Admission::Absorbed
            }
            _ => {
                self.open.insert(
                    key,
                    Open {
                        opened: now,
                        repeats: None,
                    },
                );
                Admission::Report
            }
        }
    }

    /// Closes windows older than the period and returns their repeats (if any).
    pub fn expire(&mut self, now: Instant) -> Vec<Repeats<T>> {
        let period = self.period;
        let mut out = Vec::new();
        self.open.retain(|_, open| {
            if now.duration_since(open.opened) < period {
                return true;
            }
            out.extend(open.repeats.take());
            false
        });
        out
    }

    /// Closes every window (at shutdown).
    pub fn flush(&mut self) -> Vec<Repeats<T>> {
        self.open.drain().filter_map(|(_, o)| o.repeats).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32) -> Key {
        Key {
            pid,
            dst: "192.0.2.1".parse().expect("addr"),
            list_id: 1,
            action: 0,
        }
    }

    #[test]
    fn counts_add_up_to_the_attempts_exactly() {
        let mut w: Window<u32> = Window::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut reported = 0u64;
        for i in 0..1000u64 {
            if let Admission::Report = w.admit(key(1), i, t0 + Duration::from_millis(i), || 7) {
                reported += 1;
            }
        }
        let summaries = w.expire(t0 + Duration::from_secs(11));
        assert_eq!(reported, 1);
        assert_eq!(summaries.len(), 1);
        assert_eq!(reported + summaries[0].count, 1000);
        assert_eq!(
            (summaries[0].first_boot_ns, summaries[0].last_boot_ns),
            (1, 999)
        );
    }

    #[test]
    fn different_processes_are_separate_and_a_zero_window_reports_all() {
        let mut w: Window<()> = Window::new(Duration::from_secs(10));
        let now = Instant::now();
        assert!(matches!(w.admit(key(1), 0, now, || ()), Admission::Report));
        assert!(matches!(w.admit(key(2), 0, now, || ()), Admission::Report));
        let mut off: Window<()> = Window::new(Duration::ZERO);
        assert!(matches!(
            off.admit(key(1), 0, now, || ()),
            Admission::Report
        ));
        assert!(matches!(
            off.admit(key(1), 0, now, || ()),
            Admission::Report
        ));
    }

    #[test]
    fn a_late_attempt_never_loses_an_unexpired_summary() {
        let mut w: Window<()> = Window::new(Duration::from_secs(1));
        let t0 = Instant::now();
        w.admit(key(1), 0, t0, || ());
        w.admit(key(1), 1, t0, || ());
        // After the period but before expire(): counted into the pending summary.
        assert!(matches!(
            w.admit(key(1), 2, t0 + Duration::from_secs(2), || ()),
            Admission::Absorbed
        ));
        let s = w.expire(t0 + Duration::from_secs(2));
        assert_eq!(s[0].count, 2, "the late attempt joins the pending summary");
        assert!(matches!(
            w.admit(key(1), 3, t0 + Duration::from_secs(2), || ()),
            Admission::Report
        ));
    }
}
