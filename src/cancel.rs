//! Cooperative cancellation with a deadline.
//!
//! A binary's Ctrl-C handler calls [`request`]: streaming loops see the flag at their next chunk and
//! return [`Error::Interrupted`](crate::Error::Interrupted), so temporary files are removed by their
//! normal drop path. A thread blocked elsewhere (a network read, a credential helper) cannot see the
//! flag, so the handler also enforces a deadline: when the run has not ended shortly after, the
//! temporary files the library registered are removed ([`remove_temporaries`]) and the process exits
//! with 130.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

static CANCELLED: AtomicBool = AtomicBool::new(false);
static NEXT_GUARD: AtomicU64 = AtomicU64::new(0);
static TEMPORARIES: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());

/// How long a cancelled run may take to end on its own before it is ended for it.
pub const GRACE: Duration = Duration::from_millis(600);

/// Asks every running operation to stop at its next chunk.
pub fn request() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// True once [`request`] has been called.
pub fn is_requested() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// Fails with `Interrupted` when cancellation was requested.
pub fn check() -> crate::Result<()> {
    if is_requested() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps for `duration`, waking early (with `Interrupted`) when cancellation is requested.
pub(crate) fn sleep(duration: Duration) -> crate::Result<()> {
    let step = Duration::from_millis(50);
    let mut left = duration;
    while !left.is_zero() {
        check()?;
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
    check()
}

/// A temporary file or directory that must not outlive an interrupted run. Registering it lets the
/// Ctrl-C deadline remove it even when the thread that owns it is blocked; dropping the guard
/// unregisters it (the owner then cleans up or keeps the file as usual).
#[derive(Debug)]
pub(crate) struct TempGuard {
    id: u64,
}

impl TempGuard {
    /// Registers `path` for removal if the process is ended by the Ctrl-C deadline.
    pub fn new(path: &Path) -> TempGuard {
        let id = NEXT_GUARD.fetch_add(1, Ordering::SeqCst);
        TEMPORARIES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, path.to_owned());
        TempGuard { id }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        TEMPORARIES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Removes every registered temporary file or directory; used just before the process is ended.
pub fn remove_temporaries() {
    let paths: Vec<PathBuf> = TEMPORARIES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    for path in paths {
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}
