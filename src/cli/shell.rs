//! Cargo-style output on stderr: right-aligned green status verbs, `warning:` and `error:` lines, and
//! transfer progress (a bar on a terminal, an occasional status line otherwise).

use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anstream::eprintln;
use anstyle::{AnsiColor, Style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use super::args::{ColorChoice, OutputArgs, ReportArgs};
use ::zeroimage::report::human_size;
use ::zeroimage::report::{Listener, NoProgress, Progress};
use ::zeroimage::util::sanitize;

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

/// Without a terminal, a transfer prints a status line at most this often (and at each quarter).
const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(10);

/// Prints status lines unless quiet, details only when verbose, errors always.
#[derive(Clone, Debug)]
pub struct Shell {
    quiet: bool,
    verbose: bool,
    /// Progress bars, when stderr is a terminal and not quiet; lines printed meanwhile go above them.
    bars: Option<MultiProgress>,
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
        let bars = (!report.quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Shell {
            quiet: report.quiet,
            verbose: report.verbose > 0,
            bars,
        }
    }

    /// A shell with default settings, for messages printed outside a run (the Ctrl-C deadline).
    pub fn plain() -> Shell {
        Shell {
            quiet: false,
            verbose: false,
            bars: None,
        }
    }

    /// `error: message`, printed even when quiet.
    pub fn error(&self, message: &str) {
        let message = printable(message);
        self.print(|| eprintln!("{ERROR}error{ERROR:#}: {message}"));
    }

    /// Prints above the progress bars, if any are shown.
    fn print(&self, line: impl FnOnce()) {
        match &self.bars {
            Some(bars) => bars.suspend(line),
            None => line(),
        }
    }
}

impl Listener for Shell {
    fn status(&self, verb: &str, message: &str) {
        if !self.quiet {
            let message = printable(message);
            self.print(|| eprintln!("{STATUS}{verb:>12}{STATUS:#} {message}"));
        }
    }

    fn warning(&self, message: &str) {
        if !self.quiet {
            let message = printable(message);
            self.print(|| eprintln!("{WARNING}warning{WARNING:#}: {message}"));
        }
    }

    fn detail(&self, message: &str) {
        if self.verbose {
            let message = printable(message);
            self.print(|| eprintln!("{DETAIL}{:>12}{DETAIL:#} {message}", "Info"));
        }
    }

    fn progress(&self, verb: &str, what: &str, total: u64) -> Box<dyn Progress + '_> {
        if self.quiet {
            return Box::new(NoProgress);
        }
        let (verb, what) = (printable(verb), printable(what));
        match &self.bars {
            Some(bars) => Box::new(BarProgress::new(bars, verb, what, total)),
            None => Box::new(LineProgress::new(verb, what, total)),
        }
    }
}

/// A progress bar on the terminal, cleared when the transfer ends or fails.
struct BarProgress(ProgressBar);

impl BarProgress {
    fn new(bars: &MultiProgress, verb: String, what: String, total: u64) -> BarProgress {
        let colored =
            anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
        let template = if colored {
            "{prefix:>12.cyan.bold} {msg} [{bar:27}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})"
        } else {
            "{prefix:>12} {msg} [{bar:27}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(verb)
            .with_message(what)
            .with_finish(ProgressFinish::AndClear);
        BarProgress(bars.add(bar))
    }
}

impl Progress for BarProgress {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn rewind(&self, done: u64) {
        self.0.set_position(done);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.finish_and_clear();
        }
    }
}

/// Progress for logs (stderr is not a terminal): a status line at each quarter of the transfer and at
/// least every [`PROGRESS_LINE_INTERVAL`], so a long transfer shows it is alive.
struct LineProgress {
    verb: String,
    what: String,
    total: u64,
    state: Mutex<LineState>,
}

struct LineState {
    done: u64,
    /// The next quarter (1 to 3) that prints a line.
    next_quarter: u64,
    last_line: Instant,
}

impl LineProgress {
    fn new(verb: String, what: String, total: u64) -> LineProgress {
        LineProgress {
            verb,
            what,
            total,
            state: Mutex::new(LineState {
                done: 0,
                next_quarter: 1,
                last_line: Instant::now(),
            }),
        }
    }
}

impl Progress for LineProgress {
    fn advance(&self, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.done = state.done.saturating_add(bytes).min(self.total);
        if state.done >= self.total {
            return;
        }
        let quarter =
            u64::try_from(u128::from(state.done) * 4 / u128::from(self.total.max(1))).unwrap_or(4);
        let due =
            quarter >= state.next_quarter || state.last_line.elapsed() >= PROGRESS_LINE_INTERVAL;
        if !due {
            return;
        }
        state.next_quarter = state.next_quarter.max(quarter + 1);
        state.last_line = Instant::now();
        let (verb, what) = (&self.verb, &self.what);
        let (done, total) = (human_size(state.done), human_size(self.total));
        eprintln!("{STATUS}{verb:>12}{STATUS:#} {what} ({done} of {total})");
    }

    fn rewind(&self, done: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.done = done.min(self.total);
        state.next_quarter = quarter(state.done, self.total) + 1;
    }

    fn finish(&self) {}
}

/// Which quarter of `total` bytes `done` is in (0 to 4).
fn quarter(done: u64, total: u64) -> u64 {
    u64::try_from(u128::from(done) * 4 / u128::from(total.max(1))).unwrap_or(4)
}
