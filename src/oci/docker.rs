//! Docker's `manifest.json`, which `docker load` reads instead of `index.json`.

use serde::{Deserialize, Serialize};

use super::{Extra, null_as_default};

/// One entry of Docker's `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifestEntry {
    /// Path of the config blob in the archive.
    pub config: String,
    /// The names the image is loaded under, `NAME:TAG`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    /// Paths of the layer tars in the archive, oldest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<String>,
    /// Fields we do not model, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}
