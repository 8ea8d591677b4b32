//! Where `-o PATH` really writes: symbolic links are followed to the file they name (kept as links),
//! character devices and FIFOs (and `-`, standard output) are written through, and anything else that
//! is not a regular file is refused before a byte is written. On Windows, outputs are regular files or
//! `-`: a device or pipe given by name is refused.

use std::fs::{File, FileType, Metadata};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::time::Duration;

use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;

/// The resolved output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A regular file, existing or not, at this path (every symbolic link followed): the archive is
    /// written beside it and renamed over it.
    File(PathBuf),
    /// A stream that cannot be replaced or sought in: the finished archive is copied into it.
    Stream(Stream),
}

/// A destination the archive is copied into once complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// `-o -`.
    Stdout,
    /// A character device or FIFO, by the path given (links and all).
    Device(PathBuf),
}

impl Destination {
    /// Resolves `path` as given to `-o`. Refuses directories, block devices and sockets, a dangling
    /// link or new file whose directory does not exist, and link chains that do not end.
    pub fn resolve(path: &Path) -> Result<Destination> {
        if is_dash(path) {
            use std::io::IsTerminal;
            if io::stdout().is_terminal() {
                return Err(Error::Invalid(
                    "-o - writes the archive to standard output, which is a terminal; redirect it \
                     (-o - > app.tar, or a pipe) or give a file name"
                        .to_owned(),
                ));
            }
            return Ok(Destination::Stream(Stream::Stdout));
        }
        match std::fs::metadata(path) {
            Ok(meta) => {
                let kind = meta.file_type();
                if kind.is_file() {
                    let target = follow_links(path)?;
                    ensure_same_file(path, &target, &meta)?;
                    Ok(Destination::File(target))
                } else if is_stream(kind) {
                    Ok(Destination::Stream(Stream::Device(path.to_owned())))
                } else {
                    Err(refused(path, &meta))
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let target = follow_links(path)?;
                new_file(path, target)
            }
            Err(e) if is_link_loop(&e) => Err(too_many_links(path)),
            Err(e) => Err(Error::Input {
                path: path.to_owned(),
                message: format!("cannot check the output ({e}); choose another -o/--output"),
            }),
        }
    }
}

/// A character device or FIFO, which an output is written through rather than replaced; never on
/// Windows, where such an output is refused.
pub(crate) fn is_stream(kind: FileType) -> bool {
    #[cfg(unix)]
    {
        kind.is_char_device() || kind.is_fifo()
    }
    #[cfg(windows)]
    {
        let _ = kind;
        false
    }
}

/// The error of following a loop of symbolic links.
fn is_link_loop(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(windows)]
    {
        error.raw_os_error()
            == i32::try_from(windows_sys::Win32::Foundation::ERROR_CANT_RESOLVE_FILENAME).ok()
    }
}

/// True for the conventional `-` meaning standard output.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// True when `path` is `-`: on Windows no output is written through a device or pipe by name.
#[cfg(windows)]
pub fn is_standard_output(path: &Path) -> bool {
    is_dash(path)
}

/// True when `path` is `-` or names the same device or pipe as standard output. Never fails: anything
/// that cannot be checked is not standard output.
#[cfg(unix)]
pub fn is_standard_output(path: &Path) -> bool {
    if is_dash(path) {
        return true;
    }
    let (Ok(out), Ok(meta)) = (stdout_metadata(), std::fs::metadata(path)) else {
        return false;
    };
    let kind = meta.file_type();
    (kind.is_char_device() || kind.is_fifo())
        && meta.dev() == out.dev()
        && meta.ino() == out.ino()
        && meta.rdev() == out.rdev()
}

#[cfg(unix)]
fn stdout_metadata() -> io::Result<Metadata> {
    use std::os::fd::AsFd;
    let fd = io::stdout().as_fd().try_clone_to_owned()?;
    File::from(fd).metadata()
}

/// Follows `path` through every symbolic link to the path of the file it names, which may not exist.
fn follow_links(path: &Path) -> Result<PathBuf> {
    crate::util::fsutil::resolve_links(path).map_err(|e| match e {
        Error::Input { .. } => too_many_links(path),
        other => other,
    })
}

/// The file reached by following the links by hand must be the one the kernel reaches (not so for
/// `/proc` links to deleted or anonymous files).
fn ensure_same_file(path: &Path, target: &Path, meta: &Metadata) -> Result<()> {
    use crate::util::fsutil::file_id;
    let same = |found: &Metadata| {
        !found.file_type().is_symlink()
            && matches!((file_id(path, meta), file_id(target, found)), (Ok(a), Ok(b)) if a == b)
    };
    match std::fs::symlink_metadata(target) {
        Ok(found) if same(&found) => Ok(()),
        _ => Err(Error::input(
            path,
            "links to a file that cannot be replaced by name; choose another -o/--output",
        )),
    }
}

/// A file to be created at `target` (reached from `path`, perhaps through a dangling link).
fn new_file(path: &Path, target: PathBuf) -> Result<Destination> {
    if target.file_name().is_none() {
        return Err(Error::input(
            path,
            "is not a file path; give the archive a file name, e.g. app.tar",
        ));
    }
    let dir = parent_dir(&target);
    if !dir.is_dir() {
        return Err(Error::input(
            &dir,
            "output directory does not exist; create it first or choose another -o/--output",
        ));
    }
    Ok(Destination::File(target))
}

/// The directory a file path lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn too_many_links(path: &Path) -> Error {
    Error::input(
        path,
        "has too many levels of symbolic links (a loop?); fix the link or choose another -o/--output",
    )
}

fn refused(path: &Path, meta: &Metadata) -> Error {
    let kind = meta.file_type();
    if kind.is_dir() {
        return Error::input(
            path,
            "is a directory; give the archive a file name, e.g. -o dir/app.tar",
        );
    }
    #[cfg(unix)]
    {
        let what = if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        Error::input(
            path,
            format!(
                "is {what}; the archive goes to a regular file, a character device, a FIFO or `-` \
                 (standard output): choose another -o/--output"
            ),
        )
    }
    #[cfg(windows)]
    {
        Error::input(
            path,
            "is not a regular file; on Windows the archive goes to a regular file or `-` \
             (standard output): choose another -o/--output",
        )
    }
}

impl Stream {
    /// How status lines name it.
    pub fn describe(&self) -> String {
        match self {
            Stream::Stdout => "standard output".to_owned(),
            Stream::Device(path) => path.display().to_string(),
        }
    }

    /// Copies the finished archive `source` (read from its current position) into the stream; waiting
    /// for a FIFO's reader ends when `cancel` is cancelled.
    pub fn copy_from(&self, source: &mut File, cancel: &CancelToken) -> Result<()> {
        let failed = |e: io::Error| Error::Io {
            step: "writing the archive to",
            path: PathBuf::from(self.describe()),
            source: e,
        };
        match self {
            Stream::Stdout => {
                let mut out = io::stdout().lock();
                io::copy(source, &mut out).map_err(failed)?;
                out.flush().map_err(failed)
            }
            Stream::Device(path) => {
                let mut out = open_device(path, cancel)?;
                io::copy(source, &mut out).map_err(failed)?;
                out.flush().map_err(failed)
            }
        }
    }
}

/// Windows outputs are never devices or FIFOs ([`is_stream`]).
#[cfg(windows)]
pub(crate) fn open_device(path: &Path, _cancel: &CancelToken) -> Result<File> {
    Err(Error::input(
        path,
        "is not a regular file; on Windows outputs go to regular files or `-`",
    ))
}

/// Opens a character device or FIFO for writing. A FIFO without a reader is waited for (as a shell
/// redirection would), but in a way that a cancel still stops.
#[cfg(unix)]
pub(crate) fn open_device(path: &Path, cancel: &CancelToken) -> Result<File> {
    let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    let open = |flags: i32| {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | flags)
            .open(path)
    };
    // The probe stays open until the real open is done: closing the only writer would give the
    // reader an end of file, and it would go away before the archive arrives.
    let mut probe = None;
    if fifo {
        loop {
            cancel.check()?;
            match open(libc::O_NONBLOCK) {
                // A reader is there: the blocking open below returns at once.
                Ok(file) => {
                    probe = Some(file);
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(Error::io("opening the output", path)(e)),
            }
        }
    }
    let file = open(0).map_err(Error::io("opening the output", path))?;
    drop(probe);
    let kind = file
        .metadata()
        .map_err(Error::io("checking the output", path))?
        .file_type();
    if !is_stream(kind) {
        return Err(Error::input(
            path,
            "changed while the archive was written; run again",
        ));
    }
    Ok(file)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_to_the_file_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("real.tar");
        std::fs::write(&file, b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        symlink("../real.tar", dir.path().join("sub/rel")).unwrap();
        symlink(dir.path().join("sub/rel"), dir.path().join("abs")).unwrap();
        assert_eq!(
            Destination::resolve(&dir.path().join("abs")).unwrap(),
            Destination::File(dir.path().join("sub/../real.tar"))
        );
        // A dangling link names the file to create, when its directory exists.
        symlink("new.tar", dir.path().join("dangling")).unwrap();
        assert_eq!(
            Destination::resolve(&dir.path().join("dangling")).unwrap(),
            Destination::File(dir.path().join("new.tar"))
        );
        symlink("nowhere/new.tar", dir.path().join("lost")).unwrap();
        let err = Destination::resolve(&dir.path().join("lost")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn link_loops_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let err = Destination::resolve(&dir.path().join("a")).unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }

    #[test]
    fn dash_and_devices_are_streams_and_directories_are_refused() {
        assert_eq!(
            Destination::resolve(Path::new("-")).unwrap(),
            Destination::Stream(Stream::Stdout)
        );
        assert_eq!(
            Destination::resolve(Path::new("/dev/null")).unwrap(),
            Destination::Stream(Stream::Device(PathBuf::from("/dev/null")))
        );
        let err = Destination::resolve(Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
