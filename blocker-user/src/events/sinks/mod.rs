//! Where event lines go: stdout and a file (`writer`), journald natively (`journal`),
//! subscribers on the Unix socket (`socket`), and the Prometheus endpoint's counts (`metrics`)
//! and server (`http`).

pub mod http;
pub mod journal;
pub mod metrics;
pub mod socket;
pub mod writer;
