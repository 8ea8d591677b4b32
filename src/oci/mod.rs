//! The OCI (and Docker v2 schema 2) documents of an image, for reading and writing: a typed digest and
//! media type, descriptors, configs, manifests and indexes that keep fields we do not model, and
//! [`Document`], which keeps the exact bytes a digest was computed over.
//!
//! Maps are `BTreeMap` and fields are declared in the order they are written, so a document we make
//! serializes to the same bytes on every run.

mod config;
mod descriptor;
mod digest;
mod docker;
mod document;
mod manifest;
mod media_type;
pub mod platform;

pub use config::{ContainerConfig, DiffIds, EmptyObject, History, ImageConfig};
pub use descriptor::Descriptor;
pub(crate) use digest::VerifyingReader;
pub use digest::{Algorithm, Digest, Hasher, HashingWriter};
pub(crate) use docker::DockerManifestEntry;
pub use document::Document;
pub(crate) use document::to_json_bytes;
pub use manifest::{Index, Manifest};
pub use media_type::{Compression, MediaType};

/// The only layout version containerd accepts.
pub(crate) const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Annotation naming the image's tag in an OCI index (`skopeo`, `umoci`).
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation naming the image's full reference, as containerd reads it.
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Annotation recording when the image was created (RFC 3339).
pub(crate) const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Annotation naming the base image the image was built on.
pub(crate) const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation recording the base image's manifest digest.
pub(crate) const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// `null` in a document we read means "absent": Docker writes `"Cmd": null`, `"Labels": null`.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Fields a document has that we do not model, kept as they were (a base image's `Volumes`,
/// `Healthcheck`, `OnBuild`, `os.version`, unknown annotations' neighbours ...).
pub type Extra = std::collections::BTreeMap<String, serde_json::Value>;
