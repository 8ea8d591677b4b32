//! How the library tells its caller what it is doing, without printing anything itself.

use std::io::{self, Read};

/// Transfers at least this large report their progress (pull and push alike).
pub(crate) const PROGRESS_THRESHOLD: u64 = 4 << 20;

/// Receives progress and warnings. The command-line front ends print them cargo-style; library users
/// can collect or ignore them. `Sync`, because a blob source that reports may be read from any thread.
pub trait Listener: Sync {
    /// A step starts or ends: `verb` is a single word such as `Packaging` or `Written`.
    fn status(&self, verb: &str, message: &str);
    /// Something the user should know but that does not stop the run.
    fn warning(&self, message: &str);
    /// Detail worth showing only in verbose mode.
    fn detail(&self, message: &str);
    /// A transfer of `total` bytes starts: `verb` is a single word (`Uploading`, `Downloading`) and
    /// `what` names the blob. The default ignores it.
    fn progress(&self, verb: &str, what: &str, total: u64) -> Box<dyn Progress + '_> {
        let _ = (verb, what, total);
        Box::new(NoProgress)
    }
}

/// One transfer's progress, as bytes move. Shared by the readers of one transfer (a retried request
/// reads its body again), hence `&self`.
pub trait Progress: Send + Sync {
    /// `bytes` more were transferred.
    fn advance(&self, bytes: u64);
    /// The transfer goes back to byte `done` (a retried request sends again from there).
    fn rewind(&self, done: u64) {
        let _ = done;
    }
    /// The transfer is complete (dropping without it means it failed or was abandoned).
    fn finish(&self);
}

/// Progress that shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// A reader that reports the bytes passing through it to a [`Progress`].
pub(crate) struct ProgressReader<'p, R> {
    inner: R,
    progress: &'p dyn Progress,
}

impl<'p, R: Read> ProgressReader<'p, R> {
    /// Wraps `inner`, reporting each read's byte count to `progress`.
    pub fn new(inner: R, progress: &'p dyn Progress) -> ProgressReader<'p, R> {
        ProgressReader { inner, progress }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The progress of a blob transfer: shown for blobs of at least [`PROGRESS_THRESHOLD`] bytes only.
pub(crate) fn blob_progress<'l>(
    listener: &'l dyn Listener,
    verb: &str,
    digest: &crate::oci::Digest,
    size: u64,
) -> Box<dyn Progress + 'l> {
    if size >= PROGRESS_THRESHOLD {
        listener.progress(
            verb,
            &format!("{}:{}", digest.algorithm().as_str(), digest.short()),
            size,
        )
    } else {
        Box::new(NoProgress)
    }
}

/// A listener that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Listener for Silent {
    fn status(&self, _: &str, _: &str) {}
    fn warning(&self, _: &str) {}
    fn detail(&self, _: &str) {}
}

/// `27.1 MiB`-style sizes for status lines.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_cargo() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(28_416_000), "27.1 MiB");
    }
}
