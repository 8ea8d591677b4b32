//! Authentication, scoped to the registry's origin (scheme, host and port): the registry's
//! `WWW-Authenticate` challenge is answered with Basic (the stored username and password) or a Bearer
//! token from the token service it names, kept per scope. An `Authorization` header goes to the
//! registry's own origin only, never to a place it redirects to; credentials go to a token service in
//! clear text only when the registry itself speaks plain HTTP or `--insecure-registry` names it.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::answer::{auth_failed, describe_body, login_needed};
use super::http::{Failure, Http, Payload, Response, encode, read_limited, redact_url};
use super::retry::Retrying;
use crate::context::Credential;
use crate::error::registry::{RegistryError, RegistryErrorKind as Kind};
use crate::error::{Error, Result};
use crate::registry::origin::Origin;
use crate::util::sanitize;

/// Largest token-service answer we read.
const TOKEN_BODY_LIMIT: u64 = 1 << 20;

/// What a registry's origin may be sent: the stored credential, and what it was exchanged for.
pub(crate) struct Auth {
    /// Where credentials may go: the registry's own scheme, host and port.
    origin: Origin,
    credential: Option<Credential>,
    /// Bearer tokens by scope string.
    tokens: HashMap<String, String>,
    /// The registry asked for Basic authentication.
    basic: bool,
    /// Hosts whose token service may get credentials over plain HTTP.
    insecure_registries: Vec<String>,
}

impl Auth {
    /// Authentication for the registry at `origin` with `credential` (none: anonymous).
    pub fn new(
        origin: Origin,
        credential: Option<Credential>,
        insecure_registries: Vec<String>,
    ) -> Auth {
        Auth {
            origin,
            credential,
            tokens: HashMap::new(),
            basic: false,
            insecure_registries,
        }
    }

    /// The registry's origin, the only one credentials go to.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Moves the registry to `origin` (the same host over plain HTTP, when HTTPS is refused).
    pub fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
    }

    /// The stored credential, if any.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// True when `origin` is the registry's.
    pub fn is_ours(&self, origin: &Origin) -> bool {
        *origin == self.origin
    }

    /// The `Authorization` header for a request to `origin` needing `scope`: a token already fetched
    /// for it, or Basic once the registry asked for that; never anything for another origin.
    pub fn authorization(&self, origin: &Origin, scope: &str) -> Option<String> {
        if !self.is_ours(origin) {
            return None;
        }
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
    pub fn authenticate(
        &mut self,
        transport: &Retrying,
        challenge: &str,
        scope: &str,
    ) -> Result<()> {
        let http = transport.http();
        let (kind, params) = parse_challenge(challenge);
        match kind.to_ascii_lowercase().as_str() {
            "basic" => {
                if !matches!(self.credential, Some(Credential::Basic { .. })) {
                    return Err(login_needed(http));
                }
                self.basic = true;
                Ok(())
            }
            "bearer" => {
                let realm = params.get("realm").cloned().ok_or_else(|| {
                    http.error(
                        Kind::Protocol,
                        format!("{} asked for a bearer token without a realm", http.host()),
                    )
                })?;
                let service = params.get("service").cloned().unwrap_or_default();
                let token = self.fetch_token(transport, &realm, &service, scope)?;
                self.tokens.insert(scope.to_owned(), token);
                Ok(())
            }
            _ => Err(http.error(
                Kind::Unsupported,
                format!(
                    "{} asked for an authentication scheme we do not speak (`{}`)",
                    http.host(),
                    sanitize::outside(challenge, sanitize::EXCERPT)
                ),
            )),
        }
    }

    /// Checks that the token service at `realm` may receive our credentials: docker sends them to
    /// whatever realm the registry names, but never in clear text when the registry itself uses TLS,
    /// unless `--insecure-registry` names the realm's host.
    fn check_realm(&self, http: &Http, realm: &str) -> Result<Origin> {
        let origin = Origin::of(realm).map_err(|_| {
            http.error(
                Kind::Protocol,
                format!(
                    "{} named an unusable token service `{}`",
                    http.host(),
                    sanitize::outside(realm, sanitize::EXCERPT)
                ),
            )
        })?;
        let allowed = self.insecure_registries.iter().any(|h| {
            h.eq_ignore_ascii_case(origin.host()) || h.eq_ignore_ascii_case(&origin.authority())
        });
        if self.origin.is_https() && !origin.is_https() && !allowed {
            return Err(http.error(
                Kind::Refused,
                format!(
                    "{} sends us to a token service over plain HTTP ({}); refusing to send \
                     credentials there in clear text (pass --insecure-registry {} if you trust that \
                     network)",
                    http.host(),
                    origin,
                    origin.authority()
                ),
            ));
        }
        Ok(origin)
    }

    /// A token for `scope` from the token service at `realm`, which is checked first.
    fn fetch_token(
        &self,
        transport: &Retrying,
        realm: &str,
        service: &str,
        scope: &str,
    ) -> Result<String> {
        let http = transport.http();
        let host = http.host();
        self.check_realm(http, realm)?;
        let shown_realm = sanitize::outside(redact_url(realm), sanitize::EXCERPT);
        let response = self
            .request_token(transport, realm, service, scope)
            .map_err(|f| match f.error {
                Error::Registry(e) => Error::Registry(Box::new(
                    e.context(&format!("getting a token for {host} from {shown_realm}")),
                )),
                other => other,
            })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(auth_failed(http, self.credential()));
        }
        let (body, _) = read_limited(response, TOKEN_BODY_LIMIT);
        if status != 200 {
            return Err(RegistryError::new(
                Kind::of_status(status),
                host,
                format!(
                    "the token service of {host} answered HTTP {status}: {}",
                    describe_body(&body)
                ),
            )
            .with_status(status)
            .into());
        }
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            http.error(
                Kind::Protocol,
                format!(
                    "the token service of {host} did not answer with JSON: {}",
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
                http.error(
                    Kind::Protocol,
                    format!("the token service of {host} sent no usable token"),
                )
            })
    }

    /// Asks the token service at `realm` for `scope`: with an identity token by the OAuth2
    /// refresh-token grant, otherwise by a GET carrying the Basic credential, if any.
    fn request_token(
        &self,
        transport: &Retrying,
        realm: &str,
        service: &str,
        scope: &str,
    ) -> std::result::Result<Response, Failure> {
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        match &self.credential {
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
                transport.send(
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
                transport.send("GET", &url, authorization.as_deref(), &[], &Payload::Empty)
            }
        }
    }
}

fn basic_authorization(username: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
}

/// Splits `Bearer realm="...",service="...",scope="..."` into the scheme and its parameters.
pub(crate) fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
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
}
