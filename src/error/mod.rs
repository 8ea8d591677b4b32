//! The library's error type: every variant says which file or step failed and, where there is one, the fix.

pub mod registry;
pub mod signing;

use std::io;
use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an image from being written. Branch on the variant (and on
/// [`registry::RegistryErrorKind`] for registry failures), after [`Error::root`] strips any context;
/// the messages are for people and may change. More variants may come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure, with the file and the step it happened in.
    #[error("{step} `{}`: {}", path.display(), io_reason(source))]
    Io {
        /// What was being done, e.g. `reading`.
        step: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying system error.
        #[source]
        source: io::Error,
    },
    /// The input is not something we can package; the message names the file and the fix.
    #[error("{}: {message}", path.display())]
    Input {
        /// The file (or directory) that cannot be packaged.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        message: String,
    },
    /// A platform string, architecture or OS that we cannot label an image with.
    #[error("{0}")]
    Platform(String),
    /// An image name that is not a valid reference.
    #[error("invalid image name `{name}`: {reason}")]
    Reference {
        /// The name as given.
        name: String,
        /// Why it is not valid.
        reason: String,
    },
    /// A timestamp that could not be parsed or formatted.
    #[error("{0}")]
    Time(String),
    /// `cargo build` failed; cargo has already shown why.
    #[error("{0}")]
    Build(String),
    /// A registry refused or failed a request: its kind, registry, repository, status and codes.
    #[error("{0}")]
    Registry(Box<registry::RegistryError>),
    /// A key file that cannot be used, or the password for it: the file (or what the password was
    /// for) and the problem, which says the fix.
    #[error("{}: {problem}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: signing::KeyProblem,
    },
    /// A signature, envelope or bundle that was refused; callers add what it was about.
    #[error("{problem}")]
    Signature {
        /// Why it was refused.
        problem: signing::SignatureProblem,
    },
    /// Any other invalid option value.
    #[error("{0}")]
    Invalid(String),
    /// An image (or a base image) has no signature the key verifies over its digest: the message
    /// says which check failed.
    #[error("{image}: {reason}")]
    Unverified {
        /// The image, `REPOSITORY@DIGEST` or the archive.
        image: String,
        /// Which check failed.
        reason: String,
    },
    /// A cloud's credentials (an ECR token, a Google access token, GitHub's in Actions) could not
    /// be had: the message names the source and what it answered.
    #[error("{0}")]
    CloudCredentials(String),
    /// The run was interrupted (its cancel token, Ctrl-C); nothing was written.
    #[error("interrupted; nothing was written")]
    Interrupted,
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// The error that happened while doing it.
        #[source]
        source: Box<Error>,
    },
}

/// How an I/O error reads after the file it concerns: the system's words (which never repeat the
/// path: files are written through `std::fs::File`, not through wrappers that append it), and the fix
/// when there is one whatever the file.
fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            format!("{error}; free some space on that filesystem, or write elsewhere")
        }
        io::ErrorKind::ReadOnlyFilesystem => format!("{error}; write elsewhere"),
        _ => error.to_string(),
    }
}

impl Error {
    /// The same error with `; advice` after a registry error's message (other errors unchanged).
    pub fn context_suffix(self, advice: &str) -> Error {
        match self {
            Error::Registry(mut e) => {
                *e = e.context_suffix(advice);
                Error::Registry(e)
            }
            other => other,
        }
    }

    /// The same error with `prefix: ` before its message. Registry, input and option errors keep
    /// their variant (the prefix joins their message); an I/O error, whose message is its step, file
    /// and cause, and an interruption are unchanged; any other is wrapped in [`Error::Context`].
    pub fn context(self, prefix: &str) -> Error {
        match self {
            Error::Registry(mut e) => {
                *e = e.context(prefix);
                Error::Registry(e)
            }
            Error::Input { path, message } => Error::Input {
                path,
                message: format!("{prefix}: {message}"),
            },
            Error::Invalid(message) => Error::Invalid(format!("{prefix}: {message}")),
            unchanged @ (Error::Io { .. } | Error::Interrupted) => unchanged,
            other => Error::Context {
                context: prefix.to_owned(),
                source: Box::new(other),
            },
        }
    }

    /// The error under any [`Error::Context`]: the one to branch on.
    pub fn root(&self) -> &Error {
        let mut error = self;
        while let Error::Context { source, .. } = error {
            error = source;
        }
        error
    }

    /// Wraps an I/O error with the step and the file it concerns.
    pub fn io(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { step, path, source }
    }

    /// True when the run stopped because it was cancelled.
    pub fn is_interrupted(&self) -> bool {
        matches!(self.root(), Error::Interrupted)
    }

    /// A key error naming the file.
    pub fn key(path: impl Into<PathBuf>, problem: signing::KeyProblem) -> Error {
        Error::Key {
            path: path.into(),
            problem,
        }
    }

    /// A signature error.
    pub fn signature(problem: signing::SignatureProblem) -> Error {
        Error::Signature { problem }
    }

    /// An input error naming the file.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_wraps_errors_without_a_message_of_their_own_and_root_finds_them() {
        let error =
            Error::Platform("no such architecture `mips9`".into()).context("reading the base");
        assert_eq!(
            error.to_string(),
            "reading the base: no such architecture `mips9`"
        );
        assert!(matches!(error.root(), Error::Platform(_)));
        let interrupted = Error::Interrupted.context("pulling");
        assert!(interrupted.is_interrupted());
        assert!(matches!(interrupted, Error::Interrupted));
        let invalid = Error::Invalid("bad".into()).context("the tag");
        assert!(matches!(invalid, Error::Invalid(ref m) if m == "the tag: bad"));
    }
}
