//! Running a runtime's command-line client (`podman`, `ctr`, `docker`): the image tar fed on its
//! standard input, its output collected within bounds while it runs, so it can never block on a full
//! pipe, and its own message passed on when it fails. It runs as a `crate::util::child::Process`, so a
//! cancel stops it with everything it started.

use std::io::{BufWriter, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::stream::Failure;
use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;
use crate::util::child::Process;
use crate::util::sanitize;

/// Output kept from each stream; the rest is read and dropped.
const OUTPUT_LIMIT: usize = 1 << 20;

/// What a finished command printed.
pub(crate) struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The command's own message, one line, for an error: the last `Error:`-like line of stderr, else
    /// its last line, else stdout's.
    pub(crate) fn message(&self) -> String {
        let lines = |text: &str| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let errors = lines(&self.stderr);
        let chosen = errors
            .iter()
            .rev()
            .find(|l| l.to_ascii_lowercase().contains("error"))
            .or(errors.last())
            .cloned()
            .or_else(|| lines(&self.stdout).pop())
            .unwrap_or_else(|| "no message".to_owned());
        sanitize::outside(&chosen, sanitize::EXCERPT)
    }
}

/// Fails, naming the fix, when `program` is not on PATH.
pub(crate) fn installed(program: &str, install: &str) -> Result<()> {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| crate::util::fsutil::program_in(&dir, program.as_ref()).is_some())
    });
    if found {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{program} is not installed (not found on PATH); {install}"
        )))
    }
}

/// Spawns `cmd` in the run `cancel` cancels; `program` names it in the error when it is not installed
/// (with `install`, the fix).
fn spawn(cmd: &mut Command, program: &str, install: &str, cancel: &CancelToken) -> Result<Process> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    crate::util::child::spawn(cmd, cancel).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Invalid(format!(
            "{program} is not installed (not found on PATH); {install}"
        )),
        _ => Error::Invalid(format!("cannot run {program}: {e}")),
    })
}

/// Collects a stream in a thread: the first [`OUTPUT_LIMIT`] bytes are kept.
fn collect(stream: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut stream) = stream {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        let _ = sender.send(String::from_utf8_lossy(&kept).into_owned());
    });
    receiver
}

/// Waits for the child, stopping it with everything it started when `cancel` is cancelled or, with a
/// `limit`, when it has not ended within it.
fn wait(
    process: &mut Process,
    program: &str,
    cancel: &CancelToken,
    limit: Option<Duration>,
) -> Result<bool> {
    let started = std::time::Instant::now();
    loop {
        match process.try_wait() {
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) => {}
            Err(e) => return Err(Error::Invalid(format!("waiting for {program}: {e}"))),
        }
        if cancel.is_cancelled() {
            process.stop();
            return Err(Error::Interrupted);
        }
        if let Some(limit) = limit
            && started.elapsed() > limit
        {
            process.stop();
            return Err(Error::Invalid(format!(
                "{program} did not answer within {} s; is its daemon running?",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to the end, nothing on its standard input; `cancel` stops it.
pub(crate) fn run(
    cmd: &mut Command,
    program: &str,
    install: &str,
    cancel: &CancelToken,
) -> Result<Finished> {
    run_limited(cmd, program, install, cancel, None)
}

/// [`run`], stopped with an error when it takes longer than `limit`.
pub(crate) fn run_within(
    cmd: &mut Command,
    program: &str,
    install: &str,
    cancel: &CancelToken,
    limit: Duration,
) -> Result<Finished> {
    run_limited(cmd, program, install, cancel, Some(limit))
}

fn run_limited(
    cmd: &mut Command,
    program: &str,
    install: &str,
    cancel: &CancelToken,
    limit: Option<Duration>,
) -> Result<Finished> {
    cmd.stdin(Stdio::null());
    let mut process = spawn(cmd, program, install, cancel)?;
    let stdout = collect(process.child().stdout.take());
    let stderr = collect(process.child().stderr.take());
    let success = wait(&mut process, program, cancel, limit)?;
    Ok(Finished {
        success,
        stdout: stdout.recv().unwrap_or_default(),
        stderr: stderr.recv().unwrap_or_default(),
    })
}

/// Runs `cmd` with `feed` writing its standard input. When the program stops reading early, its
/// own message (on stderr) is what the caller reports; a blob that cannot be read stops the program,
/// and so does `cancel`.
pub(crate) fn run_fed(
    cmd: &mut Command,
    program: &str,
    install: &str,
    cancel: &CancelToken,
    feed: impl FnOnce(&mut dyn Write) -> std::result::Result<(), Failure>,
) -> Result<Finished> {
    cmd.stdin(Stdio::piped());
    let mut process = spawn(cmd, program, install, cancel)?;
    let stdout = collect(process.child().stdout.take());
    let stderr = collect(process.child().stderr.take());
    let fed = match process.child().stdin.take() {
        Some(stdin) => {
            let mut writer = BufWriter::with_capacity(256 << 10, stdin);
            let result = feed(&mut writer);
            // Closing stdin tells the program the tar is complete.
            drop(writer);
            result
        }
        None => Ok(()),
    };
    if let Err(Failure::Source(error)) = fed {
        process.stop();
        return Err(error);
    }
    let success = wait(&mut process, program, cancel, None)?;
    let finished = Finished {
        success,
        stdout: stdout.recv().unwrap_or_default(),
        stderr: stderr.recv().unwrap_or_default(),
    };
    match fed {
        Err(Failure::Write(e)) if finished.success => Err(Error::Invalid(format!(
            "{program} stopped reading the image ({e})"
        ))),
        _ => Ok(finished),
    }
}
