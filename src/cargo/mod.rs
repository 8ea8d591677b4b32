//! `cargo zeroimage` as a library call: read the workspace and its settings, build the crate for each
//! target, and package the executable ([`CargoJob`]).

pub(crate) mod build;
mod job;
mod select;
pub(crate) mod settings;
mod supply;
pub(crate) mod target;
pub(crate) mod workspace;

pub use job::{CargoJob, CargoOptions, CargoOutcome};
