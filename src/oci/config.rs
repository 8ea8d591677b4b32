//! The image configuration: how a container runs, and the history and diff ids of its layers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Digest, Extra, null_as_default};

/// The image configuration (`application/vnd.oci.image.config.v1+json`, or Docker's).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    /// CPU architecture, Go's name (`amd64`, `arm64`).
    pub architecture: String,
    /// How a container runs: entrypoint, environment, user ...
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: ContainerConfig,
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// One entry per layer (or empty layer), oldest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub history: Vec<History>,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// The uncompressed layer digests.
    pub rootfs: DiffIds,
    /// CPU variant, e.g. `v7` for arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Fields we do not model, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How a container runs: the `config` object of an image configuration (Docker's capitalised keys).
/// Keys we do not model (`Volumes`, `Healthcheck`, `OnBuild`, `Shell` ...) are kept in `extra`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// The program and its first arguments.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// Environment, `KEY=VALUE` entries.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// Labels, shown by `docker inspect`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Default arguments after the entrypoint.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// User to run as, `UID[:GID]` or `NAME[:GROUP]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `{"8080/tcp": {}}`, the shape docker uses.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Fields we do not model (`ExposedPorts`, `Volumes` ...), kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Serializes as `{}`; reads any object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EmptyObject {}

impl<'de> Deserialize<'de> for EmptyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EmptyObject, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(EmptyObject {})
    }
}

/// One history entry; we write one per layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made the layer, e.g. `COPY app /app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// A free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who made the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// True for entries that added no layer (`ENV`, `CMD` ...): they have no diff id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Fields we do not model, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The uncompressed layer digests, bottom layer first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiffIds {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digest of each layer's uncompressed tar, in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for DiffIds {
    fn default() -> Self {
        DiffIds {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}
