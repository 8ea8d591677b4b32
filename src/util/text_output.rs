//! A small text file a run writes only when it succeeds (`--image-refs`, `resolve -o`): its path is
//! checked, and a temporary file made beside it, before anything is built, so a path that cannot be
//! written fails at once; the text is put in place by a rename at the very end, so a failed or
//! interrupted run never touches the file.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::util::cancel::{CancelToken, TempGuard};
use crate::util::destination::{is_dash, is_stream, open_device, parent_dir};
use crate::util::fsutil::same_file;
use crate::util::outputs::{Staged, put_in_place, temp_file};

/// A small text file a run writes at its end, checked before the run starts.
#[derive(Debug)]
pub struct TextOutput {
    /// The path given, for messages.
    given: PathBuf,
    /// The option that gave it, for messages, e.g. `--image-refs`.
    flag: &'static str,
    to: Target,
    /// Removes the temporary file if the run is ended by force.
    _guard: Option<TempGuard>,
}

#[derive(Debug)]
enum Target {
    /// A regular file (links followed), written beside it under a temporary name and renamed over it.
    File {
        temp: TempPath,
        file: File,
        target: PathBuf,
    },
    /// A FIFO or character device, written through at the end.
    Stream(PathBuf),
}

impl TextOutput {
    /// Checks that `path`, given to the option `flag`, can be written and makes the temporary file
    /// the text goes to, so that a path that cannot be written is refused before anything is built;
    /// in the run `cancel` cancels. `-` is refused: standard output has its own use.
    pub fn create(path: &Path, flag: &'static str, cancel: &CancelToken) -> Result<TextOutput> {
        if is_dash(path) {
            return Err(Error::input(
                path,
                format!("{flag} takes a file path here; give a file name"),
            ));
        }
        let target = crate::util::fsutil::resolve_links(path)?;
        match std::fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::input(
                    path,
                    format!("is a directory; give {flag} a file name inside it"),
                ));
            }
            Ok(meta) if is_stream(meta.file_type()) => {
                return Ok(TextOutput {
                    given: path.to_owned(),
                    flag,
                    to: Target::Stream(path.to_owned()),
                    _guard: None,
                });
            }
            Ok(meta) if !meta.is_file() => {
                return Err(Error::input(
                    path,
                    format!("is not a regular file; give {flag} a file path"),
                ));
            }
            _ => {}
        }
        let Some(name) = target.file_name() else {
            return Err(Error::input(
                path,
                format!("is not a file path; give {flag} a file name"),
            ));
        };
        let dir = parent_dir(&target);
        let (file, temp) = temp_file(&dir, name, ".part", 0o644).map_err(|e| {
            Error::input(
                path,
                format!("cannot be written ({e}); choose another {flag} path"),
            )
        })?;
        Ok(TextOutput {
            given: path.to_owned(),
            flag,
            _guard: Some(cancel.temporary(&temp)),
            to: Target::File { temp, file, target },
        })
    }

    /// Refuses a path that is the same file as `other` (links followed), named `what`.
    pub fn ensure_not(&self, other: &Path, what: &str) -> Result<()> {
        let mine = match &self.to {
            Target::File { target, .. } => target.clone(),
            Target::Stream(path) => path.clone(),
        };
        let same = crate::util::fsutil::resolve_links(other).is_ok_and(|theirs| theirs == mine)
            || same_file(&mine, other);
        if same {
            return Err(Error::input(
                &self.given,
                format!("is also {what}; give {} another path", self.flag),
            ));
        }
        Ok(())
    }

    /// Writes `text` and puts the file in place; a run cancelled by `cancel` writes nothing.
    pub fn write(self, text: &str, cancel: &CancelToken) -> Result<()> {
        cancel.check()?;
        let failed = |e: io::Error| Error::Io {
            step: "writing",
            path: self.given.clone(),
            source: e,
        };
        match self.to {
            Target::File {
                temp,
                mut file,
                target,
            } => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(failed)?;
                drop(file);
                put_in_place(vec![Staged::new(temp, target, cancel)], cancel)
            }
            Target::Stream(path) => {
                let mut out = open_device(&path, cancel)?;
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(failed)
            }
        }
    }
}
