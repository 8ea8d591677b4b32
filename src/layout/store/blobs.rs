//! Writing into the layout: each blob through a temporary file beside its place, checked and renamed
//! in, and the files of a new layout; everything added is recorded for the undo of a failed run.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::check::real_directory;
use super::lock::Undo;
use super::{COPY_SIZE, FILE_MODE, FLAG};
use crate::error::{Error, Result};
use crate::image::Stored;
use crate::image::blobs::BlobSource;
use crate::oci::{Descriptor, Digest, OCI_LAYOUT};
use crate::util::cancel::CancelToken;
use crate::util::outputs::temp_file;
use crate::util::sanitize;

/// Makes an empty directory a layout: `blobs/sha256/` and the `oci-layout` file (`index.json` comes
/// last, with the image).
pub(super) fn init(dir: &Path, undo: &mut Undo, cancel: &CancelToken) -> Result<()> {
    for sub in ["blobs", "blobs/sha256"] {
        make_dir(&dir.join(sub), undo)?;
    }
    replace_file(dir, "oci-layout", OCI_LAYOUT.as_bytes(), undo, cancel)
}

/// Creates the directory `path` unless it is there (and real); records it for the undo.
pub(super) fn make_dir(path: &Path, undo: &mut Undo) -> Result<()> {
    real_directory(path)?;
    match fs::create_dir(path) {
        Ok(()) => {
            undo.dirs.push(path.to_owned());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("creating", path)(e)),
    }
}

/// Writes `bytes` to `dir/name` through a temporary file renamed over it. A file made where there
/// was none is removed by the undo.
pub(super) fn replace_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    undo: &mut Undo,
    cancel: &CancelToken,
) -> Result<()> {
    cancel.check()?;
    let path = dir.join(name);
    let existed = fs::symlink_metadata(&path).is_ok();
    let (mut file, temp) = temp_file(dir, std::ffi::OsStr::new(name), ".partial", FILE_MODE)
        .map_err(|e| cannot_write(dir, &e))?;
    let _guard = cancel.temporary(&temp);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", &path))?;
    cancel.check()?;
    temp.persist(&path)
        .map_err(|e| Error::io("writing", &path)(e.error))?;
    if !existed {
        undo.files.push(path);
    }
    Ok(())
}

/// A directory where a temporary file cannot be made.
pub(super) fn cannot_write(dir: &Path, e: &io::Error) -> Error {
    Error::input(
        dir,
        format!("cannot be written ({e}); choose a writable {FLAG} directory"),
    )
}

/// Syncs a directory, so that the renames in it are on disk.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}

/// Writes blobs into the layout.
pub(super) struct BlobWriter<'a> {
    pub(super) dir: &'a Path,
    pub(super) undo: &'a mut Undo,
    pub(super) cancel: &'a CancelToken,
    /// Blobs written so far.
    pub(super) written: usize,
    /// The blob directories written to, to sync at the end.
    pub(super) dirs: BTreeSet<PathBuf>,
}

impl BlobWriter<'_> {
    /// Every blob of the image (configs, layers, manifests, its index) and of the documents attached
    /// to it (the empty config, each document, each artifact manifest).
    pub(super) fn put_image(&mut self, image: &Stored) -> Result<()> {
        let source = image.blobs.as_ref();
        for blob in image.tree.blobs() {
            self.put_from(source, blob)?;
        }
        for node in &image.tree.manifests {
            self.put_bytes(node.manifest.digest(), node.manifest.bytes())?;
        }
        if let Some(index) = &image.tree.index {
            self.put_bytes(index.digest(), index.bytes())?;
        }
        for attachment in &image.referrers {
            self.put_from(source, &attachment.manifest.value().config)?;
            self.put_from(source, &attachment.document)?;
            self.put_bytes(attachment.manifest.digest(), attachment.manifest.bytes())?;
        }
        Ok(())
    }

    fn put_from(&mut self, source: &dyn BlobSource, descriptor: &Descriptor) -> Result<()> {
        self.put(&descriptor.digest, descriptor.size, &mut || {
            source
                .open(descriptor)
                .map(|reader| (reader, source.describe()))
        })
    }

    fn put_bytes(&mut self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        self.put(digest, bytes.len() as u64, &mut || {
            Ok((
                Box::new(bytes) as Box<dyn Read + Send + '_>,
                "the image being built".to_owned(),
            ))
        })
    }

    /// Stores the blob `digest` of `size` bytes unless the layout has it (checked: size and digest),
    /// reading it from what `open` gives (a reader and the name of its source).
    #[allow(clippy::type_complexity)]
    fn put<'s>(
        &mut self,
        digest: &Digest,
        size: u64,
        open: &mut dyn FnMut() -> Result<(Box<dyn Read + Send + 's>, String)>,
    ) -> Result<()> {
        self.cancel.check()?;
        let blobs = self.dir.join("blobs");
        let blob_dir = blobs.join(digest.algorithm().as_str());
        make_dir(&blobs, self.undo)?;
        make_dir(&blob_dir, self.undo)?;
        let path = self.dir.join(digest.blob_path());
        match fs::symlink_metadata(&path) {
            Ok(_) => return self.check_present(&path, digest, size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading", &path)(e)),
        }
        let hex = std::ffi::OsStr::new(digest.hex());
        let (mut file, temp) = temp_file(&blob_dir, hex, ".partial", FILE_MODE)
            .map_err(|e| cannot_write(&blob_dir, &e))?;
        let _guard = self.cancel.temporary(&temp);
        let (mut reader, from) = open()?;
        let mut hasher = digest.hasher();
        let mut copied = 0u64;
        let mut buf = vec![0u8; COPY_SIZE];
        loop {
            self.cancel.check()?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "{from}: reading {digest}: {}",
                        sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                    )));
                }
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(Error::io("writing", &path))?;
            copied += n as u64;
        }
        file.sync_all().map_err(Error::io("writing", &path))?;
        let written = hasher.finish();
        if copied != size || &written != digest {
            return Err(Error::Invalid(format!(
                "{from}: blob {digest} came as {copied} bytes hashing to {written}, not {size} \
                 bytes; nothing was added to {}",
                self.dir.display()
            )));
        }
        self.cancel.check()?;
        temp.persist(&path)
            .map_err(|e| Error::io("writing", &path)(e.error))?;
        self.undo.files.push(path);
        self.dirs.insert(blob_dir);
        self.dirs.insert(blobs);
        self.written += 1;
        Ok(())
    }

    /// A blob the layout already has must be what its name says; a damaged one is refused (the
    /// layout is the user's to repair).
    fn check_present(&self, path: &Path, digest: &Digest, size: u64) -> Result<()> {
        let damaged = |what: String| {
            Error::input(
                path,
                format!("{what}: the layout is damaged; remove this file and run again"),
            )
        };
        let file = crate::util::fsutil::open_regular(path, "a blob of an OCI layout")?;
        let found = file.metadata().map_err(Error::io("reading", path))?.len();
        if found != size {
            return Err(damaged(format!(
                "has {found} bytes, but blob {digest} has {size}"
            )));
        }
        let mut reader = crate::oci::VerifyingReader::new(file, digest.clone(), size);
        let mut buf = vec![0u8; COPY_SIZE];
        loop {
            self.cancel.check()?;
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(damaged(format!("does not hash to {digest}")));
                }
                Err(e) => return Err(Error::io("reading", path)(e)),
            }
        }
    }

    /// Syncs the blob directories written to, so that the renames are on disk before `index.json`
    /// names the blobs.
    pub(super) fn sync(&self) -> Result<()> {
        for dir in &self.dirs {
            sync_dir(dir)?;
        }
        Ok(())
    }
}
