//! The image model every source and sink speaks: one platform's [`Image`] (manifest and config
//! documents), and the [`ImageTree`] a reference names (one manifest, or an index over several), read
//! from any [`BlobSource`] within fixed bounds.

pub mod blobs;
pub mod reference;
pub(crate) mod referrers;
pub mod signatures;
pub(crate) mod spool;
mod stored;

pub use stored::Stored;

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::image::blobs::{BlobSource, read_document};
use crate::oci::platform::Platform;
use crate::oci::{Descriptor, Document, ImageConfig, Index, Manifest, MediaType};
use crate::util::sanitize;

/// Largest JSON document we read (index, manifest, config): registries accept manifests of at least
/// 4 MiB.
pub const MAX_DOCUMENT: u64 = 4 << 20;
/// Total JSON read for one tree, whatever it lists.
const MAX_TOTAL_JSON: u64 = 64 << 20;
/// Distinct manifests in one image index.
const MAX_MANIFESTS: usize = 1000;
/// Layers one manifest may list (docker allows 128).
const MAX_LAYERS: usize = 1000;

/// One platform's image as we build it: its config and the manifest pointing at it.
#[derive(Clone, Debug)]
pub struct Image {
    /// The platform the image runs on.
    pub platform: Platform,
    /// The image config, as serialized.
    pub config: Document<ImageConfig>,
    /// The manifest pointing at the config and layers, as serialized.
    pub manifest: Document<Manifest>,
}

impl Image {
    /// The manifest's descriptor, with the platform, as an index lists it.
    pub fn descriptor(&self) -> Descriptor {
        let mut descriptor = self.manifest.descriptor(MediaType::OciManifest);
        descriptor.platform = Some(self.platform.clone());
        descriptor
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.manifest.value().layers
    }
}

/// One manifest of a tree, as its index lists it (with the platform) or as the top of the tree.
#[derive(Clone, Debug)]
pub struct ManifestNode {
    /// The descriptor pointing at the manifest, with its platform when in an index.
    pub descriptor: Descriptor,
    /// The manifest, as serialized.
    pub manifest: Document<Manifest>,
}

impl ManifestNode {
    /// The config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        let manifest = self.manifest.value();
        std::iter::once(&manifest.config).chain(manifest.layers.iter())
    }
}

/// What a reference names: one image manifest, or an image index over several.
#[derive(Clone, Debug)]
pub struct ImageTree {
    /// The descriptor a tag points at.
    pub top: Descriptor,
    /// The index, when `top` is one.
    pub index: Option<Document<Index>>,
    /// Every manifest, `top` itself when it is one.
    pub manifests: Vec<ManifestNode>,
}

impl ImageTree {
    /// The tree of the images we built: the manifest itself for one, an OCI index over them for several.
    pub fn of_images(images: &[Image]) -> Result<ImageTree> {
        let nodes: Vec<ManifestNode> = images
            .iter()
            .map(|image| ManifestNode {
                descriptor: image.descriptor(),
                manifest: image.manifest.clone(),
            })
            .collect();
        match nodes.as_slice() {
            [] => Err(Error::Invalid("no image to write".to_owned())),
            [single] => Ok(ImageTree {
                top: single.descriptor.clone(),
                index: None,
                manifests: nodes,
            }),
            _ => {
                let index = Document::new(Index::new(
                    nodes.iter().map(|n| n.descriptor.clone()).collect(),
                ));
                Ok(ImageTree {
                    top: index.descriptor(MediaType::OciIndex),
                    index: Some(index),
                    manifests: nodes,
                })
            }
        }
    }

    /// The bytes `top` names.
    pub fn top_bytes(&self) -> &[u8] {
        match &self.index {
            Some(index) => index.bytes(),
            None => self.manifests[0].manifest.bytes(),
        }
    }

    /// Every config and layer of every manifest, each once, in order.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        let mut seen = BTreeSet::new();
        self.manifests
            .iter()
            .flat_map(ManifestNode::blobs)
            .filter(|d| seen.insert(&d.digest))
            .collect()
    }

    /// Reads the tree `top` names from `source`: the index (if it is one) and each distinct manifest
    /// once, every document digest-checked, within the caps on count and size.
    pub fn read(source: &dyn BlobSource, top: &Descriptor) -> Result<ImageTree> {
        let bad = |what: String| Error::Invalid(format!("{}: {what}", source.describe()));
        let mut budget = MAX_TOTAL_JSON;
        let mut read = |descriptor: &Descriptor| -> Result<Vec<u8>> {
            let bytes = read_document(source, descriptor, MAX_DOCUMENT)?;
            budget = budget.checked_sub(bytes.len() as u64).ok_or_else(|| {
                bad(format!(
                    "holds more than {} MiB of image documents; refusing to read more",
                    MAX_TOTAL_JSON >> 20
                ))
            })?;
            Ok(bytes)
        };
        refuse_unusable(source, top)?;
        if top.media_type.is_index() {
            let bytes = read(top)?;
            let index: Document<Index> = parse(source, bytes, top)?;
            let listed = &index.value().manifests;
            if listed.len() > MAX_MANIFESTS {
                return Err(bad(format!(
                    "has an image index listing {} manifests; at most {MAX_MANIFESTS} are accepted",
                    listed.len()
                )));
            }
            let mut seen = BTreeSet::new();
            let mut manifests = Vec::new();
            for descriptor in listed {
                if !seen.insert(descriptor.digest.clone()) {
                    continue;
                }
                if descriptor.media_type.is_index() {
                    return Err(bad(format!(
                        "has an image index inside an image index ({}), which is not supported",
                        descriptor.digest
                    )));
                }
                refuse_unusable(source, descriptor)?;
                let manifest = parse_manifest(source, read(descriptor)?, descriptor)?;
                manifests.push(ManifestNode {
                    descriptor: descriptor.clone(),
                    manifest,
                });
            }
            Ok(ImageTree {
                top: top.clone(),
                index: Some(index),
                manifests,
            })
        } else {
            let manifest = parse_manifest(source, read(top)?, top)?;
            Ok(ImageTree {
                top: top.clone(),
                index: None,
                manifests: vec![ManifestNode {
                    descriptor: top.clone(),
                    manifest,
                }],
            })
        }
    }
}

/// Reads and parses an image configuration.
pub fn read_config(source: &dyn BlobSource, node: &ManifestNode) -> Result<Document<ImageConfig>> {
    let descriptor = &node.manifest.value().config;
    if !descriptor.media_type.is_config() {
        return Err(Error::Invalid(format!(
            "{}: manifest {} has a config of type `{}`, not an image configuration",
            source.describe(),
            node.descriptor.digest,
            sanitize::outside(descriptor.media_type.as_str(), 100)
        )));
    }
    let bytes = read_document(source, descriptor, MAX_DOCUMENT)?;
    parse(source, bytes, descriptor)
}

/// Refuses what no tool should read any more: Docker schema 1 manifests.
fn refuse_unusable(source: &dyn BlobSource, descriptor: &Descriptor) -> Result<()> {
    if descriptor.media_type == MediaType::DockerSchema1 {
        return Err(schema1(source, descriptor));
    }
    Ok(())
}

fn schema1(source: &dyn BlobSource, descriptor: &Descriptor) -> Error {
    Error::Invalid(format!(
        "{}: {} is a Docker schema 1 manifest, which is obsolete and not supported; push the image \
         again with a current docker or skopeo (schema 2 or OCI)",
        source.describe(),
        descriptor.digest
    ))
}

fn parse<T: serde::de::DeserializeOwned>(
    source: &dyn BlobSource,
    bytes: Vec<u8>,
    descriptor: &Descriptor,
) -> Result<Document<T>> {
    Document::parse(bytes, &descriptor.digest).map_err(|e| {
        Error::Invalid(format!(
            "{}: {} {} is not valid ({})",
            source.describe(),
            sanitize::outside(descriptor.media_type.as_str(), 100),
            descriptor.digest,
            sanitize::outside(&e.to_string(), sanitize::EXCERPT)
        ))
    })
}

fn parse_manifest(
    source: &dyn BlobSource,
    bytes: Vec<u8>,
    descriptor: &Descriptor,
) -> Result<Document<Manifest>> {
    let schema: Option<u64> = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("schemaVersion").and_then(serde_json::Value::as_u64));
    if schema == Some(1) {
        return Err(schema1(source, descriptor));
    }
    let manifest: Document<Manifest> = parse(source, bytes, descriptor)?;
    let layers = manifest.value().layers.len();
    if layers > MAX_LAYERS {
        return Err(Error::Invalid(format!(
            "{}: manifest {} lists {layers} layers; at most {MAX_LAYERS} are accepted",
            source.describe(),
            descriptor.digest
        )));
    }
    Ok(manifest)
}
