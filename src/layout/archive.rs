//! The output file: an OCI image layout in a tar (plus Docker's `manifest.json`), written to a
//! temporary file beside the destination and renamed into place only when complete, or, for a device,
//! a FIFO or standard output, completed in the system's temporary directory and then copied there.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::image::ImageTree;
use crate::image::blobs::{BlobSink, BlobSource};
use crate::image::reference::Reference;
use crate::oci::Digest;
use crate::tar::write::{self as tar_write, BLOCK};
use crate::util::cancel::CancelToken;
use crate::util::destination::{Destination, parent_dir};
use crate::util::fsutil::WatchedWriter;
use crate::util::outputs::{Staged, put_in_place};
use crate::util::timestamp::Timestamp;

use super::write::{Failure, LayoutWriter, Naming};

const OUTPUT_MODE: u32 = 0o644;

/// An image archive being written. Dropping it without [`finish`](ImageArchive::finish) (or the
/// [`FinishedArchive`] without putting it in place) removes the temporary file and leaves any existing
/// file at the destination untouched.
pub struct ImageArchive {
    layout: LayoutWriter<BufWriter<File>>,
    /// The temporary file `layout` writes, removed when dropped.
    temp: TempPath,
    /// Removes the temporary file if the run is ended by force (and holds the run's cancel token).
    guard: crate::util::cancel::TempGuard,
    /// How a write error names the file: the destination, or the temporary archive of a stream.
    shown: (&'static str, PathBuf),
    /// The path as given, for the summary.
    dest: PathBuf,
    /// Where the bytes go once complete.
    destination: Destination,
}

/// A complete archive under its temporary name, not yet where it goes.
pub struct FinishedArchive {
    file: File,
    temp: TempPath,
    /// Removes the temporary file on a forced end of the run.
    guard: crate::util::cancel::TempGuard,
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
        let shown_error = Error::io(shown.0, shown.1.clone());
        let layout = LayoutWriter::new(BufWriter::with_capacity(256 * 1024, file), mtime, cancel)
            .map_err(|e| failed(e, shown_error))?;
        Ok(ImageArchive {
            guard: cancel.temporary(&temp),
            layout,
            temp,
            shown,
            dest: dest.to_owned(),
            destination,
        })
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

    /// Streams a blob whose digest is known only at its end (a layer): `write` gets the archive's
    /// writer and returns the blob's digest with any value of its own. The tar header is reserved,
    /// then filled in once the digest and size are known, so the blob is written exactly once.
    pub fn add_streamed_blob<T>(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> Result<(Digest, T)>,
    ) -> Result<T> {
        let (step, path) = self.shown.clone();
        let err = || Error::io(step, path.clone());
        let out = self.layout.get_mut();
        let start = out.stream_position().map_err(err())?;
        out.write_all(&[0u8; BLOCK]).map_err(err())?;
        let (digest, value) = write(out)?;
        let end = out.stream_position().map_err(err())?;
        let size = end - start - BLOCK as u64;
        if !self.layout.record_blob(&digest) {
            // Already stored (a layer shared by several images): drop this copy.
            let out = self.layout.get_mut();
            out.seek(SeekFrom::Start(start)).map_err(err())?;
            out.get_ref().set_len(start).map_err(err())?;
            return Ok(value);
        }
        let header = self
            .layout
            .blob_header(&digest, size)
            .map_err(|e| failed(e, err()))?;
        if header.as_bytes().len() != BLOCK {
            return Err(Error::Invalid(format!(
                "archive entry name `{}` does not fit one tar header",
                digest.blob_path()
            )));
        }
        let out = self.layout.get_mut();
        (|| {
            tar_write::pad(out, size)?;
            out.seek(SeekFrom::Start(start))?;
            out.write_all(header.as_bytes())?;
            out.seek(SeekFrom::End(0))?;
            Ok(())
        })()
        .map_err(err())?;
        Ok(value)
    }

    /// Stores the attached documents and their artifact manifests, listed in `referrers.json` by
    /// [`finish`](ImageArchive::finish); `index.json` keeps its one descriptor.
    pub fn attach(&mut self, attachments: &crate::image::referrers::Attachments) -> Result<()> {
        let err = self.write_error();
        self.layout.attach(attachments).map_err(|e| failed(e, err))
    }

    /// Writes every blob of `tree` not stored yet (read from `blobs`), its manifests and index, then
    /// `index.json` (one descriptor, named), Docker's `manifest.json` for the manifest `docker_image`
    /// (Docker's format cannot describe several platforms) and `oci-layout`; completes the tar, ready
    /// to be put in place. `manifest.json` is left out when that image has zstd layers, which `docker
    /// load` (before Docker 23.0) cannot read: it then fails at once instead of loading a broken image.
    pub fn finish(
        self,
        tree: &ImageTree,
        blobs: &dyn BlobSource,
        name: &Reference,
        docker_image: usize,
    ) -> Result<FinishedArchive> {
        let naming = Naming {
            name: Some(name),
            docker_image,
            reader_knows_zstd: false,
        };
        let (step, path) = self.shown.clone();
        let err = || Error::io(step, path.clone());
        let mut out = self
            .layout
            .finish(tree, blobs, naming)
            .map_err(|e| failed(e, err()))?;
        let size = out.stream_position().map_err(err())?;
        let file = out.into_inner().map_err(|e| err()(e.into_error()))?;
        if let Destination::File(_) = &self.destination {
            file.sync_all()
                .map_err(Error::io(self.shown.0, &self.shown.1))?;
        }
        Ok(FinishedArchive {
            file,
            temp: self.temp,
            guard: self.guard,
            dest: self.dest,
            destination: self.destination,
            size,
        })
    }
}

/// The error a layout write ended with: a write error named as `write_error` names it.
fn failed(failure: Failure, write_error: impl FnOnce(std::io::Error) -> Error) -> Error {
    match failure {
        Failure::Write(e) => write_error(e),
        Failure::Source(e) => e,
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
        let cancel = self.guard.cancel().clone();
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
