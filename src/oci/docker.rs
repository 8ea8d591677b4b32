//! Docker's `manifest.json`, which `docker load` reads instead of `index.json`.

use serde::{Deserialize, Serialize};

use super::{Extra, null_as_default};

/// One entry of Docker's `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifestEntry {
    pub config: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}
