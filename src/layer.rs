//! Filesystem layers: a sorted, deterministic tar stream, gzip-compressed in one pass, with both
//! digests (`diff_id` of the tar, `digest` of the gzip) computed on the way through.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use crate::cancel;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, HashingWriter, MEDIA_TYPE_LAYER_GZIP};
use crate::timestamp::Timestamp;

const BLOCK: usize = 512;
/// Every write reaches the compressor in chunks of exactly this size: deflate output depends on how
/// input is split, and callers' write sizes vary.
const CHUNK: usize = 64 * 1024;
/// Gzip level 6, gzip's and docker's default.
const GZIP_LEVEL: u32 = 6;
/// Gzip header OS byte "unknown", so the bytes do not depend on where we run.
const GZIP_OS_UNKNOWN: u8 = 255;

/// How errors name the layer's destination, which is any writer (the archive file, in practice).
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
}

impl Entry {
    fn root(mode: u32, source: Source) -> Entry {
        Entry {
            mode,
            uid: 0,
            gid: 0,
            source,
        }
    }
}

/// The contents of one layer: paths in the image and where their bytes come from.
///
/// Entries are written sorted by path, each after its parent directories, owned by root unless said
/// otherwise and stamped with the image's timestamp, so the same inputs always give the same bytes.
#[derive(Clone, Debug, Default)]
pub struct LayerSpec {
    entries: BTreeMap<String, Entry>,
}

impl LayerSpec {
    pub fn new() -> LayerSpec {
        LayerSpec::default()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the file at `source` as `image_path` (absolute in the image, e.g. `/app`), with `mode`.
    /// Missing parent directories are added with mode 0755.
    pub fn add_file(&mut self, image_path: &str, source: &Path, mode: u32) -> Result<()> {
        self.insert(
            image_path,
            Entry::root(mode, Source::File(source.to_owned())),
        )
    }

    /// Adds a file with the given content.
    pub fn add_bytes(
        &mut self,
        image_path: &str,
        bytes: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<()> {
        self.insert(image_path, Entry::root(mode, Source::Bytes(bytes.into())))
    }

    /// Adds a directory with `mode` (which may carry the sticky bit, as /tmp's 1777 does) and owner.
    pub fn add_dir(&mut self, image_path: &str, mode: u32, uid: u64, gid: u64) -> Result<()> {
        self.insert(
            image_path,
            Entry {
                mode,
                uid,
                gid,
                source: Source::Directory,
            },
        )
    }

    /// Adds a symbolic link pointing at `target`, stored as written.
    pub fn add_symlink(&mut self, image_path: &str, target: &str) -> Result<()> {
        self.insert(
            image_path,
            Entry::root(0o777, Source::Symlink(target.to_owned())),
        )
    }

    /// Adds `source` (a file or a directory tree) at `image_path`. Ownership becomes root's, files keep
    /// only whether they are executable (0755, else 0644), directories get 0755, and symbolic links stay
    /// links: nothing outside `source` is ever read through them.
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
            self.add_symlink(image_path, target)
        } else if file_type.is_dir() {
            self.add_dir(image_path, MODE_EXECUTABLE, 0, 0)?;
            let mut children: Vec<_> = std::fs::read_dir(source)
                .map_err(Error::io("listing", source))?
                .collect::<io::Result<Vec<_>>>()
                .map_err(Error::io("listing", source))?;
            children.sort_by_key(|c| c.file_name());
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
            use std::os::unix::fs::PermissionsExt;
            let executable = meta.permissions().mode() & 0o111 != 0;
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

    /// Adds every entry of `other`; its entries win where both have one.
    pub fn merge(&mut self, other: LayerSpec) {
        self.entries.extend(other.entries);
    }

    fn insert(&mut self, image_path: &str, entry: Entry) -> Result<()> {
        let path = normalize(image_path)?;
        self.add_parents(&path);
        self.entries.insert(path, entry);
        Ok(())
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            self.entries
                .entry(path[..end].to_owned())
                .or_insert(Entry::root(MODE_EXECUTABLE, Source::Directory));
            end += 1;
        }
    }

    /// Writes the gzip-compressed layer to `out` and describes it.
    pub fn write<W: Write>(&self, out: W, mtime: Timestamp) -> Result<(W, Layer)> {
        let compressed = HashingWriter::new(out);
        let gzip = GzBuilder::new()
            .mtime(0)
            .operating_system(GZIP_OS_UNKNOWN)
            .write(compressed, Compression::new(GZIP_LEVEL));
        let mut tar = HashingWriter::new(Chunker::new(gzip));
        let sink_error = Error::io("writing the layer to", SINK);
        for (path, entry) in &self.entries {
            self.write_entry(&mut tar, path, entry, mtime)?;
        }
        tar.write_all(&[0u8; 2 * BLOCK]).map_err(sink_error)?;
        let (chunker, diff_id, _) = tar.finish();
        let gzip = chunker
            .finish()
            .map_err(Error::io("writing the layer to", SINK))?;
        let compressed = gzip
            .finish()
            .map_err(Error::io("writing the layer to", SINK))?;
        let (out, digest, size) = compressed.finish();
        Ok((
            out,
            Layer {
                descriptor: Descriptor::new(MEDIA_TYPE_LAYER_GZIP, digest, size),
                diff_id,
            },
        ))
    }

    fn write_entry<W: Write>(
        &self,
        tar: &mut W,
        path: &str,
        entry: &Entry,
        mtime: Timestamp,
    ) -> Result<()> {
        let sink_error = || Error::io("writing the layer to", SINK);
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(mtime.unix_seconds());
        match &entry.source {
            Source::Directory => {
                set_path(&mut header, path)?;
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_cksum();
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
            }
            Source::Symlink(target) => {
                set_path(&mut header, path)?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_link_name_literal(target).map_err(|e| {
                    Error::Invalid(format!(
                        "cannot store the link `/{path}` -> `{target}`: {e}"
                    ))
                })?;
                header.set_cksum();
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
            }
            Source::Bytes(bytes) => {
                set_path(&mut header, path)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_cksum();
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
                tar.write_all(bytes).map_err(sink_error())?;
                tar.write_all(&[0u8; BLOCK][..padding(bytes.len() as u64)])
                    .map_err(sink_error())?;
            }
            Source::File(source) => {
                let mut file = File::open(source).map_err(Error::io("opening", source))?;
                // The size in the header is the size when opened; a file that changes while being
                // read is an error, not a silently corrupt layer.
                let size = file.metadata().map_err(Error::io("reading", source))?.len();
                set_path(&mut header, path)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                header.set_cksum();
                tar.write_all(header.as_bytes()).map_err(sink_error())?;
                let copied = copy_exact(&mut file, tar, size).map_err(|e| match e {
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
                tar.write_all(&[0u8; BLOCK][..padding(size)])
                    .map_err(sink_error())?;
            }
        }
        Ok(())
    }
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// A layer as written: its descriptor (compressed digest and size) and its `diff_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar, for the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
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

fn set_path(header: &mut tar::Header, path: &str) -> Result<()> {
    header
        .set_path(path)
        .map_err(|e| Error::Invalid(format!("cannot store `/{path}` in a tar header: {e}")))
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
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; CHUNK];
    let mut copied = 0u64;
    while copied < limit {
        if cancel::is_requested() {
            return Err(CopyError::Cancelled);
        }
        let want = usize::try_from(limit - copied).map_or(CHUNK, |left| left.min(CHUNK));
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

/// Re-chunks a byte stream into fixed-size writes.
struct Chunker<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Chunker<W> {
    fn new(inner: W) -> Self {
        Chunker {
            inner,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Chunker<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == CHUNK {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(take)
    }

    /// Does not pass partial chunks on: a flush must not change the compressed bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn entries_of(layer_bytes: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
        let tar = flate2::read::GzDecoder::new(Cursor::new(layer_bytes));
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
        let mut spec = LayerSpec::new();
        spec.add_file("/usr/local/bin/app", &a, 0o755).unwrap();
        spec.add_file("/etc/x", &a, 0o644).unwrap();
        let (bytes, layer) = spec
            .write(Vec::new(), Timestamp::from_unix(42).unwrap())
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
    fn same_input_gives_same_bytes_whatever_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &data).unwrap();
        let mut spec = LayerSpec::new();
        spec.add_file("/a", &a, 0o755).unwrap();
        let (one, _) = spec.write(Vec::new(), Timestamp::EPOCH).unwrap();
        let (two, _) = spec.write(Vec::new(), Timestamp::EPOCH).unwrap();
        assert_eq!(one, two);
        // A chunker fed byte-odd writes passes on the same fixed-size writes.
        let mut chunker = Chunker::new(Vec::new());
        for piece in data.chunks(999) {
            chunker.write_all(piece).unwrap();
        }
        assert_eq!(chunker.finish().unwrap(), data);
    }

    #[test]
    fn image_paths_must_be_absolute_and_clean() {
        let mut spec = LayerSpec::new();
        for bad in ["app", "/", "/a/../b", "/a//b", "/./a", ""] {
            assert!(spec.add_file(bad, Path::new("x"), 0o755).is_err(), "{bad}");
        }
    }
}
