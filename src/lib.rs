//! Build OCI container images from static Linux executables, without Docker.
//!
//! Each executable is checked ([`assemble::elf`], [`oci::platform`]), written into a compressed layer streamed
//! straight into the output archive, described by an [`image`] config and manifest ([`oci`]), and
//! indexed so that skopeo, podman, containerd and `docker load` accept it. [`job::package::package`] does
//! that for one program per platform, FROM scratch or on a [`job::base`] image. [`job::Job`] is the whole
//! `zeroimage` run (default output name, staging, push to a [`registry`]); [`cargo::CargoJob`] is the
//! whole `cargo zeroimage` run, building the crate with cargo first. Each image gets an [`sbom`] (and,
//! when asked, SLSA provenance), [`sbom::attach`]ed as OCI 1.1 referrers. Each run gets a [`Context`]
//! from its caller: the library prints nothing (progress goes to its [`report::Listener`]), catches no
//! signal (its [`CancelToken`](util::cancel::CancelToken) stops the run) and reads registry credentials
//! through its [`Keychain`] (by default the ones docker and podman store).
//!
//! Packaging a static binary into an archive:
//!
//! ```no_run
//! use zeroimage::job::{Job, JobOptions};
//! use zeroimage::assemble::options::ImageOptions;
//! use zeroimage::job::package::Input;
//! use zeroimage::report::Silent;
//! use zeroimage::Context;
//!
//! fn main() -> zeroimage::Result<()> {
//!     let job = Job {
//!         inputs: vec![Input {
//!             path: "target/x86_64-unknown-linux-musl/release/app".into(),
//!             platform: Default::default(),
//!         }],
//!         options: JobOptions {
//!             output: Some("app.tar".into()),
//!             tag: Some("registry.example.com/app:1.0".parse()?),
//!             config: ImageOptions {
//!                 env: vec![("RUST_LOG".into(), "info".into())],
//!                 expose: vec!["8080/tcp".into()],
//!                 ..Default::default()
//!             },
//!             ..Default::default()
//!         },
//!     };
//!     let outcome = job.run(&Context::new(&Silent))?;
//!     if let Some(path) = &outcome.summary.path {
//!         println!("{} {}", path.display(), outcome.summary.digest);
//!     }
//!     Ok(())
//! }
//! ```

pub mod assemble;
pub mod cargo;
pub mod codec;
pub mod context;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod job;
pub mod layout;
pub mod load;
pub mod oci;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod sbom;
pub(crate) mod tar;
pub mod util;

pub use context::{Context, Credential, Keychain};

#[cfg(test)]
mod layering;

pub use error::{Error, Result};
