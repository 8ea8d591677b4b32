//! Text from outside (registry answers, credential helpers, archive and file names) made safe to print:
//! control characters and invisible bidirectional marks are escaped, and long text is cut, so a hostile
//! peer can neither drive the terminal nor flood it.

use std::fmt::Write as _;

/// The longest excerpt of outside text we quote in a message.
pub(crate) const EXCERPT: usize = 300;

/// Escapes what a terminal would act on and cuts the text at `max` characters, saying how much was left
/// out.
pub fn outside(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for (shown, (i, c)) in text.char_indices().enumerate() {
        if shown >= max {
            let _ = write!(out, "... ({} more bytes)", text.len() - i);
            return out;
        }
        escape_into(&mut out, c);
    }
    out
}

/// Replaces runs of 24 or more token-like characters (letters, digits, `+/=_-.`) with `<redacted>`:
/// what a credential helper says about a failure must not carry a secret into our messages.
pub(crate) fn redact_tokens(text: &str) -> String {
    const MIN_RUN: usize = 24;
    let tokenish =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.');
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= MIN_RUN {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if tokenish(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_bidi_marks() {
        assert_eq!(
            outside("\x1b]0;pwned\x07\rPushed evil\n", 100),
            "\\u{1b}]0;pwned\\u{7}\\rPushed evil\\n"
        );
        assert_eq!(outside("a\u{202e}b\u{9b}c", 100), "a\\u{202e}b\\u{9b}c");
        assert_eq!(outside("plain: text é", 100), "plain: text é");
    }

    #[test]
    fn token_like_runs_are_redacted() {
        assert_eq!(
            redact_tokens("refresh failed: token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig expired"),
            "refresh failed: token <redacted> expired"
        );
        assert_eq!(
            redact_tokens("not found in keychain"),
            "not found in keychain"
        );
    }

    #[test]
    fn cuts_long_text_and_says_so() {
        let long = "x".repeat(1000);
        let cut = outside(&long, 10);
        assert_eq!(cut, "xxxxxxxxxx... (990 more bytes)");
        assert_eq!(outside("short", 10), "short");
    }
}
