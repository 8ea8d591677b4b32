//! An OCI image layout directory (`skopeo copy ... oci:DIR`, `umoci`, `--oci-layout`): `index.json`
//! and `blobs/<algorithm>/<hex>` files, and the documents attached to its images in `referrers.json`
//! (where `--oci-layout` lists them, as the archive does).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::read::ArchivedImage;
use crate::error::{Error, Result};
use crate::image::blobs::{BlobSource, read_document};
use crate::image::referrers::REFERRERS_FILE;
use crate::image::{ImageTree, MAX_DOCUMENT};
use crate::oci::{Descriptor, Digest, Index, Manifest, VerifyingReader};
use crate::util::fsutil;
use crate::util::sanitize;

/// Largest `index.json` (or `referrers.json`) we read.
const MAX_INDEX: u64 = 4 << 20;
/// Entries of `referrers.json` looked at for an image's documents.
const MAX_REFERRERS: usize = 1000;

/// An opened layout directory.
#[derive(Debug)]
pub struct LayoutSource {
    dir: PathBuf,
    images: Vec<ArchivedImage>,
    /// `referrers.json`: the documents attached to its images.
    referrers: Option<Index>,
}

/// The subject of the artifact manifest `descriptor` names in `blobs`; `None` when it cannot be read.
pub(crate) fn subject_of(blobs: &dyn BlobSource, descriptor: &Descriptor) -> Option<Digest> {
    let bytes = read_document(blobs, descriptor, MAX_DOCUMENT).ok()?;
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    manifest.subject.map(|s| s.digest)
}

/// Reads the layout's `referrers.json` at `path`, if there is one.
pub(crate) fn read_referrers(path: &Path) -> Result<Option<Index>> {
    let Some(bytes) =
        fsutil::read_regular_if_present(path, MAX_INDEX, "an OCI layout's referrers.json")?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::input(
            path,
            format!(
                "is not a valid image index ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })
}

impl LayoutSource {
    /// Reads `dir/index.json`.
    pub fn open(dir: &Path) -> Result<LayoutSource> {
        let index_path = dir.join("index.json");
        let bytes = fsutil::read_regular(&index_path, MAX_INDEX, "an OCI layout's index.json")?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(
                &index_path,
                format!(
                    "is not a valid image index ({})",
                    sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                ),
            )
        })?;
        let images = super::read::images_of(index);
        let referrers = read_referrers(&dir.join(REFERRERS_FILE))?;
        Ok(LayoutSource {
            dir: dir.to_owned(),
            images,
            referrers,
        })
    }

    /// The blobs of the layout at `dir`, without reading its `index.json` (it lists no image).
    pub(crate) fn blobs_of(dir: &Path) -> LayoutSource {
        LayoutSource {
            dir: dir.to_owned(),
            images: Vec::new(),
            referrers: None,
        }
    }

    /// The documents `referrers.json` lists (as `--oci-layout` writes it, the archive's way) about
    /// the image `tree`, as a referrers index; `None` when there are none. An entry whose artifact
    /// manifest cannot be read or is about another image is left out: a layout holds several images.
    pub fn referrers_of(&self, tree: &ImageTree) -> Option<Index> {
        let listed = self.referrers.as_ref()?;
        let mut subjects: BTreeSet<&Digest> = tree
            .manifests
            .iter()
            .map(|n| &n.descriptor.digest)
            .collect();
        subjects.insert(&tree.top.digest);
        let found: Vec<Descriptor> = listed
            .manifests
            .iter()
            .filter(|d| d.media_type.is_manifest())
            .take(MAX_REFERRERS)
            .filter(|d| subject_of(self, d).is_some_and(|s| subjects.contains(&s)))
            .cloned()
            .collect();
        (!found.is_empty()).then(|| Index::new(found))
    }

    /// The images `index.json` lists.
    pub fn images(&self) -> &[ArchivedImage] {
        &self.images
    }

    /// The one image of the layout, or the one named `tag`; see [`super::read::select`].
    pub fn select(&self, tag: Option<&str>) -> Result<&ArchivedImage> {
        super::read::select(&self.images, tag, &self.dir)
    }
}

impl BlobSource for LayoutSource {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        // The digest is validated, so this path stays inside the layout.
        let path = self.dir.join(descriptor.digest.blob_path());
        let file = fsutil::open_regular(&path, "a blob of an OCI layout")?;
        let size = file.metadata().map_err(Error::io("reading", &path))?.len();
        if size != descriptor.size {
            return Err(Error::input(
                &path,
                format!(
                    "has {size} bytes, but its descriptor says {}",
                    descriptor.size
                ),
            ));
        }
        Ok(Box::new(VerifyingReader::new(
            file,
            descriptor.digest.clone(),
            size,
        )))
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}
