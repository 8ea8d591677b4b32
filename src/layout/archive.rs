//! The output file: an OCI image layout in a tar (plus Docker's `manifest.json`), written to a
//! temporary file beside the destination and renamed into place only when complete, or, for a device,
//! a FIFO or standard output, completed in the system's temporary directory and then copied there.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::image::ImageTree;
use crate::image::blobs::{BlobSink, BlobSource};
use crate::image::reference::Reference;
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Compression, Descriptor, Digest,
    DockerManifestEntry, Index, OCI_LAYOUT, to_json_bytes,
};
use crate::util::cancel::CancelToken;
use crate::util::destination::{Destination, parent_dir};
use crate::util::fsutil::WatchedWriter;
use crate::util::outputs::{Staged, put_in_place};
use crate::util::timestamp::Timestamp;

const BLOCK: u64 = 512;
const OUTPUT_MODE: u32 = 0o644;

/// An image archive being written. Dropping it without [`finish`](ImageArchive::finish) (or the
/// [`FinishedArchive`] without putting it in place) removes the temporary file and leaves any existing
/// file at the destination untouched.
pub struct ImageArchive {
    out: BufWriter<File>,
    /// The temporary file `out` writes, removed when dropped.
    temp: TempPath,
    /// Removes the temporary file if the run is ended by force (and holds the run's cancel token).
    guard: crate::util::cancel::TempGuard,
    /// How a write error names the file: the destination, or the temporary archive of a stream.
    shown: (&'static str, PathBuf),
    /// The path as given, for the summary.
    dest: PathBuf,
    /// Where the bytes go once complete.
    destination: Destination,
    mtime: Timestamp,
    blobs: BTreeSet<Digest>,
    /// `referrers.json`, when documents are attached.
    referrers: Option<Vec<u8>>,
}

/// A complete archive under its temporary name, not yet where it goes.
pub struct FinishedArchive {
    file: File,
    temp: TempPath,
    _guard: crate::util::cancel::TempGuard,
    dest: PathBuf,
    destination: Destination,
    size: u64,
}

/// What was written, for status lines and `--message-format json`.
#[derive(Clone, Debug)]
pub struct ArchiveSummary {
    pub path: PathBuf,
    /// Size of the archive file in bytes.
    pub size: u64,
}

impl ImageArchive {
    /// Starts an archive that will end up at `dest` (see [`Destination::resolve`]: links are followed,
    /// devices, FIFOs and `-` are written through, other special files refused). Entries get `mtime`.
    /// Copies stop when `cancel` is cancelled, and a forced end of its run removes the temporary file.
    pub fn create(dest: &Path, mtime: Timestamp, cancel: &CancelToken) -> Result<ImageArchive> {
        let destination = Destination::resolve(dest)?;
        let (file, temp) = match &destination {
            Destination::File(path) => temp_beside(path)?,
            // Layer headers are filled in by seeking back: complete the archive first.
            Destination::Stream(_) => {
                let dir = std::env::temp_dir();
                temp_file_in(std::ffi::OsStr::new("zeroimage"), &dir).map_err(|e| Error::Input {
                    path: dir.clone(),
                    message: format!(
                        "cannot write the temporary archive here ({e}); set TMPDIR to a writable \
                         directory"
                    ),
                })?
            }
        };
        let shown = match &destination {
            Destination::File(_) => ("writing", dest.to_owned()),
            Destination::Stream(_) => ("writing the temporary archive", temp.to_path_buf()),
        };
        let mut archive = ImageArchive {
            guard: cancel.temporary(&temp),
            out: BufWriter::with_capacity(256 * 1024, file),
            temp,
            shown,
            dest: dest.to_owned(),
            destination,
            mtime,
            blobs: BTreeSet::new(),
            referrers: None,
        };
        archive.append_dir("blobs")?;
        archive.append_dir("blobs/sha256")?;
        Ok(archive)
    }

    fn write_error(&self) -> impl FnOnce(std::io::Error) -> Error + use<> {
        Error::io(self.shown.0, self.shown.1.clone())
    }

    /// Where the archive goes, links followed, when it goes to a file.
    pub(crate) fn target(&self) -> Option<&Path> {
        match &self.destination {
            Destination::File(path) => Some(path),
            Destination::Stream(_) => None,
        }
    }

    /// Plain ustar is enough here, unlike in layers: the longest name is a blob's, `blobs/sha256/` and
    /// 64 hex digits (77 bytes), under the name field's 100.
    fn header(&self, name: &str, size: u64, kind: tar::EntryType) -> Result<tar::Header> {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(name)
            .map_err(|e| Error::Invalid(format!("archive entry name `{name}`: {e}")))?;
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime.unix_seconds());
        header.set_size(size);
        header.set_cksum();
        Ok(header)
    }

    fn append_dir(&mut self, name: &str) -> Result<()> {
        let header = self.header(name, 0, tar::EntryType::Directory)?;
        let err = self.write_error();
        self.out.write_all(header.as_bytes()).map_err(err)
    }

    fn append_file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let header = self.header(name, bytes.len() as u64, tar::EntryType::Regular)?;
        let padding = padding(bytes.len() as u64);
        let err = self.write_error();
        (|| {
            self.out.write_all(header.as_bytes())?;
            self.out.write_all(bytes)?;
            self.out.write_all(&[0u8; BLOCK as usize][..padding])
        })()
        .map_err(err)
    }

    /// Stores a blob held in memory (a manifest or index); a blob already stored is skipped.
    pub fn add_blob(&mut self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        if self.blobs.insert(digest.clone()) {
            self.append_file(&digest.blob_path(), bytes)?;
        }
        Ok(())
    }

    /// Copies a blob from `source` (a base layer, a config), streaming it; its digest is checked as it
    /// goes and a blob already stored is skipped.
    pub fn copy_blob(&mut self, source: &dyn BlobSource, descriptor: &Descriptor) -> Result<()> {
        if self.blobs.contains(&descriptor.digest) {
            return Ok(());
        }
        let header = self.header(
            &descriptor.digest.blob_path(),
            descriptor.size,
            tar::EntryType::Regular,
        )?;
        let err = self.write_error();
        self.out.write_all(header.as_bytes()).map_err(err)?;
        let mut reader = source.open(descriptor)?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            self.guard.cancel().check()?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(crate::image::blobs::read_error(source, descriptor, e)),
            };
            let err = self.write_error();
            self.out.write_all(&buf[..n]).map_err(err)?;
        }
        let err = self.write_error();
        self.out
            .write_all(&[0u8; BLOCK as usize][..padding(descriptor.size)])
            .map_err(err)?;
        self.blobs.insert(descriptor.digest.clone());
        Ok(())
    }

    /// Streams a blob whose digest is known only at its end (a layer): `write` gets the archive's
    /// writer and returns the blob's digest with any value of its own. The tar header is reserved,
    /// then filled in once the digest and size are known, so the blob is written exactly once.
    pub fn add_streamed_blob<T>(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> Result<(Digest, T)>,
    ) -> Result<T> {
        let err = self.write_error();
        let start = self.out.stream_position().map_err(err)?;
        let err = self.write_error();
        self.out.write_all(&[0u8; BLOCK as usize]).map_err(err)?;
        let (digest, value) = write(&mut self.out)?;
        let err = self.write_error();
        let end = self.out.stream_position().map_err(err)?;
        let size = end - start - BLOCK;
        if !self.blobs.insert(digest.clone()) {
            // Already stored (a layer shared by several images): drop this copy.
            let err = self.write_error();
            self.out.seek(SeekFrom::Start(start)).map_err(err)?;
            let err = self.write_error();
            self.out.get_ref().set_len(start).map_err(err)?;
            return Ok(value);
        }
        let header = self.header(&digest.blob_path(), size, tar::EntryType::Regular)?;
        let err = self.write_error();
        (|| {
            self.out
                .write_all(&[0u8; BLOCK as usize][..padding(size)])?;
            self.out.seek(SeekFrom::Start(start))?;
            self.out.write_all(header.as_bytes())?;
            self.out.seek(SeekFrom::End(0))?;
            Ok(())
        })()
        .map_err(err)?;
        Ok(value)
    }

    /// Stores the attached documents and their artifact manifests, listed in `referrers.json` by
    /// [`finish`](ImageArchive::finish); `index.json` keeps its one descriptor.
    pub fn attach(&mut self, attachments: &crate::image::referrers::Attachments) -> Result<()> {
        if attachments.is_empty() {
            return Ok(());
        }
        for blob in attachments.blobs() {
            self.copy_blob(&attachments.memory, &blob)?;
        }
        for item in &attachments.items {
            self.add_blob(item.manifest.digest(), item.manifest.bytes())?;
        }
        self.referrers = Some(attachments.index().bytes().to_vec());
        Ok(())
    }

    /// Writes every blob of `tree` not stored yet (read from `blobs`), its manifests and index, then
    /// `index.json` (one descriptor, named), Docker's `manifest.json` for the manifest `docker_image`
    /// (Docker's format cannot describe several platforms) and `oci-layout`; completes the tar, ready
    /// to be put in place. `manifest.json` is left out when that image has zstd layers, which `docker
    /// load` (before Docker 23.0) cannot read: it then fails at once instead of loading a broken image.
    pub fn finish(
        mut self,
        tree: &ImageTree,
        blobs: &dyn BlobSource,
        name: &Reference,
        docker_image: usize,
    ) -> Result<FinishedArchive> {
        for blob in tree.blobs() {
            self.copy_blob(blobs, blob)?;
        }
        for node in &tree.manifests {
            self.add_blob(node.manifest.digest(), node.manifest.bytes())?;
        }
        if let Some(index) = &tree.index {
            self.add_blob(index.digest(), index.bytes())?;
        }
        let (index, docker) = layout_documents(tree, Some(name), docker_image, false)?;
        self.append_file("index.json", &index)?;
        if let Some(docker) = docker {
            self.append_file("manifest.json", &docker)?;
        }
        self.append_file("oci-layout", OCI_LAYOUT.as_bytes())?;
        if let Some(referrers) = self.referrers.take() {
            self.append_file(crate::image::referrers::REFERRERS_FILE, &referrers)?;
        }
        self.complete()
    }

    fn complete(mut self) -> Result<FinishedArchive> {
        let err = self.write_error();
        // End of archive: two zero blocks.
        self.out
            .write_all(&[0u8; 2 * BLOCK as usize])
            .map_err(err)?;
        let err = self.write_error();
        let size = self.out.stream_position().map_err(err)?;
        let err = self.write_error();
        let file = self.out.into_inner().map_err(|e| err(e.into_error()))?;
        if let Destination::File(_) = &self.destination {
            file.sync_all()
                .map_err(Error::io(self.shown.0, &self.shown.1))?;
        }
        Ok(FinishedArchive {
            file,
            temp: self.temp,
            _guard: self.guard,
            dest: self.dest,
            destination: self.destination,
            size,
        })
    }
}

impl FinishedArchive {
    /// What was written: the path as given and the size.
    pub fn summary(&self) -> ArchiveSummary {
        ArchiveSummary {
            path: self.dest.clone(),
            size: self.size,
        }
    }

    /// Puts the archive where it goes: renamed over its file after the documents written `beside` it
    /// (all of them or none, see [`crate::util::outputs::put_in_place`]), or copied into its stream (which
    /// has nothing beside it).
    pub(crate) fn put_in_place(self, beside: Vec<Staged>) -> Result<ArchiveSummary> {
        let summary = self.summary();
        let cancel = self._guard.cancel().clone();
        match self.destination {
            Destination::File(path) => {
                let mut staged = beside;
                staged.push(Staged::new(self.temp, path, &cancel));
                put_in_place(staged, &cancel)?;
            }
            Destination::Stream(stream) => {
                cancel.check()?;
                let mut file = self.file;
                file.seek(SeekFrom::Start(0))
                    .map_err(Error::io("reading", self.temp.to_path_buf()))?;
                stream.copy_from(&mut file, &cancel)?;
            }
        }
        Ok(summary)
    }
}

impl BlobSink for ImageArchive {
    fn put_streamed(
        &mut self,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<Digest>,
    ) -> Result<()> {
        let (step, path) = self.shown.clone();
        self.add_streamed_blob(|out| {
            let mut out = WatchedWriter::new(out);
            let digest = write(&mut out).map_err(|e| out.explain(e, step, &path))?;
            Ok((digest, ()))
        })
    }
}

/// The layout's `index.json` (one descriptor: `tree.top`, named when `name` is given) and Docker's
/// `manifest.json` for the manifest `docker_image` (Docker's format cannot describe several platforms).
/// `reader_knows_zstd`: the Docker that reads it is known to read zstd layers.
pub(crate) fn layout_documents(
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
        extra: Default::default(),
    }];
    Ok((
        to_json_bytes(&index),
        docker_readable.then(|| to_json_bytes(&docker)),
    ))
}

/// A hidden `.NAME.XXXXXX.partial` beside `path`, with the archive's mode (less the umask).
fn temp_beside(path: &Path) -> Result<(File, TempPath)> {
    let file_name = path.file_name().ok_or_else(|| {
        Error::input(
            path,
            "is not a file path; give the archive a file name, e.g. app.tar",
        )
    })?;
    let parent = parent_dir(path);
    temp_file_in(file_name, &parent).map_err(|e| Error::Input {
        path: parent.clone(),
        message: format!(
            "cannot write the archive in this directory ({e}); choose a writable -o/--output"
        ),
    })
}

/// `.NAME.XXXXXX.partial` in `dir`, with the archive's mode (less the umask).
fn temp_file_in(name: &std::ffi::OsStr, dir: &Path) -> std::io::Result<(File, TempPath)> {
    crate::util::outputs::temp_file(dir, name, ".partial", OUTPUT_MODE)
}

/// Copies a finished archive at `archive` to `output` when `output` is a stream (`-`, a device, a
/// FIFO); returns false, doing nothing, when it is not. `cancel` ends a wait for a FIFO's reader.
pub fn deliver_to_stream(archive: &Path, output: &Path, cancel: &CancelToken) -> Result<bool> {
    let Destination::Stream(stream) = Destination::resolve(output)? else {
        return Ok(false);
    };
    let mut file = std::fs::File::open(archive).map_err(Error::io("reading", archive))?;
    stream.copy_from(&mut file, cancel)?;
    Ok(true)
}

/// True when `output` is a stream (`-`, a character device or FIFO, through any links): such an
/// archive cannot be read back afterwards.
pub fn is_stream(output: &Path) -> bool {
    matches!(Destination::resolve(output), Ok(Destination::Stream(_)))
}

fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_fit_a_plain_ustar_name_field() {
        let blob = Digest::of(b"").blob_path();
        for name in [blob.as_str(), "index.json", "manifest.json", "oci-layout"] {
            assert!(name.len() <= 100, "{name}");
        }
        let archive_dir = tempfile::tempdir().unwrap();
        let archive = ImageArchive::create(
            &archive_dir.path().join("a.tar"),
            Timestamp::EPOCH,
            &CancelToken::new(),
        )
        .unwrap();
        let header = archive.header(&blob, 0, tar::EntryType::Regular).unwrap();
        assert_eq!(header.as_ustar().unwrap().prefix, [0u8; 155]);
    }
}
