//! Child processes the library starts (cargo, rustc, git, credential helpers, runtime clients): each in
//! a process group of its own and registered with the run's [`CancelToken`], so a cancel reaches it even when
//! the signal was sent to us alone (`kill`, `timeout`, CI, systemd), and stopping it stops everything
//! it started (a build script, a helper's own children) instead of leaving them orphaned, holding a
//! build directory's lock. A child is stopped (SIGKILL to its group) and waited for when its owner
//! gives up on it (a timeout, an error, a drop) and, after a cancel, when it has ended.
//!
//! One exception: when this process is the foreground job of its terminal, a child stays in our
//! group. A process outside the terminal's foreground group is stopped by the kernel as soon as it
//! reads the terminal, so `ssh` asking for a passphrase under `cargo build`, or a helper asking for a
//! password, would hang; in the foreground group the terminal's Ctrl-C reaches the child directly, as
//! it does without us, and a signal sent to us alone is passed on to the child itself.
//!
//! Windows has no process groups: a child there is ended by itself (`TerminateProcess`), and the
//! console's Ctrl-C reaches it as it reaches us.

use std::io::{self, Read};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
#[cfg(unix)]
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

#[cfg(unix)]
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use crate::util::cancel::{self, CancelToken, ChildGuard, ChildTarget};

/// A started child process (see the module documentation); stopped when dropped before it ended.
#[derive(Debug)]
pub(crate) struct Process {
    child: Child,
    /// Unix: how to signal and reap it, and whether its run was cancelled when it ended.
    #[cfg(unix)]
    target: ChildTarget,
    #[cfg(unix)]
    cancel: CancelToken,
    guard: Option<ChildGuard>,
    status: Option<ExitStatus>,
}

/// Starts `cmd` as a [`Process`] of the run `cancel` cancels. When the run is already cancelled the
/// child is stopped at once and the error is `Interrupted`.
pub(crate) fn spawn(cmd: &mut Command, cancel: &CancelToken) -> io::Result<Process> {
    spawn_in(cmd, !terminal_foreground(), cancel)
}

/// Starts `cmd` in a process group of its own when `group`, else in ours.
fn spawn_in(cmd: &mut Command, group: bool, cancel: &CancelToken) -> io::Result<Process> {
    #[cfg(unix)]
    if group {
        cmd.process_group(0);
    }
    let child = cmd.spawn()?;
    #[cfg(unix)]
    let target = ChildTarget {
        pid: Pid::from_child(&child),
        group,
    };
    #[cfg(windows)]
    let target = {
        debug_assert!(!group, "Windows has no process groups");
        ChildTarget { pid: child.id() }
    };
    let mut process = Process {
        child,
        #[cfg(unix)]
        target,
        #[cfg(unix)]
        cancel: cancel.clone(),
        guard: Some(cancel.child(target)),
        status: None,
    };
    // A cancel between the spawn and the registration did not reach the child.
    if cancel.is_cancelled() {
        process.stop();
        return Err(interrupted());
    }
    Ok(process)
}

/// Runs `cmd` to the end as [`Command::output`] does (nothing on its standard input, both outputs
/// collected), as a [`Process`]; `Interrupted` when the run was cancelled meanwhile.
pub(crate) fn output(cmd: &mut Command, cancel: &CancelToken) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = spawn(cmd, cancel)?;
    let stderr = process.child.stderr.take().map(|mut stream| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    });
    let mut stdout = Vec::new();
    if let Some(mut stream) = process.child.stdout.take() {
        stream.read_to_end(&mut stdout)?;
    }
    let stderr = stderr
        .and_then(|thread| thread.join().ok())
        .unwrap_or_default();
    let status = process.wait()?;
    if cancel.is_cancelled() {
        return Err(interrupted());
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

impl Process {
    /// The child, for its standard streams.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// On Windows the child's handle, which `Child` holds until it is dropped, keeps its process id from
/// being reused: it is unregistered once it has ended, and ended with `TerminateProcess`.
#[cfg(windows)]
impl Process {
    /// Waits for the child to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait()?;
        self.ended(status);
        Ok(status)
    }

    /// The child's status when it has ended, else `None` at once.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let status = self.child.try_wait()?;
        if let Some(status) = status {
            self.ended(status);
        }
        Ok(status)
    }

    fn ended(&mut self, status: ExitStatus) {
        self.guard = None;
        self.status = Some(status);
    }

    /// Ends the child and waits (at most [`cancel::STOP_WAIT`]) for it to be gone. Nothing happens
    /// once it has ended.
    pub fn stop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.child.kill();
        let deadline = Instant::now() + cancel::STOP_WAIT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        self.guard = None;
    }
}

#[cfg(unix)]
impl Process {
    /// Waits for the child to end (see [`finish`](Self::finish)).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            match rustix::process::waitid(
                WaitId::Pid(self.target.pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Ok(_) => return self.finish(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The child's status when it has ended, else `None` at once.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let exited = rustix::process::waitid(
            WaitId::Pid(self.target.pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
        )?;
        match exited {
            Some(_) => self.finish().map(Some),
            None => Ok(None),
        }
    }

    /// The child has exited and is not yet reaped (its process id still ours): after a cancel, what is
    /// left of its group is killed and waited for; then it is unregistered and reaped.
    fn finish(&mut self) -> io::Result<ExitStatus> {
        let cancelled = self.cancel.is_cancelled() && self.target.group;
        if cancelled {
            self.target.signal(Signal::KILL);
            self.wait_group_before_reaping(Instant::now() + cancel::STOP_WAIT);
        }
        self.guard = None;
        let status = self.child.wait()?;
        self.status = Some(status);
        if cancelled {
            self.wait_group_after_reaping(Instant::now() + cancel::STOP_WAIT);
        }
        Ok(status)
    }

    /// Waits for the killed group while the child is still registered (so a forced end waits for it
    /// too), where that can be told: on Linux, where `/proc` shows the unreaped child as a zombie,
    /// which does not count.
    fn wait_group_before_reaping(&self, deadline: Instant) {
        if cfg!(target_os = "linux") {
            self.target.wait_gone(deadline);
        }
    }

    /// Elsewhere the unreaped child would count as running: the group is waited for once it is reaped.
    fn wait_group_after_reaping(&self, deadline: Instant) {
        if !cfg!(target_os = "linux") {
            self.target.wait_gone(deadline);
        }
    }

    /// Kills the child with everything in its group, reaps it, and waits (at most
    /// [`cancel::STOP_WAIT`]) for the group to be gone. Nothing happens once the child was reaped.
    pub fn stop(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.target.signal(Signal::KILL);
        let deadline = Instant::now() + cancel::STOP_WAIT;
        self.wait_group_before_reaping(deadline);
        // Reaped only once it has exited, and unregistered just before.
        while Instant::now() < deadline {
            match rustix::process::waitid(
                WaitId::Pid(self.target.pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(_)) => {
                    self.guard = None;
                    self.status = self.child.wait().ok();
                    break;
                }
                Ok(None) | Err(rustix::io::Errno::INTR) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        // Still running (stuck in the kernel) or reaped: either way its id is not free for reuse.
        self.guard = None;
        self.wait_group_after_reaping(deadline);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn interrupted() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, crate::error::Error::Interrupted)
}

/// On Windows, where there are no process groups to leave, as if the process were in the foreground.
#[cfg(windows)]
fn terminal_foreground() -> bool {
    true
}

/// True when this process is in the foreground process group of its controlling terminal.
#[cfg(unix)]
fn terminal_foreground() -> bool {
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/tty")
    else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|group| group == rustix::process::getpgrp())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_child_takes_what_it_started_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"sleep 300 & echo $! > "$0"; wait"#)
            .arg(&pidfile);
        // In a group of its own, as when we are not a terminal's foreground job (the test may be).
        let mut process = spawn_in(&mut cmd, true, &CancelToken::new()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the child did not start");
            std::thread::sleep(Duration::from_millis(5));
        };
        process.stop();
        assert!(
            process.try_wait().unwrap().is_some(),
            "the child was reaped"
        );
        let target = ChildTarget {
            pid: Pid::from_raw(grandchild).unwrap(),
            group: false,
        };
        assert!(!target.alive(), "the grandchild {grandchild} still runs");
    }

    #[test]
    fn output_collects_both_streams_and_the_status() {
        let output = super::output(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        assert_eq!(output.status.code(), Some(3));
    }
}
