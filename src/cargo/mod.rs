//! Everything `cargo zeroimage` needs from cargo: the workspace's metadata and settings, the target, and
//! the build itself with the executables it produced.

pub mod build;
pub mod settings;
pub mod target;
pub mod workspace;
