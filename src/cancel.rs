//! Cooperative cancellation: a binary's Ctrl-C handler sets the flag, the streaming loops check it and
//! return [`Error::Interrupted`](crate::Error::Interrupted) so that temporary files are cleaned up by
//! their normal drop path.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

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
