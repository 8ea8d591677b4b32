//! An OCI Distribution client for one registry: scheme discovery, Basic and Bearer authentication scoped
//! to the registry's origin, bounded and interruptible waits, retries with backoff, and errors that name
//! the registry and repository without echoing hostile text.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ureq::http::{Request, Response};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, Body, SendBody};

use super::credentials::Credential;
use super::origin::Origin;
use crate::error::registry::{RegistryError, RegistryErrorKind as Kind};
use crate::error::{Error, Result};
use crate::report::Listener;
use crate::util::sanitize;

/// Largest error body we read from a registry; the message quotes only the start of it.
const ERROR_BODY_LIMIT: u64 = 64 << 10;
/// Largest token-service answer we read.
const TOKEN_BODY_LIMIT: u64 = 1 << 20;
/// Redirects followed for one GET or HEAD.
const MAX_REDIRECTS: usize = 5;
/// Longest wait a `Retry-After` header may impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

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
        }
    }
}

/// A request body that can be sent again on retry.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A fresh reader for every attempt, and its length.
    Stream(&'a dyn Fn() -> Result<Box<dyn Read + Send + 'a>>, u64),
}

/// A client for one registry host.
pub struct Registry<'l> {
    agent: Agent,
    /// The host as users write it (`localhost:5000`, `docker.io`).
    pub host: String,
    base: String,
    /// Where credentials may go: the registry's own scheme, host and port.
    origin: Origin,
    credential: Option<Credential>,
    /// Bearer tokens by scope string.
    tokens: HashMap<String, String>,
    /// The registry asked for Basic authentication.
    basic: bool,
    retries: u32,
    insecure_registries: Vec<String>,
    listener: &'l dyn Listener,
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

/// Why a send failed, which decides whether to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureKind {
    /// Refused, reset or cut off: worth several more tries.
    Transient,
    /// No progress within the stall limit: worth one more try.
    Stalled,
    /// The host did not accept a connection in time: it is not there, or drops packets.
    Unreachable,
    /// TLS, protocol or local errors: trying again gives the same answer.
    Final,
}

struct Failure {
    error: Error,
    kind: FailureKind,
}

impl<'l> Registry<'l> {
    /// Connects to `host` (a reference's domain): HTTPS, or plain HTTP for loopback and
    /// `--insecure-registry` hosts when HTTPS is refused (not when the host is silent).
    pub fn connect(
        host: &str,
        credential: Option<Credential>,
        options: &ClientOptions,
        listener: &'l dyn Listener,
    ) -> Result<Registry<'l>> {
        let agent = agent(options)?;
        let api = super::api_host(host);
        let may_use_http =
            super::is_loopback(host) || options.insecure_registries.iter().any(|h| h == host);
        let base = format!("https://{api}");
        let mut registry = Registry {
            agent,
            host: host.to_owned(),
            origin: Origin::of(&base)?,
            base,
            credential,
            tokens: HashMap::new(),
            basic: false,
            retries: options.retries,
            insecure_registries: options.insecure_registries.clone(),
            listener,
        };
        let advice = "pass --ca-file for a registry with a private CA, or --insecure-registry HOST for one that speaks plain HTTP";
        // When plain HTTP may follow, one HTTPS attempt is enough to learn which scheme the host speaks.
        let https_error = match registry.ping(!may_use_http) {
            Ok(()) => return Ok(registry),
            Err(failure) if failure.kind == FailureKind::Unreachable || !may_use_http => {
                return Err(failure.error.context_suffix(advice));
            }
            Err(failure) => failure.error,
        };
        registry.base = format!("http://{api}");
        registry.origin = Origin::of(&registry.base)?;
        match registry.ping(true) {
            Ok(()) => {
                listener.detail(&format!(
                    "{host}: HTTPS failed ({https_error}); using plain HTTP"
                ));
                Ok(registry)
            }
            // Plain HTTP did not work either. Its failure is what ended the attempt (a host that
            // stalls over HTTP is not explained by the TLS error before); the HTTPS one says why
            // plain HTTP was tried, and may be the cause (a TLS registry with a private CA).
            Err(failure) => Err(match failure.error {
                Error::Registry(e) => Error::Registry(Box::new(
                    e.context_suffix(&format!("tried after HTTPS failed: {https_error}"))
                        .context_suffix(advice),
                )),
                other => other,
            }),
        }
    }

    /// `GET /v2/`: reachability and the API version; 401 here is fine (it tells us how to log in).
    fn ping(&mut self, retry: bool) -> std::result::Result<(), Failure> {
        let url = format!("{}/v2/", self.base);
        let retries = self.retries;
        if !retry {
            self.retries = 0;
        }
        let response = self.send_retrying("GET", &url, None, &[], &Payload::Empty);
        self.retries = retries;
        let response = response?;
        match response.status().as_u16() {
            200 | 401 => Ok(()),
            status => Err(Failure {
                error: RegistryError::new(
                    Kind::Protocol,
                    &self.host,
                    format!(
                        "{} does not look like an OCI registry (GET /v2/ answered {status})",
                        self.host
                    ),
                )
                .with_status(status)
                .into(),
                kind: FailureKind::Final,
            }),
        }
    }

    /// The URL of a path under the API root (`/v2/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolves a `Location` header the registry sent: an absolute URL, a scheme-relative one, or a
    /// path on the registry.
    pub fn resolve_location(&self, location: &str) -> Result<String> {
        let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
        let url = if lower.starts_with("http://") || lower.starts_with("https://") {
            location.to_owned()
        } else if let Some(rest) = location.strip_prefix("//") {
            let scheme = if self.origin.is_https() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{rest}")
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            return Err(self.error(
                Kind::Protocol,
                format!(
                    "{} sent an unusable Location `{}`",
                    self.host,
                    sanitize::outside(location, sanitize::EXCERPT)
                ),
            ));
        };
        Origin::of(&url)?;
        Ok(url)
    }

    /// Fails when a request to `url` would leave TLS: the registry speaks HTTPS and `url` is plain HTTP.
    fn check_downgrade(&self, url: &str, origin: &Origin) -> Result<()> {
        if self.origin.is_https() && !origin.is_https() {
            return Err(self.error(
                Kind::Refused,
                format!(
                    "{} sent us to plain HTTP ({}); refusing to leave TLS",
                    self.host,
                    sanitize::outside(redact_url(url), sanitize::EXCERPT)
                ),
            ));
        }
        Ok(())
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> std::result::Result<Response<Body>, Failure> {
        let mut builder = Request::builder().method(method).uri(url);
        if let Some(auth) = authorization {
            builder = builder.header("Authorization", auth);
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let build_error = |e: ureq::http::Error| Failure {
            error: self.error(
                Kind::Protocol,
                format!(
                    "building a request for {}: {e}",
                    sanitize::outside(redact_url(url), sanitize::EXCERPT)
                ),
            ),
            kind: FailureKind::Final,
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
                let mut reader = open().map_err(|error| Failure {
                    error,
                    kind: FailureKind::Final,
                })?;
                self.agent.run(
                    builder
                        .header("Content-Length", len.to_string())
                        .body(SendBody::from_reader(&mut reader))
                        .map_err(build_error)?,
                )
            }
        };
        result.map_err(|e| {
            if crate::util::cancel::is_requested() {
                return Failure {
                    error: Error::Interrupted,
                    kind: FailureKind::Final,
                };
            }
            // A body reader's own error (a corrupt blob) is ours, not the network's.
            if let ureq::Error::Io(io) = &e {
                if io.kind() == std::io::ErrorKind::InvalidData {
                    return Failure {
                        error: self.error(
                            Kind::Corrupt,
                            format!(
                                "{method} {}: {}",
                                sanitize::outside(redact_url(url), sanitize::EXCERPT),
                                sanitize::outside(&io.to_string(), sanitize::EXCERPT)
                            ),
                        ),
                        kind: FailureKind::Final,
                    };
                }
            }
            let kind = failure_kind(&e);
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
                        describe(&e)
                    ),
                ),
            }
        })
    }

    /// Sends a request, retrying refused and reset connections, 5xx and 429 answers with exponential
    /// backoff (a status line says when and why), a stalled transfer once, and an unreachable host never.
    fn send_retrying(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> std::result::Result<Response<Body>, Failure> {
        let mut attempt = 0;
        let mut stalls = 0;
        loop {
            crate::util::cancel::check().map_err(|error| Failure {
                error,
                kind: FailureKind::Final,
            })?;
            let outcome = self.send_once(method, url, authorization, headers, payload);
            let (retryable, retry_after) = match &outcome {
                Err(f) if f.kind == FailureKind::Transient => (true, None),
                Err(f) if f.kind == FailureKind::Stalled => {
                    stalls += 1;
                    (stalls <= 1, None)
                }
                Err(_) => (false, None),
                Ok(r) => (
                    r.status().is_server_error() || r.status().as_u16() == 429,
                    retry_after(r),
                ),
            };
            if !retryable || attempt >= self.retries {
                return outcome;
            }
            attempt += 1;
            let backoff = Duration::from_millis(250 * (1 << attempt.min(6)));
            let wait = retry_after.map_or(backoff, |after| after.max(backoff));
            let why = match &outcome {
                Err(f) => f.error.to_string(),
                Ok(r) => format!(
                    "{method} {} answered HTTP {}",
                    sanitize::outside(redact_url(url), sanitize::EXCERPT),
                    r.status().as_u16()
                ),
            };
            self.listener.status(
                "Retrying",
                &format!(
                    "{why}; waiting {:.1} s (attempt {attempt} of {})",
                    wait.as_secs_f64(),
                    self.retries
                ),
            );
            crate::util::cancel::sleep(wait).map_err(|error| Failure {
                error,
                kind: FailureKind::Final,
            })?;
        }
    }

    /// Sends a request needing `scope` (e.g. `repository:team/app:pull,push`). Credentials go only to
    /// the registry's own origin: a URL elsewhere (blob storage a `Location` points at) gets the request
    /// without them, and a switch from HTTPS to plain HTTP is refused. The registry's authentication
    /// challenge is answered once; GET and HEAD follow redirects under the same rules.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        scope: &str,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> Result<Response<Body>> {
        let mut url = url.to_owned();
        let mut redirects = 0;
        loop {
            let response = self.send_authorized(method, &url, scope, headers, payload)?;
            let status = response.status().as_u16();
            let follow =
                matches!(method, "GET" | "HEAD") && matches!(status, 301 | 302 | 303 | 307 | 308);
            if !follow {
                return Ok(response);
            }
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(self.error(
                    Kind::Protocol,
                    format!(
                        "{}: more than {MAX_REDIRECTS} redirects for {method} {}",
                        self.host,
                        sanitize::outside(redact_url(&url), sanitize::EXCERPT)
                    ),
                ));
            }
            let location = header(&response, "location").ok_or_else(|| {
                self.error(
                    Kind::Protocol,
                    format!("{} answered HTTP {status} without a Location", self.host),
                )
            })?;
            url = self.resolve_location(&location)?;
        }
    }

    fn send_authorized(
        &mut self,
        method: &str,
        url: &str,
        scope: &str,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> Result<Response<Body>> {
        let origin = Origin::of(url)?;
        self.check_downgrade(url, &origin)?;
        let ours = origin == self.origin;
        let authorization = if ours {
            self.authorization(scope)
        } else {
            None
        };
        let mut response = self
            .send_retrying(method, url, authorization.as_deref(), headers, payload)
            .map_err(|f| f.error)?;
        if response.status().as_u16() != 401 || !ours {
            if !ours {
                response.extensions_mut().insert(AnsweredElsewhere(origin));
            }
            return Ok(response);
        }
        let challenge = header(&response, "www-authenticate").unwrap_or_default();
        self.authenticate(&challenge, scope)?;
        let authorization = self.authorization(scope);
        self.send_retrying(method, url, authorization.as_deref(), headers, payload)
            .map_err(|f| f.error)
    }

    fn authorization(&self, scope: &str) -> Option<String> {
        if let Some(token) = self.tokens.get(scope) {
            return Some(format!("Bearer {token}"));
        }
        match (&self.credential, self.basic) {
            (Some(Credential::Basic { username, password }), true) => {
                Some(basic_authorization(username, password))
            }
            _ => None,
        }
    }

    /// Answers a `WWW-Authenticate` challenge: Basic with the stored credential, or Bearer by asking
    /// the token service for `scope`.
    fn authenticate(&mut self, challenge: &str, scope: &str) -> Result<()> {
        let (kind, params) = parse_challenge(challenge);
        match kind.to_ascii_lowercase().as_str() {
            "basic" => {
                if !matches!(self.credential, Some(Credential::Basic { .. })) {
                    return Err(self.login_needed());
                }
                self.basic = true;
                Ok(())
            }
            "bearer" => {
                let realm = params.get("realm").cloned().ok_or_else(|| {
                    self.error(
                        Kind::Protocol,
                        format!("{} asked for a bearer token without a realm", self.host),
                    )
                })?;
                let service = params.get("service").cloned().unwrap_or_default();
                let token = self.fetch_token(&realm, &service, scope)?;
                self.tokens.insert(scope.to_owned(), token);
                Ok(())
            }
            _ => Err(self.error(
                Kind::Unsupported,
                format!(
                    "{} asked for an authentication scheme we do not speak (`{}`)",
                    self.host,
                    sanitize::outside(challenge, sanitize::EXCERPT)
                ),
            )),
        }
    }

    fn login_needed(&self) -> Error {
        self.error(
            Kind::Unauthorized,
            format!(
                "{} requires authentication; log in with `zeroimage login {}` (or docker/podman login)",
                self.host, self.host
            ),
        )
    }

    /// An error of `kind` at this registry.
    pub fn error(&self, kind: Kind, message: String) -> Error {
        RegistryError::new(kind, &self.host, message).into()
    }

    /// Checks that the token service at `realm` may receive our credentials: docker sends them to
    /// whatever realm the registry names, but never in clear text when the registry itself uses TLS,
    /// unless `--insecure-registry` names the realm's host.
    fn check_realm(&self, realm: &str) -> Result<Origin> {
        let origin = Origin::of(realm).map_err(|_| {
            self.error(
                Kind::Protocol,
                format!(
                    "{} named an unusable token service `{}`",
                    self.host,
                    sanitize::outside(realm, sanitize::EXCERPT)
                ),
            )
        })?;
        let allowed = self.insecure_registries.iter().any(|h| {
            h.eq_ignore_ascii_case(origin.host()) || h.eq_ignore_ascii_case(&origin.authority())
        });
        if self.origin.is_https() && !origin.is_https() && !allowed {
            return Err(self.error(
                Kind::Refused,
                format!(
                    "{} sends us to a token service over plain HTTP ({}); refusing to send \
                     credentials there in clear text (pass --insecure-registry {} if you trust that \
                     network)",
                    self.host,
                    origin,
                    origin.authority()
                ),
            ));
        }
        Ok(origin)
    }

    fn fetch_token(&self, realm: &str, service: &str, scope: &str) -> Result<String> {
        self.check_realm(realm)?;
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        let shown_realm = sanitize::outside(redact_url(realm), sanitize::EXCERPT);
        let response = match &self.credential {
            Some(Credential::IdentityToken(refresh)) => {
                // OAuth2 refresh-token grant, as docker does with an identity token.
                let mut form = format!(
                    "grant_type=refresh_token&client_id=zeroimage&service={}&refresh_token={}",
                    encode(service),
                    encode(refresh)
                );
                for s in &scopes {
                    form.push_str(&format!("&scope={}", encode(s)));
                }
                let headers = [(
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                )];
                self.send_retrying(
                    "POST",
                    realm,
                    None,
                    &headers,
                    &Payload::Bytes(form.as_bytes()),
                )
            }
            credential => {
                let mut url = format!(
                    "{realm}{}service={}",
                    if realm.contains('?') { '&' } else { '?' },
                    encode(service)
                );
                for s in &scopes {
                    url.push_str(&format!("&scope={}", encode(s)));
                }
                let authorization = match credential {
                    Some(Credential::Basic { username, password }) => {
                        Some(basic_authorization(username, password))
                    }
                    _ => None,
                };
                self.send_retrying("GET", &url, authorization.as_deref(), &[], &Payload::Empty)
            }
        }
        .map_err(|f| match f.error {
            Error::Registry(e) => Error::Registry(Box::new(e.context(&format!(
                "getting a token for {} from {shown_realm}",
                self.host
            )))),
            other => other,
        })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.auth_failed());
        }
        let (body, _) = read_limited(response, TOKEN_BODY_LIMIT);
        if status != 200 {
            return Err(RegistryError::new(
                Kind::of_status(status),
                &self.host,
                format!(
                    "the token service of {} answered HTTP {status}: {}",
                    self.host,
                    describe_body(&body)
                ),
            )
            .with_status(status)
            .into());
        }
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            self.error(
                Kind::Protocol,
                format!(
                    "the token service of {} did not answer with JSON: {}",
                    self.host,
                    describe_body(&body)
                ),
            )
        })?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned)
            .ok_or_else(|| {
                self.error(
                    Kind::Protocol,
                    format!("the token service of {} sent no usable token", self.host),
                )
            })
    }

    /// The error for a 401 or 403 answer. From the registry itself: the credentials refused (or
    /// none stored). From another origin the registry redirected to (its blob storage), which never
    /// gets our credentials: that place refused a request that carried none, which no login changes.
    pub fn refused(&self, response: &Response<Body>) -> Error {
        let status = response.status().as_u16();
        match response.extensions().get::<AnsweredElsewhere>() {
            Some(AnsweredElsewhere(origin)) => RegistryError::new(
                Kind::of_status(status),
                &self.host,
                format!(
                    "{origin}, where {} sent the request, refused it (HTTP {status}); no credentials \
                     were sent there, as they go only to {} itself: the registry's storage must \
                     accept the requests it redirects (ask the registry's operator)",
                    self.host, self.origin
                ),
            )
            .with_status(status)
            .into(),
            None if status == 401 => self.auth_failed(),
            None => RegistryError::new(
                Kind::of_status(status),
                &self.host,
                format!("{} denied access (HTTP {status})", self.host),
            )
            .with_status(status)
            .into(),
        }
    }

    /// The error for credentials the registry refused; never shows the secret.
    pub fn auth_failed(&self) -> Error {
        match &self.credential {
            Some(credential) => RegistryError::new(
                Kind::Unauthorized,
                &self.host,
                format!(
                    "{} rejected the credentials of {} (401 unauthorized); check them with \
                     `zeroimage login {}`",
                    self.host,
                    credential.who(),
                    self.host
                ),
            )
            .with_status(401)
            .into(),
            None => self.login_needed(),
        }
    }

    /// Turns an unexpected response into an error naming the registry, the repository and (escaped and
    /// cut short) the registry's own message.
    pub fn unexpected(&self, what: &str, repository: &str, response: Response<Body>) -> Error {
        let status = response.status().as_u16();
        if answered_elsewhere(&response) && matches!(status, 401 | 403) {
            return match self.refused(&response) {
                Error::Registry(e) => {
                    let e = e.context(&format!("{what} {}/{repository}", self.host));
                    Error::Registry(Box::new(if repository.is_empty() {
                        e
                    } else {
                        e.in_repository(repository)
                    }))
                }
                other => other,
            };
        }
        if status == 401 {
            return self.auth_failed();
        }
        let (body, _) = read_limited(response, ERROR_BODY_LIMIT);
        let detail = describe_body(&body);
        let place = format!("{}/{repository}", self.host);
        let message = match status {
            403 => format!(
                "{what} {place}: access denied (403); the account may not push to this repository: {detail}"
            ),
            404 => format!("{what} {place}: not found (404); check the repository name: {detail}"),
            415 => format!(
                "{what} {place}: the registry does not accept this media type (415): {detail}"
            ),
            _ => format!("{what} {place}: HTTP {status}: {detail}"),
        };
        let mut error = RegistryError::new(Kind::of_status(status), &self.host, message)
            .with_status(status)
            .with_codes(error_codes(&body));
        if !repository.is_empty() {
            error = error.in_repository(repository);
        }
        error.into()
    }
}

/// Marks a response that came from another origin than the registry's (a redirect or `Location` to
/// its blob storage), where no credentials were sent.
#[derive(Clone, Debug)]
struct AnsweredElsewhere(Origin);

/// True when `response` came from another origin than the registry's (see [`Registry::send`]).
pub fn answered_elsewhere(response: &Response<Body>) -> bool {
    response.extensions().get::<AnsweredElsewhere>().is_some()
}

fn basic_authorization(username: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
}

/// A header's value, when it is present and text.
pub fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The wait a 429 or 503 asks for in seconds, capped.
fn retry_after(response: &Response<Body>) -> Option<Duration> {
    let seconds: u64 = header(response, "retry-after")?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// Reads at most `limit` bytes of a response body; the flag says whether there was more.
pub fn read_limited(response: Response<Body>, limit: u64) -> (Vec<u8>, bool) {
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut reader = body.as_reader().take(limit + 1);
    // A body cut off midway still says something; what arrived is what we show.
    let _ = reader.read_to_end(&mut bytes);
    let more = bytes.len() as u64 > limit;
    bytes.truncate(limit as usize);
    (bytes, more)
}

/// How a ureq failure is classified for retries.
fn failure_kind(error: &ureq::Error) -> FailureKind {
    use std::io::ErrorKind::*;
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

/// A registry error body as one short, escaped line: the `errors` of the distribution spec's JSON, or
/// the start of the text.
pub fn describe_body(body: &[u8]) -> String {
    if let Some(errors) = registry_errors(body) {
        return errors;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(no message)".to_owned()
    } else {
        sanitize::outside(text, sanitize::EXCERPT)
    }
}

/// The registry's error codes in a JSON error body, escaped.
fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    json.get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .take(10)
        .filter_map(|e| e.get("code").and_then(|c| c.as_str()))
        .map(|c| sanitize::outside(c, 60))
        .collect()
}

/// The `errors` of a registry's JSON error body: the first few, escaped, as one line.
fn registry_errors(body: &[u8]) -> Option<String> {
    const SHOWN: usize = 3;
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let errors = json.get("errors")?.as_array()?;
    let mut parts: Vec<String> = errors
        .iter()
        .take(SHOWN)
        .map(|e| {
            format!(
                "{}: {}",
                sanitize::outside(
                    e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                    60
                ),
                sanitize::outside(e.get("message").and_then(|m| m.as_str()).unwrap_or(""), 200)
            )
        })
        .collect();
    if errors.len() > SHOWN {
        parts.push(format!("and {} more", errors.len() - SHOWN));
    }
    Some(parts.join("; "))
}

/// Drops the query string, which can hold upload state or tokens.
fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Splits `Bearer realm="...",service="...",scope="..."` into the scheme and its parameters.
pub fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (kind, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_owned());
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    (kind.to_owned(), params)
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
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
    fn bearer_challenges_parse() {
        let (kind, params) = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(kind, "Bearer");
        assert_eq!(params["realm"], "https://auth.example.com/token");
        assert_eq!(params["service"], "registry.example.com");
        assert_eq!(params["scope"], "repository:a/b:pull,push");
        let (kind, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(kind, "Basic");
        assert_eq!(params["realm"], "Registry Realm");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn registry_error_bodies_become_one_short_escaped_line() {
        let text =
            br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}"#;
        assert_eq!(
            registry_errors(text).unwrap(),
            "MANIFEST_INVALID: manifest invalid"
        );
        assert!(registry_errors(b"not json").is_none());
        let many = serde_json::json!({"errors": (0..20000)
            .map(|i| serde_json::json!({"code": "DENIED", "message": format!("\x1b[2J no {i}")}))
            .collect::<Vec<_>>()});
        let line = describe_body(many.to_string().as_bytes());
        assert!(line.len() < 1000, "{}", line.len());
        assert!(line.ends_with("and 19997 more"), "{line}");
        assert!(!line.contains('\x1b'), "{line}");
        assert_eq!(
            describe_body(b"oops\r\x1b]0;t\x07!"),
            "oops\\r\\u{1b}]0;t\\u{7}!"
        );
    }
}
