//! Command-line front ends shared by `zeroimage` and `cargo zeroimage`: option groups, the cargo-style
//! status printer, and exit-code handling. Not part of the library: each binary includes this module
//! (so does the test support, to parse arguments as the binaries do) and calls [`main`].

mod args;
pub mod cargo_zeroimage;
mod load;
pub mod registry;
mod shell;
pub mod zeroimage;

pub use args::{
    BaseArgs, ConfigArgs, EssentialsArgs, ImageArgs, MessageFormat, OutputArgs, PlatformArgs,
    PushArgs, RegistryArgs, ReportArgs,
};
pub use load::LoadArgs;
pub use shell::Shell;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use ::zeroimage::error::{Error, Result};
use ::zeroimage::job::JobOptions;
use ::zeroimage::util::cancel;

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

/// On SIGINT (Ctrl-C), SIGTERM or SIGHUP, stops the current run at its next chunk so temporary files
/// are removed on the way out, and passes the signal on to child processes; a run still going after
/// [`cancel::GRACE`] (blocked in a network wait or a helper program) is ended: child processes are
/// killed, registered temporary files removed, and the process ends by that signal (see
/// [`cancel::handle_signals`]).
pub fn install_interrupt_handler() {
    // Failing to install (no thread, no pipe) only loses clean interruption.
    let _ = cancel::handle_signals(|| {
        if !REPORTED.swap(true, Ordering::SeqCst) {
            Shell::plain().error(&Error::Interrupted.to_string());
        }
    });
}

/// Reports `error` on stderr and turns it into the process exit code, 1. A run cancelled by a signal
/// reports the interruption (whatever error it ended with) and ends by that signal, as cargo does: a shell shows 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.
pub fn exit_with(shell: &Shell, error: &Error) -> ExitCode {
    let interrupted = cancel::is_requested() || error.is_interrupted();
    if !REPORTED.swap(true, Ordering::SeqCst) {
        if interrupted {
            shell.error(&Error::Interrupted.to_string());
        } else {
            shell.error(&error.to_string());
        }
    }
    if interrupted {
        cancel::end_by_signal();
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
    Ok(JobOptions {
        output: output.output.clone(),
        tag: image.tag.clone(),
        created: image.created()?,
        allow_dynamic: image.allow_dynamic,
        config: config.options(),
        essentials: essentials.essentials(),
        base: base.base_ref()?,
        pull_options: base.pull_options(registry),
        push: push.push.clone(),
        push_options: registry.push_options(),
        load: load.options(),
        stdout_reserved: output.report.message_format == MessageFormat::Json,
        sbom: image.supply_chain.sbom,
        provenance: image.supply_chain.provenance.then_some(true),
        require_attachments: image.supply_chain.require_attachments.then_some(true),
        created_now: image.created.as_deref() == Some("now"),
        compression: image.compression,
        compression_level: image.compression_level,
    })
}
