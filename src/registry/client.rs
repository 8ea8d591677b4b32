//! An OCI Distribution client for one registry: scheme discovery, Basic and Bearer authentication,
//! bounded retries with backoff, and errors that name the registry and repository.

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
use crate::error::{Error, Result};
use crate::report::Listener;

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Hosts that may be spoken to over plain HTTP (loopback ones always may).
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) to trust, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// Time limit for one request, connection included.
    pub timeout: Duration,
    /// Extra attempts after a connection error, a 5xx or a 429.
    pub retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            ca_file: None,
            timeout: Duration::from_secs(300),
            retries: 4,
        }
    }
}

/// A request body that can be sent again on retry.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A fresh reader for every attempt, and its length.
    Stream(&'a dyn Fn() -> Result<Box<dyn Read + Send>>, u64),
}

/// A client for one registry host.
pub struct Registry<'l> {
    agent: Agent,
    /// The host as users write it (`localhost:5000`, `docker.io`).
    pub host: String,
    base: String,
    credential: Option<Credential>,
    /// Bearer tokens by scope string.
    tokens: HashMap<String, String>,
    /// The registry asked for Basic authentication.
    basic: bool,
    retries: u32,
    listener: &'l dyn Listener,
}

fn agent(options: &ClientOptions) -> Result<Agent> {
    let mut certs: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(file) = &options.ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| Error::input(file, format!("cannot read the CA file ({e})")))?;
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
        .timeout_global(Some(options.timeout))
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(format!("zeroimage/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into())
}

impl<'l> Registry<'l> {
    /// Connects to `host` (a reference's domain): HTTPS, or plain HTTP for loopback and
    /// `--insecure-registry` hosts when HTTPS does not answer.
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
        let mut registry = Registry {
            agent,
            host: host.to_owned(),
            base: format!("https://{api}"),
            credential,
            tokens: HashMap::new(),
            basic: false,
            retries: options.retries,
            listener,
        };
        let https_error = match registry.ping() {
            Ok(()) => return Ok(registry),
            Err(error) => error,
        };
        let advice = "pass --ca-file for a registry with a private CA, or --insecure-registry HOST for one that speaks plain HTTP";
        if !may_use_http {
            return Err(Error::Registry(format!("{https_error}; {advice}")));
        }
        registry.base = format!("http://{api}");
        match registry.ping() {
            Ok(()) => {
                listener.detail(&format!(
                    "{host}: HTTPS failed ({https_error}); using plain HTTP"
                ));
                Ok(registry)
            }
            // Plain HTTP did not work either: the HTTPS failure is the one that explains.
            Err(_) => Err(Error::Registry(format!("{https_error}; {advice}"))),
        }
    }

    /// `GET /v2/`: reachability and the API version; 401 here is fine (it tells us how to log in).
    fn ping(&mut self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let response = self.send_retrying("GET", &url, None, &[], &Payload::Empty)?;
        match response.status().as_u16() {
            200 | 401 => Ok(()),
            status => Err(Error::Registry(format!(
                "{} does not look like an OCI registry (GET /v2/ answered {status})",
                self.host
            ))),
        }
    }

    /// The URL of a path under the API root, or an absolute `Location` as given.
    pub fn url(&self, path_or_location: &str) -> String {
        if path_or_location.starts_with("http://") || path_or_location.starts_with("https://") {
            path_or_location.to_owned()
        } else {
            format!("{}{path_or_location}", self.base)
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> std::result::Result<Response<Body>, Transient> {
        let mut builder = Request::builder().method(method).uri(url);
        if let Some(auth) = authorization {
            builder = builder.header("Authorization", auth);
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let build_error = |e: ureq::http::Error| {
            Transient::Final(Error::Registry(format!(
                "building a request for {url}: {e}"
            )))
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
                let reader = open().map_err(Transient::Final)?;
                self.agent.run(
                    builder
                        .header("Content-Length", len.to_string())
                        .body(SendBody::from_owned_reader(reader))
                        .map_err(build_error)?,
                )
            }
        };
        result.map_err(|e| {
            let retry = is_transient(&e);
            let error = Error::Registry(format!("{method} {}: {e}", redact_url(url)));
            if retry {
                Transient::Retry(error)
            } else {
                Transient::Final(error)
            }
        })
    }

    /// Sends a request, retrying connection errors, 5xx and 429 answers with exponential backoff.
    fn send_retrying(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> Result<Response<Body>> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(method, url, authorization, headers, payload);
            let retryable = match &outcome {
                Err(Transient::Retry(_)) => true,
                Err(Transient::Final(_)) => false,
                Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
            };
            if !retryable || attempt >= self.retries {
                return outcome.map_err(Transient::into_error);
            }
            attempt += 1;
            let wait = Duration::from_millis(250 * (1 << attempt.min(6)));
            let why = match &outcome {
                Err(e) => e.error().to_string(),
                Ok(r) => format!(
                    "{method} {} answered HTTP {}",
                    redact_url(url),
                    r.status().as_u16()
                ),
            };
            self.listener.detail(&format!(
                "{why}; retrying in {} ms (attempt {attempt} of {})",
                wait.as_millis(),
                self.retries
            ));
            crate::cancel::check()?;
            std::thread::sleep(wait);
        }
    }

    /// Sends a request needing `scope` (e.g. `repository:team/app:pull,push`), answering the
    /// registry's authentication challenge once, with retries as [`send_retrying`](Self::send_retrying).
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        scope: &str,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> Result<Response<Body>> {
        let authorization = self.authorization(scope);
        let response =
            self.send_retrying(method, url, authorization.as_deref(), headers, payload)?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.authenticate(&challenge, scope)?;
        let authorization = self.authorization(scope);
        self.send_retrying(method, url, authorization.as_deref(), headers, payload)
    }

    fn authorization(&self, scope: &str) -> Option<String> {
        if let Some(token) = self.tokens.get(scope) {
            return Some(format!("Bearer {token}"));
        }
        match (&self.credential, self.basic) {
            (Some(Credential::Basic { username, password }), true) => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{username}:{password}"))
            )),
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
                    Error::Registry(format!(
                        "{} asked for a bearer token without a realm",
                        self.host
                    ))
                })?;
                let service = params.get("service").cloned().unwrap_or_default();
                let token = self.fetch_token(&realm, &service, scope)?;
                self.tokens.insert(scope.to_owned(), token);
                Ok(())
            }
            _ => Err(Error::Registry(format!(
                "{} asked for an authentication scheme we do not speak (`{challenge}`)",
                self.host
            ))),
        }
    }

    fn login_needed(&self) -> Error {
        Error::Registry(format!(
            "{} requires authentication; log in with `zeroimage login {}` (or docker/podman login)",
            self.host, self.host
        ))
    }

    fn fetch_token(&self, realm: &str, service: &str, scope: &str) -> Result<String> {
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
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
                let request = Request::builder()
                    .method("POST")
                    .uri(realm)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form)
                    .map_err(|e| Error::Registry(format!("token request to {realm}: {e}")))?;
                self.agent.run(request)
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
                let mut builder = Request::builder().method("GET").uri(&url);
                if let Some(Credential::Basic { username, password }) = credential {
                    builder = builder.header(
                        "Authorization",
                        format!("Basic {}", BASE64.encode(format!("{username}:{password}"))),
                    );
                }
                let request = builder
                    .body(())
                    .map_err(|e| Error::Registry(format!("token request to {realm}: {e}")))?;
                self.agent.run(request)
            }
        }
        .map_err(|e| {
            Error::Registry(format!(
                "getting a token for {} from {realm}: {e}",
                self.host
            ))
        })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.auth_failed());
        }
        let mut body = response.into_body();
        let text = body.read_to_string().unwrap_or_default();
        if status != 200 {
            return Err(Error::Registry(format!(
                "the token service of {} answered HTTP {status}: {}",
                self.host,
                text.trim()
            )));
        }
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::Registry(format!(
                "the token service of {} sent invalid JSON: {e}",
                self.host
            ))
        })?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::Registry(format!("the token service of {} sent no token", self.host))
            })
    }

    /// The error for credentials the registry refused; never shows the secret.
    pub fn auth_failed(&self) -> Error {
        match &self.credential {
            Some(credential) => Error::Registry(format!(
                "{} rejected the credentials of {} (401 unauthorized); check them with `zeroimage login {}`",
                self.host,
                credential.who(),
                self.host
            )),
            None => self.login_needed(),
        }
    }

    /// Turns an unexpected response into an error naming the registry, the repository and the
    /// registry's own message.
    pub fn unexpected(&self, what: &str, repository: &str, response: Response<Body>) -> Error {
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let text = body.read_to_string().unwrap_or_default();
        let detail =
            registry_errors(&text).unwrap_or_else(|| text.trim().chars().take(300).collect());
        let place = format!("{}/{repository}", self.host);
        Error::Registry(match status {
            401 => return self.auth_failed(),
            403 => format!(
                "{what} {place}: access denied (403); the account may not push to this repository: {detail}"
            ),
            404 => format!("{what} {place}: not found (404); check the repository name: {detail}"),
            415 => format!(
                "{what} {place}: the registry does not accept this media type (415): {detail}"
            ),
            _ => format!("{what} {place}: HTTP {status}: {detail}"),
        })
    }
}

/// A failed send, and whether trying again may help.
enum Transient {
    Retry(Error),
    Final(Error),
}

impl Transient {
    fn error(&self) -> &Error {
        match self {
            Transient::Retry(e) | Transient::Final(e) => e,
        }
    }

    fn into_error(self) -> Error {
        match self {
            Transient::Retry(e) | Transient::Final(e) => e,
        }
    }
}

/// Connection resets, refusals, timeouts and cut-off streams are worth a retry; TLS, name and protocol
/// errors are not.
fn is_transient(error: &ureq::Error) -> bool {
    use std::io::ErrorKind::*;
    match error {
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(e) => matches!(
            e.kind(),
            ConnectionReset
                | ConnectionRefused
                | ConnectionAborted
                | BrokenPipe
                | UnexpectedEof
                | TimedOut
                | Interrupted
        ),
        _ => false,
    }
}

/// The `errors` of a registry's JSON error body, as one line.
fn registry_errors(text: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let errors = json.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                e.get("message").and_then(|m| m.as_str()).unwrap_or("")
            )
        })
        .collect();
    Some(parts.join("; "))
}

/// Drops the query string, which can hold upload state.
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
    fn registry_error_bodies_become_one_line() {
        let text =
            r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}"#;
        assert_eq!(
            registry_errors(text).unwrap(),
            "MANIFEST_INVALID: manifest invalid"
        );
        assert!(registry_errors("not json").is_none());
    }
}
