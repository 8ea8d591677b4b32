//! Image archives on disk, read in place without extracting: an OCI image layout in a tar (what we,
//! `skopeo copy ... oci-archive:` and Docker 25+ `docker save` write) or a Docker archive (`docker save`
//! before 25, `skopeo copy ... docker-archive:`), whose `manifest.json` is turned into an OCI manifest
//! over the same layer bytes. Whatever the archive claims, memory stays bounded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::image::blobs::{BlobSource, Memory};
use crate::oci::platform::Platform;
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Compression, Descriptor, Digest,
    DockerManifestEntry, Document, Extra, ImageConfig, Index, Manifest, MediaType, VerifyingReader,
};
use crate::tar::read::{TarSource, Walker};
use crate::util::cancel::CancelToken;
use crate::util::sanitize;

/// Largest `index.json` or `manifest.json` we read.
const MAX_TOP_DOCUMENT: u64 = 4 << 20;
/// Regular entries indexed from one archive.
const MAX_ENTRIES: usize = 100_000;
/// Total bytes of entry names kept while indexing.
const MAX_NAME_BYTES: usize = 16 << 20;
/// Images listed in one Docker `manifest.json`.
const MAX_DOCKER_IMAGES: usize = 1000;

/// One image an archive lists: its top descriptor (a manifest or an index) and the names it carries.
#[derive(Clone, Debug)]
pub struct ArchivedImage {
    /// The manifest or index the image's name points at.
    pub descriptor: Descriptor,
    /// Tags and names recorded for it (`ref.name` annotations, Docker's `RepoTags`).
    pub names: Vec<String>,
}

/// Where an archive's bytes are.
#[derive(Debug)]
enum Backing {
    File,
    /// An archive held in memory (the fuzz target reads its input this way).
    Memory(Arc<[u8]>),
}

/// A reader over a range of the archive.
enum RangeReader {
    File(io::Take<File>),
    Memory(io::Take<io::Cursor<Arc<[u8]>>>),
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RangeReader::File(file) => file.read(buf),
            RangeReader::Memory(cursor) => cursor.read(buf),
        }
    }
}

/// An opened archive.
#[derive(Debug)]
pub struct ArchiveSource {
    path: PathBuf,
    backing: Backing,
    /// Blobs by digest: where their bytes are in the archive file.
    blobs: BTreeMap<Digest, (u64, u64)>,
    /// Documents made for a Docker archive (its manifests).
    memory: Memory,
    images: Vec<ArchivedImage>,
    /// `referrers.json`: the documents attached to the image.
    referrers: Option<Index>,
}

impl ArchiveSource {
    /// Indexes the archive at `path`, which must be a regular file; stops when `cancel` is cancelled.
    pub fn open(path: &Path, cancel: &CancelToken) -> Result<ArchiveSource> {
        let file = crate::util::fsutil::open_regular(path, "an image archive")?;
        let entries = index_entries(path, file, cancel)?;
        Self::from_entries(path, Backing::File, entries, cancel)
    }

    /// An archive held in memory, named `name` in messages.
    pub fn from_bytes(
        name: &Path,
        bytes: impl Into<Arc<[u8]>>,
        cancel: &CancelToken,
    ) -> Result<ArchiveSource> {
        let bytes = bytes.into();
        let entries = index_entries(name, io::Cursor::new(bytes.clone()), cancel)?;
        Self::from_entries(name, Backing::Memory(bytes), entries, cancel)
    }

    fn from_entries(
        path: &Path,
        backing: Backing,
        entries: BTreeMap<String, (u64, u64)>,
        cancel: &CancelToken,
    ) -> Result<ArchiveSource> {
        let mut source = ArchiveSource {
            path: path.to_owned(),
            backing,
            blobs: BTreeMap::new(),
            memory: Memory::new(),
            images: Vec::new(),
            referrers: None,
        };
        for (name, range) in &entries {
            if let Some(digest) = name
                .strip_prefix("blobs/")
                .and_then(|rest| Digest::parse(&rest.replacen('/', ":", 1)))
            {
                source.blobs.insert(digest, *range);
            }
        }
        if entries.contains_key("index.json") {
            source.read_oci_index(&entries)?;
            source.read_referrers(&entries)?;
        } else if entries.contains_key("manifest.json") {
            source.read_docker_manifest(&entries, cancel)?;
        } else {
            return Err(Error::input(
                path,
                "has neither index.json nor manifest.json; it is not an OCI or Docker image archive",
            ));
        }
        Ok(source)
    }

    /// The archive file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images the archive lists.
    pub fn images(&self) -> &[ArchivedImage] {
        &self.images
    }

    /// The one image of the archive, or the one named `tag`; see [`select`].
    pub fn select(&self, tag: Option<&str>) -> Result<&ArchivedImage> {
        select(&self.images, tag, &self.path)
    }

    fn bad(&self, what: String) -> Error {
        Error::input(&self.path, what)
    }

    fn read_range(&self, (offset, size): (u64, u64), limit: u64, what: &str) -> Result<Vec<u8>> {
        if size > limit {
            return Err(self.bad(format!(
                "has a {what} of {size} bytes; at most {} KiB are accepted",
                limit >> 10
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.range_reader(offset, size)?
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", &self.path))?;
        if bytes.len() as u64 != size {
            return Err(self.bad(format!("ends inside its {what}; the archive is truncated")));
        }
        Ok(bytes)
    }

    fn range_reader(&self, offset: u64, size: u64) -> Result<RangeReader> {
        match &self.backing {
            Backing::File => {
                let mut file = crate::util::fsutil::open_regular(&self.path, "an image archive")?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(Error::io("reading", &self.path))?;
                Ok(RangeReader::File(file.take(size)))
            }
            Backing::Memory(bytes) => {
                let mut cursor = io::Cursor::new(bytes.clone());
                cursor.set_position(offset);
                Ok(RangeReader::Memory(cursor.take(size)))
            }
        }
    }

    fn read_oci_index(&mut self, entries: &BTreeMap<String, (u64, u64)>) -> Result<()> {
        let bytes = self.read_range(entries["index.json"], MAX_TOP_DOCUMENT, "index.json")?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad(format!(
                "has an invalid index.json ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ))
        })?;
        if index.manifests.len() > MAX_DOCKER_IMAGES {
            return Err(self.bad(format!(
                "lists {} images in index.json; at most {MAX_DOCKER_IMAGES} are accepted",
                index.manifests.len()
            )));
        }
        self.images = images_of(index);
        Ok(())
    }

    /// The index of attached documents (`referrers.json`), when the archive has one.
    pub fn referrers(&self) -> Option<&Index> {
        self.referrers.as_ref()
    }

    fn read_referrers(&mut self, entries: &BTreeMap<String, (u64, u64)>) -> Result<()> {
        let name = crate::image::referrers::REFERRERS_FILE;
        let Some(&range) = entries.get(name) else {
            return Ok(());
        };
        let bytes = self.read_range(range, MAX_TOP_DOCUMENT, name)?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad(format!(
                "has an invalid {name} ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ))
        })?;
        self.referrers = Some(index);
        Ok(())
    }

    /// Turns each entry of Docker's `manifest.json` into an OCI manifest over the same config and layer
    /// bytes: layer digests are computed by reading the layers once.
    fn read_docker_manifest(
        &mut self,
        entries: &BTreeMap<String, (u64, u64)>,
        cancel: &CancelToken,
    ) -> Result<()> {
        let bytes = self.read_range(entries["manifest.json"], MAX_TOP_DOCUMENT, "manifest.json")?;
        let listed: Vec<DockerManifestEntry> = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad(format!(
                "has an invalid manifest.json ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ))
        })?;
        if listed.len() > MAX_DOCKER_IMAGES {
            return Err(self.bad(format!(
                "lists {} images in manifest.json; at most {MAX_DOCKER_IMAGES} are accepted",
                listed.len()
            )));
        }
        let path = self.path.clone();
        let locate = |name: &str| {
            entries
                .get(name.trim_start_matches("./"))
                .copied()
                .ok_or_else(|| {
                    Error::input(
                        &path,
                        format!(
                            "has no `{}`, which its manifest.json lists",
                            sanitize::outside(name, sanitize::EXCERPT)
                        ),
                    )
                })
        };
        let mut images = Vec::new();
        for entry in &listed {
            cancel.check()?;
            let config_range = locate(&entry.config)?;
            let config_bytes = self.read_range(
                config_range,
                crate::image::MAX_DOCUMENT,
                "image configuration",
            )?;
            let config_digest = Digest::of(&config_bytes);
            let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
                self.bad(format!(
                    "has an invalid image configuration `{}` ({})",
                    sanitize::outside(&entry.config, 100),
                    sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                ))
            })?;
            self.blobs.insert(config_digest.clone(), config_range);
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let range = locate(layer)?;
                let (digest, compression) = self.hash_range(range, cancel)?;
                self.blobs.insert(digest.clone(), range);
                layers.push(Descriptor::new(
                    MediaType::OciLayer(compression),
                    digest,
                    range.1,
                ));
            }
            let manifest = Document::new(Manifest {
                schema_version: 2,
                media_type: Some(MediaType::OciManifest),
                artifact_type: None,
                config: Descriptor::new(MediaType::OciConfig, config_digest, config_range.1),
                layers,
                subject: None,
                annotations: BTreeMap::new(),
                extra: Extra::new(),
            });
            let mut descriptor = manifest.descriptor(MediaType::OciManifest);
            descriptor.platform = Some(Platform {
                architecture: config.architecture.clone(),
                os: config.os.clone(),
                variant: config.variant.clone(),
                os_version: None,
                os_features: Vec::new(),
            });
            self.memory
                .insert(manifest.digest().clone(), manifest.bytes().to_vec());
            images.push(ArchivedImage {
                descriptor,
                names: entry.repo_tags.clone(),
            });
        }
        self.images = images;
        Ok(())
    }

    /// The sha256 of an entry's bytes, and its compression (from its first bytes).
    fn hash_range(
        &self,
        (offset, size): (u64, u64),
        cancel: &CancelToken,
    ) -> Result<(Digest, Compression)> {
        let mut reader = self.range_reader(offset, size)?;
        let mut hasher = sha2::Sha256::default();
        let mut buf = vec![0u8; 256 << 10];
        let mut first = Vec::new();
        let mut total = 0u64;
        loop {
            cancel.check()?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading", &self.path)(e)),
            };
            if first.len() < 4 {
                first.extend_from_slice(&buf[..n.min(4 - first.len())]);
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            total += n as u64;
        }
        if total != size {
            return Err(self.bad("ends inside a layer; the archive is truncated".to_owned()));
        }
        let compression = crate::codec::decompress::sniff(&first);
        Ok((Digest::of_hasher(hasher), compression))
    }
}

impl BlobSource for ArchiveSource {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        if self.memory.contains(&descriptor.digest) {
            return self.memory.open(descriptor);
        }
        let (offset, size) = self.blobs.get(&descriptor.digest).copied().ok_or_else(|| {
            self.bad(format!(
                "has no blob {}; is the archive complete?",
                descriptor.digest
            ))
        })?;
        if size != descriptor.size {
            return Err(self.bad(format!(
                "has blob {} with {size} bytes, but its descriptor says {}",
                descriptor.digest, descriptor.size
            )));
        }
        let reader = self.range_reader(offset, size)?;
        Ok(Box::new(VerifyingReader::new(
            reader,
            descriptor.digest.clone(),
            size,
        )))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The images an `index.json` lists, with the names its annotations give them.
pub(crate) fn images_of(index: Index) -> Vec<ArchivedImage> {
    index
        .manifests
        .into_iter()
        .map(|descriptor| {
            let names = [ANNOTATION_REF_NAME, ANNOTATION_CONTAINERD_NAME]
                .iter()
                .filter_map(|key| descriptor.annotations.get(*key).cloned())
                .collect();
            ArchivedImage { descriptor, names }
        })
        .collect()
}

/// The one image of `images` (listed by the archive or layout at `path`), or the one named `tag` (a tag
/// such as `1.0`, or a full name such as `registry.example.com/app:1.0`) when there are several.
pub fn select<'a>(
    images: &'a [ArchivedImage],
    tag: Option<&str>,
    path: &Path,
) -> Result<&'a ArchivedImage> {
    let names = || {
        let all: Vec<String> = images.iter().flat_map(|i| i.names.clone()).collect();
        if all.is_empty() {
            "none of them is named".to_owned()
        } else {
            format!(
                "it has {}",
                sanitize::outside(&all.join(", "), sanitize::EXCERPT)
            )
        }
    };
    match tag {
        Some(tag) => {
            let found: Vec<&ArchivedImage> = images
                .iter()
                .filter(|image| image.names.iter().any(|name| name_matches(name, tag)))
                .collect();
            match found.as_slice() {
                [one] => Ok(one),
                [] => Err(Error::input(
                    path,
                    format!(
                        "has no image named `{}`; {}",
                        sanitize::outside(tag, 100),
                        names()
                    ),
                )),
                _ => Err(Error::input(
                    path,
                    format!("has several images named `{}`", sanitize::outside(tag, 100)),
                )),
            }
        }
        // Without a tag, the documents a layout directory lists beside the images do not count.
        None => match images
            .iter()
            .filter(|i| i.descriptor.artifact_type.is_none())
            .collect::<Vec<_>>()
            .as_slice()
        {
            [one] => Ok(*one),
            [] => Err(Error::input(path, "lists no image")),
            several => Err(Error::input(
                path,
                format!(
                    "holds {} images; choose one with PATH:TAG ({})",
                    several.len(),
                    names()
                ),
            )),
        },
    }
}

/// True when `name` (as an archive records it) is what the user asked for with `wanted`: the same
/// string, the same tag, or the same name with docker's `docker.io/library/` left out.
fn name_matches(name: &str, wanted: &str) -> bool {
    if name == wanted {
        return true;
    }
    let short = |n: &str| {
        n.strip_prefix("docker.io/library/")
            .or_else(|| n.strip_prefix("docker.io/"))
            .unwrap_or(n)
            .to_owned()
    };
    if short(name) == short(wanted) {
        return true;
    }
    // A bare tag matches a full name with that tag.
    !wanted.contains(['/', ':']) && name.rsplit_once(':').is_some_and(|(_, tag)| tag == wanted)
}

/// Every regular entry of the archive, by name (a leading `./` removed), with where its data is.
fn index_entries(
    path: &Path,
    file: impl TarSource,
    cancel: &CancelToken,
) -> Result<BTreeMap<String, (u64, u64)>> {
    let bad = |e: io::Error| {
        Error::input(
            path,
            format!(
                "is not a readable tar archive ({})",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    };
    let mut walker = Walker::new(file);
    let mut entries = BTreeMap::new();
    let mut name_bytes = 0usize;
    while let Some(entry) = walker.next_entry().map_err(bad)? {
        cancel.check()?;
        if !entry.kind.is_file() {
            continue;
        }
        let Some(name) = entry.name() else { continue };
        if !entries.contains_key(name) {
            name_bytes += name.len();
            if entries.len() >= MAX_ENTRIES || name_bytes > MAX_NAME_BYTES {
                return Err(Error::input(
                    path,
                    format!("holds more than {MAX_ENTRIES} files; it is not an image archive"),
                ));
            }
        }
        entries.insert(name.to_owned(), (entry.offset, entry.size));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_tags_and_docker_short_forms() {
        assert!(name_matches("1.0", "1.0"));
        assert!(name_matches("docker.io/library/app:1.0", "app:1.0"));
        assert!(name_matches("registry.example.com/app:1.0", "1.0"));
        assert!(name_matches("app:1.0", "docker.io/library/app:1.0"));
        assert!(!name_matches("app:1.0", "app:2.0"));
        assert!(!name_matches("other/app:1.0", "app:1.0"));
    }
}
