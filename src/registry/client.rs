//! An OCI Distribution client for one registry, stacked on the `transport` layers: it finds
//! the scheme the registry speaks (HTTPS, or plain HTTP for loopback and `--insecure-registry` hosts),
//! resolves the URLs and `Location`s it sends us to, follows redirects without leaving TLS, and sends
//! each request with the registry's credentials only when it goes to the registry's own origin.

use super::origin::Origin;
use super::transport::answer;
use super::transport::auth::Auth;
use super::transport::http::{Failure, FailureKind, Http, Payload, Response, header, redact_url};
use super::transport::retry::Retrying;
use crate::context::Context;
use crate::context::Credential;
use crate::error::registry::{RegistryError, RegistryErrorKind as Kind};
use crate::error::{Error, Result};
use crate::util::sanitize;

pub use super::transport::http::{ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_STALL_TIMEOUT};

/// Redirects followed for one GET or HEAD.
const MAX_REDIRECTS: usize = 5;

/// A client for one registry host.
pub struct Registry<'l> {
    transport: Retrying<'l>,
    /// The host as users write it (`localhost:5000`, `docker.io`).
    pub host: String,
    base: String,
    auth: Auth,
}

impl<'l> Registry<'l> {
    /// Connects to `host` (a reference's domain): HTTPS, or plain HTTP for loopback and
    /// `--insecure-registry` hosts when HTTPS is refused (not when the host is silent).
    pub fn connect(
        host: &str,
        credential: Option<Credential>,
        options: &ClientOptions,
        cx: &Context<'l>,
    ) -> Result<Registry<'l>> {
        let http = Http::new(host, options, cx.cancel().clone())?;
        let api = super::api_host(host);
        let may_use_http =
            super::is_loopback(&api) || options.insecure_registries.iter().any(|h| h == host);
        let base = format!("https://{api}");
        let mut registry = Registry {
            transport: Retrying::new(http, options.retries, cx.clone()),
            host: host.to_owned(),
            auth: Auth::new(
                Origin::of(&base)?,
                credential,
                options.insecure_registries.clone(),
            ),
            base,
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
        registry.auth.set_origin(Origin::of(&registry.base)?);
        match registry.ping(true) {
            Ok(()) => {
                cx.listener().detail(&format!(
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
        let retries = if retry {
            None
        } else {
            Some(self.transport.set_retries(0))
        };
        let response = self.transport.send("GET", &url, None, &[], &Payload::Empty);
        if let Some(retries) = retries {
            self.transport.set_retries(retries);
        }
        let response = response?;
        match response.status().as_u16() {
            200 | 401 => Ok(()),
            status => Err(Failure::permanent(
                RegistryError::new(
                    Kind::Protocol,
                    &self.host,
                    format!(
                        "{} does not look like an OCI registry (GET /v2/ answered {status})",
                        self.host
                    ),
                )
                .with_status(status)
                .into(),
            )),
        }
    }

    /// The context of the run this client works for.
    pub fn cx(&self) -> &Context<'l> {
        self.transport.cx()
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
            let scheme = if self.auth.origin().is_https() {
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
        if self.auth.origin().is_https() && !origin.is_https() {
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

    /// Sends a request needing `scope` (e.g. `repository:team/app:pull,push`). Credentials go only to
    /// the registry's own origin: a URL elsewhere (blob storage a `Location` points at) gets the request
    /// without them, and a switch from HTTPS to plain HTTP is refused. The registry's authentication
    /// challenge is answered once; GET and HEAD follow redirects under the same rules.
    pub(crate) fn send(
        &mut self,
        method: &str,
        url: &str,
        scope: &str,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> Result<Response> {
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
    ) -> Result<Response> {
        let origin = Origin::of(url)?;
        self.check_downgrade(url, &origin)?;
        let authorization = self.auth.authorization(&origin, scope);
        let mut response = self
            .transport
            .send(method, url, authorization.as_deref(), headers, payload)
            .map_err(|f| f.error)?;
        let ours = self.auth.is_ours(&origin);
        if response.status().as_u16() != 401 || !ours {
            if !ours {
                answer::mark_answered_elsewhere(&mut response, origin);
            }
            return Ok(response);
        }
        let challenge = header(&response, "www-authenticate").unwrap_or_default();
        self.auth.authenticate(&self.transport, &challenge, scope)?;
        let authorization = self.auth.authorization(&origin, scope);
        self.transport
            .send(method, url, authorization.as_deref(), headers, payload)
            .map_err(|f| f.error)
    }

    /// An error of `kind` at this registry.
    pub fn error(&self, kind: Kind, message: String) -> Error {
        self.transport.http().error(kind, message)
    }

    /// The error for a 401 or 403 answer (see [`answer::refused`]).
    pub(crate) fn refused(&self, response: &Response) -> Error {
        answer::refused(
            self.transport.http(),
            self.auth.origin(),
            self.auth.credential(),
            response,
        )
    }

    /// Turns an unexpected response into an error naming the registry, the repository and (escaped and
    /// cut short) the registry's own message.
    pub(crate) fn unexpected(&self, what: &str, repository: &str, response: Response) -> Error {
        answer::unexpected(
            self.transport.http(),
            self.auth.origin(),
            self.auth.credential(),
            what,
            repository,
            response,
        )
    }
}
