//! Registry errors that callers can branch on: what kind of failure, which registry and repository, the
//! HTTP status and the registry's own error codes, with a one-line message for people.

use std::fmt;

/// What kind of failure a registry error is. More kinds may come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// 401: no credentials, or the wrong ones.
    Unauthorized,
    /// 403: the credentials may not do this.
    Denied,
    /// 404: no such repository, manifest or blob.
    NotFound,
    /// 415 or an unsupported media type or scheme.
    Unsupported,
    /// 429, still after the retries.
    RateLimited,
    /// 5xx, still after the retries.
    Server,
    /// No connection, a timeout, a TLS failure.
    Unreachable,
    /// The registry or its token service broke the protocol.
    Protocol,
    /// We refused to go on: credentials or TLS would have been given up.
    Refused,
    /// Content that does not match its digest.
    Corrupt,
}

impl RegistryErrorKind {
    /// The kind an unexpected HTTP status stands for.
    pub fn of_status(status: u16) -> RegistryErrorKind {
        match status {
            401 => RegistryErrorKind::Unauthorized,
            403 => RegistryErrorKind::Denied,
            404 => RegistryErrorKind::NotFound,
            415 => RegistryErrorKind::Unsupported,
            429 => RegistryErrorKind::RateLimited,
            500..=599 => RegistryErrorKind::Server,
            _ => RegistryErrorKind::Protocol,
        }
    }
}

/// A failure talking to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError {
    /// What went wrong, for callers to branch on.
    pub kind: RegistryErrorKind,
    /// The registry host, as references name it.
    pub host: String,
    /// The repository, when the error is about one; its message then names it (`host/repository`).
    pub repository: Option<String>,
    /// The HTTP status, when an answer caused the error.
    pub status: Option<u16>,
    /// The registry's own error codes (`MANIFEST_UNKNOWN`, `DENIED` ...), escaped.
    pub codes: Vec<String>,
    message: String,
}

impl RegistryError {
    /// An error of `kind` at `host`, explained by `message` (one line, outside text already escaped).
    pub fn new(kind: RegistryErrorKind, host: &str, message: impl Into<String>) -> RegistryError {
        RegistryError {
            kind,
            host: host.to_owned(),
            repository: None,
            status: None,
            codes: Vec::new(),
            message: message.into(),
        }
    }

    /// The same error, about `repository` (which its message must name).
    pub fn in_repository(mut self, repository: &str) -> RegistryError {
        self.repository = Some(repository.to_owned());
        self
    }

    /// Records the HTTP status the registry answered with.
    pub fn with_status(mut self, status: u16) -> RegistryError {
        self.status = Some(status);
        self
    }

    /// Records the error codes of the registry's answer (e.g. `MANIFEST_UNKNOWN`).
    pub fn with_codes(mut self, codes: Vec<String>) -> RegistryError {
        self.codes = codes;
        self
    }

    /// The message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `; advice` after its message.
    pub fn context_suffix(mut self, advice: &str) -> RegistryError {
        self.message = format!("{}; {advice}", self.message);
        self
    }

    /// The same error with `prefix: ` before its message.
    pub fn context(mut self, prefix: &str) -> RegistryError {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RegistryError {}

impl From<RegistryError> for super::Error {
    fn from(error: RegistryError) -> super::Error {
        super::Error::Registry(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(
            RegistryErrorKind::of_status(401),
            RegistryErrorKind::Unauthorized
        );
        assert_eq!(
            RegistryErrorKind::of_status(404),
            RegistryErrorKind::NotFound
        );
        assert_eq!(
            RegistryErrorKind::of_status(429),
            RegistryErrorKind::RateLimited
        );
        assert_eq!(RegistryErrorKind::of_status(503), RegistryErrorKind::Server);
        assert_eq!(
            RegistryErrorKind::of_status(400),
            RegistryErrorKind::Protocol
        );
        let error = RegistryError::new(RegistryErrorKind::NotFound, "r.example", "no such image")
            .in_repository("team/app")
            .with_status(404);
        let error: crate::error::Error = error.into();
        assert_eq!(error.to_string(), "no such image");
        assert!(matches!(
            error,
            crate::error::Error::Registry(e) if e.kind == RegistryErrorKind::NotFound && e.status == Some(404)
        ));
    }
}
