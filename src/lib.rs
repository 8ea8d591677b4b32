//! Build OCI container images from a static Linux executable, without Docker.
//!
//! The data flows one way: an executable is checked ([`elf`], [`platform`]), written into a
//! compressed [`layer`] streamed straight into the output [`archive`], described by an [`image`]
//! config and manifest, and indexed so that skopeo, podman, containerd and `docker load` accept it.
//! [`package::package_executable`] does all of it for one program.

pub mod archive;
pub mod cancel;
pub mod cargo;
pub mod cli;
pub mod compose;
pub mod compress;
pub mod destination;
pub mod elf;
pub mod error;
pub mod essentials;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod layer;
pub mod oci;
pub mod options;
pub mod package;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod report;
pub mod sanitize;
pub mod source;
pub mod tarball;
pub mod timestamp;

pub use error::{Error, Result};
