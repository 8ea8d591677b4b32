//! The blob cache: pulled blobs kept by digest at `<cache>/blobs/<algorithm>/<hex>`, so a base image is
//! downloaded once. Nothing in it is trusted: every entry is checked against its digest when read (a
//! corrupt one is removed and fetched again), only regular files are read (never a symbolic link out of
//! the cache), and a blob enters it only after its digest checked, by renaming a private temporary file
//! into place, so concurrent runs fetching the same blob both succeed. The directories on the way to an
//! entry (`blobs`, `blobs/<algorithm>`) must be our own directories, never links, for reads as for
//! writes.
//!
//! A temporary file (`.partial.*`) is locked by its writer (`flock`) while it is written. A writer
//! killed outright (SIGKILL, a power cut) leaves it behind; such files are removed when a cache is
//! next opened: those whose lock is free (the kernel releases it when the writer ends, however it
//! ends) and that are older than [`STALE_PARTIAL_AGE`]. A partial file of a concurrent run is never
//! touched: its writer holds the lock. (On Windows: `LockFileEx` in place of `flock`, and the
//! link-refusing open of an entry opens the link itself, which is then refused as not a regular file.)

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, VerifyingReader};
use crate::report::Listener;
use crate::util::cancel::{CancelToken, TempGuard};

/// Prefix of the temporary files blobs are written to.
const PARTIAL_PREFIX: &str = ".partial.";

/// How old an unlocked partial file must be before it is removed: a writer creates its file and only
/// then locks it, and this is far longer than that moment could ever be.
pub const STALE_PARTIAL_AGE: Duration = Duration::from_secs(60);

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
pub(crate) fn default_dir() -> Option<PathBuf> {
    dir_from(
        std::env::var_os("ZEROIMAGE_CACHE_DIR"),
        std::env::var_os("XDG_CACHE_HOME"),
        crate::util::fsutil::home_dir(),
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
    /// The private directory of [`CacheMode::Private`], removed on drop (its guard first, so a forced
    /// end of the run that opened it removes it even while a download blocks).
    private: Option<(TempGuard, tempfile::TempDir)>,
}

impl BlobCache {
    /// Opens (creating it if needed) the cache `mode` names; a private one is a temporary directory of
    /// the run `cancel` cancels.
    pub fn open(mode: &CacheMode, cancel: &CancelToken) -> Result<BlobCache> {
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
                let temp = crate::util::outputs::temp_dir("zeroimage-cache-")
                    .map_err(Error::io("creating a directory in", std::env::temp_dir()))?;
                let guard = cancel.temporary(temp.path());
                let mut cache = BlobCache::at(temp.path())?;
                cache.private = Some((guard, temp));
                Ok(cache)
            }
        }
    }

    /// The cache whose blobs are under `dir/blobs`; partial files left by writers that are gone are
    /// removed (see the module documentation).
    pub fn at(dir: &Path) -> Result<BlobCache> {
        fs::create_dir_all(dir).map_err(Error::io("creating the cache directory", dir))?;
        let cache = BlobCache {
            dir: dir.to_owned(),
            private: None,
        };
        cache.prune_partials();
        Ok(cache)
    }

    /// Removes stale partial files from every algorithm directory. Best effort: whatever cannot be
    /// read or removed stays, and the run goes on.
    fn prune_partials(&self) {
        let blobs = self.dir.join("blobs");
        if !is_real_dir(&blobs) {
            return;
        }
        let Ok(algorithms) = fs::read_dir(&blobs) else {
            return;
        };
        for algorithm in algorithms.flatten() {
            let dir = algorithm.path();
            if !is_real_dir(&dir) {
                continue;
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let is_partial = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(PARTIAL_PREFIX));
                if is_partial && is_stale_partial(&entry.path()) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
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
        self.checked_algorithm_dir(digest, true)?
            .ok_or_else(|| Error::Invalid("the cache directory vanished".to_owned()))
    }

    /// The directory of `digest`'s algorithm when `blobs` and it are directories of our own; `None`
    /// when one is missing (and not `create`d). Anything else there (a symbolic link, a file) is
    /// refused: it would lead reads and removals out of the cache.
    fn checked_algorithm_dir(&self, digest: &Digest, create: bool) -> Result<Option<PathBuf>> {
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
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
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
        Ok(Some(dir))
    }

    /// The cached blob `descriptor` names, checked against its digest before it is handed out (and
    /// again as it is read). A corrupt or unusable entry is removed, with a warning, and counts as a
    /// miss: `None`. Warnings go to the listener of `cx`, and its cancel token interrupts the check.
    pub fn get(
        &self,
        descriptor: &Descriptor,
        cx: &Context,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        let listener = cx.listener();
        // Only inside our own directories: never through a link to a file named like the digest
        // elsewhere (it would be read, or removed as corrupt).
        if self
            .checked_algorithm_dir(&descriptor.digest, false)?
            .is_none()
        {
            return Ok(None);
        }
        let path = self.path_of(&descriptor.digest);
        let Some(mut file) = self.open_entry(&path, listener)? else {
            return Ok(None);
        };
        let mut hasher = descriptor.digest.hasher();
        let mut buf = vec![0u8; 256 << 10];
        let mut len = 0u64;
        loop {
            cx.cancel().check()?;
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
    /// when it was not a regular file (then it is removed, with a warning). The directories on the way
    /// were checked by the caller ([`checked_algorithm_dir`](Self::checked_algorithm_dir)).
    fn open_entry(&self, path: &Path, listener: &dyn Listener) -> Result<Option<File>> {
        let file = match open_no_follow(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // O_NOFOLLOW on a symbolic link.
            Err(e) if is_link_refused(&e) => {
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
        let file = open_no_follow(&path).map_err(Error::io("opening", &path))?;
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
    /// `cancel` interrupts the transfer, and a forced end of its run removes the temporary file.
    pub fn put(
        &self,
        descriptor: &Descriptor,
        content: &mut dyn Read,
        on_read_error: &dyn Fn(io::Error) -> Error,
        cancel: &CancelToken,
    ) -> Result<Box<dyn Read + Send>> {
        let dir = self.algorithm_dir(&descriptor.digest)?;
        let (mut file, temp) =
            crate::util::outputs::temp_file(&dir, std::ffi::OsStr::new("partial"), "", 0o644)
                .map_err(Error::io("creating a temporary file in", &dir))?;
        let _guard = cancel.temporary(&temp);
        // Held until the file is closed: it tells another run's pruning that the writer is alive. A
        // file system without locks only means the file is never pruned.
        let _ = try_lock(&file);
        let mut verified =
            VerifyingReader::new(content, descriptor.digest.clone(), descriptor.size);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            cancel.check()?;
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

/// Opens `path` for reading without following a symbolic link (`O_NOFOLLOW`: a link fails, see
/// [`is_link_refused`]) and without waiting for a FIFO's writer. Windows opens the link itself, which
/// is not a regular file; directories open too, to be told apart.
fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NOFOLLOW | libc::O_NONBLOCK,
    );
    #[cfg(windows)]
    std::os::windows::fs::OpenOptionsExt::custom_flags(
        &mut options,
        windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT
            | windows_sys::Win32::Storage::FileSystem::FILE_FLAG_BACKUP_SEMANTICS,
    );
    options.open(path)
}

/// The error [`open_no_follow`] gives for a symbolic link (`ELOOP`); none on Windows.
fn is_link_refused(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(windows)]
    {
        let _ = error;
        false
    }
}

/// Takes the writer's lock on a partial file without waiting (`flock`; `LockFileEx` on Windows).
fn try_lock(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(io::Error::from)
    }
    #[cfg(windows)]
    {
        crate::util::windows::try_lock(file)
    }
}

/// True when `path` is a directory itself, not a link to one.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// True when the partial file at `path` is a regular file older than [`STALE_PARTIAL_AGE`] whose
/// lock is free: its writer is gone. A lock that cannot be taken for any other reason (no locks on
/// this file system) counts as held.
fn is_stale_partial(path: &Path) -> bool {
    let Ok(file) = open_no_follow(path) else {
        return false;
    };
    let old = file.metadata().is_ok_and(|meta| {
        meta.is_file()
            && meta.modified().is_ok_and(|modified| {
                SystemTime::now()
                    .duration_since(modified)
                    .is_ok_and(|age| age >= STALE_PARTIAL_AGE)
            })
    });
    old && try_lock(&file).is_ok()
}

/// Removes a cache entry (a file or a link itself, never what a link points at).
fn remove_entry(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing the corrupt cache entry", path)(e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::oci::MediaType;
    use crate::report::Silent;
    use rustix::fs::FlockOperation;

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
        assert!(cache.get(&d, &Context::new(&Silent)).unwrap().is_none());
        let stored = cache
            .put(
                &d,
                &mut &b"layer bytes"[..],
                &no_read_error,
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(read_all(stored), b"layer bytes");
        assert_eq!(
            read_all(cache.get(&d, &Context::new(&Silent)).unwrap().unwrap()),
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
            .put(
                &d,
                &mut &b"other bytes!!!"[..],
                &no_read_error,
                &CancelToken::new(),
            )
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
            .put(
                &d,
                &mut &b"good content"[..],
                &no_read_error,
                &CancelToken::new(),
            )
            .unwrap();
        fs::write(cache.path_of(&d.digest), b"evil content").unwrap();
        assert!(cache.get(&d, &Context::new(&Silent)).unwrap().is_none());
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
            cache.get(&d, &Context::new(&Silent)).unwrap().is_none(),
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
    fn a_linked_blob_directory_is_never_followed_nor_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let corrupt = descriptor(b"wanted bytes");
        let matching = descriptor(b"bytes kept elsewhere");
        // Files outside the cache named like the digests: one with other bytes (a cache would remove
        // it as corrupt), one with the right bytes (a cache would serve it).
        fs::write(outside.join(corrupt.digest.hex()), b"someone's file").unwrap();
        fs::write(outside.join(matching.digest.hex()), b"bytes kept elsewhere").unwrap();
        for linked in ["blobs", "blobs/sha256"] {
            let root = dir
                .path()
                .join(format!("cache-{}", linked.replace('/', "-")));
            let cache = BlobCache::at(&root).unwrap();
            let link = root.join(linked);
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            let target = if linked == "blobs" {
                fs::create_dir_all(dir.path().join("outside-blobs")).unwrap();
                let _ =
                    std::os::unix::fs::symlink(&outside, dir.path().join("outside-blobs/sha256"));
                dir.path().join("outside-blobs")
            } else {
                outside.clone()
            };
            std::os::unix::fs::symlink(&target, &link).unwrap();
            for d in [&corrupt, &matching] {
                let err = cache
                    .get(d, &Context::new(&Silent))
                    .err()
                    .expect("a linked directory is refused");
                assert!(
                    err.to_string().contains("is not a directory")
                        && err.to_string().contains(&link.display().to_string()),
                    "{err}"
                );
            }
            assert!(
                cache
                    .put(
                        &corrupt,
                        &mut &b"wanted bytes"[..],
                        &no_read_error,
                        &CancelToken::new()
                    )
                    .is_err()
            );
        }
        assert_eq!(
            fs::read(outside.join(corrupt.digest.hex())).unwrap(),
            b"someone's file",
            "the file outside the cache is untouched"
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            2,
            "nothing added outside"
        );
    }

    #[test]
    fn stale_partial_files_are_removed_when_the_cache_opens_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sha = dir.path().join("blobs/sha256");
        fs::create_dir_all(&sha).unwrap();
        let past = SystemTime::now() - STALE_PARTIAL_AGE - Duration::from_secs(5);
        let make = |name: &str, old: bool| {
            let file = File::create(sha.join(name)).unwrap();
            if old {
                file.set_modified(past).unwrap();
            }
            file
        };
        // Left by a writer that was killed: old, unlocked.
        drop(make(".partial.killed", true));
        // A concurrent run's download that has stalled for long: old, but its writer holds the lock.
        let writer = make(".partial.stalled", true);
        rustix::fs::flock(&writer, FlockOperation::NonBlockingLockExclusive).unwrap();
        // Just created by a concurrent run, not locked yet.
        drop(make(".partial.new", false));
        // An old entry is not a partial file.
        let d = descriptor(b"entry");
        fs::write(sha.join(d.digest.hex()), b"entry").unwrap();
        File::options()
            .write(true)
            .open(sha.join(d.digest.hex()))
            .unwrap()
            .set_modified(past)
            .unwrap();
        // A link named like a partial file is not followed.
        let outside = dir.path().join("outside");
        fs::write(&outside, b"x").unwrap();
        File::options()
            .write(true)
            .open(&outside)
            .unwrap()
            .set_modified(past)
            .unwrap();
        std::os::unix::fs::symlink(&outside, sha.join(".partial.link")).unwrap();

        let cache = BlobCache::at(dir.path()).unwrap();
        let mut names: Vec<String> = fs::read_dir(&sha)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = vec![
            ".partial.link".to_owned(),
            ".partial.new".to_owned(),
            ".partial.stalled".to_owned(),
            d.digest.hex().to_owned(),
        ];
        expected.sort();
        assert_eq!(names, expected);
        assert!(outside.exists());
        assert_eq!(
            read_all(cache.get(&d, &Context::new(&Silent)).unwrap().unwrap()),
            b"entry"
        );
        drop(writer);
        // Once its writer is gone, the stalled one goes too.
        BlobCache::at(dir.path()).unwrap();
        assert!(!sha.join(".partial.stalled").exists());
    }

    #[test]
    fn a_partial_file_is_locked_while_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::at(dir.path()).unwrap();
        let d = descriptor(b"0123456789");
        let sha = dir.path().join("blobs/sha256");
        // A reader that checks, half-way, that the partial file is locked against pruning.
        struct Probe<'a> {
            sha: &'a Path,
            sent: usize,
        }
        impl Read for Probe<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.sent == 5 {
                    let partial = fs::read_dir(self.sha)
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .find(|p| {
                            p.file_name()
                                .unwrap()
                                .to_str()
                                .unwrap()
                                .starts_with(PARTIAL_PREFIX)
                        })
                        .expect("a partial file while writing");
                    let other = File::open(&partial).unwrap();
                    assert!(
                        rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive)
                            .is_err(),
                        "the writer holds the lock"
                    );
                }
                let bytes = &b"0123456789"[self.sent..];
                let n = bytes.len().min(5).min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                self.sent += n;
                Ok(n)
            }
        }
        let stored = cache
            .put(
                &d,
                &mut Probe { sha: &sha, sent: 0 },
                &no_read_error,
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(read_all(stored), b"0123456789");
    }

    #[test]
    fn a_private_cache_is_removed_on_drop() {
        let cache = BlobCache::open(&CacheMode::Private, &CancelToken::new()).unwrap();
        let dir = cache.dir().to_owned();
        let d = descriptor(b"x");
        cache
            .put(&d, &mut &b"x"[..], &no_read_error, &CancelToken::new())
            .unwrap();
        assert!(cache.path_of(&d.digest).is_file());
        drop(cache);
        assert!(!dir.exists());
    }
}
