//! An image and where its bytes are: what every source yields (an archive or layout directory, a
//! registry, the image just built, a base) and every sink takes (a registry push, a runtime load).

use std::collections::BTreeMap;

use super::ImageTree;
use super::blobs::BlobSource;
use super::referrers::Attachment;
use crate::error::Result;
use crate::oci::{Descriptor, Digest};

/// An image, its blobs and what is attached to it.
pub struct Stored<'s> {
    /// How the image was named where it came from (a reference, an archive path and tag, the name
    /// of the image being built): for messages and the `base.name` annotation.
    pub name: String,
    /// Its manifests: one, or an index over several.
    pub tree: ImageTree,
    /// Where every blob of the tree and of the referrers is read from, each read verified.
    pub blobs: Box<dyn BlobSource + 's>,
    /// The documents attached to the image (their blobs are in `blobs` too).
    pub referrers: Vec<Attachment>,
    /// Registry repositories known to hold some of the blobs, as `(host, repository)` by digest: a
    /// push to the same registry mounts them instead of uploading them.
    pub mount_from: BTreeMap<Digest, (String, String)>,
}

impl<'s> Stored<'s> {
    /// The image `top` names in `blobs` (its index and manifests read and checked), with nothing
    /// attached and no repository known to hold its blobs.
    pub fn read(name: String, blobs: Box<dyn BlobSource + 's>, top: &Descriptor) -> Result<Self> {
        let tree = ImageTree::read(blobs.as_ref(), top)?;
        Ok(Stored {
            name,
            tree,
            blobs,
            referrers: Vec::new(),
            mount_from: BTreeMap::new(),
        })
    }

    /// What a registry calls the image: the manifest's digest, or the index's for several platforms.
    pub fn digest(&self) -> &Digest {
        &self.tree.top.digest
    }

    /// The digests of every blob of the tree (configs and layers), each once.
    pub fn blob_digests(&self) -> Vec<Digest> {
        self.tree
            .blobs()
            .into_iter()
            .map(|d| d.digest.clone())
            .collect()
    }

    /// The same image, with every blob known to be in `repository` of the registry `host`.
    pub fn held_by(mut self, host: &str, repository: &str) -> Self {
        for digest in self.blob_digests() {
            self.mount_from
                .insert(digest, (host.to_owned(), repository.to_owned()));
        }
        self
    }
}

impl std::fmt::Debug for Stored<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("name", &self.name)
            .field("digest", self.digest())
            .field("blobs", &self.blobs.describe())
            .field("referrers", &self.referrers.len())
            .finish_non_exhaustive()
    }
}
