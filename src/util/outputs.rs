//! The files a run writes (the image archive and the SBOM and provenance documents beside it) are
//! checked against every file it reads (the programs, `--include`d files, the CA bundle and zoneinfo,
//! a base image archive or layout) before anything is written, by identity (device and inode, links
//! followed), so that no path, link or hard link makes an output replace an input.
//!
//! Then they are put in place together: each is completed under a temporary name beside its
//! destination, and only then are all renamed over their destinations, the archive last. A rename
//! that fails undoes those already made (a file replaced comes back from a hard link kept until the
//! end), so a failed run leaves every file as it was, and an existing file is never replaced unless it
//! can be brought back.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;
use crate::util::destination::parent_dir;
use crate::util::fsutil::{FileId, file_id};

/// A file the run reads, as messages name it.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    pub path: PathBuf,
    /// What it is, e.g. `the input executable`, `a file of --include ./www:/srv`.
    pub what: String,
}

/// Every file the run reads, by identity (device and inode on Unix).
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    files: HashMap<FileId, Input>,
}

impl Inputs {
    /// Adds the file at `path` (links followed), named `what` in messages. One that cannot be checked
    /// (missing, unreadable) is left out: reading it fails later, with its own message.
    pub fn add(&mut self, path: &Path, what: &str) {
        if let Ok(meta) = std::fs::metadata(path)
            && let (false, Ok(id)) = (meta.is_dir(), file_id(path, &meta))
        {
            self.files.entry(id).or_insert_with(|| Input {
                path: path.to_owned(),
                what: what.to_owned(),
            });
        }
    }

    /// The input that the file at `output` (links followed) is, if any.
    pub fn find(&self, output: &Path) -> Option<&Input> {
        let meta = std::fs::metadata(output).ok()?;
        self.files.get(&file_id(output, &meta).ok()?)
    }
}

/// Asks `options` to create files with `mode` (less the umask); Windows files have no Unix mode (a
/// new file takes its directory's permissions).
fn with_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode)
    }
    #[cfg(windows)]
    {
        let _ = mode;
        options
    }
}

/// Creates a new file for writing with `mode` (less the umask) in `dir`, named
/// `.NAME.XXXXXX.SUFFIX`: removed when the returned path is dropped, unless it is put in place. Errors
/// are the system's own, without the path (the caller names the file).
pub(crate) fn temp_file(
    dir: &Path,
    name: &std::ffi::OsStr,
    suffix: &str,
    mode: u32,
) -> io::Result<(File, TempPath)> {
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(suffix)
        .make_in(dir, |path| {
            with_mode(
                OpenOptions::new().read(true).write(true).create_new(true),
                mode,
            )
            .open(path)
        })?;
    Ok(temp.into_parts())
}

/// A new private directory in the system's temporary directory, named `PREFIXXXXXXX`, removed when
/// dropped. tempfile's errors end with the path they concern; the system's error is kept without it
/// (the caller names the directory).
pub(crate) fn temp_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::from(e.kind()),
        })
}

/// A complete file under a temporary name, and where it goes.
#[derive(Debug)]
pub(crate) struct Staged {
    temp: TempPath,
    /// The file it replaces or creates, links already followed.
    target: PathBuf,
    /// Removes the temporary file if the run is ended by force.
    _guard: crate::util::cancel::TempGuard,
}

impl Staged {
    /// The complete file at `temp`, to be renamed over `target` (links already followed); a temporary
    /// of the run `cancel` cancels.
    pub fn new(temp: TempPath, target: PathBuf, cancel: &CancelToken) -> Staged {
        Staged {
            _guard: cancel.temporary(&temp),
            temp,
            target,
        }
    }
}

/// A file about to be replaced, kept as a hard link (or, where the filesystem has none, a copy) under a
/// temporary name until the run is done.
struct Backup {
    kept: TempPath,
    target: PathBuf,
}

/// Keeps the file at `target`, when there is one.
fn back_up(target: &Path) -> Result<Option<Backup>> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("checking", target)(e)),
        Ok(_) => {}
    }
    let name = target.file_name().unwrap_or(target.as_os_str());
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let kept = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".old")
        .make_in(parent_dir(target), |path| {
            std::fs::hard_link(target, path).or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Err(e),
                _ => copy_new(target, path),
            })
        })
        .map_err(Error::io(
            "keeping the previous file while replacing",
            target,
        ))?;
    Ok(Some(Backup {
        kept: kept.into_parts().1,
        target: target.to_owned(),
    }))
}

/// Copies `from` to the new file `to`, with its permissions.
fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    #[cfg(unix)]
    let mode = std::os::unix::fs::MetadataExt::mode(&source.metadata()?) & 0o7777;
    #[cfg(windows)]
    let mode = 0;
    let mut copy = with_mode(OpenOptions::new().write(true).create_new(true), mode).open(to)?;
    let copied = io::copy(&mut source, &mut copy).and_then(|_| copy.sync_all());
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Renames every staged file over its target, in order, the one that decides the run last: either all
/// are in place, or (when a rename fails) those already made are undone, every temporary file is removed
/// and the error says which file could not be written. Every file replaced but the last is kept until
/// the end: when the last rename fails, nothing of it was replaced.
pub(crate) fn put_in_place(staged: Vec<Staged>, cancel: &CancelToken) -> Result<()> {
    cancel.check()?;
    let last = staged.len().saturating_sub(1);
    let mut backups = Vec::with_capacity(staged.len());
    for (index, file) in staged.iter().enumerate() {
        backups.push(if index < last {
            back_up(&file.target)?
        } else {
            None
        });
    }
    let mut placed: Vec<(PathBuf, Option<Backup>)> = Vec::new();
    for (file, backup) in staged.into_iter().zip(backups) {
        let Staged { temp, target, .. } = file;
        if let Err(e) = temp.persist(&target) {
            let error = Error::io("writing", &target)(e.error);
            return Err(undo(placed, error));
        }
        placed.push((target, backup));
    }
    Ok(())
}

/// Brings back what `placed` replaced (or removes what it created), newest first; returns `error`,
/// saying where a previous file is kept when it could not be brought back.
fn undo(placed: Vec<(PathBuf, Option<Backup>)>, error: Error) -> Error {
    let mut stranded = Vec::new();
    for (target, backup) in placed.into_iter().rev() {
        match backup {
            Some(backup) => {
                if let Err(e) = backup.kept.persist(&backup.target)
                    && let Ok(kept) = e.path.keep()
                {
                    stranded.push((target, kept));
                }
            }
            None => {
                let _ = std::fs::remove_file(&target);
            }
        }
    }
    match (stranded.first(), error) {
        (None, error) => error,
        (Some((target, kept)), Error::Io { step, path, source }) => Error::Io {
            step,
            path,
            source: io::Error::new(
                source.kind(),
                format!(
                    "{source}; the previous {} could not be put back and is kept as {}",
                    target.display(),
                    kept.display()
                ),
            ),
        },
        (Some(_), error) => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn staged(dir: &Path, name: &str, content: &str) -> Staged {
        let (mut file, temp) = temp_file(dir, name.as_ref(), ".partial", 0o644).unwrap();
        file.write_all(content.as_bytes()).unwrap();
        Staged::new(temp, dir.join(name), &CancelToken::new())
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_file_is_put_in_place_replacing_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.spdx.json"), "old").unwrap();
        put_in_place(
            vec![
                staged(dir.path(), "a.spdx.json", "new sbom"),
                staged(dir.path(), "a.tar", "archive"),
            ],
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(listing(dir.path()), ["a.spdx.json", "a.tar"]);
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("a.spdx.json"), "new sbom");
        assert_eq!(read("a.tar"), "archive");
    }

    #[test]
    fn a_failed_rename_brings_back_the_files_already_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.spdx.json"), "old sbom").unwrap();
        // The archive's place is taken by a directory that is not empty: its rename fails.
        std::fs::create_dir(dir.path().join("a.tar")).unwrap();
        std::fs::write(dir.path().join("a.tar/x"), "").unwrap();
        let err = put_in_place(
            vec![
                staged(dir.path(), "a.spdx.json", "new sbom"),
                staged(dir.path(), "a.cdx.json", "new cdx"),
                staged(dir.path(), "a.tar", "archive"),
            ],
            &CancelToken::new(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("writing `"), "{err}");
        assert_eq!(listing(dir.path()), ["a.spdx.json", "a.tar"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.spdx.json")).unwrap(),
            "old sbom"
        );
    }

    #[cfg(unix)]
    #[test]
    fn inputs_are_found_through_links_and_other_paths() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("app");
        std::fs::write(&program, "elf").unwrap();
        std::os::unix::fs::symlink("app", dir.path().join("link")).unwrap();
        std::fs::hard_link(&program, dir.path().join("hard")).unwrap();
        let mut inputs = Inputs::default();
        inputs.add(&program, "the input executable");
        for path in ["link", "hard", "./app"] {
            let found = inputs.find(&dir.path().join(path)).unwrap();
            assert_eq!(found.path, program);
        }
        assert!(inputs.find(&dir.path().join("other")).is_none());
    }
}
