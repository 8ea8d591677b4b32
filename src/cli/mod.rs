//! Command-line front ends shared by `zeroimage` and `cargo zeroimage`: option groups, the cargo-style
//! status printer, and exit-code handling. Not part of the library: each binary includes this module
//! (so does the test support, to parse arguments as the binaries do) and calls [`main`].

mod args;
pub mod cargo_zeroimage;
pub mod keys;
mod load;
pub mod registry;
mod shell;
pub mod signing;
pub mod zeroimage;

pub use args::{
    BaseArgs, ConfigArgs, EssentialsArgs, ImageArgs, MessageFormat, OutputArgs, PlatformArgs,
    PushArgs, RegistryArgs, ReportArgs, SigningArgs,
};
pub use load::LoadArgs;
pub use shell::Shell;

use std::process::ExitCode;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::zeroimage::Context;
use ::zeroimage::error::{Error, Result};
use ::zeroimage::job::JobOptions;
use ::zeroimage::util::cancel::CancelToken;
use ::zeroimage::util::text_output::TextOutput;

/// Which command a binary is.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code, reason = "each binary constructs its own variant")]
pub enum Program {
    /// `zeroimage`: package a program.
    Zeroimage,
    /// `cargo zeroimage` (the `cargo-zeroimage` binary): build and package a crate.
    CargoZeroimage,
}

/// The binary's whole run: parses the arguments, runs the command, prints its result, and gives the
/// exit code.
pub fn main(program: Program) -> ExitCode {
    match program {
        Program::Zeroimage => zeroimage::main(),
        Program::CargoZeroimage => cargo_zeroimage::main(),
    }
}

/// Set once the run has reported its error, so the signal deadline does not report it again.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// The run's cancel token: a process has one set of signals, and the command line one run.
static CANCEL: LazyLock<CancelToken> = LazyLock::new(CancelToken::new);

/// How long a cancelled run may take to end on its own before it is ended for it.
const GRACE: Duration = Duration::from_millis(600);

/// A file written when the run succeeds (given to `flag`), checked (and its temporary file made)
/// before the run starts; it must not be the archive `output`.
pub fn text_output(
    path: Option<&std::path::Path>,
    flag: &'static str,
    output: Option<&std::path::Path>,
    cx: &Context,
) -> Result<Option<TextOutput>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = TextOutput::create(path, flag, cx.cancel())?;
    if let Some(output) = output {
        file.ensure_not(output, "the archive (-o)")?;
    }
    Ok(Some(file))
}

/// The context of this process's run: reporting to `shell`, cancelled by the signals
/// [`install_interrupt_handler`] catches, with the default keychain.
pub fn context(shell: &Shell) -> Context<'_> {
    Context::new(shell).with_cancel(CANCEL.clone())
}

/// Catches SIGINT (Ctrl-C), SIGTERM (CI cancellation, `timeout`, systemd, `docker stop`) and SIGHUP (a
/// closed terminal) for the rest of the process; all three cancel the run the same way. On the first
/// of them the run's token is cancelled: streaming loops stop at their next chunk, so temporary files
/// are removed on the way out, and the signal is passed on to child processes (which may sit in a
/// process group of their own, where a terminal's Ctrl-C does not reach them). A thread blocked
/// elsewhere (a network wait, a helper program that ignores the signal) cannot see that, so a deadline
/// follows: a run still going after [`GRACE`] is ended: child processes are killed with everything
/// they started, registered temporary files removed, the interruption reported, and the process ends
/// by that signal, as cargo does (a shell reports 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). A
/// signal that was ignored when the process started (`nohup` ignores SIGHUP, a shell script's `&`
/// SIGINT) stays ignored, as it does for cargo. On Windows, Ctrl-C and Ctrl-Break (SIGINT) and
/// SIGTERM do the same, and the process then exits with 128 + the signal's number.
pub fn install_interrupt_handler() {
    // Failing to install (no thread, no pipe) only loses clean interruption.
    let _ = handle_signals();
}

#[cfg(unix)]
fn handle_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let ignored = ignored_signals();
    let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|signal| !ignored.contains(signal))
        .collect();
    let mut signals = signal_hook::iterator::Signals::new(&wanted)?;
    let token = CANCEL.clone();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let Some(raw) = signals.forever().next() else {
                return;
            };
            cancel_and_end(&token, raw);
        })?;
    Ok(())
}

/// Windows delivers no signal to a thread that waits for it: the handler (as the C runtime calls it)
/// only records the signal, and a thread looks for it.
#[cfg(windows)]
fn handle_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    let caught = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_usize(signal, Arc::clone(&caught), signal as usize)?;
    }
    let token = CANCEL.clone();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let raw = loop {
                match caught.load(Ordering::SeqCst) {
                    0 => std::thread::sleep(Duration::from_millis(50)),
                    raw => break raw as i32,
                }
            };
            cancel_and_end(&token, raw);
        })?;
    Ok(())
}

/// Cancels the run for the signal `raw`; a run still going after [`GRACE`] is ended.
fn cancel_and_end(token: &CancelToken, raw: i32) {
    token.cancel_by_signal(raw);
    std::thread::sleep(GRACE);
    if ::zeroimage::util::terminal::restore() {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\n");
    }
    token.stop_children();
    token.remove_temporaries();
    if !REPORTED.swap(true, Ordering::SeqCst) {
        Shell::plain().error(&Error::Interrupted.to_string());
    }
    end_by_signal(token);
}

/// Ends the process by the signal that cancelled the run (its default action, so the parent sees
/// what it would see for cargo); returns when no signal did. As process 1 (in a container), where
/// the kernel ignores such a signal, the process exits with 128 + its number instead.
fn end_by_signal(token: &CancelToken) {
    if let Some(signal) = token.signal() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if std::process::id() != 1 {
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
        std::process::exit(128 + signal);
    }
}

/// The signals this process ignores (inherited from its parent), read from `/proc/self/status` on
/// Linux; none elsewhere.
#[cfg(unix)]
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

/// Reports `error` on stderr and turns it into the process exit code, 1. A run cancelled by a signal
/// reports the interruption (whatever error it ended with) and ends by that signal, as cargo does: a
/// shell shows 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.
pub fn exit_with(shell: &Shell, error: &Error) -> ExitCode {
    let interrupted = CANCEL.is_cancelled() || error.is_interrupted();
    if !REPORTED.swap(true, Ordering::SeqCst) {
        if interrupted {
            shell.error(&Error::Interrupted.to_string());
        } else {
            shell.error(&error.to_string());
        }
    }
    if interrupted {
        end_by_signal(&CANCEL);
        return ExitCode::from(130);
    }
    ExitCode::FAILURE
}

/// The job options the flags shared by both commands describe.
#[allow(clippy::too_many_arguments)]
pub fn job_options(
    image: &ImageArgs,
    config: &ConfigArgs,
    essentials: &EssentialsArgs,
    base: &BaseArgs,
    push: &PushArgs,
    load: &LoadArgs,
    registry: &RegistryArgs,
    output: &OutputArgs,
) -> Result<JobOptions> {
    let (pull_options, push_options) = registry.pull_and_push(base)?;
    Ok(JobOptions {
        output: output.output.clone(),
        oci_layout: output.oci_layout.clone(),
        tag: image.tag.clone(),
        created: image.created()?,
        allow_dynamic: image.allow_dynamic,
        config: config.options(),
        essentials: essentials.essentials(),
        base: base.base_ref()?,
        pull_options,
        push: push.push.clone(),
        push_options,
        load: load.options(),
        stdout_reserved: output.report.message_format == MessageFormat::Json,
        sbom: image.supply_chain.sbom,
        provenance: image.supply_chain.provenance.then_some(true),
        require_attachments: image.supply_chain.require_attachments.then_some(true),
        created_now: image.created.as_deref() == Some("now"),
        compression: image.compression,
        compression_level: image.compression_level,
        lambda: image.lambda,
        signing: image.signing.options(),
    })
}
