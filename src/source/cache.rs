//! The blob cache: pulled blobs kept by digest at `<cache>/blobs/<algorithm>/<hex>`, so a base image is
//! downloaded once. Nothing in it is trusted: every entry is checked against its digest when read (a
//! corrupt one is removed and fetched again), only regular files are read (never a symbolic link out of
//! the cache), and a blob enters it only after its digest checked, by renaming a private temporary file
//! into place, so concurrent runs fetching the same blob both succeed.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::cancel::TempGuard;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, VerifyingReader};
use crate::report::Listener;

/// Which cache a run uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// The user's cache: `$ZEROIMAGE_CACHE_DIR`, else `$XDG_CACHE_HOME/zeroimage`, else
    /// `~/.cache/zeroimage`.
    #[default]
    User,
    /// A cache in this directory (tests, CI, an embedding program).
    At(PathBuf),
    /// A private temporary directory, removed when the cache is dropped (`--no-cache`).
    Private,
}

/// The user's cache directory, from the environment; `None` when there is no home directory.
pub fn default_dir() -> Option<PathBuf> {
    dir_from(
        std::env::var_os("ZEROIMAGE_CACHE_DIR"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

fn dir_from(
    explicit: Option<std::ffi::OsString>,
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if let Some(dir) = explicit.filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if let Some(dir) = xdg.map(PathBuf::from).filter(|d| d.is_absolute()) {
        return Some(dir.join("zeroimage"));
    }
    home.filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("zeroimage"))
}

/// A content-addressed store of verified blobs.
#[derive(Debug)]
pub struct BlobCache {
    dir: PathBuf,
    /// The private directory of [`CacheMode::Private`], removed on drop (its guard first, so the Ctrl-C
    /// deadline removes it even while a download blocks).
    _private: Option<(TempGuard, tempfile::TempDir)>,
}

impl BlobCache {
    /// Opens (creating it if needed) the cache `mode` names.
    pub fn open(mode: &CacheMode) -> Result<BlobCache> {
        match mode {
            CacheMode::User => {
                let dir = default_dir().ok_or_else(|| {
                    Error::Invalid(
                        "no cache directory: neither ZEROIMAGE_CACHE_DIR, XDG_CACHE_HOME nor HOME \
                         is set; set ZEROIMAGE_CACHE_DIR or run without the cache (--no-cache)"
                            .to_owned(),
                    )
                })?;
                BlobCache::at(&dir)
            }
            CacheMode::At(dir) => BlobCache::at(dir),
            CacheMode::Private => {
                let temp = crate::outputs::temp_dir("zeroimage-cache-")
                    .map_err(Error::io("creating a directory in", std::env::temp_dir()))?;
                let guard = TempGuard::new(temp.path());
                let mut cache = BlobCache::at(temp.path())?;
                cache._private = Some((guard, temp));
                Ok(cache)
            }
        }
    }

    /// The cache whose blobs are under `dir/blobs`.
    pub fn at(dir: &Path) -> Result<BlobCache> {
        fs::create_dir_all(dir).map_err(Error::io("creating the cache directory", dir))?;
        Ok(BlobCache {
            dir: dir.to_owned(),
            _private: None,
        })
    }

    /// The cache directory (the one holding `blobs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` is kept.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.blob_path())
    }

    /// The directory of `digest`'s algorithm, created if needed; refused when it is anything but a
    /// directory of our own (a symbolic link would lead out of the cache).
    fn algorithm_dir(&self, digest: &Digest) -> Result<PathBuf> {
        let blobs = self.dir.join("blobs");
        let dir = blobs.join(digest.algorithm().as_str());
        for path in [&blobs, &dir] {
            match fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(Error::input(
                        path,
                        "is not a directory; the blob cache must hold only its own directories \
                         and files: remove it",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match fs::create_dir(path) {
                        Ok(()) => {}
                        // Another run made it meanwhile.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(Error::io("creating", path)(e)),
                    }
                }
                Err(e) => return Err(Error::io("reading", path)(e)),
            }
        }
        Ok(dir)
    }

    /// The cached blob `descriptor` names, checked against its digest before it is handed out (and
    /// again as it is read). A corrupt or unusable entry is removed, with a warning, and counts as a
    /// miss: `None`.
    pub fn get(
        &self,
        descriptor: &Descriptor,
        listener: &dyn Listener,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        let path = self.path_of(&descriptor.digest);
        let Some(mut file) = self.open_entry(&path, listener)? else {
            return Ok(None);
        };
        let mut hasher = descriptor.digest.hasher();
        let mut buf = vec![0u8; 256 << 10];
        let mut len = 0u64;
        loop {
            crate::cancel::check()?;
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading", &path)(e)),
            };
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        let actual = hasher.finish();
        if actual != descriptor.digest {
            listener.warning(&format!(
                "cached blob {} was corrupt (its content hashes to {actual}); removed it, fetching it \
                 again",
                path.display()
            ));
            remove_entry(&path)?;
            return Ok(None);
        }
        if len != descriptor.size {
            // The entry is right; the descriptor is not.
            return Err(Error::Invalid(format!(
                "blob {} has {len} bytes, but its descriptor says {}",
                descriptor.digest, descriptor.size
            )));
        }
        // The checked file itself, not the path again: it may have been replaced meanwhile.
        file.seek(io::SeekFrom::Start(0))
            .map_err(Error::io("reading", &path))?;
        Ok(Some(Box::new(VerifyingReader::new(
            file,
            descriptor.digest.clone(),
            descriptor.size,
        ))))
    }

    /// Opens the entry at `path` without following a symbolic link; `None` when there is none, or
    /// when it was not a regular file (then it is removed, with a warning).
    fn open_entry(&self, path: &Path, listener: &dyn Listener) -> Result<Option<File>> {
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // O_NOFOLLOW on a symbolic link.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                self.refuse_entry(path, "a symbolic link", listener)?;
                return Ok(None);
            }
            Err(e) => return Err(Error::io("opening", path)(e)),
        };
        let meta = file.metadata().map_err(Error::io("reading", path))?;
        if !meta.is_file() {
            let kind = if meta.is_dir() {
                return Err(Error::input(
                    path,
                    "is a directory; the blob cache holds only files: remove it",
                ));
            } else {
                "not a regular file"
            };
            self.refuse_entry(path, kind, listener)?;
            return Ok(None);
        }
        Ok(Some(file))
    }

    fn refuse_entry(&self, path: &Path, kind: &str, listener: &dyn Listener) -> Result<()> {
        listener.warning(&format!(
            "cached blob {} was {kind}, which the cache never holds; removed it",
            path.display()
        ));
        remove_entry(path)
    }

    /// Reads a blob just stored, checked as it is read.
    fn read_fresh(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let path = self.path_of(&descriptor.digest);
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(Error::io("opening", &path))?;
        let meta = file.metadata().map_err(Error::io("reading", &path))?;
        if !meta.is_file() {
            return Err(Error::input(&path, "is not a regular file"));
        }
        Ok(Box::new(VerifyingReader::new(
            file,
            descriptor.digest.clone(),
            descriptor.size,
        )))
    }

    /// Stores the blob `descriptor` names from `content` (exactly `descriptor.size` bytes are read),
    /// then returns a reader over the stored copy. The bytes go to a temporary file beside the entry,
    /// renamed into place only when their digest matched: a failed or corrupt transfer leaves nothing.
    /// A read error of `content` is reported by `on_read_error` (the caller knows what the stream is).
    pub fn put(
        &self,
        descriptor: &Descriptor,
        content: &mut dyn Read,
        on_read_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<Box<dyn Read + Send>> {
        let dir = self.algorithm_dir(&descriptor.digest)?;
        let (mut file, temp) =
            crate::outputs::temp_file(&dir, std::ffi::OsStr::new("partial"), "", 0o644)
                .map_err(Error::io("creating a temporary file in", &dir))?;
        let _guard = TempGuard::new(&temp);
        let mut verified =
            VerifyingReader::new(content, descriptor.digest.clone(), descriptor.size);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            crate::cancel::check()?;
            let n = match verified.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(on_read_error(e)),
            };
            file.write_all(&buf[..n])
                .map_err(Error::io("writing", temp.to_path_buf()))?;
        }
        let path = self.path_of(&descriptor.digest);
        // Rename replaces whatever is at `path` (a symbolic link itself, never its target); a run that
        // stored the same blob meanwhile stored the same bytes.
        drop(file);
        temp.persist(&path)
            .map_err(|e| Error::io("storing a blob as", &path)(e.error))?;
        self.read_fresh(descriptor)
    }
}

/// Removes a cache entry (a file or a link itself, never what a link points at).
fn remove_entry(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing the corrupt cache entry", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MediaType;
    use crate::report::Silent;

    fn descriptor(bytes: &[u8]) -> Descriptor {
        Descriptor::new(
            MediaType::OciLayer(crate::oci::Compression::Gzip),
            Digest::of(bytes),
            bytes.len() as u64,
        )
    }

    fn read_all(mut reader: Box<dyn Read + Send>) -> Vec<u8> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    fn no_read_error(e: io::Error) -> Error {
        Error::Invalid(e.to_string())
    }

    #[test]
    fn the_cache_directory_follows_the_environment() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            dir_from(os("/ci/cache"), os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/ci/cache"))
        );
        assert_eq!(
            dir_from(None, os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/xdg/zeroimage"))
        );
        assert_eq!(
            dir_from(os(""), os("relative"), os("/home/u")),
            Some(PathBuf::from("/home/u/.cache/zeroimage"))
        );
        assert_eq!(dir_from(None, None, None), None);
    }

    #[test]
    fn stored_blobs_are_read_back_and_a_miss_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::at(dir.path()).unwrap();
        let d = descriptor(b"layer bytes");
        assert!(cache.get(&d, &Silent).unwrap().is_none());
        let stored = cache
            .put(&d, &mut &b"layer bytes"[..], &no_read_error)
            .unwrap();
        assert_eq!(read_all(stored), b"layer bytes");
        assert_eq!(
            read_all(cache.get(&d, &Silent).unwrap().unwrap()),
            b"layer bytes"
        );
        let names: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [d.digest.hex()], "no temporary file left");
    }

    #[test]
    fn corrupt_content_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::at(dir.path()).unwrap();
        let d = descriptor(b"the real bytes");
        let err = cache
            .put(&d, &mut &b"other bytes!!!"[..], &no_read_error)
            .err()
            .unwrap();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(!cache.path_of(&d.digest).exists());
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0,
            "the partial file is gone"
        );
    }

    #[test]
    fn a_corrupt_entry_is_removed_and_missed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::at(dir.path()).unwrap();
        let d = descriptor(b"good content");
        cache
            .put(&d, &mut &b"good content"[..], &no_read_error)
            .unwrap();
        fs::write(cache.path_of(&d.digest), b"evil content").unwrap();
        assert!(cache.get(&d, &Silent).unwrap().is_none());
        assert!(!cache.path_of(&d.digest).exists());
    }

    #[test]
    fn a_symbolic_link_in_the_cache_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"secret").unwrap();
        let cache = BlobCache::at(&dir.path().join("cache")).unwrap();
        let d = descriptor(b"secret");
        fs::create_dir_all(cache.path_of(&d.digest).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, cache.path_of(&d.digest)).unwrap();
        assert!(
            cache.get(&d, &Silent).unwrap().is_none(),
            "a link is a miss"
        );
        assert!(fs::symlink_metadata(cache.path_of(&d.digest)).is_err());
        assert_eq!(
            fs::read(&outside).unwrap(),
            b"secret",
            "its target is untouched"
        );
    }

    #[test]
    fn a_private_cache_is_removed_on_drop() {
        let cache = BlobCache::open(&CacheMode::Private).unwrap();
        let dir = cache.dir().to_owned();
        let d = descriptor(b"x");
        cache.put(&d, &mut &b"x"[..], &no_read_error).unwrap();
        assert!(cache.path_of(&d.digest).is_file());
        drop(cache);
        assert!(!dir.exists());
    }
}
