//! Adding an image to an OCI image layout directory (`--oci-layout DIR`; ko's `--oci-layout-path`,
//! skopeo's `oci:DIR:NAME`): its blobs go beside those already there and `index.json` gets one entry
//! for it, named by `org.opencontainers.image.ref.name`. The other images and their blobs stay; an
//! entry of the same name is replaced (its blobs stay too: a layout may hold blobs nothing names).
//!
//! What may be written to: a directory that does not exist yet (it is created), an empty one, or an
//! OCI layout (a valid `oci-layout` file, an `index.json` and a `referrers.json` that parse, real
//! `blobs` directories). Anything else is refused
//! before a byte is written, so blobs never land in a directory that is not a layout.
//!
//! How the directory stays whole:
//! - the run holds an exclusive `flock` on the directory itself, from reading `index.json` to
//!   replacing it, so runs adding to one layout at once take turns and keep each other's entries
//!   (a run waits at most [`LOCK_WAIT`] for its turn, and a cancel ends the wait);
//! - each blob is written to a temporary file in its `blobs/<algorithm>/` directory, its size and
//!   digest checked on the bytes written, synced, and renamed to its name; a blob already there is
//!   kept when it has the right size and digest (a damaged one is refused, never replaced);
//! - `index.json` (and `referrers.json`) are written the same way and renamed over the old ones only
//!   when every blob is in place, `index.json` last (a failed rename puts back what was replaced);
//! - a run that fails (or is cancelled) removes what it added: its temporary files, the blobs it
//!   wrote, and for a new layout the files and directories it created; `index.json` is unchanged.
//!
//! The documents attached to the image (SBOMs, provenance) go in as in the archive: their blobs and
//! artifact manifests are stored, and `referrers.json` (an image index of artifact manifests, each
//! with its `subject`) lists them beside those of the other images. `index.json` lists only images:
//! unnamed artifact entries there (oras's way) make `oci-image-tool validate` fail (it predates the
//! empty config of OCI 1.1, and a lookup by name matches every unnamed entry) and make a layout of
//! one image look like several to tools that take "the one image" of a layout. Documents about an
//! image that only a replaced entry named are dropped from `referrers.json` with it.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dir::{LayoutSource, read_referrers, subject_of};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::{BlobSource, read_document};
use crate::image::reference::Reference;
use crate::image::referrers::REFERRERS_FILE;
use crate::image::{ImageTree, MAX_DOCUMENT, Stored};
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, Digest, Index, OCI_LAYOUT,
    to_json_bytes,
};
use crate::util::cancel::{CancelToken, TempGuard};
use crate::util::outputs::{Staged, put_in_place, temp_file};
use crate::util::sanitize;

/// How long a run waits for another run to finish with the same layout.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);
/// Largest `index.json` read (the same bound as for reading a layout).
const MAX_INDEX: u64 = 4 << 20;
/// Largest `oci-layout` file read.
const MAX_MARKER: u64 = 64 << 10;
/// Blobs are copied in pieces of this size.
const COPY_SIZE: usize = 256 << 10;
/// Mode of the files written (less the umask), as the archive's.
const FILE_MODE: u32 = 0o644;
/// How a run names the option in its messages.
const FLAG: &str = "--oci-layout";

/// What was added, for the status line and `--message-format json`.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutSummary {
    /// The layout directory, as given.
    pub path: PathBuf,
    /// The name the image is listed under (`org.opencontainers.image.ref.name`): what
    /// `skopeo inspect oci:DIR:NAME` and `--from-archive DIR:NAME` take.
    pub ref_name: String,
    /// Blobs written; the others were in the layout already.
    #[serde(skip)]
    pub blobs_written: usize,
}

/// The name an image is listed under in a layout: its name as docker shows it (`app:1.0`,
/// `registry.example.com/team/app:1.0`), so that images of several repositories (a workspace's)
/// can share one layout, refused when the OCI grammar of reference names does not allow it (skopeo
/// and umoci could not select it).
pub fn ref_name(name: &Reference) -> Result<String> {
    let familiar = name.familiar();
    if is_ref_name(&familiar) {
        Ok(familiar)
    } else {
        Err(Error::Invalid(format!(
            "{FLAG}: the image name `{familiar}` cannot name an image in an OCI layout (its parts \
             must be letters and digits joined by one of `-._:@+` or `--`, and by `/`); choose \
             another --tag"
        )))
    }
}

/// The grammar of `org.opencontainers.image.ref.name`: `component ("/" component)*`, a component
/// being `alphanum (separator alphanum)*`, a separator one of `-._:@+` or `--`.
fn is_ref_name(name: &str) -> bool {
    fn component(part: &str) -> bool {
        let mut previous_alphanum = false;
        let mut separator = String::new();
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                // One separator, or `--`.
                if separator.len() > 1 && separator != "--" {
                    return false;
                }
                separator.clear();
                previous_alphanum = true;
            } else if "-._:@+".contains(c) {
                if !previous_alphanum && separator.is_empty() {
                    // A component starts with a letter or digit.
                    return false;
                }
                separator.push(c);
                previous_alphanum = false;
            } else {
                return false;
            }
        }
        previous_alphanum
    }
    !name.is_empty() && name.split('/').all(component)
}

/// Checks, before anything is built, that `dir` can become or be added to as a layout: a new
/// directory under a writable one, an empty writable directory, or a writable layout whose
/// `oci-layout` and `index.json` are sound. Changes nothing.
pub fn check(dir: &Path) -> Result<()> {
    match classify(dir)? {
        Kind::Missing => {
            let existing = dir
                .ancestors()
                .skip(1)
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        p
                    }
                })
                .find(|p| fs::symlink_metadata(p).is_ok())
                .unwrap_or(Path::new("."));
            if !existing.is_dir() {
                return Err(Error::input(
                    existing,
                    format!(
                        "is not a directory, so {FLAG} {} cannot be made",
                        dir.display()
                    ),
                ));
            }
            writable(existing)
        }
        Kind::Empty => writable(dir),
        // Another run making a layout there holds its lock until it is one: it is checked again
        // under the lock before anything is written.
        Kind::Foreign if locked_by_another_run(dir) => writable(dir),
        Kind::Foreign => Err(foreign(dir)),
        Kind::Layout(..) => {
            writable(dir)?;
            let blobs = dir.join("blobs/sha256");
            if blobs.is_dir() {
                writable(&blobs)?;
            }
            Ok(())
        }
    }
}

/// Refuses an archive path that is the layout directory or inside it: the archive would take the
/// layout's place, or make a new layout's directory one that is not a layout.
pub fn ensure_apart(output: &Path, dir: &Path) -> Result<()> {
    if crate::util::destination::is_dash(output) {
        return Ok(());
    }
    let (Ok(output_at), Ok(dir_at)) = (std::path::absolute(output), std::path::absolute(dir))
    else {
        return Ok(());
    };
    if output_at.starts_with(&dir_at) {
        return Err(Error::input(
            output,
            format!(
                "is inside the {FLAG} directory {}; write the archive elsewhere",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses a directory this process may not write to.
fn writable(dir: &Path) -> Result<()> {
    use rustix::fs::Access;
    rustix::fs::access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        Error::input(
            dir,
            format!(
                "cannot be written ({}); choose a writable {FLAG} directory",
                io::Error::from(e)
            ),
        )
    })
}

/// What is at the layout's path.
enum Kind {
    Missing,
    Empty,
    /// A directory holding something else (or a layout another run is making).
    Foreign,
    /// A layout: its `index.json` (`None`: there is none yet) and its `referrers.json`.
    Layout(Box<(Option<Index>, Option<Index>)>),
}

/// Reads what is at `dir` and refuses what may not be written to.
fn classify(dir: &Path) -> Result<Kind> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(dir).is_ok() {
                return Err(Error::input(
                    dir,
                    format!(
                        "is a symbolic link to nothing; give {FLAG} a directory, or remove the link"
                    ),
                ));
            }
            return Ok(Kind::Missing);
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(Error::input(
                dir,
                format!(
                    "cannot be a directory: a part of that path is a file; give {FLAG} another path"
                ),
            ));
        }
        Err(e) => return Err(Error::io("reading", dir)(e)),
    };
    if !meta.is_dir() {
        let what = if meta.is_file() {
            "a file"
        } else {
            "not a directory"
        };
        return Err(Error::input(
            dir,
            format!(
                "is {what}; {FLAG} takes a directory: a new or empty one, or an OCI image layout"
            ),
        ));
    }
    let marker = dir.join("oci-layout");
    if fs::symlink_metadata(&marker).is_err() {
        let mut entries = fs::read_dir(dir).map_err(Error::io("reading", dir))?;
        return Ok(if entries.next().is_none() {
            Kind::Empty
        } else {
            Kind::Foreign
        });
    }
    read_marker(&marker)?;
    for sub in ["blobs", "blobs/sha256", "blobs/sha512"] {
        real_directory(&dir.join(sub))?;
    }
    let referrers = read_referrers(&dir.join(REFERRERS_FILE)).map_err(|e| match e {
        Error::Input { path, message } => Error::Input {
            path,
            message: format!("{message}; fix or remove it, or give {FLAG} another directory"),
        },
        other => other,
    })?;
    let index = dir.join("index.json");
    let bytes = crate::util::fsutil::read_regular_if_present(
        &index,
        MAX_INDEX,
        "an OCI layout's index.json",
    )?;
    let Some(bytes) = bytes else {
        return Ok(Kind::Layout(Box::new((None, referrers))));
    };
    let parsed: Index = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(
            &index,
            format!(
                "is not a valid image index ({}); fix it, or give {FLAG} another directory",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })?;
    if parsed.schema_version != 2 {
        return Err(Error::input(
            &index,
            format!(
                "has schemaVersion {}, not 2; fix it, or give {FLAG} another directory",
                parsed.schema_version
            ),
        ));
    }
    Ok(Kind::Layout(Box::new((Some(parsed), referrers))))
}

/// The refusal of a directory that is not empty and not a layout.
fn foreign(dir: &Path) -> Error {
    Error::input(
        dir,
        format!(
            "is not empty and not an OCI image layout (it has no oci-layout file); give {FLAG} a \
             new or empty directory, or an existing layout"
        ),
    )
}

/// True when another run holds the layout's lock (see [`lock`]).
fn locked_by_another_run(dir: &Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
    else {
        return false;
    };
    flock(&file, FlockOperation::NonBlockingLockShared) == Err(rustix::io::Errno::WOULDBLOCK)
}

/// Checks the `oci-layout` file: `{"imageLayoutVersion": "1.0.0"}`, other fields allowed.
fn read_marker(marker: &Path) -> Result<()> {
    let bytes =
        crate::util::fsutil::read_regular(marker, MAX_MARKER, "an OCI layout's oci-layout file")?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(
            marker,
            format!(
                "is not valid JSON ({}); an OCI layout's oci-layout file is \
                 {{\"imageLayoutVersion\":\"1.0.0\"}}",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })?;
    match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some("1.0.0") => Ok(()),
        Some(other) => Err(Error::input(
            marker,
            format!(
                "says imageLayoutVersion `{}`; only 1.0.0 is known, so nothing is added to this \
                 layout",
                sanitize::outside(other, 100)
            ),
        )),
        None => Err(Error::input(
            marker,
            "has no imageLayoutVersion; an OCI layout's oci-layout file is \
             {\"imageLayoutVersion\":\"1.0.0\"}",
        )),
    }
}

/// Refuses a blobs directory that is a symbolic link or not a directory: blobs are written only
/// inside the layout. A missing one is fine (it is created).
fn real_directory(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            };
            Err(Error::input(
                path,
                format!(
                    "is {what}; blobs are written only into the layout's own directories: fix \
                     the layout, or give {FLAG} another directory"
                ),
            ))
        }
        Err(_) => Ok(()),
    }
}

/// Adds `image`, called `name`, to the layout at `dir` (created when missing), in the run `cx`: its
/// blobs, those of the documents attached to it, and its entry in `index.json`.
pub fn add(dir: &Path, image: &Stored, name: &Reference, cx: &Context) -> Result<LayoutSummary> {
    let ref_name = ref_name(name)?;
    let cancel = cx.cancel();
    let listener = cx.listener();
    let mut undo = Undo::default();
    let created = create_dirs(dir)?;
    let outermost = created.first().cloned();
    undo.dirs.extend(created);
    // Held until the undo is done, if it must be.
    undo.lock = Some(lock(dir, &mut undo, cx)?);
    let (index, referrers) = match classify(dir)? {
        Kind::Foreign => return Err(foreign(dir)),
        Kind::Missing | Kind::Empty => {
            // A forced end of the run takes the directories it made with it: while the lock is
            // held, nothing else is in them.
            undo.guard = outermost.map(|dir| cancel.temporary(&dir));
            init(dir, &mut undo, cancel)?;
            (Index::new(Vec::new()), None)
        }
        Kind::Layout(found) => match *found {
            (Some(index), referrers) => (index, referrers),
            (None, referrers) => {
                listener.warning(&format!(
                    "{} has an oci-layout file but no index.json; starting one",
                    dir.display()
                ));
                (Index::new(Vec::new()), referrers)
            }
        },
    };
    let mut writer = BlobWriter {
        dir,
        undo: &mut undo,
        cancel,
        written: 0,
        dirs: BTreeSet::new(),
    };
    writer.put_image(image)?;
    writer.sync()?;
    let written = writer.written;
    let (index, referrers) = updated(dir, index, referrers, image, &ref_name, name);
    let mut staged = Vec::new();
    if let Some(referrers) = referrers {
        staged.push(stage(
            dir,
            REFERRERS_FILE,
            &to_json_bytes(&referrers),
            cancel,
        )?);
    }
    staged.push(stage(dir, "index.json", &to_json_bytes(&index), cancel)?);
    put_in_place(staged, cancel)?;
    // index.json names the blobs now: nothing is undone any more.
    undo.disarm();
    sync_dir(dir)?;
    listener.detail(&format!(
        "{}: {written} blobs written, the others were there",
        dir.display()
    ));
    listener.status(
        "Stored",
        &format!(
            "{ref_name} in {} (OCI layout, {})",
            dir.display(),
            image.digest()
        ),
    );
    Ok(LayoutSummary {
        path: dir.to_owned(),
        ref_name,
        blobs_written: written,
    })
}

/// Creates `dir` and its missing parents; returns those it created, outermost first.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .map(Path::to_owned)
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir).map_err(|e| {
        Error::input(
            dir,
            format!("cannot be created ({e}); choose a writable {FLAG} directory"),
        )
    })?;
    Ok(missing.into_iter().rev().collect())
}

/// Takes the layout's lock: an exclusive `flock` on the directory itself (no file is added for it),
/// waiting at most [`LOCK_WAIT`] for another run to finish, and stopping when the run is cancelled.
/// Once locked, the path must still be the directory locked (a run that made it and failed may have
/// removed it meanwhile): otherwise the directory is made again and locked anew.
fn lock(dir: &Path, undo: &mut Undo, cx: &Context) -> Result<File> {
    use rustix::fs::{FlockOperation, flock};
    let deadline = Instant::now() + LOCK_WAIT;
    let mut told = false;
    loop {
        cx.cancel().check()?;
        if fs::symlink_metadata(dir).is_err() {
            let created = create_dirs(dir)?;
            undo.dirs.extend(created);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)
            .map_err(Error::io("opening", dir))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                let held = file.metadata().map_err(Error::io("reading", dir))?;
                let same = fs::metadata(dir)
                    .is_ok_and(|now| now.dev() == held.dev() && now.ino() == held.ino());
                if same {
                    return Ok(file);
                }
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                if !told {
                    cx.listener().status(
                        "Waiting",
                        &format!(
                            "for another run to finish with {} (at most {} minutes)",
                            dir.display(),
                            LOCK_WAIT.as_secs() / 60
                        ),
                    );
                    told = true;
                }
                if Instant::now() >= deadline {
                    return Err(Error::input(
                        dir,
                        format!(
                            "another run has been writing to this layout for {} minutes (it holds \
                             its lock); run again once it has finished",
                            LOCK_WAIT.as_secs() / 60
                        ),
                    ));
                }
                cx.cancel().sleep(Duration::from_millis(100))?;
            }
            Err(e @ (rustix::io::Errno::NOLCK | rustix::io::Errno::OPNOTSUPP)) => {
                cx.listener().warning(&format!(
                    "{} cannot be locked ({}); runs adding to it at the same time may lose each \
                     other's entries",
                    dir.display(),
                    io::Error::from(e)
                ));
                return Ok(file);
            }
            Err(e) => return Err(Error::io("locking", dir)(io::Error::from(e))),
        }
    }
}

/// Makes an empty directory a layout: `blobs/sha256/` and the `oci-layout` file (`index.json` comes
/// last, with the image).
fn init(dir: &Path, undo: &mut Undo, cancel: &CancelToken) -> Result<()> {
    for sub in ["blobs", "blobs/sha256"] {
        make_dir(&dir.join(sub), undo)?;
    }
    replace_file(dir, "oci-layout", OCI_LAYOUT.as_bytes(), undo, cancel)
}

/// Creates the directory `path` unless it is there (and real); records it for the undo.
fn make_dir(path: &Path, undo: &mut Undo) -> Result<()> {
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
fn replace_file(
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
fn cannot_write(dir: &Path, e: &io::Error) -> Error {
    Error::input(
        dir,
        format!("cannot be written ({e}); choose a writable {FLAG} directory"),
    )
}

/// Syncs a directory, so that the renames in it are on disk.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}

/// Writes blobs into the layout.
struct BlobWriter<'a> {
    dir: &'a Path,
    undo: &'a mut Undo,
    cancel: &'a CancelToken,
    /// Blobs written so far.
    written: usize,
    /// The blob directories written to, to sync at the end.
    dirs: BTreeSet<PathBuf>,
}

impl BlobWriter<'_> {
    /// Every blob of the image (configs, layers, manifests, its index) and of the documents attached
    /// to it (the empty config, each document, each artifact manifest).
    fn put_image(&mut self, image: &Stored) -> Result<()> {
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
    fn sync(&self) -> Result<()> {
        for dir in &self.dirs {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The layout's new `index.json` and, when it changes, `referrers.json`. `index.json`: every entry
/// but those naming the same image (by `ref.name`, or by containerd's full name), then the image's,
/// named. `referrers.json`: every document listed but those about an image only a replaced entry
/// named, then the image's documents not listed yet.
fn updated(
    dir: &Path,
    mut index: Index,
    referrers: Option<Index>,
    image: &Stored,
    ref_name: &str,
    name: &Reference,
) -> (Index, Option<Index>) {
    let full = name.full();
    let same_name = |d: &Descriptor| {
        d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(ref_name)
            || d.annotations.get(ANNOTATION_CONTAINERD_NAME) == Some(&full)
    };
    let (replaced, mut kept): (Vec<Descriptor>, Vec<Descriptor>) =
        std::mem::take(&mut index.manifests)
            .into_iter()
            .partition(|d| same_name(d));
    let mut documents = referrers.clone().unwrap_or_else(|| Index::new(Vec::new()));
    if !replaced.is_empty() && !documents.manifests.is_empty() {
        let blobs = LayoutSource::blobs_of(dir);
        let gone: BTreeSet<Digest> = replaced
            .iter()
            .flat_map(|d| subjects_of(&blobs, d))
            .collect();
        let mut live: BTreeSet<Digest> = kept.iter().flat_map(|d| subjects_of(&blobs, d)).collect();
        live.extend(tree_subjects(&image.tree));
        documents.manifests.retain(|d| {
            subject_of(&blobs, d).is_none_or(|s| !gone.contains(&s) || live.contains(&s))
        });
    }
    let mut top = image.tree.top.clone();
    top.annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), ref_name.to_owned());
    top.annotations
        .insert(ANNOTATION_CONTAINERD_NAME.to_owned(), full);
    kept.push(top);
    index.manifests = kept;
    for attachment in &image.referrers {
        let descriptor = attachment.descriptor();
        if !documents
            .manifests
            .iter()
            .any(|d| d.digest == descriptor.digest)
        {
            documents.manifests.push(descriptor);
        }
    }
    let changed = match &referrers {
        Some(before) => before.manifests != documents.manifests,
        None => !documents.manifests.is_empty(),
    };
    (index, changed.then_some(documents))
}

/// What documents about the image an entry names may be about: the entry's own digest and, for an
/// index, each manifest it lists (an index that cannot be read counts as itself only).
fn subjects_of(blobs: &LayoutSource, descriptor: &Descriptor) -> Vec<Digest> {
    let mut subjects = vec![descriptor.digest.clone()];
    if descriptor.media_type.is_index() {
        let listed = read_document(blobs, descriptor, MAX_DOCUMENT)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Index>(&bytes).ok());
        if let Some(listed) = listed {
            subjects.extend(listed.manifests.into_iter().map(|d| d.digest));
        }
    }
    subjects
}

/// The digests documents about `tree` name: its top and each manifest.
fn tree_subjects(tree: &ImageTree) -> Vec<Digest> {
    std::iter::once(tree.top.digest.clone())
        .chain(tree.manifests.iter().map(|n| n.descriptor.digest.clone()))
        .collect()
}

/// `bytes`, complete and synced under a temporary name in `dir`, to be renamed to `dir/name`.
fn stage(dir: &Path, name: &str, bytes: &[u8], cancel: &CancelToken) -> Result<Staged> {
    cancel.check()?;
    let (mut file, temp) = temp_file(dir, std::ffi::OsStr::new(name), ".partial", FILE_MODE)
        .map_err(|e| cannot_write(dir, &e))?;
    let staged = Staged::new(temp, dir.join(name), cancel);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", dir.join(name)))?;
    Ok(staged)
}

/// What a failed run takes back: the files it added (blobs, `oci-layout`) and the directories it made,
/// unless [`disarm`](Undo::disarm)ed once `index.json` is in place.
#[derive(Default)]
struct Undo {
    files: Vec<PathBuf>,
    /// Outermost first.
    dirs: Vec<PathBuf>,
    /// Removes the directory this run made on a forced end of the run.
    guard: Option<TempGuard>,
    done: bool,
    /// The layout's lock: a field, so it is released only after [`Drop::drop`] has undone what the
    /// run added (another run must not find a blob that is about to go).
    lock: Option<File>,
}

impl Undo {
    fn disarm(&mut self) {
        self.done = true;
        self.guard = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for file in self.files.iter().rev() {
            let _ = fs::remove_file(file);
        }
        // Only empty directories go: a directory someone else wrote to meanwhile stays.
        for dir in self.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ManifestNode;
    use crate::image::blobs::Memory;
    use crate::oci::{Compression, Document, Extra, Manifest, MediaType};
    use crate::report::Silent;

    const LAYER: &[u8] = b"not really a tar, but a blob all the same";

    /// An image of one layer whose config is `config`; the layer's bytes are in its blobs only when
    /// `layer_stored`, so that adding it fails half-way otherwise (unless the layout has it).
    fn image(config: &[u8], layer: &[u8], layer_stored: bool) -> Stored<'static> {
        let mut memory = Memory::new();
        memory.insert(Digest::of(config), config.to_vec());
        if layer_stored {
            memory.insert(Digest::of(layer), layer.to_vec());
        }
        let manifest = Document::new(Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config: Descriptor::new(
                MediaType::OciConfig,
                Digest::of(config),
                config.len() as u64,
            ),
            layers: vec![Descriptor::new(
                MediaType::OciLayer(Compression::Gzip),
                Digest::of(layer),
                layer.len() as u64,
            )],
            subject: None,
            annotations: std::collections::BTreeMap::new(),
            extra: Extra::new(),
        });
        let top = manifest.descriptor(MediaType::OciManifest);
        Stored {
            name: "test".to_owned(),
            tree: ImageTree {
                top: top.clone(),
                index: None,
                manifests: vec![ManifestNode {
                    descriptor: top,
                    manifest,
                }],
            },
            blobs: Box::new(memory),
            referrers: Vec::new(),
            mount_from: std::collections::BTreeMap::new(),
        }
    }

    /// Every path under `dir` with its bytes (directories as `None`).
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(path) = pending.pop() {
            for entry in fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path.clone());
                    found.push((path, None));
                } else {
                    let bytes = fs::read(&path).unwrap();
                    found.push((path, Some(bytes)));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_failed_add_leaves_no_new_layout_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/oci");
        let name: Reference = "app:1".parse().unwrap();
        let cx = Context::new(&Silent);
        // The config is written, then the layer cannot be read: all of it goes again.
        let err = add(&dir, &image(b"{\"a\":1}", LAYER, false), &name, &cx).unwrap_err();
        assert!(
            err.to_string().contains("not among the built ones"),
            "{err}"
        );
        assert!(
            !tmp.path().join("new").exists(),
            "{:?}",
            snapshot(tmp.path())
        );
        // An empty directory given stays, empty.
        fs::create_dir(tmp.path().join("empty")).unwrap();
        let empty = tmp.path().join("empty");
        add(&empty, &image(b"{\"a\":1}", LAYER, false), &name, &cx).unwrap_err();
        assert_eq!(snapshot(&empty), []);
    }

    #[test]
    fn a_failed_add_leaves_an_existing_layout_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("oci");
        let cx = Context::new(&Silent);
        let first: Reference = "app:1".parse().unwrap();
        let added = add(&dir, &image(b"{\"a\":1}", LAYER, true), &first, &cx).unwrap();
        assert_eq!((added.ref_name.as_str(), added.blobs_written), ("app:1", 3));
        let before = snapshot(&dir);
        let second: Reference = "app:2".parse().unwrap();
        add(
            &dir,
            &image(b"{\"a\":2}", b"another layer", false),
            &second,
            &cx,
        )
        .unwrap_err();
        assert_eq!(snapshot(&dir), before, "nothing added, nothing left");
        // The same again with its layer: added beside the first, which is kept.
        let added = add(&dir, &image(b"{\"a\":2}", LAYER, true), &second, &cx).unwrap();
        assert_eq!(added.blobs_written, 2, "the layer was there already");
        let index: Index =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index
            .manifests
            .iter()
            .map(|d| d.annotations[ANNOTATION_REF_NAME].as_str())
            .collect();
        assert_eq!(names, ["app:1", "app:2"]);
    }

    #[test]
    fn reference_names_follow_the_oci_grammar() {
        for good in [
            "app:1",
            "1.0",
            "registry.example.com/team/app:1.0",
            "localhost:5000/app:v1-rc.2",
            "a--b:c+d",
            "app@sha256:0123",
        ] {
            assert!(is_ref_name(good), "{good}");
        }
        for bad in [
            "", "app__x:1", "a---b:1", "app:_1", "app:1.", "/app", "app//x", "a b", "app:1..2",
        ] {
            assert!(!is_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_refused_name_says_why_and_what_to_do() {
        let name: Reference = "team/app__x:1".parse().unwrap();
        let err = ref_name(&name).unwrap_err().to_string();
        assert!(err.contains("app__x") && err.contains("--tag"), "{err}");
        let name: Reference = "docker.io/library/app:1".parse().unwrap();
        assert_eq!(ref_name(&name).unwrap(), "app:1");
    }
}
