//! An image as the tar a runtime loads: the OCI layout with Docker's `manifest.json`, written front to
//! back into any writer (a socket, a pipe), every blob read from its source and checked on the way.
//! Nothing is held in memory but the small documents and one copy buffer.

use std::io::{self, Read, Write};

use crate::error::Error;
use crate::image::ImageTree;
use crate::image::blobs::{BlobSource, read_error};
use crate::image::reference::Reference;
use crate::layout::archive::layout_documents;
use crate::oci::OCI_LAYOUT;
use crate::oci::platform::Platform;
use crate::util::cancel::CancelToken;

const BLOCK: usize = 512;

/// Why a stream stopped: the reader went away (its own message says why), or a blob could not be read.
#[derive(Debug)]
pub(crate) enum Failure {
    Write(io::Error),
    Source(Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Write(e)
    }
}

/// Writes the image `tree` names as a tar: blobs from `blobs`, then `index.json` (named `name`, if
/// given), `manifest.json` and `oci-layout`. Docker's `manifest.json` describes the first manifest, so
/// a tree meant for docker holds the one platform to load.
pub(crate) fn write_image(
    out: &mut dyn Write,
    tree: &ImageTree,
    blobs: &dyn BlobSource,
    name: Option<&Reference>,
    cancel: &CancelToken,
) -> std::result::Result<(), Failure> {
    entry(out, "blobs", 0, true)?;
    entry(out, "blobs/sha256", 0, true)?;
    let mut buf = vec![0u8; 256 << 10];
    for descriptor in tree.blobs() {
        entry(out, &descriptor.digest.blob_path(), descriptor.size, false)?;
        let mut reader = blobs.open(descriptor).map_err(Failure::Source)?;
        let mut copied = 0u64;
        loop {
            cancel.check().map_err(Failure::Source)?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Source(read_error(blobs, descriptor, e))),
            };
            out.write_all(&buf[..n])?;
            copied += n as u64;
        }
        if copied != descriptor.size {
            return Err(Failure::Source(Error::Invalid(format!(
                "{}: blob {} has {copied} bytes, not {}",
                blobs.describe(),
                descriptor.digest,
                descriptor.size
            ))));
        }
        pad(out, descriptor.size)?;
    }
    let mut documents: Vec<(String, &[u8])> = tree
        .manifests
        .iter()
        .map(|node| (node.manifest.digest().blob_path(), node.manifest.bytes()))
        .collect();
    if let Some(index) = &tree.index {
        documents.push((index.digest().blob_path(), index.bytes()));
    }
    // Sent only to a runtime that reads zstd (Docker before 23.0 is refused zstd layers before this).
    let (index, docker) = layout_documents(tree, name, 0, true).map_err(Failure::Source)?;
    documents.push(("index.json".to_owned(), &index));
    if let Some(docker) = &docker {
        documents.push(("manifest.json".to_owned(), docker));
    }
    documents.push(("oci-layout".to_owned(), OCI_LAYOUT.as_bytes()));
    for (path, bytes) in documents {
        entry(out, &path, bytes.len() as u64, false)?;
        out.write_all(bytes)?;
        pad(out, bytes.len() as u64)?;
    }
    out.write_all(&[0u8; 2 * BLOCK])?;
    out.flush()?;
    Ok(())
}

fn entry(
    out: &mut dyn Write,
    path: &str,
    size: u64,
    dir: bool,
) -> std::result::Result<(), Failure> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(path)
        .map_err(|e| Failure::Source(Error::Invalid(format!("tar entry `{path}`: {e}"))))?;
    header.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header.set_mode(if dir { 0o755 } else { 0o644 });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_cksum();
    out.write_all(header.as_bytes())?;
    Ok(())
}

fn pad(out: &mut dyn Write, size: u64) -> io::Result<()> {
    let padding = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
    out.write_all(&[0u8; BLOCK][..padding])
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
