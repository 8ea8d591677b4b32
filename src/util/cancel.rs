//! Cooperative cancellation with a deadline, and the signals that start it.
//!
//! SIGINT (Ctrl-C), SIGTERM (CI cancellation, `timeout`, systemd, `docker stop`) and SIGHUP (a closed
//! terminal) all cancel a run the same way; [`handle_signals`] is the one place they are caught. On the
//! first of them the cancel flag is set: streaming loops see it at their next chunk and return
//! [`Error::Interrupted`](crate::Error::Interrupted), so temporary files are removed by their normal
//! drop path. The signal is passed on to every child process the library started (they register
//! here when they start), which may sit in a process group of its own where a terminal's Ctrl-C does not
//! reach it. A thread blocked elsewhere (a network read, a helper program that ignores the signal)
//! cannot see the flag, so a deadline follows: when the run has not ended [`GRACE`] after the signal,
//! every registered child is killed with everything it started, the temporary files the library
//! registered are removed, and the process ends by the same signal, as cargo does (a shell reports
//! 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

static CANCELLED: AtomicBool = AtomicBool::new(false);
/// The signal that cancelled the run; 0 for none (or a [`request`] from an embedding program).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static NEXT_GUARD: AtomicU64 = AtomicU64::new(0);
static TEMPORARIES: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
static CHILDREN: Mutex<BTreeMap<u64, ChildTarget>> = Mutex::new(BTreeMap::new());

/// How long a cancelled run may take to end on its own before it is ended for it.
pub const GRACE: Duration = Duration::from_millis(600);

/// How long a killed child process (and everything it started) may take to be gone before we stop
/// waiting: SIGKILL cannot be caught, so only a process stuck in the kernel (a dead NFS server) takes
/// longer.
pub(crate) const STOP_WAIT: Duration = Duration::from_secs(5);

/// Asks every running operation to stop at its next chunk, and every child process to end (SIGTERM).
pub fn request() {
    request_by(Signal::TERM);
}

/// Cancels the run because of `signal`, which is passed on to every child process.
fn request_by(signal: Signal) {
    CANCELLED.store(true, Ordering::SeqCst);
    signal_children(signal);
}

/// True once [`request`] has been called, or a signal received.
pub fn is_requested() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// The signal that cancelled the run, if one did.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
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

/// Catches SIGINT, SIGTERM and SIGHUP for the rest of the process, as the module describes; a signal
/// that was ignored when the process started (`nohup` ignores SIGHUP, a shell script's `&` SIGINT)
/// stays ignored, as it does for cargo. `on_forced_end` runs when the deadline ends the run, just
/// before the process ends (to report the interruption).
pub fn handle_signals(on_forced_end: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let ignored = ignored_signals();
    let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|signal| !ignored.contains(signal))
        .collect();
    let mut signals = signal_hook::iterator::Signals::new(&wanted)?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let Some(raw) = signals.forever().next() else {
                return;
            };
            SIGNAL.store(raw, Ordering::SeqCst);
            request_by(Signal::from_named_raw(raw).unwrap_or(Signal::TERM));
            std::thread::sleep(GRACE);
            stop_children();
            remove_temporaries();
            on_forced_end();
            end_by_signal();
        })?;
    Ok(())
}

/// Ends the process by the signal that cancelled the run (its default action, so the parent sees
/// what it would see for cargo); returns when no signal did. As process 1 (in a container), where
/// the kernel ignores such a signal, the process exits with 128 + its number instead.
pub fn end_by_signal() {
    if let Some(signal) = signal() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if std::process::id() != 1 {
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
        std::process::exit(128 + signal);
    }
}

/// The signals this process ignores (inherited from its parent), read from `/proc/self/status` on
/// Linux; none elsewhere.
fn ignored_signals() -> Vec<i32> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    (1..=64)
        .filter(|signal| mask & (1 << (signal - 1)) != 0)
        .collect()
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

/// A running child process: the process group it leads, or the process alone when it shares ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildTarget {
    pub pid: Pid,
    pub group: bool,
}

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
/// its group. The owner unregisters it (drops the guard) after the child has exited but before it is
/// reaped, so its process id (and group id) cannot have been reused by an unrelated process while it
/// is registered.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    id: u64,
}

impl ChildGuard {
    pub fn new(target: ChildTarget) -> ChildGuard {
        let id = NEXT_GUARD.fetch_add(1, Ordering::SeqCst);
        CHILDREN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, target);
        ChildGuard { id }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        CHILDREN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Sends `signal` to every registered child (under the lock, so none is reaped meanwhile).
fn signal_children(signal: Signal) {
    let children = CHILDREN.lock().unwrap_or_else(PoisonError::into_inner);
    for target in children.values() {
        target.signal(signal);
    }
}

/// Kills every registered child with everything it started, and waits (at most [`STOP_WAIT`]) for
/// them to be gone; used just before the process is ended.
pub(crate) fn stop_children() {
    let targets: Vec<ChildTarget> = {
        let children = CHILDREN.lock().unwrap_or_else(PoisonError::into_inner);
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
