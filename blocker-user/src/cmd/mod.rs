//! One module per subcommand, each exposing `run`.
pub mod check;
pub mod run;
