//! Where the archive is built when it is also pushed, and who may print on standard output.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::job::package::PackageSummary;
use crate::layout::archive::{deliver_to_stream, is_stream};
use crate::util::cancel::{CancelToken, TempGuard};
use crate::util::destination::is_standard_output;

/// Refuses an archive on standard output when the caller prints its own result there
/// (`--message-format json`).
pub(crate) fn ensure_stdout_free(output: Option<&Path>, stdout_reserved: bool) -> Result<()> {
    match output {
        Some(output) if stdout_reserved && is_standard_output(output) => {
            Err(Error::Invalid(format!(
                "-o {} writes the archive to standard output, where --message-format json would \
                 print too; write the archive to a file, or drop --message-format json",
                output.display()
            )))
        }
        _ => Ok(()),
    }
}

/// A push reads the archive back. When the output is a stream (`-`, a device, a FIFO), the archive is
/// built in a temporary directory, copied to the stream, and pushed from there. (Without any output,
/// nothing is staged: the layers are spooled.)
pub(crate) struct Staging {
    temp: Option<(tempfile::TempDir, TempGuard)>,
    output: Option<PathBuf>,
}

impl Staging {
    /// Staging for `output` (`None`: no archive is kept), pushed when `pushing`, in the run `cancel`
    /// cancels (its temporary directory is removed by a forced end).
    pub(crate) fn new(
        output: Option<&Path>,
        pushing: bool,
        cancel: &CancelToken,
    ) -> Result<Staging> {
        let needed = pushing && output.is_some_and(is_stream);
        let temp = if needed {
            let dir = crate::util::outputs::temp_dir("zeroimage-")
                .map_err(Error::io("creating a directory in", std::env::temp_dir()))?;
            let guard = cancel.temporary(dir.path());
            Some((dir, guard))
        } else {
            None
        };
        Ok(Staging {
            temp,
            output: output.map(Path::to_owned),
        })
    }

    /// Where to build the archive: the temporary file, else the output.
    pub(crate) fn build_path(&self) -> Option<PathBuf> {
        match &self.temp {
            Some((dir, _)) => Some(dir.path().join("image.tar")),
            None => self.output.clone(),
        }
    }

    /// Copies a staged archive to its stream and makes `summary.path` the output as given.
    pub(crate) fn deliver(&self, summary: &mut PackageSummary, cancel: &CancelToken) -> Result<()> {
        if let (Some(_), Some(output), Some(staged)) = (&self.temp, &self.output, &summary.path) {
            if !deliver_to_stream(staged, output, cancel)? {
                return Err(Error::input(
                    output,
                    "changed while the archive was built; run again",
                ));
            }
            summary.path = Some(output.clone());
            // Documents written beside the staged archive went with it.
            for attachment in &mut summary.attachments {
                attachment.path = None;
            }
        }
        Ok(())
    }
}
