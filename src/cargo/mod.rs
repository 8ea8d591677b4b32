//! `cargo zeroimage` as a library call: read the workspace and its settings, build the crate for each
//! target, and package the executable ([`CargoJob`]).

pub(crate) mod build;
mod c_code;
mod config;
mod job;
mod lockfile;
mod options;
pub(crate) mod plan;
pub(crate) mod sbom;
mod select;
pub mod settings;
mod supply;
pub(crate) mod target;
mod toolchain;
pub(crate) mod workspace;
mod zig;

pub use job::{CargoImage, CargoJob, CargoOutcome};
pub use options::CargoOptions;
pub use target::Target;
