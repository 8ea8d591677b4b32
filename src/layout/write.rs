//! Writing an OCI image layout as a tar, front to back, into any writer: the image archive (a file,
//! see `archive.rs`) and the stream a runtime loads (a socket or a pipe, written by the
//! `load` module) are both written here, so they hold the same entries in the same order:
//! `blobs/`, `blobs/sha256/`, every blob once, `index.json`, Docker's `manifest.json`, `oci-layout`
//! and, when documents are attached, `referrers.json`. Blobs are read from their source and checked
//! on the way; nothing is held in memory but the small documents and one copy buffer.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::image::ImageTree;
use crate::image::blobs::{BlobSource, read_error};
use crate::image::reference::Reference;
use crate::image::referrers::{Attachments, REFERRERS_FILE};
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Compression, Descriptor, Digest,
    DockerManifestEntry, Document, Index, OCI_LAYOUT, to_json_bytes,
};
use crate::tar::write::{self as tar_write, Entry, Header};
use crate::util::cancel::CancelToken;
use crate::util::timestamp::Timestamp;

/// Blobs are copied in pieces of this size.
const COPY_SIZE: usize = 256 << 10;

/// Why writing stopped: the writer failed (for a stream, the reader went away: its own message says
/// why), or a blob could not be read.
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

/// How `index.json` and Docker's `manifest.json` describe the image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Naming<'a> {
    /// The name both give the image (`index.json` as annotations, `manifest.json` as a tag), if any.
    pub name: Option<&'a Reference>,
    /// The manifest `manifest.json` describes: Docker's format cannot describe several platforms.
    pub docker_image: usize,
    /// The Docker that reads it is known to read zstd layers.
    pub reader_knows_zstd: bool,
}

/// An OCI layout being written as a tar into `W`. Every entry is root's and stamped with one time;
/// a blob is stored once however often it is added.
pub(crate) struct LayoutWriter<W> {
    out: W,
    mtime: u64,
    blobs: BTreeSet<Digest>,
    /// What `referrers.json` lists, when documents are attached.
    referrers: Vec<Descriptor>,
    /// Stops a blob copy at its next chunk.
    cancel: CancelToken,
}

impl<W: Write> LayoutWriter<W> {
    /// Starts the layout in `out`: its `blobs` and `blobs/sha256` directories. Entries get `mtime`.
    pub fn new(
        out: W,
        mtime: Timestamp,
        cancel: &CancelToken,
    ) -> std::result::Result<LayoutWriter<W>, Failure> {
        let mut layout = LayoutWriter {
            out,
            mtime: mtime.unix_seconds(),
            blobs: BTreeSet::new(),
            referrers: Vec::new(),
            cancel: cancel.clone(),
        };
        for dir in ["blobs", "blobs/sha256"] {
            let header = header(&Entry::dir(dir, layout.mtime))?;
            layout.out.write_all(header.as_bytes())?;
        }
        Ok(layout)
    }

    /// The writer, to add an entry the layout cannot write itself (see
    /// [`record_blob`](Self::record_blob)).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Notes that `digest` is stored (its entry written by the caller); false when it already was, and
    /// the caller's copy should go.
    pub fn record_blob(&mut self, digest: &Digest) -> bool {
        self.blobs.insert(digest.clone())
    }

    /// The header of the blob `digest` of `size` bytes.
    pub fn blob_header(&self, digest: &Digest, size: u64) -> std::result::Result<Header, Failure> {
        header(&Entry::file(&digest.blob_path(), size, self.mtime))
    }

    /// Stores a blob held in memory (a manifest or index); a blob already stored is skipped.
    pub fn add_blob(&mut self, digest: &Digest, bytes: &[u8]) -> std::result::Result<(), Failure> {
        if self.blobs.insert(digest.clone()) {
            self.add_file(&digest.blob_path(), bytes)?;
        }
        Ok(())
    }

    /// Copies a blob from `source` (a base layer, a config), streaming it; its digest is checked as it
    /// goes and a blob already stored is skipped.
    pub fn copy_blob(
        &mut self,
        source: &dyn BlobSource,
        descriptor: &Descriptor,
    ) -> std::result::Result<(), Failure> {
        if self.blobs.contains(&descriptor.digest) {
            return Ok(());
        }
        let header = self.blob_header(&descriptor.digest, descriptor.size)?;
        self.out.write_all(header.as_bytes())?;
        let mut reader = source.open(descriptor).map_err(Failure::Source)?;
        let mut buf = vec![0u8; COPY_SIZE];
        let mut copied = 0u64;
        loop {
            self.cancel.check().map_err(Failure::Source)?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Source(read_error(source, descriptor, e))),
            };
            self.out.write_all(&buf[..n])?;
            copied += n as u64;
        }
        if copied != descriptor.size {
            return Err(Failure::Source(Error::Invalid(format!(
                "{}: blob {} has {copied} bytes, not {}",
                source.describe(),
                descriptor.digest,
                descriptor.size
            ))));
        }
        tar_write::pad(&mut self.out, descriptor.size)?;
        self.blobs.insert(descriptor.digest.clone());
        Ok(())
    }

    /// Stores the attached documents and their artifact manifests, listed in `referrers.json` by
    /// [`finish`](Self::finish); `index.json` keeps its one descriptor.
    pub fn attach(&mut self, attachments: &Attachments) -> std::result::Result<(), Failure> {
        if attachments.is_empty() {
            return Ok(());
        }
        for blob in attachments.blobs() {
            self.copy_blob(&attachments.memory, &blob)?;
        }
        for item in &attachments.items {
            self.add_blob(item.manifest.digest(), item.manifest.bytes())?;
        }
        self.referrers
            .extend(attachments.index().value().manifests.iter().cloned());
        Ok(())
    }

    /// Writes every blob of `tree` not stored yet (read from `blobs`), its manifests and index, then
    /// `index.json` (one descriptor), Docker's `manifest.json` (left out when Docker could not read
    /// it, see [`layout_documents`]), `oci-layout` and `referrers.json` if documents are attached;
    /// ends the tar and flushes the writer.
    pub fn finish(
        mut self,
        tree: &ImageTree,
        blobs: &dyn BlobSource,
        naming: Naming<'_>,
    ) -> std::result::Result<W, Failure> {
        for blob in tree.blobs() {
            self.copy_blob(blobs, blob)?;
        }
        for node in &tree.manifests {
            self.add_blob(node.manifest.digest(), node.manifest.bytes())?;
        }
        if let Some(index) = &tree.index {
            self.add_blob(index.digest(), index.bytes())?;
        }
        let (index, docker) = layout_documents(
            tree,
            naming.name,
            naming.docker_image,
            naming.reader_knows_zstd,
        )
        .map_err(Failure::Source)?;
        self.add_file("index.json", &index)?;
        if let Some(docker) = docker {
            self.add_file("manifest.json", &docker)?;
        }
        self.add_file("oci-layout", OCI_LAYOUT.as_bytes())?;
        if !self.referrers.is_empty() {
            let index = Document::new(Index::new(std::mem::take(&mut self.referrers)));
            self.add_file(REFERRERS_FILE, index.bytes())?;
        }
        tar_write::end(&mut self.out)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn add_file(&mut self, path: &str, bytes: &[u8]) -> std::result::Result<(), Failure> {
        let header = header(&Entry::file(path, bytes.len() as u64, self.mtime))?;
        tar_write::write_entry(&mut self.out, &header, bytes)?;
        Ok(())
    }
}

/// The header of a layout entry. Plain ustar is enough here, unlike in layers: the longest name is a
/// blob's, `blobs/sha256/` and 64 hex digits (77 bytes), under the name field's 100.
fn header(entry: &Entry) -> std::result::Result<Header, Failure> {
    entry.header().map_err(|e| {
        let (tar_write::HeaderError::Path(e) | tar_write::HeaderError::Link(e)) = e;
        Failure::Source(Error::Invalid(format!(
            "archive entry name `{}`: {e}",
            entry.path
        )))
    })
}

/// The layout's `index.json` (one descriptor: `tree.top`, named when `name` is given) and Docker's
/// `manifest.json` for the manifest `docker_image` (Docker's format cannot describe several platforms).
/// `reader_knows_zstd`: the Docker that reads it is known to read zstd layers.
fn layout_documents(
    tree: &ImageTree,
    name: Option<&Reference>,
    docker_image: usize,
    reader_knows_zstd: bool,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let mut top = tree.top.clone();
    if let Some(name) = name {
        top.annotations
            .insert(ANNOTATION_CONTAINERD_NAME.to_owned(), name.full());
        top.annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.tag().to_owned());
    }
    let index = Index::new(vec![top]);
    let docker = tree
        .manifests
        .get(docker_image)
        .ok_or_else(|| Error::Invalid("no image to describe for docker".to_owned()))?
        .manifest
        .value();
    // Docker reads manifest.json as a promise it can load the layers; before Docker 23.0 it cannot read
    // zstd, so in an archive for any Docker such an image gets none (and `docker load` stops at once
    // instead of failing midway).
    let docker_readable = reader_knows_zstd
        || docker
            .layers
            .iter()
            .all(|l| l.media_type.layer_compression() != Some(Compression::Zstd));
    let docker = vec![DockerManifestEntry {
        config: docker.config.digest.blob_path(),
        repo_tags: name.map(Reference::familiar).into_iter().collect(),
        layers: docker.layers.iter().map(|l| l.digest.blob_path()).collect(),
        extra: std::collections::BTreeMap::default(),
    }];
    Ok((
        to_json_bytes(&index),
        docker_readable.then(|| to_json_bytes(&docker)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_fit_a_plain_ustar_name_field() {
        let blob = Digest::of(b"").blob_path();
        for name in [
            blob.as_str(),
            "index.json",
            "manifest.json",
            "oci-layout",
            REFERRERS_FILE,
        ] {
            assert!(name.len() <= 100, "{name}");
        }
        let layout = LayoutWriter::new(Vec::new(), Timestamp::EPOCH, &CancelToken::new()).unwrap();
        let header = layout.blob_header(&Digest::of(b""), 0).unwrap();
        assert_eq!(header.as_bytes().len(), tar_write::BLOCK);
        let header = ::tar::Header::from_byte_slice(header.as_bytes());
        assert_eq!(header.as_ustar().unwrap().prefix, [0u8; 155]);
    }
}
