//! Where event lines go: stdout and a file (`writer`), journald natively (`journal`),
//! subscribers on the Unix socket (`socket`), and the Prometheus endpoint's counts (`metrics`)
//! and server (`http`); `stop` is the budget the sink threads share when the daemon stops.

pub mod http;
pub mod journal;
pub mod metrics;
pub mod socket;
pub mod stop;
pub mod writer;
