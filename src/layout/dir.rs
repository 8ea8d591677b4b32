//! An OCI image layout directory (`skopeo copy ... oci:DIR`, `umoci`): `index.json` and
//! `blobs/<algorithm>/<hex>` files.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::read::ArchivedImage;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::oci::{Descriptor, Index, VerifyingReader};
use crate::util::fsutil;
use crate::util::sanitize;

/// Largest `index.json` we read.
const MAX_INDEX: u64 = 4 << 20;

/// An opened layout directory.
#[derive(Debug)]
pub struct LayoutSource {
    dir: PathBuf,
    images: Vec<ArchivedImage>,
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
        Ok(LayoutSource {
            dir: dir.to_owned(),
            images,
        })
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
