//! Reading an image archive back without extracting it: where each entry's bytes are, and blob reads
//! that verify the digest as they go. Whatever the archive claims, memory stays bounded: only the
//! layout's own entries are indexed, each document is read at most once, and the number of manifests and
//! the total JSON read are capped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::oci::{Digest, MEDIA_TYPE_INDEX};
use crate::sanitize;
use crate::tarball::{TarSource, Walker};

/// Largest JSON document we read into memory (index.json, manifests, indexes): registries accept
/// manifests of at least 4 MiB.
const MAX_DOCUMENT: u64 = 4 << 20;
/// Total JSON read for one image, whatever the archive lists.
const MAX_TOTAL_JSON: u64 = 64 << 20;
/// Distinct manifests in one image index.
const MAX_MANIFESTS: usize = 1000;
/// Blobs a single manifest may reference (docker allows 128 layers).
const MAX_BLOBS_PER_MANIFEST: usize = 1000;
/// Layout entries indexed from one archive.
const MAX_INDEXED: usize = 100_000;

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

/// An opened archive: the offset and size of every layout entry (`index.json`, `oci-layout`,
/// `manifest.json`, `blobs/sha256/<hex>`).
#[derive(Debug)]
pub struct ArchiveReader {
    path: PathBuf,
    entries: BTreeMap<String, (u64, u64)>,
    /// The archive's bytes when they are held in memory; else the file at `path` is read.
    memory: Option<Arc<[u8]>>,
}

/// A reader over part of an archive, in its file or in memory.
pub enum ArchiveData {
    File(File),
    Memory(Cursor<Arc<[u8]>>),
}

impl Read for ArchiveData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ArchiveData::File(file) => file.read(buf),
            ArchiveData::Memory(cursor) => cursor.read(buf),
        }
    }
}

/// Whether `name` is an entry of an OCI image layout that we index.
fn is_layout_entry(name: &str) -> bool {
    matches!(name, "index.json" | "oci-layout" | "manifest.json")
        || name
            .strip_prefix("blobs/")
            .and_then(|rest| Digest::parse(&rest.replacen('/', ":", 1)))
            .is_some()
}

/// The offset and size of every layout entry of the tar stream `source`; errors name `path`.
fn index_entries(path: &Path, source: impl TarSource) -> Result<BTreeMap<String, (u64, u64)>> {
    let bad = |e: io::Error| {
        Error::input(
            path,
            format!(
                "is not a readable tar archive ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    };
    let mut walker = Walker::new(source);
    let mut entries = BTreeMap::new();
    while let Some(entry) = walker.next_entry().map_err(bad)? {
        crate::cancel::check()?;
        if !entry.kind.is_file() {
            continue;
        }
        let Some(name) = entry.name() else { continue };
        if !is_layout_entry(name) {
            continue;
        }
        if entries.len() >= MAX_INDEXED && !entries.contains_key(name) {
            return Err(Error::input(
                path,
                format!(
                    "holds more than {MAX_INDEXED} blobs; it is not an image archive we can push"
                ),
            ));
        }
        entries.insert(name.to_owned(), (entry.offset, entry.size));
    }
    Ok(entries)
}

impl ArchiveReader {
    /// Indexes the archive at `path`, which must be a regular file.
    pub fn open(path: &Path) -> Result<ArchiveReader> {
        let file = crate::fsutil::open_regular(path, "an image archive")?;
        Ok(ArchiveReader {
            path: path.to_owned(),
            entries: index_entries(path, file)?,
            memory: None,
        })
    }

    /// Indexes an archive held in memory; errors name it `name`.
    pub fn from_bytes(name: &Path, bytes: impl Into<Arc<[u8]>>) -> Result<ArchiveReader> {
        let bytes: Arc<[u8]> = bytes.into();
        Ok(ArchiveReader {
            path: name.to_owned(),
            entries: index_entries(name, Cursor::new(Arc::clone(&bytes)))?,
            memory: Some(bytes),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn locate(&self, name: &str) -> Result<(u64, u64)> {
        self.entries.get(name).copied().ok_or_else(|| {
            Error::input(
                &self.path,
                format!(
                    "has no `{}`; is it an OCI image archive?",
                    sanitize::outside(name, sanitize::EXCERPT)
                ),
            )
        })
    }

    fn read_range(&self, offset: u64, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_DOCUMENT {
            return Err(Error::input(
                &self.path,
                format!(
                    "{what} has {size} bytes, more than the {} MiB accepted for a JSON document",
                    MAX_DOCUMENT >> 20
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.open_range(offset, size)?
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", &self.path))?;
        if bytes.len() as u64 != size {
            return Err(Error::input(
                &self.path,
                format!("ends inside {what}; the archive is truncated"),
            ));
        }
        Ok(bytes)
    }

    /// Reads a small entry into memory.
    pub fn read_entry(&self, name: &str) -> Result<Vec<u8>> {
        let (offset, size) = self.locate(name)?;
        self.read_range(offset, size, &format!("`{name}`"))
    }

    fn digest_of(&self, descriptor: &FoundDescriptor) -> Result<Digest> {
        Digest::parse(&descriptor.digest).ok_or_else(|| {
            Error::input(
                &self.path,
                format!(
                    "refers to an unsupported digest `{}`",
                    sanitize::outside(&descriptor.digest, 80)
                ),
            )
        })
    }

    /// Where a blob's bytes are: offset and size in the archive file. Fails when it is missing or its
    /// size is not the descriptor's.
    pub fn blob_range(&self, descriptor: &FoundDescriptor) -> Result<(u64, u64)> {
        let digest = self.digest_of(descriptor)?;
        let (offset, size) = self.locate(&digest.blob_path())?;
        if size != descriptor.size {
            return Err(Error::input(
                &self.path,
                format!(
                    "blob {digest} has {size} bytes but its descriptor says {}",
                    descriptor.size
                ),
            ));
        }
        Ok((offset, size))
    }

    /// Reads a small blob and checks its digest.
    pub fn read_blob(&self, descriptor: &FoundDescriptor) -> Result<Vec<u8>> {
        let digest = self.digest_of(descriptor)?;
        let (offset, size) = self.blob_range(descriptor)?;
        let bytes = self.read_range(offset, size, &format!("blob {digest}"))?;
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(Error::input(
                &self.path,
                format!("blob {digest} is corrupt (its content hashes to {actual})"),
            ));
        }
        Ok(bytes)
    }

    /// A reader over `size` bytes at `offset`.
    pub fn open_range(&self, offset: u64, size: u64) -> Result<io::Take<ArchiveData>> {
        Ok(self.open_at(offset)?.take(size))
    }

    fn open_at(&self, offset: u64) -> Result<ArchiveData> {
        if let Some(bytes) = &self.memory {
            let mut cursor = Cursor::new(Arc::clone(bytes));
            cursor.set_position(offset);
            return Ok(ArchiveData::Memory(cursor));
        }
        let mut file = crate::fsutil::open_regular(&self.path, "an image archive")?;
        file.seek(SeekFrom::Start(offset))
            .map_err(Error::io("reading", &self.path))?;
        Ok(ArchiveData::File(file))
    }

    /// A reader over a blob that checks the digest when its last byte is read, and fails that read on a
    /// mismatch: the bytes that would complete an upload never leave.
    pub fn verified_blob(
        &self,
        descriptor: &FoundDescriptor,
    ) -> Result<VerifyingReader<ArchiveData>> {
        let digest = self.digest_of(descriptor)?;
        let (offset, size) = self.blob_range(descriptor)?;
        Ok(VerifyingReader::new(self.open_at(offset)?, digest, size))
    }

    /// Reads `index.json` and everything it points at (one image or an image index of images): each
    /// distinct manifest once, within the caps on count and total size.
    pub fn image(&self) -> Result<ArchiveImage> {
        let bad = |what: String| Error::input(&self.path, what);
        let mut budget = MAX_TOTAL_JSON;
        let mut charge = |bytes: &[u8]| -> Result<()> {
            budget = budget.checked_sub(bytes.len() as u64).ok_or_else(|| {
                bad(format!(
                    "holds more than {} MiB of image documents; refusing to read more",
                    MAX_TOTAL_JSON >> 20
                ))
            })?;
            Ok(())
        };
        let index_bytes = self.read_entry("index.json")?;
        charge(&index_bytes)?;
        let index: IndexDoc = serde_json::from_slice(&index_bytes).map_err(|e| {
            bad(format!(
                "has an invalid index.json ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ))
        })?;
        let [top] = index.manifests.as_slice() else {
            return Err(bad(format!(
                "lists {} images in index.json; push needs exactly one (an image or an image index)",
                index.manifests.len()
            )));
        };
        let (listed, index) = if top.media_type == MEDIA_TYPE_INDEX {
            let bytes = self.read_blob(top)?;
            charge(&bytes)?;
            let inner: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| {
                bad(format!(
                    "has an invalid image index {} ({})",
                    sanitize::outside(&top.digest, 80),
                    sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                ))
            })?;
            (inner.manifests, Some((top.clone(), bytes)))
        } else {
            (vec![top.clone()], None)
        };
        if listed.len() > MAX_MANIFESTS {
            return Err(bad(format!(
                "has an image index listing {} manifests; at most {MAX_MANIFESTS} are accepted",
                listed.len()
            )));
        }
        let mut seen = BTreeSet::new();
        let mut manifests = Vec::new();
        for descriptor in listed {
            if !seen.insert(descriptor.digest.clone()) {
                continue;
            }
            let bytes = self.read_blob(&descriptor)?;
            charge(&bytes)?;
            let doc: ManifestDoc = serde_json::from_slice(&bytes).map_err(|e| {
                bad(format!(
                    "has an invalid manifest {} ({})",
                    sanitize::outside(&descriptor.digest, 80),
                    sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                ))
            })?;
            if doc.layers.len() >= MAX_BLOBS_PER_MANIFEST {
                return Err(bad(format!(
                    "has a manifest with {} layers; at most {MAX_BLOBS_PER_MANIFEST} are accepted",
                    doc.layers.len()
                )));
            }
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

/// Hashes exactly `size` bytes; the read that delivers the last of them fails instead when the content
/// does not hash to the digest, and the stream ending early is an error too.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    size: u64,
    read: u64,
    checked: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, size: u64) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            size,
            read: 0,
            checked: false,
        }
    }

    fn verify(&mut self) -> io::Result<()> {
        self.checked = true;
        let actual = Digest::of_hasher(std::mem::take(&mut self.hasher));
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is corrupt (its content hashes to {actual})",
                    self.expected
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read == self.size {
            if !self.checked {
                // An empty blob: nothing to deliver, but the content still has to match.
                self.verify()?;
            }
            return Ok(0);
        }
        let want = usize::try_from(self.size - self.read).map_or(buf.len(), |l| l.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the archive ends inside blob {}", self.expected),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if self.read == self.size {
            self.verify()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_reader_fails_the_last_read_on_a_mismatch() {
        let data = b"hello world";
        let good = Digest::of(data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], good.clone(), 11)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let bad = Digest::of(b"hello worle");
        let mut reader = VerifyingReader::new(&data[..], bad, 11);
        let mut buf = [0u8; 4];
        let mut delivered = 0;
        let err = loop {
            match reader.read(&mut buf) {
                Ok(n) => delivered += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(delivered < 11, "the final bytes were held back");

        let err = VerifyingReader::new(&data[..5], good, 11)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = VerifyingReader::new(&b""[..], Digest::of(b"x"), 0)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        VerifyingReader::new(&b""[..], Digest::of(b""), 0)
            .read_to_end(&mut Vec::new())
            .unwrap();
    }

    #[test]
    fn only_layout_entries_are_indexed() {
        let d = Digest::of(b"x");
        assert!(is_layout_entry(&d.blob_path()));
        assert!(is_layout_entry("index.json"));
        assert!(!is_layout_entry("blobs/sha256/../../etc/passwd"));
        assert!(!is_layout_entry("other.txt"));
    }
}
