//! An image as the tar a runtime loads: the OCI layout with Docker's `manifest.json`, written front to
//! back into any writer (a socket, a pipe) by [`LayoutWriter`], as the image archive is; and the
//! choice of the manifests to send.

use std::io::Write;

use crate::image::ImageTree;
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::layout::write::{LayoutWriter, Naming};
use crate::oci::platform::Platform;
use crate::util::cancel::CancelToken;
use crate::util::timestamp::Timestamp;

pub(crate) use crate::layout::write::Failure;

/// Writes the image `tree` names as a tar: blobs from `blobs`, then `index.json` (named `name`, if
/// given), `manifest.json` and `oci-layout`, every entry stamped with the epoch. Docker's
/// `manifest.json` describes the first manifest, so a tree meant for docker holds the one platform to
/// load; it is sent only to a runtime that reads zstd (Docker before 23.0 is refused zstd layers
/// before this).
pub(crate) fn write_image(
    out: &mut dyn Write,
    tree: &ImageTree,
    blobs: &dyn BlobSource,
    name: Option<&Reference>,
    cancel: &CancelToken,
) -> std::result::Result<(), Failure> {
    let naming = Naming {
        name,
        docker_image: 0,
        reader_knows_zstd: true,
    };
    LayoutWriter::new(out, Timestamp::EPOCH, cancel)?.finish(tree, blobs, naming)?;
    Ok(())
}

/// The platform of each manifest of `tree`, as its descriptor says (`None` when unlabelled).
pub(crate) fn platforms(tree: &ImageTree) -> Vec<Option<&Platform>> {
    tree.manifests
        .iter()
        .map(|node| node.descriptor.platform.as_ref())
        .collect()
}

/// `tree` reduced to the manifest for `wanted` (arm variants compared as containerd does); `None` when
/// it has none.
pub(crate) fn for_platform(tree: &ImageTree, wanted: &Platform) -> Option<ImageTree> {
    let index = tree.manifests.iter().position(|node| {
        node.descriptor
            .platform
            .as_ref()
            .is_some_and(|offered| wanted.matches(offered))
    })?;
    Some(single(tree, index))
}

/// `tree` reduced to its manifest number `index`.
pub(crate) fn single(tree: &ImageTree, index: usize) -> ImageTree {
    let node = tree.manifests[index].clone();
    ImageTree {
        top: node.descriptor.clone(),
        index: None,
        manifests: vec![node],
    }
}

/// `os/arch[/variant]` of every platform `tree` has, for messages.
pub(crate) fn describe_platforms(tree: &ImageTree) -> String {
    let names: Vec<String> = platforms(tree)
        .into_iter()
        .map(|p| p.map_or_else(|| "unlabelled".to_owned(), ToString::to_string))
        .collect();
    names.join(", ")
}
