//! Assembling an image from a program: the checks of an executable ([`elf`], [`loader`]), what a base's
//! filesystem holds ([`rootfs`]), the layers (`layer`, [`essentials`]) and the config (`compose`,
//! [`options`]).

pub(crate) mod compose;
pub mod elf;
pub mod essentials;
pub(crate) mod layer;
pub mod loader;
pub mod options;
pub mod rootfs;

/// The `PATH` an image gets when nothing sets one (what `docker build` gives a FROM scratch image).
pub use compose::DEFAULT_PATH_ENV;
