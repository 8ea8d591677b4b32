//! Key and signature errors that callers can branch on: what is wrong with a key file, or why a
//! signature was refused, each with a one-line message for people that says the fix.

use std::fmt;

/// What is wrong with a key file (or with the password for it). More problems may come.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The password does not open the encrypted key (or the file was changed since it was written).
    WrongPassword,
    /// No password could be had: `COSIGN_PASSWORD` is not set and there is no terminal to ask.
    NoPassword,
    /// The two passwords typed for a new key differ.
    PasswordsDiffer,
    /// The file is cut short or damaged (broken PEM, base64, JSON or DER).
    Truncated,
    /// The file is not a private or public key in a form we read: what it is instead, and the fix.
    NotAKey(String),
    /// A key of a type we do not sign with: its type (`RSA`, `Ed25519`, `ECDSA P-384` ...).
    UnsupportedType(String),
    /// An encrypted key whose encryption we do not read, or whose parameters are beyond our bounds.
    UnsupportedEncryption(String),
    /// The file is larger than any key file.
    TooLarge {
        /// The bound, in bytes.
        limit: u64,
    },
    /// The private key and the public key given with it are not a pair.
    Mismatch,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::WrongPassword => f.write_str(
                "wrong password: the key does not decrypt with it (or the file was changed); \
                 give the password the key was made with (COSIGN_PASSWORD or the prompt)",
            ),
            KeyProblem::NoPassword => f.write_str(
                "no password at hand for the key: set COSIGN_PASSWORD \
                 (standard input is not a terminal to ask on)",
            ),
            KeyProblem::PasswordsDiffer => {
                f.write_str("the two passwords typed differ; run again and type the same one twice")
            }
            KeyProblem::Truncated => f.write_str(
                "the key file is cut short or damaged; give the whole file as it was written",
            ),
            KeyProblem::NotAKey(what) => write!(f, "not a key we read: {what}"),
            KeyProblem::UnsupportedType(kind) => write!(
                f,
                "the key is {kind}; only ECDSA P-256 keys are supported: make one with \
                 `zeroimage generate-key-pair` or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"
            ),
            KeyProblem::UnsupportedEncryption(what) => write!(
                f,
                "{what}; give a key written by cosign or `zeroimage generate-key-pair`, or an unencrypted PEM key"
            ),
            KeyProblem::TooLarge { limit } => write!(
                f,
                "larger than {} KiB, too large for a key file; give the key file itself",
                limit >> 10
            ),
            KeyProblem::Mismatch => f.write_str(
                "the private key and the public key are not a pair; give the public key made with it",
            ),
        }
    }
}

/// Why a signature, envelope or bundle was refused. More problems may come.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// The signature does not verify with the key: another key signed it, or the signed bytes changed.
    Invalid {
        /// The key's id (hex SHA-256 of its public key).
        key_id: String,
    },
    /// No signature at all where one was expected.
    Missing,
    /// A signature, envelope, bundle or payload that does not parse: what is wrong, escaped.
    Malformed(String),
    /// A document larger than its bound.
    TooLarge {
        /// What it is (`payload`, `envelope`, `bundle`).
        what: &'static str,
        /// The bound, in bytes.
        limit: usize,
    },
    /// A signature that covers another digest than the one it must cover.
    DigestMismatch {
        /// The digest it must cover.
        expected: String,
        /// The digest it covers, escaped.
        found: String,
    },
    /// A signature that names another repository than the one it must name.
    ReferenceMismatch {
        /// The repository it must name.
        expected: String,
        /// The repository it names, escaped.
        found: String,
    },
    /// A payload or document of another type than expected: both, escaped.
    WrongType {
        /// The type expected.
        expected: String,
        /// The type found.
        found: String,
    },
    /// A form or algorithm we do not verify: which, escaped.
    Unsupported(String),
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureProblem::Invalid { key_id } => write!(
                f,
                "the signature does not verify with the public key {}: another key made it, or what it \
                 signs was changed",
                key_id.chars().take(16).collect::<String>()
            ),
            SignatureProblem::Missing => f.write_str("no signature found"),
            SignatureProblem::Malformed(what) => write!(f, "malformed signature: {what}"),
            SignatureProblem::TooLarge { what, limit } => {
                write!(f, "the {what} is larger than {} KiB; refused", limit >> 10)
            }
            SignatureProblem::DigestMismatch { expected, found } => write!(
                f,
                "the signature covers {found}, not {expected}: it is for another image or document"
            ),
            SignatureProblem::ReferenceMismatch { expected, found } => write!(
                f,
                "the signature names the repository `{found}`, not `{expected}`: it is for another image"
            ),
            SignatureProblem::WrongType { expected, found } => {
                write!(
                    f,
                    "the signed document is of type `{found}`, not `{expected}`"
                )
            }
            SignatureProblem::Unsupported(what) => write!(f, "unsupported signature form: {what}"),
        }
    }
}
