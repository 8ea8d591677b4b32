//! The OCI image layout, in a tar archive or a directory: read as a source of images, written as the
//! archive or the stream a runtime loads.

pub(crate) mod archive;
pub(crate) mod dir;
pub mod read;
pub mod store;
pub(crate) mod write;

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::image::referrers::Attachments;
use crate::image::{ImageTree, Stored};
use crate::oci::{Descriptor, Index};
use crate::util::cancel::CancelToken;
use crate::util::sanitize;
use dir::LayoutSource;
use read::{ArchiveSource, ArchivedImage};

/// An image archive or an OCI layout directory, opened.
#[derive(Debug)]
pub enum Layout {
    /// An OCI layout or Docker archive in a tar file.
    Archive(Box<ArchiveSource>),
    /// An OCI layout directory.
    Dir(Box<LayoutSource>),
}

impl Layout {
    /// Opens `path`: a directory is an OCI layout, a file an archive. A missing path is `Ok(None)`,
    /// so that each caller names what it expected there. Indexing an archive stops when `cancel` is
    /// cancelled.
    pub fn open(path: &Path, cancel: &CancelToken) -> Result<Option<Layout>> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", path)(e)),
        };
        Ok(Some(if meta.is_dir() {
            Layout::Dir(Box::new(LayoutSource::open(path)?))
        } else {
            Layout::Archive(Box::new(ArchiveSource::open(path, cancel)?))
        }))
    }

    /// The one image it holds, or the one named `tag`.
    pub fn select(&self, tag: Option<&str>) -> Result<&ArchivedImage> {
        match self {
            Layout::Archive(archive) => archive.select(tag),
            Layout::Dir(dir) => dir.select(tag),
        }
    }

    /// The attached documents it lists (`referrers.json`) about the image `tree`: all of an
    /// archive's (it holds one image), those of a layout directory whose subject is in `tree`.
    pub fn referrers(&self, tree: &ImageTree) -> Option<Index> {
        match self {
            Layout::Archive(archive) => archive.referrers().cloned(),
            Layout::Dir(dir) => dir.referrers_of(tree),
        }
    }
}

impl BlobSource for Layout {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        match self {
            Layout::Archive(archive) => archive.open(descriptor),
            Layout::Dir(dir) => dir.open(descriptor),
        }
    }

    fn describe(&self) -> String {
        match self {
            Layout::Archive(archive) => archive.describe(),
            Layout::Dir(dir) => dir.describe(),
        }
    }
}

/// The image in the archive or layout directory at `path` (the one it holds, or the one named
/// `tag`), with the documents attached to it there; `cancel` stops the indexing of an archive.
pub fn open(path: &Path, tag: Option<&str>, cancel: &CancelToken) -> Result<Stored<'static>> {
    open_named(path, tag, cancel).map(|(stored, _)| stored)
}

/// [`open`], with the names the layout records for the image (`ref.name` annotations, Docker's
/// `RepoTags`).
pub fn open_named(
    path: &Path,
    tag: Option<&str>,
    cancel: &CancelToken,
) -> Result<(Stored<'static>, Vec<String>)> {
    let layout = Layout::open(path, cancel)?
        .ok_or_else(|| Error::input(path, "no such image archive or OCI layout directory"))?;
    let selected = layout.select(tag)?;
    let (top, names) = (selected.descriptor.clone(), selected.names.clone());
    if !(top.media_type.is_index() || top.media_type.is_manifest()) {
        return Err(Error::input(
            path,
            format!(
                "{} is a `{}`, not an image or an image index",
                top.digest,
                sanitize::outside(top.media_type.as_str(), 100)
            ),
        ));
    }
    let name = match tag {
        Some(tag) => format!("{}:{tag}", path.display()),
        None => path.display().to_string(),
    };
    let tree = ImageTree::read(&layout, &top)?;
    let listed = layout.referrers(&tree);
    let referrers = Attachments::read(&layout, listed.as_ref(), &tree)?.items;
    let stored = Stored {
        name,
        tree,
        blobs: Box::new(layout),
        referrers,
        mount_from: std::collections::BTreeMap::new(),
    };
    Ok((stored, names))
}
