//! vendorwall's daemon and CLI as a library, so tests and the thin `main.rs` share one code path.
//!
//! The modules follow the data flow: `config` and `lists` decide what to block, `kernel` puts it
//! into the pinned maps and attaches the programs, `verdict` is the programs' decision
//! written once in userspace (for `check` and the sweep), `events` turns what the programs
//! report into lines for the sinks, `daemon` keeps all of it in force, and `cmd` is one module per subcommand.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod events;
pub mod exemptions;
pub mod history;
pub mod kernel;
pub mod lists;
pub mod names;
pub mod report;
pub mod software;
pub mod verdict;
