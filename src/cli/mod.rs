//! Command-line front ends shared by `zeroimage` and `cargo zeroimage`: option groups, the cargo-style
//! status printer, and exit-code handling.

mod args;
pub mod cargo_zeroimage;
mod output;
pub mod registry;
mod shell;
pub mod zeroimage;

pub use args::{
    BaseArgs, ConfigArgs, EssentialsArgs, ImageArgs, MessageFormat, OutputArgs, PlatformArgs,
    PushArgs, RegistryArgs, ReportArgs,
};
pub use shell::Shell;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cancel;
use crate::error::Error;

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
