//! Build OCI container images from static Linux executables, without Docker.
//!
//! Each executable is checked ([`assemble::elf`], [`oci::platform`]), written into a compressed
//! layer streamed straight into the output archive, described by an [`image`] config and manifest
//! ([`oci`]), and indexed so that skopeo, podman, containerd and `docker load` accept it. [`Job`] is
//! the whole `zeroimage` run (default output name, staging, push to a [`registry`]); [`CargoJob`] is
//! the whole `cargo zeroimage` run, building the crate with cargo first; [`ResolveJob`] rewrites
//! Kubernetes YAML. Each image gets an [`sbom`] (and, when asked, SLSA provenance) attached as OCI 1.1
//! referrers, and goes to its sinks ([`Publish`]: a registry push, a load into runtimes) as a
//! [`Stored`] image. Each run gets a [`Context`] from its caller: the library prints nothing
//! (progress goes to its [`Listener`]), catches no signal (its [`CancelToken`] stops the run) and reads
//! registry credentials through its [`Keychain`] (by default the ones docker and podman store).
//!
//! The types re-exported here are the interface to start from; the modules hold the rest. The
//! interface is experimental: it follows the needs of the two commands and may change in any release.
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
pub mod sign;
pub(crate) mod tar;
pub mod util;

pub use cargo::{CargoImage, CargoJob, CargoOptions, CargoOutcome};
pub use context::{Context, Credential, Keychain};
pub use image::reference::Reference;
pub use image::{ImageTree, Stored};
pub use job::publish::{Publish, Published};
pub use job::{Job, JobOptions, JobOutcome};
pub use report::{Listener, Silent};
pub use resolve::ResolveJob;
pub use util::cancel::CancelToken;

#[cfg(test)]
mod layering;

pub use error::{Error, Result};
