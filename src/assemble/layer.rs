//! Filesystem layers: a sorted, deterministic tar stream, compressed in one pass (see [`crate::codec::compress`]),
//! with both digests (`diff_id` of the tar, `digest` of the compressed bytes) computed on the way through.
//! Entries are written by `crate::tar::write`, as the image archive's are.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::assemble::rootfs::{Kind as RootKind, RootFs};
use crate::codec::compress::CompressOptions;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, HashingWriter};
use crate::tar::write::{self as tar_write, Entry as TarEntry, HeaderError, Kind};
use crate::util::cancel::CancelToken;
use crate::util::timestamp::Timestamp;

/// Files are read in pieces of this size (the compressed bytes do not depend on it).
const READ_SIZE: usize = 256 * 1024;

/// How errors name the layer's destination, which is any writer; a [`LayerSink`] names its own file
/// instead (see [`Watched`]).
const SINK: &str = "the image archive";

/// Mode of executables and directories we create.
pub const MODE_EXECUTABLE: u32 = 0o755;

/// Mode of regular files we create.
pub const MODE_FILE: u32 = 0o644;

/// Where an entry's content comes from.
#[derive(Clone, Debug)]
enum Source {
    Directory,
    /// A file on disk, read once while the layer is written.
    File(PathBuf),
    /// Content generated in memory (small files such as /etc/passwd).
    Bytes(Vec<u8>),
    /// A symbolic link, kept as a link.
    Symlink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    mode: u32,
    uid: u64,
    gid: u64,
    source: Source,
    /// What asked for the entry (`--nonroot`, `--include SRC:DEST`, `the program`), for conflict errors.
    origin: Arc<str>,
    /// A parent directory nobody asked for, added because something goes below it.
    implied: bool,
}

impl Entry {
    fn is_dir(&self) -> bool {
        matches!(self.source, Source::Directory)
    }

    fn kind(&self) -> &'static str {
        match self.source {
            Source::Directory => "a directory",
            Source::Symlink(_) => "a symbolic link",
            Source::File(_) | Source::Bytes(_) => "a file",
        }
    }
}

/// The contents of one layer: paths in the image and where their bytes come from.
///
/// Entries are written sorted by path, each after its parent directories, owned by root unless said
/// otherwise and stamped with the image's timestamp, so the same inputs always give the same bytes.
/// Every entry remembers which option or input added it, so that two of them that cannot both be in the
/// image (a file where another needs a directory, two files at one path) are refused naming both.
#[derive(Clone, Debug)]
pub struct LayerSpec {
    entries: BTreeMap<String, Entry>,
    /// Named in conflict errors as the origin of what this spec adds, e.g. `--include ./www:/srv`.
    origin: Arc<str>,
}

impl LayerSpec {
    /// An empty spec whose entries come from `origin`, as errors will name it.
    pub fn new(origin: &str) -> LayerSpec {
        LayerSpec {
            entries: BTreeMap::new(),
            origin: origin.into(),
        }
    }

    /// Adds the file at `source` as `image_path` (absolute in the image, e.g. `/app`), with `mode`.
    /// Missing parent directories are added with mode 0755.
    pub fn add_file(&mut self, image_path: &str, source: &Path, mode: u32) -> Result<()> {
        self.insert(image_path, mode, 0, 0, Source::File(source.to_owned()))
    }

    /// Adds a file with the given content.
    pub fn add_bytes(
        &mut self,
        image_path: &str,
        bytes: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<()> {
        self.insert(image_path, mode, 0, 0, Source::Bytes(bytes.into()))
    }

    /// Adds a directory with `mode` (which may carry the sticky bit, as /tmp's 1777 does) and owner.
    pub fn add_dir(&mut self, image_path: &str, mode: u32, uid: u64, gid: u64) -> Result<()> {
        self.insert(image_path, mode, uid, gid, Source::Directory)
    }

    /// Adds a symbolic link pointing at `target`, stored as written.
    pub fn add_symlink(&mut self, image_path: &str, target: &str) -> Result<()> {
        self.insert(image_path, 0o777, 0, 0, Source::Symlink(target.to_owned()))
    }

    /// Adds `source` (a file or a directory tree) at `image_path`. Ownership becomes root's, files keep
    /// only whether they are executable (0755, else 0644; on Windows, whether they start like a program:
    /// ELF's magic number or `#!`), directories get 0755, and symbolic links stay links: nothing outside
    /// `source` is ever read through them.
    pub fn add_path(&mut self, image_path: &str, source: &Path) -> Result<()> {
        let meta = std::fs::symlink_metadata(source).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::input(source, "no such file or directory"),
            _ => Error::io("reading", source)(e),
        })?;
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let target =
                std::fs::read_link(source).map_err(Error::io("reading the link", source))?;
            let target = target.to_str().ok_or_else(|| {
                Error::input(source, "is a symbolic link whose target is not UTF-8")
            })?;
            #[cfg(windows)]
            let target = &windows_link_target(source, target)?;
            self.add_symlink(image_path, target)
        } else if file_type.is_dir() {
            self.add_dir(image_path, MODE_EXECUTABLE, 0, 0)?;
            let mut children: Vec<_> = std::fs::read_dir(source)
                .map_err(Error::io("listing", source))?
                .collect::<io::Result<Vec<_>>>()
                .map_err(Error::io("listing", source))?;
            children.sort_by_key(std::fs::DirEntry::file_name);
            for child in children {
                let name = child.file_name();
                let name = name
                    .to_str()
                    .ok_or_else(|| Error::input(child.path(), "has a name that is not UTF-8"))?;
                let child_image_path = format!("{}/{name}", image_path.trim_end_matches('/'));
                self.add_path(&child_image_path, &child.path())?;
            }
            Ok(())
        } else if file_type.is_file() {
            let executable = is_executable(source, &meta)?;
            self.add_file(
                image_path,
                source,
                if executable {
                    MODE_EXECUTABLE
                } else {
                    MODE_FILE
                },
            )
        } else {
            Err(Error::input(
                source,
                "is not a regular file, directory or symbolic link (device, socket or pipe)",
            ))
        }
    }

    /// Every file on this machine the layer reads, with what asked for it (`the program`,
    /// `--include SRC:DEST` ...).
    pub fn host_files(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.entries
            .values()
            .filter_map(|entry| match &entry.source {
                Source::File(path) => Some((path.as_path(), &*entry.origin)),
                _ => None,
            })
    }

    /// What the layer puts at `image_path` (absolute): its kind and permission bits.
    pub fn kind_and_mode(&self, image_path: &str) -> Option<(RootKind, u32)> {
        let entry = self.entries.get(image_path.trim_start_matches('/'))?;
        let kind = match entry.source {
            Source::Directory => RootKind::Dir,
            Source::Symlink(_) => RootKind::Symlink,
            Source::File(_) | Source::Bytes(_) => RootKind::File,
        };
        Some((kind, entry.mode))
    }

    /// Every regular file of the layer: its absolute path in the image and its permission bits.
    pub fn file_modes(&self) -> impl Iterator<Item = (String, u32)> + '_ {
        self.entries
            .iter()
            .filter(|(_, entry)| matches!(entry.source, Source::File(_) | Source::Bytes(_)))
            .map(|(path, entry)| (format!("/{path}"), entry.mode))
    }

    /// The bytes of content the layer holds (files on disk as they are now, generated files), for
    /// size limits checked before the layer is written.
    pub fn content_len(&self) -> u64 {
        self.entries
            .values()
            .map(|entry| match &entry.source {
                Source::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
                Source::Bytes(bytes) => bytes.len() as u64,
                Source::Directory | Source::Symlink(_) => 0,
            })
            .sum()
    }

    /// Adds every entry of `other`. Directories both have merge; any other overlap is refused.
    pub fn merge(&mut self, other: LayerSpec) -> Result<()> {
        for (path, entry) in other.entries {
            if !entry.implied {
                self.place(path, entry)?;
            }
        }
        Ok(())
    }

    /// Prepares this spec to be written as a layer on top of `lower`'s: refuses what would replace or
    /// shadow part of it, as [`merge`](Self::merge) would, and gives the parent directories this layer
    /// only implies the mode and owner `lower` gives them, which unpacking this layer would otherwise reset.
    pub fn stack_on(&mut self, lower: &LayerSpec) -> Result<()> {
        for (path, entry) in &self.entries {
            if !entry.implied {
                lower.check(path, entry)?;
            }
        }
        for (path, entry) in self.entries.iter_mut().filter(|(_, e)| e.implied) {
            if let Some(below) = lower.entries.get(path) {
                entry.mode = below.mode;
                entry.uid = below.uid;
                entry.gid = below.gid;
            }
        }
        Ok(())
    }

    /// Prepares this spec to go on top of a base image's filesystem: parent directories it only implies
    /// that the base has as symbolic links are left out (unpacking then goes through the link, as
    /// docker's `COPY` does, instead of replacing it with a directory), and those the base has as
    /// directories take the base's mode and owner. A link that loops, dangles or leads to a file is
    /// refused: umoci, podman or docker could not unpack the image.
    pub fn over_base(&mut self, base: &RootFs) -> Result<()> {
        for (path, _) in self.entries.iter().filter(|(_, e)| e.implied) {
            let absolute = format!("/{path}");
            if let Some(link) = base
                .lookup(&absolute)
                .filter(|f| f.kind == RootKind::Symlink)
                && let Err(why) = base.placeable_dir(&absolute)
            {
                return Err(self.unplaceable(base, path, &link, &why));
            }
        }
        let mut through_links = Vec::new();
        for (path, entry) in self.entries.iter_mut().filter(|(_, e)| e.implied) {
            match base.lookup(&format!("/{path}")) {
                Some(found) if found.kind == RootKind::Symlink => through_links.push(path.clone()),
                Some(found) if found.kind == RootKind::Dir => {
                    entry.mode = found.mode;
                    entry.uid = u64::from(found.uid);
                    entry.gid = u64::from(found.gid);
                }
                _ => {}
            }
        }
        for path in through_links {
            self.entries.remove(&path);
        }
        Ok(())
    }

    /// The error for a directory of ours that the base has as an unusable link.
    fn unplaceable(
        &self,
        base: &RootFs,
        dir: &str,
        link: &crate::assemble::rootfs::Resolved,
        why: &crate::assemble::rootfs::Unplaceable,
    ) -> Error {
        let below = format!("{dir}/");
        let (file, origin) = self
            .entries
            .iter()
            .find(|(path, entry)| !entry.implied && path.starts_with(&below))
            .map_or((dir, "this layer"), |(path, entry)| {
                (path.as_str(), &*entry.origin)
            });
        Error::Invalid(format!(
            "base {}: {} is a symbolic link to `{}`, {why}, so /{file} ({origin}) cannot be \
             written below it; use a base whose {} is a directory or a working link, or put the \
             file elsewhere",
            crate::util::sanitize::outside(base.describe(), crate::util::sanitize::EXCERPT),
            link.path,
            crate::util::sanitize::outside(link.link.as_deref().unwrap_or_default(), 200),
            link.path,
        ))
    }

    fn insert(
        &mut self,
        image_path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        source: Source,
    ) -> Result<()> {
        let path = normalize(image_path)?;
        let entry = Entry {
            mode,
            uid,
            gid,
            source,
            origin: self.origin.clone(),
            implied: false,
        };
        self.place(path, entry)
    }

    /// Adds an entry that was asked for, and its missing parents, once [`check`](Self::check) allows it.
    fn place(&mut self, path: String, entry: Entry) -> Result<()> {
        self.check(&path, &entry)?;
        for parent in parents(&path) {
            self.entries
                .entry(parent.to_owned())
                .or_insert_with(|| Entry {
                    mode: MODE_EXECUTABLE,
                    uid: 0,
                    gid: 0,
                    source: Source::Directory,
                    origin: entry.origin.clone(),
                    implied: true,
                });
        }
        match self.entries.get(&path) {
            // The same directory asked for twice: the first stays.
            Some(existing) if !existing.implied => {}
            _ => {
                self.entries.insert(path, entry);
            }
        }
        Ok(())
    }

    /// Refuses `entry` at `path` when it cannot coexist with what is here: below a file or link, a
    /// file or link where a directory is, or a directory whose mode or owner differs from one asked for.
    fn check(&self, path: &str, entry: &Entry) -> Result<()> {
        let refuse = |text: String| {
            Err(Error::Invalid(format!(
                "{text}; give one of them another path in the image"
            )))
        };
        for parent in parents(path) {
            if let Some(existing) = self.entries.get(parent).filter(|e| !e.is_dir()) {
                return refuse(format!(
                    "{} needs a directory at `/{parent}` (for `/{path}`), where {} puts {}",
                    entry.origin,
                    existing.origin,
                    existing.kind()
                ));
            }
        }
        let Some(existing) = self.entries.get(path) else {
            return Ok(());
        };
        match (existing.is_dir(), entry.is_dir()) {
            (true, true) => {
                let same = (existing.mode, existing.uid, existing.gid)
                    == (entry.mode, entry.uid, entry.gid);
                if same || existing.implied || entry.implied {
                    return Ok(());
                }
                refuse(format!(
                    "{} puts a directory with mode {:04o} and owner {}:{} at `/{path}`, where {} puts \
                     one with mode {:04o} and owner {}:{}",
                    entry.origin,
                    entry.mode,
                    entry.uid,
                    entry.gid,
                    existing.origin,
                    existing.mode,
                    existing.uid,
                    existing.gid
                ))
            }
            (true, false) => {
                let prefix = format!("{path}/");
                let below = self
                    .entries
                    .range(prefix.clone()..)
                    .next()
                    .filter(|(p, _)| p.starts_with(&prefix));
                match below {
                    Some((child, below)) if existing.implied => refuse(format!(
                        "{} puts {} at `/{path}`, where {} needs a directory (for `/{child}`)",
                        entry.origin,
                        entry.kind(),
                        below.origin
                    )),
                    _ => refuse(format!(
                        "{} puts {} at `/{path}`, where {} puts a directory",
                        entry.origin,
                        entry.kind(),
                        existing.origin
                    )),
                }
            }
            (false, _) => refuse(format!(
                "{} puts {} at `/{path}`, where {} puts {}",
                entry.origin,
                entry.kind(),
                existing.origin,
                existing.kind()
            )),
        }
    }

    /// Writes the layer, compressed as `compression` says, to `out` and describes it; stops when
    /// `cancel` is cancelled.
    pub fn write<W: Write>(
        &self,
        out: W,
        mtime: Timestamp,
        compression: &CompressOptions,
        cancel: &CancelToken,
    ) -> Result<(W, Layer)> {
        let sink_error = || Error::io("writing the layer to", SINK);
        let compressed = HashingWriter::new(out);
        let encoder = compression.encoder(compressed).map_err(sink_error())?;
        let mut tar = HashingWriter::new(encoder);
        let mut files = BTreeMap::new();
        for (path, entry) in &self.entries {
            if let Some(file) = self.write_entry(&mut tar, path, entry, mtime, cancel)? {
                files.insert(path.clone(), file);
            }
        }
        tar_write::end(&mut tar).map_err(sink_error())?;
        let (encoder, diff_id, _) = tar.finish();
        let compressed = encoder.finish().map_err(sink_error())?;
        let (out, digest, size) = compressed.finish();
        Ok((
            out,
            Layer {
                descriptor: Descriptor::new(compression.media_type(), digest, size),
                diff_id,
                files,
            },
        ))
    }

    /// Writes one entry; for a file copied from disk, returns its sha256 and size.
    fn write_entry<W: Write>(
        &self,
        tar: &mut W,
        path: &str,
        entry: &Entry,
        mtime: Timestamp,
        cancel: &CancelToken,
    ) -> Result<Option<(Digest, u64)>> {
        let sink_error = || Error::io("writing the layer to", SINK);
        let header = |kind| {
            tar_header(&TarEntry {
                path,
                kind,
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                mtime: mtime.unix_seconds(),
            })
        };
        match &entry.source {
            Source::Directory => {
                let header = header(Kind::Directory)?;
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
            }
            Source::Symlink(target) => {
                let header = header(Kind::Symlink(target))?;
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
            }
            Source::Bytes(bytes) => {
                let header = header(Kind::File(bytes.len() as u64))?;
                tar_write::write_entry(tar, &header, bytes).map_err(sink_error())?;
            }
            Source::File(source) => {
                let mut file = File::open(source).map_err(Error::io("opening", source))?;
                // The size in the header is the size when opened; a file that changes while being
                // read is an error, not a silently corrupt layer.
                let size = file.metadata().map_err(Error::io("reading", source))?.len();
                let header = header(Kind::File(size))?;
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
                let mut hashed = HashingWriter::new(&mut *tar);
                let copied =
                    copy_exact(&mut file, &mut hashed, size, cancel).map_err(|e| match e {
                        CopyError::Read(e) => Error::io("reading", source)(e),
                        CopyError::Write(e) => sink_error()(e),
                        CopyError::Cancelled => Error::Interrupted,
                    })?;
                if copied != size {
                    return Err(Error::input(
                        source,
                        format!(
                            "changed while being read (expected {size} bytes, read {copied}); try again"
                        ),
                    ));
                }
                let (tar, digest, _) = hashed.finish();
                tar_write::pad(tar, size).map_err(sink_error())?;
                return Ok(Some((digest, size)));
            }
        }
        Ok(None)
    }
}

/// The directories above `path` (relative, no trailing `/`), outermost first.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// The header blocks of `entry` (a PAX extended header first when ustar cannot hold its path or link
/// target), or why the tar format refuses them.
fn tar_header(entry: &TarEntry) -> Result<tar_write::Header> {
    entry.header().map_err(|e| {
        let path = entry.path;
        match (e, entry.kind) {
            (HeaderError::Link(e), Kind::Symlink(target)) => Error::Invalid(format!(
                "cannot store the link `/{path}` -> `{target}`: {e}"
            )),
            (HeaderError::Path(e) | HeaderError::Link(e), _) => {
                Error::Invalid(format!("cannot store `/{path}` in a tar header: {e}"))
            }
        }
    })
}

/// A layer as written: its descriptor (compressed digest and size) and its `diff_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar, for the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// The sha256 and size of each file copied from disk, by its path in the layer (no leading
    /// `/`): hashed as it was written, for the SBOM.
    pub files: BTreeMap<String, (Digest, u64)>,
}

impl Layer {
    /// The sha256 and size of the file copied from disk to `image_path`.
    pub fn file(&self, image_path: &str) -> Option<&(Digest, u64)> {
        self.files.get(image_path.trim_start_matches('/'))
    }
}

fn normalize(image_path: &str) -> Result<String> {
    let trimmed = image_path.trim_start_matches('/');
    let valid = image_path.starts_with('/')
        && !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(Error::Invalid(format!(
            "`{image_path}` is not a valid absolute path in the image (no `.`, `..` or empty components)"
        )))
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
    Cancelled,
}

/// Copies at most `limit` bytes and reports how many came; checks for cancellation between chunks.
fn copy_exact<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    limit: u64,
    cancel: &CancelToken,
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut copied = 0u64;
    while copied < limit {
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        let want = usize::try_from(limit - copied).map_or(READ_SIZE, |left| left.min(READ_SIZE));
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
        copied += n as u64;
    }
    // One byte more means the file grew: the header already promised `limit` bytes.
    if copied == limit {
        let mut probe = [0u8; 1];
        if matches!(reader.read(&mut probe), Ok(1)) {
            return Ok(limit + 1);
        }
    }
    Ok(copied)
}

/// Whether an included file is executable: any of its executable bits on Unix. Windows files have
/// none, so there a file is executable when it starts like a program (`starts_like_a_program`).
#[cfg(unix)]
#[allow(
    clippy::unnecessary_wraps,
    reason = "reading the file on Windows can fail"
)]
fn is_executable(_source: &Path, meta: &std::fs::Metadata) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    Ok(meta.permissions().mode() & 0o111 != 0)
}

/// Whether an included file is executable: any of its executable bits on Unix. Windows files have
/// none, so there a file is executable when it starts like a program (`starts_like_a_program`).
#[cfg(windows)]
fn is_executable(source: &Path, _meta: &std::fs::Metadata) -> Result<bool> {
    let mut head = Vec::with_capacity(4);
    File::open(source)
        .and_then(|file| file.take(4).read_to_end(&mut head))
        .map_err(Error::io("reading", source))?;
    Ok(starts_like_a_program(&head))
}

/// A file that starts with ELF's magic number or a script's `#!`: what runs on Linux.
#[cfg(any(windows, test))]
fn starts_like_a_program(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF") || head.starts_with(b"#!")
}

/// A Windows link's target as the image keeps it: relative, with `/` between its parts. An absolute
/// one (`C:\...`, `\\server\...`) names nothing in the image and is refused.
#[cfg(windows)]
fn windows_link_target(source: &Path, target: &str) -> Result<String> {
    let path = Path::new(target);
    if path.has_root()
        || matches!(
            path.components().next(),
            Some(std::path::Component::Prefix(_))
        )
    {
        return Err(Error::input(
            source,
            "is a symbolic link to an absolute Windows path, which names nothing in the image; \
             make the link relative or include what it points at",
        ));
    }
    Ok(target.replace('\\', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::compress::Format;
    use crate::tar::write::{NAME_LEN, fits_ustar};
    use std::io::Cursor;

    #[test]
    fn on_windows_programs_and_scripts_are_told_by_how_they_start() {
        assert!(starts_like_a_program(b"\x7fELF\x02\x01"));
        assert!(starts_like_a_program(b"#!/bin/sh\n"));
        for other in [
            &b""[..],
            b"#",
            b"\x7fEL",
            b"MZ\x90\x00",
            b" #!/bin/sh",
            b"hello",
        ] {
            assert!(!starts_like_a_program(other), "{other:?}");
        }
    }

    fn entries_of(layer_bytes: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(Cursor::new(layer_bytes))
            .read_to_end(&mut tar)
            .unwrap();
        entries_of_tar(&tar)
    }

    fn entries_of_tar(tar: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn layer_holds_sorted_entries_with_parents_and_fixed_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, vec![7u8; 1000]).unwrap();
        let mut spec = LayerSpec::new("test");
        spec.add_file("/usr/local/bin/app", &a, 0o755).unwrap();
        spec.add_file("/etc/x", &a, 0o644).unwrap();
        let (bytes, layer) = spec
            .write(
                Vec::new(),
                Timestamp::from_unix(42).unwrap(),
                &CompressOptions::default(),
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(layer.descriptor.size, bytes.len() as u64);
        assert_eq!(layer.descriptor.digest, Digest::of(&bytes));
        let entries = entries_of(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/x",
                "usr",
                "usr/local",
                "usr/local/bin",
                "usr/local/bin/app"
            ]
        );
        for (name, mode, uid, mtime, _) in &entries {
            assert_eq!((*uid, *mtime), (0, 42), "{name}");
            let expected = if name == "etc/x" { 0o644 } else { 0o755 };
            assert_eq!(*mode, expected, "{name}");
        }
        assert_eq!(entries[5].4, vec![7u8; 1000]);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(Cursor::new(&bytes))
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(layer.diff_id, Digest::of(&raw));
    }

    #[test]
    fn same_input_gives_same_bytes_whatever_the_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &data).unwrap();
        let mut spec = LayerSpec::new("test");
        spec.add_file("/a", &a, 0o755).unwrap();
        for format in [Format::Gzip, Format::Zstd] {
            let mut compression = CompressOptions::new(format);
            let mut layers = Vec::new();
            for threads in [1, 2, 8] {
                compression.threads = std::num::NonZeroUsize::new(threads);
                layers.push(
                    spec.write(
                        Vec::new(),
                        Timestamp::EPOCH,
                        &compression,
                        &CancelToken::new(),
                    )
                    .unwrap(),
                );
            }
            assert!(layers.windows(2).all(|w| w[0] == w[1]), "{format:?}");
            let (bytes, layer) = &layers[0];
            assert_eq!(layer.descriptor.media_type, compression.media_type());
            assert_eq!(layer.descriptor.digest, Digest::of(bytes));
            let tar = match format {
                Format::Gzip => {
                    let mut raw = Vec::new();
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut raw)
                        .unwrap();
                    raw
                }
                Format::Zstd => zstd::decode_all(&bytes[..]).unwrap(),
            };
            assert_eq!(layer.diff_id, Digest::of(&tar));
            let entries = entries_of_tar(&tar);
            assert_eq!(entries[0].4, data);
        }
    }

    #[test]
    fn image_paths_must_be_absolute_and_clean() {
        let mut spec = LayerSpec::new("test");
        for bad in ["app", "/", "/a/../b", "/a//b", "/./a", ""] {
            assert!(spec.add_file(bad, Path::new("x"), 0o755).is_err(), "{bad}");
        }
    }

    fn layer_of(spec: &LayerSpec) -> Vec<u8> {
        spec.write(
            Vec::new(),
            Timestamp::from_unix(7).unwrap(),
            &CompressOptions::default(),
            &CancelToken::new(),
        )
        .unwrap()
        .0
    }

    /// Raw entries, PAX headers included: (type, name field, data).
    fn raw_entries(layer_bytes: &[u8]) -> Vec<(tar::EntryType, Vec<u8>, Vec<u8>)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer_bytes));
        archive
            .entries()
            .unwrap()
            .raw(true)
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (h.entry_type(), h.path_bytes().into_owned(), data)
            })
            .collect()
    }

    /// Paths of 120 (ustar prefix + name), 300 and 1000 bytes, a 101-byte name with no `/` to split
    /// at, non-ASCII names, and link targets of 100 and 200 bytes.
    fn long_spec(dir: &Path) -> (LayerSpec, Vec<String>) {
        let content = dir.join("content");
        std::fs::write(&content, b"long path content").unwrap();
        let component = |n: usize, c: char| c.to_string().repeat(n);
        let mut spec = LayerSpec::new("test");
        let paths = vec![
            format!("/{}/{}", component(60, 'a'), component(59, 'b')),
            format!(
                "/{}/{}/{}",
                component(99, 'c'),
                component(99, 'd'),
                component(99, 'e')
            ),
            (0..10).fold(String::new(), |p, i| {
                format!("{p}/{}", component(99, (b'f' + i) as char))
            }),
            format!("/{}", component(101, 'z')),
            format!("/ünïcöde/{}/日本語.txt", "é".repeat(80)),
            "/ünï/short.txt".to_owned(),
        ];
        for path in &paths {
            spec.add_file(path, &content, MODE_FILE).unwrap();
        }
        spec.add_symlink("/link100", &component(100, 't')).unwrap();
        spec.add_symlink(
            &format!("/{}/link200", component(60, 'a')),
            &format!("../{}", component(197, 'u')),
        )
        .unwrap();
        (spec, paths)
    }

    #[test]
    fn paths_and_link_targets_beyond_ustar_go_in_pax_headers_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, paths) = long_spec(dir.path());
        let bytes = layer_of(&spec);
        assert_eq!(bytes, layer_of(&spec), "same input, same bytes");
        assert_eq!(bytes, layer_of(&long_spec(dir.path()).0));

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut read = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert_eq!(entry.header().mtime().unwrap(), 7, "{path}");
            read.insert(path, (entry.header().entry_type(), link, data));
        }
        for path in &paths {
            let (kind, _, data) = &read[path.trim_start_matches('/')];
            assert_eq!(
                (*kind, &data[..]),
                (tar::EntryType::Regular, &b"long path content"[..]),
                "{path}"
            );
        }
        assert_eq!(paths[2].len(), 1000);
        assert_eq!(read["link100"].1.as_deref(), Some("t".repeat(100).as_str()));
        let link200 = format!("{}/link200", "a".repeat(60));
        assert_eq!(read[&link200].1, Some(format!("../{}", "u".repeat(197))));
        // Every parent directory is there too, whatever its length.
        for path in read.keys() {
            if let Some((parent, _)) = path.rsplit_once('/') {
                assert_eq!(read[parent].0, tar::EntryType::Directory, "{parent}");
            }
        }

        // PAX headers only where ustar cannot hold the path or target; records are `LEN key=value\n`
        // with LEN counting the record itself, and the header is stamped like the entries.
        let raw = raw_entries(&bytes);
        let pax: Vec<_> = raw
            .iter()
            .filter(|e| e.0 == tar::EntryType::XHeader)
            .collect();
        let long_paths = read.keys().filter(|p| !fits_ustar(p)).count();
        assert_eq!(
            pax.len(),
            long_paths + 1,
            "one per long path, one for the long target"
        );
        assert!(
            read.keys().any(|p| p.len() > NAME_LEN && fits_ustar(p)),
            "120 bytes: ustar prefix"
        );
        for (_, name, data) in &pax {
            assert!(name.starts_with(b"PaxHeaders/") && name.len() <= NAME_LEN);
            let text = std::str::from_utf8(data).unwrap();
            for record in text.split_inclusive('\n') {
                let (len, rest) = record.split_once(' ').unwrap();
                assert_eq!(len.parse::<usize>().unwrap(), record.len(), "{record}");
                assert!(rest.starts_with("path=") || rest.starts_with("linkpath="));
            }
        }
        // Readers that ignore PAX see a truncated name, cut on a character boundary.
        for (kind, name, _) in &raw {
            assert!(std::str::from_utf8(name).is_ok(), "{kind:?} {name:?}");
        }
    }

    fn error_of(result: Result<()>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_path_cannot_be_both_a_file_and_a_directory() {
        let file = |origin: &str, path: &str| {
            let mut spec = LayerSpec::new(origin);
            spec.add_bytes(path, "x", MODE_FILE).unwrap();
            spec
        };
        let mut spec = LayerSpec::new("all");
        spec.merge(file("B", "/a/b")).unwrap();
        let err = error_of(spec.merge(file("A", "/a")));
        assert!(
            err.starts_with("A puts a file at `/a`, where B needs a directory (for `/a/b`)"),
            "{err}"
        );
        let mut spec = LayerSpec::new("all");
        spec.merge(file("A", "/a")).unwrap();
        let err = error_of(spec.merge(file("B", "/a/b/c")));
        assert!(
            err.starts_with("B needs a directory at `/a` (for `/a/b/c`), where A puts a file"),
            "{err}"
        );
        let mut link = LayerSpec::new("L");
        link.add_symlink("/a", "elsewhere").unwrap();
        let err = error_of(spec.merge(link));
        assert!(
            err.starts_with("L puts a symbolic link at `/a`, where A puts a file"),
            "{err}"
        );
        let mut dir = LayerSpec::new("D");
        dir.add_dir("/a", 0o755, 0, 0).unwrap();
        let err = error_of(spec.merge(dir.clone()));
        assert!(
            err.starts_with("D puts a directory at `/a`, where A puts a file"),
            "{err}"
        );
        let mut spec = LayerSpec::new("all");
        spec.merge(dir).unwrap();
        let err = error_of(spec.merge(file("A", "/a")));
        assert!(
            err.starts_with("A puts a file at `/a`, where D puts a directory"),
            "{err}"
        );
        let mut tmp = LayerSpec::new("T");
        tmp.add_dir("/a", 0o1777, 0, 0).unwrap();
        let err = error_of(spec.merge(tmp));
        assert!(
            err.starts_with("T puts a directory with mode 1777 and owner 0:0 at `/a`, where D puts one with mode 0755"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn directories_merge_and_an_explicit_one_keeps_its_mode_and_owner() {
        let mut home = LayerSpec::new("home");
        home.add_dir("/home/user", 0o700, 5, 5).unwrap();
        let mut below = LayerSpec::new("below");
        below
            .add_bytes("/home/user/.profile", "x", MODE_FILE)
            .unwrap();
        below.add_dir("/home", MODE_EXECUTABLE, 0, 0).unwrap();
        for (first, second) in [(home.clone(), below.clone()), (below, home)] {
            let mut spec = LayerSpec::new("all");
            spec.merge(first).unwrap();
            spec.merge(second).unwrap();
            let entries = entries_of(&layer_of(&spec));
            let user = entries.iter().find(|e| e.0 == "home/user").unwrap();
            assert_eq!((user.1, user.2), (0o700, 5));
            assert_eq!(entries.len(), 3);
        }
    }

    #[test]
    fn a_layer_on_top_refuses_clashes_and_keeps_the_lower_directories_metadata() {
        let mut lower = LayerSpec::new("lower");
        lower.add_dir("/home/user", 0o700, 5, 5).unwrap();
        lower.add_bytes("/etc/passwd", "x", MODE_FILE).unwrap();
        lower.add_dir("/srv", MODE_EXECUTABLE, 0, 0).unwrap();
        let program = |path: &str| {
            let mut spec = LayerSpec::new("the program");
            spec.add_bytes(path, "p", MODE_EXECUTABLE).unwrap();
            spec
        };
        for (path, needle) in [
            (
                "/etc/passwd",
                "the program puts a file at `/etc/passwd`, where lower puts a file",
            ),
            (
                "/etc/passwd/x",
                "the program needs a directory at `/etc/passwd`",
            ),
            (
                "/srv",
                "the program puts a file at `/srv`, where lower puts a directory",
            ),
            (
                "/home",
                "the program puts a file at `/home`, where lower needs a directory",
            ),
        ] {
            let err = error_of(program(path).stack_on(&lower));
            assert!(err.starts_with(needle), "{path}: {err}");
        }
        let mut upper = program("/home/user/bin/app");
        upper.stack_on(&lower).unwrap();
        let entries = entries_of(&layer_of(&upper));
        let modes: Vec<(&str, u32, u64)> =
            entries.iter().map(|e| (e.0.as_str(), e.1, e.2)).collect();
        assert_eq!(
            modes,
            [
                ("home", 0o755, 0),
                ("home/user", 0o700, 5),
                ("home/user/bin", 0o755, 0),
                ("home/user/bin/app", 0o755, 0)
            ]
        );
    }

    #[test]
    fn over_a_base_our_files_go_through_its_working_links_and_never_below_a_broken_one() {
        use crate::assemble::rootfs::testing::{Layer as BaseLayer, scan};
        let base = scan(
            &[BaseLayer::new()
                .dir_owned("srv/", 0o750, 7)
                .dir("usr/bin/")
                .symlink("bin", "usr/bin")
                .symlink("usr/local", "local")
                .symlink("opt", "/nowhere")],
            &[],
        )
        .unwrap()
        .named("base.tar");
        let program = |path: &str| {
            let mut spec = LayerSpec::new("the program");
            spec.add_bytes(path, "p", MODE_EXECUTABLE).unwrap();
            spec
        };
        let mut through = program("/bin/tools/app");
        through.over_base(&base).unwrap();
        let mut beside = program("/srv/app");
        beside.over_base(&base).unwrap();
        let names = |spec: &LayerSpec| {
            entries_of(&layer_of(spec))
                .into_iter()
                .map(|e| (e.0, e.1, e.2))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&through),
            [
                ("bin/tools".to_owned(), 0o755, 0),
                ("bin/tools/app".to_owned(), 0o755, 0)
            ],
            "the link /bin stays, our files go through it"
        );
        assert_eq!(names(&beside)[0], ("srv".to_owned(), 0o750, 7));
        for (path, needle) in [
            (
                "/usr/local/bin/app",
                "base base.tar: /usr/local is a symbolic link to `local`, which loops",
            ),
            (
                "/opt/app",
                "base base.tar: /opt is a symbolic link to `/nowhere`, which leads to `/nowhere`, \
                 which the base does not have, so /opt/app (the program) cannot be written below it",
            ),
        ] {
            let err = error_of(program(path).over_base(&base));
            assert!(err.starts_with(needle), "{path}: {err}");
        }
    }
}
