//! Reading an image archive back without extracting it: where each entry's bytes are, and blob reads
//! that verify the digest as they go.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::oci::{Digest, MEDIA_TYPE_INDEX};

/// Largest JSON document we read into memory (manifests, configs, indexes).
const MAX_DOCUMENT: u64 = 16 << 20;

/// A descriptor as found in a manifest or index we read.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FoundDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
struct IndexDoc {
    manifests: Vec<FoundDescriptor>,
}

#[derive(Debug, Deserialize)]
struct ManifestDoc {
    config: FoundDescriptor,
    layers: Vec<FoundDescriptor>,
}

/// One image manifest of the archive with everything it references.
#[derive(Clone, Debug)]
pub struct ManifestEntry {
    pub descriptor: FoundDescriptor,
    pub bytes: Vec<u8>,
    /// Config first, then layers.
    pub blobs: Vec<FoundDescriptor>,
}

/// What an archive holds: its manifests (one, or one per platform) and, for several platforms, the
/// image index over them.
#[derive(Clone, Debug)]
pub struct ArchiveImage {
    pub manifests: Vec<ManifestEntry>,
    /// The image index blob, when the archive's top descriptor is one.
    pub index: Option<(FoundDescriptor, Vec<u8>)>,
}

impl ArchiveImage {
    /// The descriptor and bytes that a tag should point at.
    pub fn top(&self) -> (&FoundDescriptor, &[u8]) {
        match &self.index {
            Some((d, bytes)) => (d, bytes),
            None => (&self.manifests[0].descriptor, &self.manifests[0].bytes),
        }
    }
}

/// An opened archive: the offset and size of every regular entry.
#[derive(Debug)]
pub struct ArchiveReader {
    path: PathBuf,
    entries: BTreeMap<String, (u64, u64)>,
}

impl ArchiveReader {
    pub fn open(path: &Path) -> Result<ArchiveReader> {
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::input(path, "no such archive"),
            _ => Error::io("opening", path)(e),
        })?;
        let mut archive = tar::Archive::new(file);
        let bad = |e: io::Error| Error::input(path, format!("is not a readable tar archive ({e})"));
        let mut entries = BTreeMap::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if entry.header().entry_type().is_file() {
                let name = entry
                    .path()
                    .map_err(bad)?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_owned();
                entries.insert(name, (entry.raw_file_position(), entry.size()));
            }
        }
        Ok(ArchiveReader {
            path: path.to_owned(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn locate(&self, name: &str) -> Result<(u64, u64)> {
        self.entries.get(name).copied().ok_or_else(|| {
            Error::input(
                &self.path,
                format!("has no `{name}`; is it an OCI image archive?"),
            )
        })
    }

    /// Reads a small entry into memory.
    pub fn read_entry(&self, name: &str) -> Result<Vec<u8>> {
        let (offset, size) = self.locate(name)?;
        if size > MAX_DOCUMENT {
            return Err(Error::input(
                &self.path,
                format!("`{name}` is too large for a JSON document"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.open_range(offset, size)?
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", &self.path))?;
        Ok(bytes)
    }

    /// Where a blob's bytes are: offset and size in the archive file. Fails when it is missing or its
    /// size is not the descriptor's.
    pub fn blob_range(&self, descriptor: &FoundDescriptor) -> Result<(u64, u64)> {
        let digest = Digest::parse(&descriptor.digest).ok_or_else(|| {
            Error::input(
                &self.path,
                format!("refers to an unsupported digest `{}`", descriptor.digest),
            )
        })?;
        let (offset, size) = self.locate(&digest.blob_path())?;
        if size != descriptor.size {
            return Err(Error::input(
                &self.path,
                format!(
                    "blob {} has {size} bytes but its descriptor says {}",
                    descriptor.digest, descriptor.size
                ),
            ));
        }
        Ok((offset, size))
    }

    /// Reads a small blob and checks its digest.
    pub fn read_blob(&self, descriptor: &FoundDescriptor) -> Result<Vec<u8>> {
        let (offset, size) = self.blob_range(descriptor)?;
        if size > MAX_DOCUMENT {
            return Err(Error::input(
                &self.path,
                format!(
                    "blob {} is too large for a JSON document",
                    descriptor.digest
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.open_range(offset, size)?
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", &self.path))?;
        let actual = Digest::of(&bytes).to_string();
        if actual != descriptor.digest {
            return Err(Error::input(
                &self.path,
                format!(
                    "blob {} is corrupt (its content hashes to {actual})",
                    descriptor.digest
                ),
            ));
        }
        Ok(bytes)
    }

    /// A reader over `size` bytes at `offset`.
    pub fn open_range(&self, offset: u64, size: u64) -> Result<io::Take<File>> {
        let mut file = File::open(&self.path).map_err(Error::io("opening", &self.path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(Error::io("reading", &self.path))?;
        Ok(file.take(size))
    }

    /// A reader over a blob that fails at its end if the bytes do not hash to the digest.
    pub fn verified_blob(
        &self,
        descriptor: &FoundDescriptor,
    ) -> Result<VerifyingReader<io::Take<File>>> {
        let (offset, size) = self.blob_range(descriptor)?;
        Ok(VerifyingReader {
            inner: self.open_range(offset, size)?,
            hasher: Sha256::new(),
            expected: descriptor.digest.clone(),
            done: false,
        })
    }

    /// Reads `index.json` and everything it points at (one image or an image index of images).
    pub fn image(&self) -> Result<ArchiveImage> {
        let bad = |what: String| Error::input(&self.path, what);
        let index: IndexDoc = serde_json::from_slice(&self.read_entry("index.json")?)
            .map_err(|e| bad(format!("has an invalid index.json ({e})")))?;
        let [top] = index.manifests.as_slice() else {
            return Err(bad(format!(
                "lists {} images in index.json; push needs exactly one (an image or an image index)",
                index.manifests.len()
            )));
        };
        let (manifest_descriptors, index) = if top.media_type == MEDIA_TYPE_INDEX {
            let bytes = self.read_blob(top)?;
            let inner: IndexDoc = serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("has an invalid image index {} ({e})", top.digest)))?;
            (inner.manifests, Some((top.clone(), bytes)))
        } else {
            (vec![top.clone()], None)
        };
        let mut manifests = Vec::new();
        for descriptor in manifest_descriptors {
            let bytes = self.read_blob(&descriptor)?;
            let doc: ManifestDoc = serde_json::from_slice(&bytes).map_err(|e| {
                bad(format!(
                    "has an invalid manifest {} ({e})",
                    descriptor.digest
                ))
            })?;
            let mut blobs = vec![doc.config];
            blobs.extend(doc.layers);
            for blob in &blobs {
                self.blob_range(blob)?;
            }
            manifests.push(ManifestEntry {
                descriptor,
                bytes,
                blobs,
            });
        }
        Ok(ArchiveImage { manifests, index })
    }
}

/// Hashes what it reads; at the end of the stream, a digest mismatch becomes an I/O error.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    done: bool,
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let actual = Digest::of_hasher(std::mem::take(&mut self.hasher)).to_string();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is corrupt (its content hashes to {actual})",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}
