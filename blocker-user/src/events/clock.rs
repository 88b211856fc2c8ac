//! Kernel event stamps are `CLOCK_BOOTTIME`; events show wall-clock time.

use std::time::{Duration, SystemTime};

/// An RFC 3339 UTC time with microseconds for a boot-clock stamp.
pub fn rfc3339(boot_ns: u64) -> String {
    humantime::format_rfc3339_micros(wall_time(boot_ns)).to_string()
}

/// Converts a `CLOCK_BOOTTIME` stamp to wall-clock time, using the clocks' current offset.
pub fn wall_time(boot_ns: u64) -> SystemTime {
    let now_wall = SystemTime::now();
    let now_boot = boottime_ns();
    let age = Duration::from_nanos(now_boot.saturating_sub(boot_ns));
    now_wall.checked_sub(age).unwrap_or(now_wall)
}

pub fn boottime_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_stamps_become_recent_wall_time() {
        let age = SystemTime::now()
            .duration_since(wall_time(boottime_ns() - 1_000_000))
            .expect("not in the future");
        assert!(age < Duration::from_secs(5), "{age:?}");
    }
}
