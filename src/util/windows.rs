//! What Unix gives through std or rustix and Windows only through its own API: a file's identity
//! (for "an output is never an input"), an advisory lock (the blob cache's partial files), and
//! ending a child process by its id from any thread (a cancel). Every call into the system is here.
//!
//! Windows has no signals and no process groups: a child is ended with `TerminateProcess`, whatever
//! a Unix run would send it, and what it started itself is not followed (the console's Ctrl-C
//! reaches every process attached to it, ours and theirs alike).

use std::fs::File;
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::time::Instant;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, GetFileInformationByHandle,
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx,
};
use windows_sys::Win32::System::IO::OVERLAPPED;
use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, TerminateProcess, WaitForSingleObject,
};

/// The directory `path`, opened for nothing but holding it (backup semantics open directories).
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .access_mode(0)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
}

/// The identity of the file at `path` (links followed): its volume's serial number and its file
/// index, the same through every path and hard link to it.
pub(crate) fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    // No access asked for: only the file's attributes are read. Backup semantics open directories too.
    let file = std::fs::OpenOptions::new()
        .access_mode(0)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid value (integers only).
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for as long as `file` lives, and `info` is a valid place to write.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &raw mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Ok((u64::from(info.dwVolumeSerialNumber), index))
}

/// Takes an exclusive lock on the whole of `file` without waiting, as `flock(LOCK_EX | LOCK_NB)`
/// does; the system releases it when the file is closed, however its process ends.
pub(crate) fn try_lock(file: &File) -> io::Result<()> {
    // SAFETY: an all-zero OVERLAPPED (offset 0, no event) is what a synchronous lock takes.
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for as long as `file` lives; `overlapped` outlives the call, which
    // does not wait (LOCKFILE_FAIL_IMMEDIATELY).
    let locked = unsafe {
        LockFileEx(
            file.as_raw_handle() as HANDLE,
            LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
            0,
            u32::MAX,
            u32::MAX,
            &raw mut overlapped,
        )
    };
    if locked == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What a Unix run would send a child: Windows ends it either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Signal;

impl Signal {
    /// In place of SIGTERM.
    pub const TERM: Signal = Signal;
    /// In place of SIGKILL.
    pub const KILL: Signal = Signal;

    /// In place of the signal numbered `raw`.
    #[allow(
        clippy::unnecessary_wraps,
        reason = "rustix's signature, which the caller uses"
    )]
    pub fn from_named_raw(_raw: i32) -> Option<Signal> {
        Some(Signal)
    }
}

/// A running child process, by its id. Its owner keeps the process's handle open (in its
/// `std::process::Child`) until it has unregistered it, so the id cannot name another process
/// meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildTarget {
    pub pid: u32,
}

impl ChildTarget {
    /// Ends the child; errors (gone already) are of no interest.
    pub fn signal(self, _signal: Signal) {
        if let Some(process) = Process::open(self.pid, PROCESS_TERMINATE) {
            // SAFETY: the handle is open, with the right to terminate.
            unsafe { TerminateProcess(process.0, 1) };
        }
    }

    /// Waits, at most until `deadline`, for the child to be gone.
    pub fn wait_gone(self, deadline: Instant) {
        let Some(process) = Process::open(self.pid, PROCESS_SYNCHRONIZE) else {
            return;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: the handle is open, with the right to wait on it.
        unsafe { WaitForSingleObject(process.0, millis) };
    }
}

/// A process handle of ours, closed when dropped.
struct Process(HANDLE);

impl Process {
    fn open(pid: u32, access: u32) -> Option<Process> {
        // SAFETY: OpenProcess only reads its arguments; a null handle means it failed.
        let handle = unsafe { OpenProcess(access, 0, pid) };
        (!handle.is_null()).then_some(Process(handle))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `Process::open` and is closed once, here.
        unsafe { CloseHandle(self.0) };
    }
}
