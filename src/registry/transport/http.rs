//! One HTTP request to a registry, its token service or its storage: the agent with its trusted
//! certificates and time limits, request bodies that can be sent again, what a failed request was
//! (which the retry layer decides on), and the helpers every layer above shares: header values,
//! bounded body reads, URL redaction and query encoding. The other layers see a [`Response`] and a
//! [`Failure`]; ureq's request, error and TLS types stay in this file.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use ureq::http::Request;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, SendBody};

use crate::error::registry::{RegistryError, RegistryErrorKind as Kind};
use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;
use crate::util::sanitize;

/// An answer, its body not read yet.
pub(crate) type Response = ureq::http::Response<ureq::Body>;

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Hosts that may be spoken to over plain HTTP (loopback ones always may).
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) to trust, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// A transfer that makes no progress (no byte read or written) for this long fails.
    pub stall_timeout: Duration,
    /// Time limit for name resolution and for opening a connection.
    pub connect_timeout: Duration,
    /// Extra attempts after a refused or reset connection, a 5xx or a 429. A timed-out transfer is
    /// tried once more at most, and a host that does not accept connections in time is not retried.
    pub retries: u32,
    /// Ask the cloud (ECR, GitHub Actions, Google) for credentials when docker's and podman's
    /// configuration has none for a registry (`--no-cloud-credentials` turns it off).
    pub cloud_credentials: bool,
    /// The cloud credentials had so far, by registry, shared by the clones of these options: a
    /// run asks a cloud once per registry. Never written anywhere.
    pub cloud_tokens: CloudTokens,
}

/// Cloud credentials in memory for one run, by registry.
#[derive(Clone, Default)]
pub struct CloudTokens(
    std::sync::Arc<
        std::sync::Mutex<std::collections::BTreeMap<String, crate::context::Credential>>,
    >,
);

impl CloudTokens {
    /// The credential had for `registry` earlier in the run.
    pub(crate) fn get(&self, registry: &str) -> Option<crate::context::Credential> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(registry)
            .cloned()
    }

    /// Keeps `credential` for `registry` for the rest of the run.
    pub(crate) fn put(&self, registry: &str, credential: crate::context::Credential) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(registry.to_owned(), credential);
    }
}

impl std::fmt::Debug for CloudTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloudTokens(<redacted>)")
    }
}

/// Default time without progress before a transfer fails.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default (and largest) connection time limit.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientOptions {
    /// Options with a stall timeout of `timeout`; the connection limit is the same when shorter than
    /// the default.
    pub fn with_timeout(timeout: Duration) -> ClientOptions {
        let timeout = timeout.max(Duration::from_secs(1));
        ClientOptions {
            stall_timeout: timeout,
            connect_timeout: timeout.min(DEFAULT_CONNECT_TIMEOUT),
            ..ClientOptions::default()
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            ca_file: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retries: 4,
            cloud_credentials: true,
            cloud_tokens: CloudTokens::default(),
        }
    }
}

/// A request body that can be sent again on retry.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A fresh reader for every attempt, and its length.
    Stream(&'a dyn Fn() -> Result<Box<dyn Read + Send + 'a>>, u64),
}

/// What went wrong with one request, which decides whether to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Refused, reset or cut off: worth several more tries.
    Transient,
    /// No progress within the stall limit: worth one more try.
    Stalled,
    /// The host did not accept a connection in time: it is not there, or drops packets.
    Unreachable,
    /// TLS, protocol or local errors: trying again gives the same answer.
    Final,
}

/// A request that got no answer: the error to report and what kind of failure it was.
pub(crate) struct Failure {
    pub error: Error,
    pub kind: FailureKind,
}

impl Failure {
    /// A failure that trying again does not change (an interrupt, a body that cannot be opened).
    pub fn permanent(error: Error) -> Failure {
        Failure {
            error,
            kind: FailureKind::Final,
        }
    }
}

/// The agent and the registry host its errors name: what one request needs.
pub(crate) struct Http {
    agent: Agent,
    host: String,
    /// The run's token: a request failing after a cancel failed because of it.
    cancel: CancelToken,
}

impl Http {
    /// An agent for `host` (as references name it) with the certificates and time limits of
    /// `options`; redirects are left to the caller, which decides where credentials may go.
    pub fn new(host: &str, options: &ClientOptions, cancel: CancelToken) -> Result<Http> {
        Ok(Http {
            agent: agent(options)?,
            host: host.to_owned(),
            cancel,
        })
    }

    /// The registry host, as references name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// An error of `kind` at this registry.
    pub fn error(&self, kind: Kind, message: String) -> Error {
        RegistryError::new(kind, &self.host, message).into()
    }

    /// Sends one request, with `authorization` as its `Authorization` header when given.
    pub fn send_once(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> std::result::Result<Response, Failure> {
        let mut builder = Request::builder().method(method).uri(url);
        if let Some(auth) = authorization {
            builder = builder.header("Authorization", auth);
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let build_error = |e: ureq::http::Error| {
            Failure::permanent(self.error(
                Kind::Protocol,
                format!(
                    "building a request for {}: {e}",
                    sanitize::outside(redact_url(url), sanitize::EXCERPT)
                ),
            ))
        };
        let result = match payload {
            Payload::Empty => self.agent.run(builder.body(()).map_err(build_error)?),
            Payload::Bytes(bytes) => self.agent.run(
                builder
                    .header("Content-Length", bytes.len().to_string())
                    .body(*bytes)
                    .map_err(build_error)?,
            ),
            Payload::Stream(open, len) => {
                let mut reader = open().map_err(Failure::permanent)?;
                self.agent.run(
                    builder
                        .header("Content-Length", len.to_string())
                        .body(SendBody::from_reader(&mut reader))
                        .map_err(build_error)?,
                )
            }
        };
        result.map_err(|e| self.failure(method, url, &e))
    }

    /// What a ureq failure of `method url` means: an interrupt, a corrupt body of ours, or a network
    /// or protocol failure of a kind.
    fn failure(&self, method: &str, url: &str, e: &ureq::Error) -> Failure {
        if self.cancel.is_cancelled() {
            return Failure::permanent(Error::Interrupted);
        }
        // A body reader's own error (a corrupt blob) is ours, not the network's.
        if let ureq::Error::Io(io) = e
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return Failure::permanent(self.error(
                Kind::Corrupt,
                format!(
                    "{method} {}: {}",
                    sanitize::outside(redact_url(url), sanitize::EXCERPT),
                    sanitize::outside(&io.to_string(), sanitize::EXCERPT)
                ),
            ));
        }
        let kind = failure_kind(e);
        Failure {
            kind,
            error: self.error(
                if kind == FailureKind::Final {
                    Kind::Protocol
                } else {
                    Kind::Unreachable
                },
                format!(
                    "{method} {}: {}",
                    sanitize::outside(redact_url(url), sanitize::EXCERPT),
                    describe(e)
                ),
            ),
        }
    }
}

fn agent(options: &ClientOptions) -> Result<Agent> {
    let mut certs: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(file) = &options.ca_file {
        let pem = crate::util::fsutil::read_regular(
            file,
            crate::util::fsutil::MAX_SMALL_FILE,
            "the CA file",
        )?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
                certs.push(cert);
            }
        }
        if certs.len() == before {
            return Err(Error::input(
                file,
                "holds no PEM certificate; --ca-file takes a PEM CA certificate",
            ));
        }
    }
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build();
    Ok(Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        // No total limit: a large upload may take long, but a transfer that stops moving fails.
        .timeout_per_read(Some(options.stall_timeout))
        .timeout_per_write(Some(options.stall_timeout))
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(format!("zeroimage/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into())
}

/// How a ureq failure is classified for retries.
fn failure_kind(error: &ureq::Error) -> FailureKind {
    use std::io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted, TimedOut,
        UnexpectedEof, WouldBlock,
    };
    use ureq::Timeout;
    match error {
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => FailureKind::Unreachable,
        ureq::Error::Timeout(_) => FailureKind::Stalled,
        ureq::Error::ConnectionFailed => FailureKind::Transient,
        ureq::Error::Io(e) => match e.kind() {
            TimedOut | WouldBlock => FailureKind::Stalled,
            ConnectionReset | ConnectionRefused | ConnectionAborted | BrokenPipe
            | UnexpectedEof | Interrupted => FailureKind::Transient,
            _ => FailureKind::Final,
        },
        _ => FailureKind::Final,
    }
}

/// A ureq failure in words, escaped (TLS and I/O errors can quote what the peer sent).
fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            "no connection within the time limit".to_owned()
        }
        ureq::Error::Timeout(_) => {
            "the transfer made no progress within the time limit (--registry-timeout)".to_owned()
        }
        other => sanitize::outside(&other.to_string(), sanitize::EXCERPT),
    }
}

/// A header's value, when it is present and text.
pub(crate) fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads at most `limit` bytes of a response body; the flag says whether there was more.
pub(crate) fn read_limited(response: Response, limit: u64) -> (Vec<u8>, bool) {
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut reader = body.as_reader().take(limit + 1);
    // A body cut off midway still says something; what arrived is what we show.
    let _ = reader.read_to_end(&mut bytes);
    let more = bytes.len() as u64 > limit;
    bytes.truncate(limit as usize);
    (bytes, more)
}

/// Drops the query string, which can hold upload state or tokens.
pub(crate) fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
