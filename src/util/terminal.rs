//! Terminal echo turned off for a password prompt, and turned back on however the prompt ends.
//!
//! The guard restores the terminal when it drops; a signal that ends the process mid-prompt never
//! drops it, so the state to restore is also kept here for [`restore`], which the command line's
//! signal path calls before it ends the process. Without that, Ctrl-C at a prompt would leave the
//! user's shell without echo.

/// Terminal echo off on standard input while it lives; `None` when standard input is no terminal
/// (or on a platform without termios, where there is then no prompt).
pub(crate) struct EchoOff {
    _private: (),
}

#[cfg(unix)]
mod imp {
    use std::sync::{Mutex, PoisonError};

    use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};

    /// The terminal's settings from before the prompt, while echo is off.
    static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

    pub(super) fn echo_off() -> Option<()> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let mut slot = SAVED.lock().unwrap_or_else(PoisonError::into_inner);
        tcsetattr(&stdin, OptionalActions::Flush, &quiet).ok()?;
        *slot = Some(saved);
        Some(())
    }

    pub(super) fn restore() -> bool {
        let saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner).take();
        saved.is_some_and(|saved| tcsetattr(std::io::stdin(), OptionalActions::Now, &saved).is_ok())
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn echo_off() -> Option<()> {
        None
    }

    pub(super) fn restore() -> bool {
        false
    }
}

impl EchoOff {
    pub(crate) fn new() -> Option<EchoOff> {
        imp::echo_off()?;
        Some(EchoOff { _private: () })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = imp::restore();
    }
}

/// Turns echo back on if a prompt turned it off and has not ended (then true: the cursor still sits
/// after the prompt); does nothing otherwise. Safe to call from any thread, at any time.
pub fn restore() -> bool {
    imp::restore()
}
