//! Where images and blobs come from: an image archive or OCI layout on disk, a registry, the blob cache,
//! the layers we build. Every source hands out blobs through one trait, and every read is checked
//! against the descriptor's digest and size, so the sinks (the archive writer, the registry push) never
//! need to know where a blob came from.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, VerifyingReader};

/// Something blobs can be read from.
pub trait BlobSource: Sync {
    /// Opens the blob `descriptor` names. The reader yields exactly `descriptor.size` bytes and fails
    /// (on its last read) when they do not hash to the digest.
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;

    /// Names the source in messages (a path, `registry/repository`).
    fn describe(&self) -> String;
}

/// Where blobs go as they are made, when their digest is known only at their end (a layer): the
/// archive being written (in one pass), or a spool of blobs for a push without an archive.
pub(crate) trait BlobSink {
    /// Stores the blob `write` streams into the writer it is given; `write` returns the blob's digest.
    fn put_streamed(
        &mut self,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<Digest>,
    ) -> Result<()>;
}

/// Reads a small blob (a manifest, index or config) whole: at most `limit` bytes, digest checked.
pub(crate) fn read_document(
    source: &dyn BlobSource,
    descriptor: &Descriptor,
    limit: u64,
) -> Result<Vec<u8>> {
    if descriptor.size > limit {
        return Err(Error::Invalid(format!(
            "{}: {} {} has {} bytes, more than the {} KiB accepted for a JSON document",
            source.describe(),
            descriptor.media_type,
            descriptor.digest,
            descriptor.size,
            limit >> 10
        )));
    }
    let mut bytes = Vec::with_capacity(descriptor.size as usize);
    source
        .open(descriptor)?
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(source, descriptor, e))?;
    Ok(bytes)
}

/// An I/O error while reading a blob, naming the source and the blob.
pub fn read_error(source: &dyn BlobSource, descriptor: &Descriptor, e: std::io::Error) -> Error {
    Error::Invalid(format!(
        "{}: reading {}: {}",
        source.describe(),
        descriptor.digest,
        crate::util::sanitize::outside(&e.to_string(), crate::util::sanitize::EXCERPT)
    ))
}

/// Blobs held in memory: the configs and manifests we make.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    blobs: BTreeMap<Digest, Vec<u8>>,
}

impl Memory {
    /// An empty store.
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Keeps `bytes` under their digest.
    pub fn insert(&mut self, digest: Digest, bytes: Vec<u8>) {
        self.blobs.insert(digest, bytes);
    }

    /// Whether the blob with `digest` is held.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }
}

impl BlobSource for Memory {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let bytes = self.blobs.get(&descriptor.digest).ok_or_else(|| {
            Error::Invalid(format!(
                "blob {} is not among the built ones",
                descriptor.digest
            ))
        })?;
        Ok(Box::new(VerifyingReader::new(
            bytes.as_slice(),
            descriptor.digest.clone(),
            descriptor.size,
        )))
    }

    fn describe(&self) -> String {
        "the image being built".to_owned()
    }
}

/// Several sources, each blob read from the one that has it.
#[derive(Default)]
pub(crate) struct Composite<'a> {
    sources: Vec<Part<'a>>,
    routes: BTreeMap<Digest, usize>,
}

/// One source of a [`Composite`]: borrowed, or owned by it.
enum Part<'a> {
    Borrowed(&'a dyn BlobSource),
    Owned(Box<dyn BlobSource + 'a>),
}

impl Part<'_> {
    fn source(&self) -> &dyn BlobSource {
        match self {
            Part::Borrowed(source) => *source,
            Part::Owned(source) => source.as_ref(),
        }
    }
}

impl<'a> Composite<'a> {
    /// A composite of no stores yet.
    pub fn new() -> Composite<'a> {
        Composite::default()
    }

    /// Adds `source` for the blobs in `digests` (later additions win for a digest both have).
    pub fn add(&mut self, source: &'a dyn BlobSource, digests: impl IntoIterator<Item = Digest>) {
        self.add_part(Part::Borrowed(source), digests);
    }

    /// [`add`](Composite::add), the composite keeping `source`.
    pub fn add_owned(
        &mut self,
        source: Box<dyn BlobSource + 'a>,
        digests: impl IntoIterator<Item = Digest>,
    ) {
        self.add_part(Part::Owned(source), digests);
    }

    fn add_part(&mut self, part: Part<'a>, digests: impl IntoIterator<Item = Digest>) {
        let index = self.sources.len();
        self.sources.push(part);
        for digest in digests {
            self.routes.insert(digest, index);
        }
    }
}

impl BlobSource for Composite<'_> {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let index = self
            .routes
            .get(&descriptor.digest)
            .ok_or_else(|| Error::Invalid(format!("no source holds blob {}", descriptor.digest)))?;
        self.sources[*index].source().open(descriptor)
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(|s| s.source().describe()).collect();
        names.join(" + ")
    }
}
