//! Cargo-style output on stderr: right-aligned green status verbs, `warning:` and `error:` lines.

use anstream::eprintln;
use anstyle::{AnsiColor, Style};

use super::args::{ColorChoice, OutputArgs, ReportArgs};
use crate::report::Listener;
use crate::sanitize;

/// Longest line we print: messages are one line, and outside text in them is already cut shorter.
const MAX_LINE: usize = 4000;

/// Every line is escaped and bounded here, whatever path outside text took into the message.
fn printable(message: &str) -> String {
    sanitize::outside(message, MAX_LINE)
}

const STATUS: Style = AnsiColor::Green.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const ERROR: Style = AnsiColor::Red.on_default().bold();
const DETAIL: Style = AnsiColor::Cyan.on_default().bold();

/// Prints status lines unless quiet, details only when verbose, errors always.
#[derive(Clone, Debug)]
pub struct Shell {
    quiet: bool,
    verbose: bool,
}

impl Shell {
    /// A shell configured from the output options; also applies `--color` to the whole process.
    pub fn new(output: &OutputArgs) -> Shell {
        Shell::from_report(&output.report)
    }

    /// A shell configured from the reporting options; also applies `--color` to the whole process.
    pub fn from_report(report: &ReportArgs) -> Shell {
        let choice = match report.color {
            ColorChoice::Auto => anstream::ColorChoice::Auto,
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
        Shell {
            quiet: report.quiet,
            verbose: report.verbose > 0,
        }
    }

    /// A shell with default settings, for messages printed outside a run (the Ctrl-C deadline).
    pub fn plain() -> Shell {
        Shell {
            quiet: false,
            verbose: false,
        }
    }

    /// `error: message`, printed even when quiet.
    pub fn error(&self, message: &str) {
        let message = printable(message);
        eprintln!("{ERROR}error{ERROR:#}: {message}");
    }
}

impl Listener for Shell {
    fn status(&self, verb: &str, message: &str) {
        if !self.quiet {
            let message = printable(message);
            eprintln!("{STATUS}{verb:>12}{STATUS:#} {message}");
        }
    }

    fn warning(&self, message: &str) {
        if !self.quiet {
            let message = printable(message);
            eprintln!("{WARNING}warning{WARNING:#}: {message}");
        }
    }

    fn detail(&self, message: &str) {
        if self.verbose {
            let message = printable(message);
            eprintln!("{DETAIL}{:>12}{DETAIL:#} {message}", "Info");
        }
    }
}
