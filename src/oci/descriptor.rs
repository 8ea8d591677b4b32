//! Descriptors: what a blob is, its digest and size, and what else the pointer says about it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Digest, Extra, MediaType, null_as_default};
use crate::oci::platform::Platform;

/// A pointer to a blob.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is (manifest, config, layer ...).
    pub media_type: MediaType,
    /// The blob's content digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The platform of the manifest, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations, e.g. the tag in an index.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The artifact type, for a referrer's manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Other places the blob may be fetched from (non-distributable layers).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
    /// Fields we do not model, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Descriptor {
    /// A descriptor with no platform, annotations or URLs.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type,
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            artifact_type: None,
            urls: Vec::new(),
            extra: Extra::new(),
        }
    }
}
