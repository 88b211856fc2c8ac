//! Fuzzes the config file: any text must give a config or an error naming the file, never a
//! panic; and a config that validates must be one the daemon can run with: every interval
//! non-zero and representable as a deadline (a zero or huge one panics tokio's timers), the
//! ring buffer a power of two, every map at least one entry.
#![no_main]

use std::time::{Duration, Instant};

use blocker_user::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.toml");
    match Config::parse(path, text) {
        Ok(config) => {
            let now = Instant::now();
            for interval in [
                config.refresh_interval,
                config.integrity_check_interval,
                config.http.timeout,
            ] {
                assert!(!interval.is_zero(), "{interval:?}");
                assert!(now.checked_add(interval).is_some(), "{interval:?}");
            }
            assert!(now.checked_add(config.events.aggregate_window).is_some());
            assert!(config.events.aggregate_window <= Duration::from_secs(86_400));
            assert!(config.maps.events_bytes.is_power_of_two());
            assert!(config.maps.block_v4 > 0 && config.maps.block_v6 > 0);
            assert!((0.0..=1.0).contains(&config.max_shrink));
        }
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains("fuzz.toml"), "{message}");
            assert!(matches!(
                err,
                ConfigError::Parse { .. } | ConfigError::Invalid { .. }
            ));
        }
    }
});
