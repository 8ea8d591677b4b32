//! Checking the signatures of an image in a registry (`zeroimage verify`, `--from-verify-key`): the
//! tag or digest resolved once, then its `.sig` and `.att` tags and its referrers read within
//! bounds, each blob verified against its digest.

use super::pull::{PullOptions, RegistrySource};
use crate::context::Context;
use crate::error::Result;
use crate::image::ImageTree;
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::image::signatures::{self, MAX_REFERRERS_READ, SignatureStore, Verification};
use crate::oci::{Descriptor, Digest};
use crate::sign::PublicKey;

impl SignatureStore for RegistrySource<'_> {
    fn tag_document(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        self.optional_document(tag)
    }

    fn referrers_of(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        self.referrers(subject, MAX_REFERRERS_READ)
    }

    fn blobs(&self) -> &dyn BlobSource {
        self
    }
}

/// Checks that `key` signed the image `reference` names (and with `attestations`, its attestations).
pub fn verify(
    reference: &Reference,
    key: &PublicKey,
    attestations: bool,
    options: &PullOptions,
    cx: &Context,
) -> Result<Verification> {
    let (source, top) = RegistrySource::resolve(reference, options, cx)?;
    let tree = ImageTree::read(&source, &top)?;
    let repository = format!("{}/{}", source.host(), source.repository());
    signatures::verify(&source, &tree, &repository, key, attestations)
}
