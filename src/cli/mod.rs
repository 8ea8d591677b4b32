//! Command-line front ends shared by `zeroimage` and `cargo zeroimage`: option groups, the cargo-style
//! status printer, and exit-code handling.

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

use crate::cancel;
use crate::error::{Error, Result};
use crate::job::JobOptions;

/// Set once the run has reported its error, so the Ctrl-C deadline does not report it again.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// On Ctrl-C, stops the current run at its next chunk so temporary files are removed on the way out; a
/// run still going after [`cancel::GRACE`] (blocked in a network wait or a helper program) is ended:
/// registered temporary files are removed and the process exits with 130.
pub fn install_interrupt_handler() {
    // Failing to install (a handler already set by an embedding program) only loses clean Ctrl-C.
    let _ = ctrlc::set_handler(|| {
        cancel::request();
        std::thread::sleep(cancel::GRACE);
        cancel::remove_temporaries();
        if !REPORTED.swap(true, Ordering::SeqCst) {
            Shell::plain().error(&Error::Interrupted.to_string());
        }
        std::process::exit(130);
    });
}

/// Reports `error` on stderr and turns it into the process exit code: 130 for Ctrl-C, else 1.
pub fn exit_with(shell: &Shell, error: &Error) -> ExitCode {
    if REPORTED.swap(true, Ordering::SeqCst) {
        return ExitCode::from(130);
    }
    shell.error(&error.to_string());
    match error {
        Error::Interrupted => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    }
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
        compression: image.compression.clone(),
        compression_level: image.compression_level,
    })
}
