//! Runs adding to one layout take turns: an exclusive `flock` on the directory itself, held from
//! reading `index.json` until it is replaced, or until a failed run has taken back what it added.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::FLAG;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::util::cancel::TempGuard;

/// How long a run waits for another run to finish with the same layout.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Creates `dir` and its missing parents; returns those it created, outermost first.
pub(super) fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
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
#[cfg(unix)]
pub(super) fn lock(dir: &Path, undo: &mut Undo, cx: &Context) -> Result<File> {
    use rustix::fs::{FlockOperation, flock};
    use std::fs::OpenOptions;
    use std::io;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::time::Instant;
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

/// On Windows a directory takes no lock: the layout is opened (so that it stays while the run
/// writes) and a run adding to it at the same time as another may lose the other's entry, as `-v`
/// says.
#[cfg(windows)]
pub(super) fn lock(dir: &Path, undo: &mut Undo, cx: &Context) -> Result<File> {
    cx.cancel().check()?;
    if fs::symlink_metadata(dir).is_err() {
        let created = create_dirs(dir)?;
        undo.dirs.extend(created);
    }
    cx.listener().detail(&format!(
        "{} is not locked on Windows: runs adding to it at the same time may lose each other's \
         entries",
        dir.display()
    ));
    crate::util::windows::open_dir(dir).map_err(Error::io("opening", dir))
}

/// True when another run holds the layout's lock (see [`lock`]); never on Windows, which takes none.
#[cfg(windows)]
pub(super) fn locked_by_another_run(_dir: &Path) -> bool {
    false
}

/// True when another run holds the layout's lock (see [`lock`]).
#[cfg(unix)]
pub(super) fn locked_by_another_run(dir: &Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
    else {
        return false;
    };
    flock(&file, FlockOperation::NonBlockingLockShared) == Err(rustix::io::Errno::WOULDBLOCK)
}

/// What a failed run takes back: the files it added (blobs, `oci-layout`) and the directories it made,
/// unless [`disarm`](Undo::disarm)ed once `index.json` is in place.
#[derive(Default)]
pub(super) struct Undo {
    pub(super) files: Vec<PathBuf>,
    /// Outermost first.
    pub(super) dirs: Vec<PathBuf>,
    /// Removes the directory this run made on a forced end of the run.
    pub(super) guard: Option<TempGuard>,
    pub(super) done: bool,
    /// The layout's lock: a field, so it is released only after [`Drop::drop`] has undone what the
    /// run added (another run must not find a blob that is about to go).
    pub(super) lock: Option<File>,
}

impl Undo {
    pub(super) fn disarm(&mut self) {
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
