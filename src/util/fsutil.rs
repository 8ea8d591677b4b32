//! Reading files the user points at: regular files only (opening a FIFO blocks until someone writes to
//! it, and a device can be endless) and never more than a bound.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Bound for small files read whole: configuration, credentials, certificates.
pub const MAX_SMALL_FILE: u64 = 16 << 20;

/// Opens `path` for reading after checking it is a regular file (`what` names it in errors).
pub fn open_regular(path: &Path, what: &str) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::input(path, format!("no such file ({what})")),
        _ => Error::io("reading", path)(e),
    })?;
    refuse_non_regular(path, &meta, what)?;
    let file = File::open(path).map_err(Error::io("opening", path))?;
    // The path may have been replaced between the check and the open.
    let meta = file.metadata().map_err(Error::io("reading", path))?;
    refuse_non_regular(path, &meta, what)?;
    Ok(file)
}

fn refuse_non_regular(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file (a pipe, socket or device)"
    };
    Err(Error::input(
        path,
        format!("is {kind}; {what} must be a regular file"),
    ))
}

/// Reads a whole regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let file = open_regular(path, what)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("reading", path))?;
    if bytes.len() as u64 > max {
        return Err(Error::input(
            path,
            format!("is larger than {} MiB, too large for {what}", max >> 20),
        ));
    }
    Ok(bytes)
}

/// [`read_regular`], with a missing file meaning `None`.
pub fn read_regular_if_present(path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    if !path.exists() {
        // A dangling symbolic link: nothing there yet.
        return Ok(None);
    }
    read_regular(path, max, what).map(Some)
}

/// Follows symbolic links at `path` to the file they finally name (which may not exist yet), so that
/// replacing "the file at `path`" replaces the link's target and keeps the link.
pub fn resolve_links(path: &Path) -> Result<std::path::PathBuf> {
    const MAX_HOPS: usize = 40;
    let mut current = path.to_owned();
    for _ in 0..=MAX_HOPS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)
                    .map_err(Error::io("reading the symbolic link", &current))?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(Error::io("checking", &current)(e)),
        }
    }
    Err(Error::input(
        path,
        "has too many levels of symbolic links (a loop?); fix the link",
    ))
}

/// The user's home directory: `$HOME`; on Windows `%USERPROFILE%` (where the docker CLI keeps its
/// config.json), else `$HOME`.
pub(crate) fn home_dir() -> Option<std::ffi::OsString> {
    #[cfg(unix)]
    {
        std::env::var_os("HOME")
    }
    #[cfg(windows)]
    {
        std::env::var_os("USERPROFILE")
            .filter(|home| !home.is_empty())
            .or_else(|| std::env::var_os("HOME"))
    }
}

/// A file's identity, links followed: its device and inode on Unix, its volume and file index on
/// Windows; the same through every path and hard link to one file.
pub(crate) type FileId = (u64, u64);

/// The identity of the file whose metadata (links followed) is `meta`, at `path`.
#[cfg_attr(
    unix,
    allow(
        clippy::unnecessary_wraps,
        reason = "opening the file on Windows can fail"
    )
)]
pub(crate) fn file_id(path: &Path, meta: &std::fs::Metadata) -> io::Result<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = path;
        Ok((meta.dev(), meta.ino()))
    }
    #[cfg(windows)]
    {
        let _ = meta;
        crate::util::windows::file_id(path)
    }
}

/// True when both paths name one existing file (links followed).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    let id = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| file_id(path, &meta))
            .ok()
    };
    matches!((id(a), id(b)), (Some(a), Some(b)) if a == b)
}

/// The program `name` would run as from the directory `dir` of PATH, if it is there: an executable
/// file on Unix; on Windows, where files have no executable bit, `NAME.exe` (as
/// `std::process::Command` looks it up) unless the name has an extension already.
pub(crate) fn program_in(dir: &Path, name: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    let candidate = dir.join(name);
    #[cfg(windows)]
    let candidate = if candidate.extension().is_none() {
        candidate.with_extension("exe")
    } else {
        candidate
    };
    is_program(&candidate).then_some(candidate)
}

/// True when `path` is a file this system would run: on Unix one with an executable bit set, on
/// Windows any file.
pub(crate) fn is_program(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| {
        #[cfg(unix)]
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o111 != 0
        };
        #[cfg(windows)]
        let executable = true;
        meta.is_file() && executable
    })
}

/// A writer that keeps the first error its inner writer gave, so that a sink can report a failed
/// write (a full disk) naming its own file, whatever the layer writer made of it.
pub(crate) struct WatchedWriter<'a> {
    inner: &'a mut dyn Write,
    failed: Option<io::Error>,
}

impl<'a> WatchedWriter<'a> {
    pub fn new(inner: &'a mut dyn Write) -> WatchedWriter<'a> {
        WatchedWriter {
            inner,
            failed: None,
        }
    }

    /// `error`, or the inner writer's own error when there was one: what really failed.
    pub fn explain(&mut self, error: Error, step: &'static str, path: &Path) -> Error {
        match self.failed.take() {
            Some(failed) => Error::io(step, path)(failed),
            None => error,
        }
    }

    fn keep<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result
            && self.failed.is_none()
            && e.kind() != io::ErrorKind::Interrupted
        {
            self.failed = Some(match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            });
        }
        result
    }
}

impl Write for WatchedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.keep(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_regular(&fifo, 10, "the credentials file")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(read_regular(dir.path(), 10, "x").is_err());
    }

    #[test]
    fn links_resolve_to_their_final_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::os::unix::fs::symlink("real.json", dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_eq!(resolve_links(&dir.path().join("b")).unwrap(), target);
        assert_eq!(resolve_links(&target).unwrap(), target);
        std::os::unix::fs::symlink("loop2", dir.path().join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", dir.path().join("loop2")).unwrap();
        assert!(resolve_links(&dir.path().join("loop1")).is_err());
    }

    #[test]
    fn reads_are_bounded_and_missing_files_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_regular(&file, 10, "x").unwrap(), b"0123456789");
        assert!(read_regular(&file, 9, "x").is_err());
        assert_eq!(
            read_regular_if_present(&dir.path().join("none"), 10, "x").unwrap(),
            None
        );
    }
}
