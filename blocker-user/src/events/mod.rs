//! Events, from the kernel's ring buffer to every consumer: `decode` the fixed-size records,
//! `describe` each as an [`EventRecord`] (the one documented schema, in `record`), aggregate
//! repeats in a `window`, and publish through the `hub` to the `sinks` (stdout, file, socket
//! subscribers, metrics). `pipeline` wires these together for the daemon.

pub mod budget;
pub mod cache;
pub mod clock;
pub mod decode;
pub mod describe;
pub mod formats;
pub mod hub;
pub mod pipeline;
pub mod process;
pub mod record;
pub mod sinks;
pub mod window;

pub use decode::{decode, destination};
pub use describe::{describe, summary, window_key};
pub use process::ProcessInfo;
pub use record::EventRecord;
