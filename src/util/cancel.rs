//! Cooperative cancellation: a [`CancelToken`] per run, passed in with the run's context, so two
//! runs in one process cancel separately.
//!
//! Cancelling a token sets its flag: streaming loops see it at their next chunk and return
//! [`Error::Interrupted`](crate::error::Error::Interrupted), so temporary files are removed by their normal
//! drop path. The token also knows what the run holds that a blocked thread could leave behind: the
//! child processes it started (they register with it when they start), which a cancel passes its signal on to
//! (they may sit in a process group of their own, where a terminal's Ctrl-C does not reach them), and
//! the temporary files and directories it registered. A thread blocked elsewhere (a network read, a
//! helper program that ignores the signal) cannot see the flag: whoever cancelled may then end the
//! rest with [`CancelToken::stop_children`] and [`CancelToken::remove_temporaries`]. Signals are the
//! command line's business: it catches SIGINT, SIGTERM and SIGHUP, cancels its token with
//! [`CancelToken::cancel_by_signal`], and after a grace period does exactly that before it ends the
//! process by the signal. The library catches no signal. Windows has neither signals nor process
//! groups: there a cancel ends each child itself (see `util::windows`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[cfg(unix)]
use rustix::process::{Pid, Signal};

#[cfg(windows)]
pub(crate) use crate::util::windows::ChildTarget;
#[cfg(windows)]
use crate::util::windows::Signal;

/// How long a killed child process (and everything it started) may take to be gone before we stop
/// waiting: SIGKILL cannot be caught, so only a process stuck in the kernel (a dead NFS server) takes
/// longer.
pub(crate) const STOP_WAIT: Duration = Duration::from_secs(5);

/// Asks one run to stop. Cheap to clone: clones share the same state, so a clone kept by another
/// thread (a signal handler, a UI's cancel button, a timeout) cancels the run it was handed to and
/// no other. A token is never reset; use a new one for the next run.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    /// The signal that cancelled the run; 0 for none (or a plain [`CancelToken::cancel`]).
    signal: AtomicI32,
    next_guard: AtomicU64,
    temporaries: Mutex<BTreeMap<u64, PathBuf>>,
    children: Mutex<BTreeMap<u64, ChildTarget>>,
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the run to stop at its next chunk, and every child process it started to end (SIGTERM).
    pub fn cancel(&self) {
        self.cancel_with(Signal::TERM);
    }

    /// Cancels the run because this process received `signal` (a raw number, such as `SIGINT`), which
    /// is passed on to every child process the run started and remembered ([`CancelToken::signal`]).
    pub fn cancel_by_signal(&self, signal: i32) {
        self.inner.signal.store(signal, Ordering::SeqCst);
        self.cancel_with(Signal::from_named_raw(signal).unwrap_or(Signal::TERM));
    }

    fn cancel_with(&self, signal: Signal) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.signal_children(signal);
    }

    /// True once the token was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// The signal that cancelled the run, if one did ([`CancelToken::cancel_by_signal`]).
    pub fn signal(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// Fails with `Interrupted` once the token was cancelled.
    pub fn check(&self) -> crate::error::Result<()> {
        if self.is_cancelled() {
            Err(crate::error::Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Sleeps for `duration`, waking early (with `Interrupted`) when the token is cancelled.
    pub(crate) fn sleep(&self, duration: Duration) -> crate::error::Result<()> {
        let step = Duration::from_millis(50);
        let mut left = duration;
        while !left.is_zero() {
            self.check()?;
            let nap = left.min(step);
            std::thread::sleep(nap);
            left -= nap;
        }
        self.check()
    }

    /// Registers `path`, a temporary file or directory of the run, for
    /// [`CancelToken::remove_temporaries`] until the guard is dropped.
    pub(crate) fn temporary(&self, path: &Path) -> TempGuard {
        let id = self.inner.next_guard.fetch_add(1, Ordering::SeqCst);
        lock(&self.inner.temporaries).insert(id, path.to_owned());
        TempGuard {
            token: self.clone(),
            id,
        }
    }

    /// Removes every temporary file or directory the run registered and still holds; for whoever
    /// cancelled the run and gave it up (a forced end), as the owning threads may be blocked.
    pub fn remove_temporaries(&self) {
        let paths: Vec<PathBuf> = lock(&self.inner.temporaries).values().cloned().collect();
        for path in paths {
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Registers a running child process of the run until the guard is dropped.
    pub(crate) fn child(&self, target: ChildTarget) -> ChildGuard {
        let id = self.inner.next_guard.fetch_add(1, Ordering::SeqCst);
        lock(&self.inner.children).insert(id, target);
        ChildGuard {
            token: self.clone(),
            id,
        }
    }

    /// Sends `signal` to every registered child (under the lock, so none is reaped meanwhile).
    fn signal_children(&self, signal: Signal) {
        let children = lock(&self.inner.children);
        for target in children.values() {
            target.signal(signal);
        }
    }

    /// Kills every child process the run started and still holds, with everything each started, and
    /// waits (at most a few seconds) for them to be gone; for a forced end, as
    /// [`CancelToken::remove_temporaries`].
    pub fn stop_children(&self) {
        let targets: Vec<ChildTarget> = {
            let children = lock(&self.inner.children);
            for target in children.values() {
                target.signal(Signal::KILL);
            }
            children.values().copied().collect()
        };
        let deadline = Instant::now() + STOP_WAIT;
        for target in targets {
            target.wait_gone(deadline);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temporary file or directory that must not outlive an interrupted run. Registering it with the
/// run's token lets a forced end remove it even when the thread that owns it is blocked; dropping the
/// guard unregisters it (the owner then cleans up or keeps the file as usual).
#[derive(Debug)]
pub(crate) struct TempGuard {
    token: CancelToken,
    id: u64,
}

impl TempGuard {
    /// The token of the run the temporary belongs to.
    pub fn cancel(&self) -> &CancelToken {
        &self.token
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        lock(&self.token.inner.temporaries).remove(&self.id);
    }
}

/// A running child process: the process group it leads, or the process alone when it shares ours.
#[cfg(unix)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildTarget {
    pub pid: Pid,
    pub group: bool,
}

#[cfg(unix)]
impl ChildTarget {
    /// Sends `signal` to the child (and its whole group when it leads one); errors (gone already) are
    /// of no interest.
    pub fn signal(self, signal: Signal) {
        let _ = if self.group {
            rustix::process::kill_process_group(self.pid, signal)
        } else {
            rustix::process::kill_process(self.pid, signal)
        };
    }

    /// Waits, at most until `deadline`, for the child and (when it leads a group) every process in its
    /// group to be gone; a zombie counts as gone (it runs nothing and holds no file or lock).
    pub fn wait_gone(self, deadline: Instant) {
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the child, or (when it leads a group) any process of its group, still runs.
    pub fn alive(self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(alive) = proc_alive(self) {
            return alive;
        }
        if self.group {
            rustix::process::test_kill_process_group(self.pid).is_ok()
        } else {
            rustix::process::test_kill_process(self.pid).is_ok()
        }
    }
}

/// Whether a process of `target` runs, from `/proc` (`None` when it cannot be read).
#[cfg(target_os = "linux")]
fn proc_alive(target: ChildTarget) -> Option<bool> {
    // `/proc/PID/stat`: "PID (COMM) STATE PPID PGRP ..."; COMM may hold anything, so fields are
    // counted from its closing parenthesis.
    let running = |stat: &str| -> Option<(char, i32)> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let pgrp = fields.nth(1)?.parse().ok()?;
        Some((state, pgrp))
    };
    let live = |state: char| !matches!(state, 'Z' | 'X' | 'x');
    let pid = target.pid.as_raw_nonzero().get();
    if !target.group {
        return Some(
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| running(&stat))
                .is_some_and(|(state, _)| live(state)),
        );
    }
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(entries.flatten().any(|entry| {
        let name = entry.file_name();
        name.to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| running(&stat))
                .is_some_and(|(state, pgrp)| pgrp == pid && live(state))
    }))
}

/// A registered child process: a cancel passes its signal on to it, and the deadline kills it with
/// A registered child process: a cancel passes its signal on to it, and a forced end kills it with
/// its group. The owner unregisters it (drops the guard) after the child has exited but before it is
/// reaped, so its process id (and group id) cannot have been reused by an unrelated process while it
/// is registered.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    token: CancelToken,
    id: u64,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        lock(&self.token.inner.children).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cancel_separately_and_clones_share_one() {
        let first = CancelToken::new();
        let second = CancelToken::new();
        let clone = first.clone();
        clone.cancel();
        assert!(first.is_cancelled());
        assert!(matches!(
            first.check(),
            Err(crate::error::Error::Interrupted)
        ));
        assert!(!second.is_cancelled());
        assert!(second.check().is_ok());
        assert_eq!(first.signal(), None);
        second.cancel_by_signal(2);
        assert_eq!(second.signal(), Some(2));
    }

    #[test]
    fn a_forced_end_removes_only_its_own_runs_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours");
        let theirs = dir.path().join("theirs");
        let kept = dir.path().join("kept");
        for path in [&ours, &theirs, &kept] {
            std::fs::write(path, b"x").unwrap();
        }
        let token = CancelToken::new();
        let other = CancelToken::new();
        let _ours = token.temporary(&ours);
        let _theirs = other.temporary(&theirs);
        drop(token.temporary(&kept));
        token.remove_temporaries();
        assert!(!ours.exists());
        assert!(theirs.exists(), "another run's temporary was removed");
        assert!(kept.exists(), "an unregistered file was removed");
    }
}
