//! What an answer other than the one asked for means: a typed [`RegistryError`] naming the registry
//! and repository, with the status, the registry's error codes and (escaped and cut short) its own
//! message. A 401 or 403 from another origin than the registry's (its blob storage) got no
//! credentials, so its error says so instead of asking for a login.

use super::http::{Http, Response, read_limited};
use crate::context::Credential;
use crate::error::Error;
use crate::error::registry::{RegistryError, RegistryErrorKind as Kind};
use crate::registry::origin::Origin;
use crate::util::sanitize;

/// Largest error body we read from a registry; the message quotes only the start of it.
const ERROR_BODY_LIMIT: u64 = 64 << 10;

/// Marks a response that came from another origin than the registry's (a redirect or `Location` to
/// its blob storage), where no credentials were sent.
#[derive(Clone, Debug)]
struct AnsweredElsewhere(Origin);

/// Notes on `response` that it came from `origin`, another origin than the registry's.
pub(crate) fn mark_answered_elsewhere(response: &mut Response, origin: Origin) {
    response.extensions_mut().insert(AnsweredElsewhere(origin));
}

/// True when `response` came from another origin than the registry's (the client marks those with
/// [`mark_answered_elsewhere`]).
pub(crate) fn answered_elsewhere(response: &Response) -> bool {
    response.extensions().get::<AnsweredElsewhere>().is_some()
}

/// The error for a registry that wants credentials we do not have.
pub(crate) fn login_needed(http: &Http) -> Error {
    let host = http.host();
    http.error(
        Kind::Unauthorized,
        format!(
            "{host} requires authentication; log in with `zeroimage login {host}` (or docker/podman login)"
        ),
    )
}

/// The error for credentials the registry refused; never shows the secret.
pub(crate) fn auth_failed(http: &Http, credential: Option<&Credential>) -> Error {
    let host = http.host();
    match credential {
        Some(credential) => RegistryError::new(
            Kind::Unauthorized,
            host,
            format!(
                "{host} rejected the credentials of {} (401 unauthorized); check them with \
                 `zeroimage login {host}`",
                credential.who(),
            ),
        )
        .with_status(401)
        .into(),
        None => login_needed(http),
    }
}

/// The error for a 401 or 403 answer. From the registry itself (`origin`): the credentials refused
/// (or none stored). From another origin the registry redirected to (its blob storage), which never
/// gets our credentials: that place refused a request that carried none, which no login changes.
pub(crate) fn refused(
    http: &Http,
    origin: &Origin,
    credential: Option<&Credential>,
    response: &Response,
) -> Error {
    let host = http.host();
    let status = response.status().as_u16();
    match response.extensions().get::<AnsweredElsewhere>() {
        Some(AnsweredElsewhere(elsewhere)) => RegistryError::new(
            Kind::of_status(status),
            host,
            format!(
                "{elsewhere}, where {host} sent the request, refused it (HTTP {status}); no \
                 credentials were sent there, as they go only to {origin} itself: the registry's \
                 storage must accept the requests it redirects (ask the registry's operator)"
            ),
        )
        .with_status(status)
        .into(),
        None if status == 401 => auth_failed(http, credential),
        None => RegistryError::new(
            Kind::of_status(status),
            host,
            format!("{host} denied access (HTTP {status})"),
        )
        .with_status(status)
        .into(),
    }
}

/// Turns an unexpected response to `what` (`pushing a manifest to`) in `repository` into an error
/// naming the registry, the repository and (escaped and cut short) the registry's own message.
pub(crate) fn unexpected(
    http: &Http,
    origin: &Origin,
    credential: Option<&Credential>,
    what: &str,
    repository: &str,
    response: Response,
) -> Error {
    let host = http.host();
    let status = response.status().as_u16();
    if answered_elsewhere(&response) && matches!(status, 401 | 403) {
        return match refused(http, origin, credential, &response) {
            Error::Registry(e) => {
                let e = e.context(&format!("{what} {host}/{repository}"));
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
        return auth_failed(http, credential);
    }
    let (body, _) = read_limited(response, ERROR_BODY_LIMIT);
    let detail = describe_body(&body);
    let place = format!("{host}/{repository}");
    let message = match status {
        403 => format!(
            "{what} {place}: access denied (403); the account may not push to this repository: {detail}"
        ),
        404 => format!("{what} {place}: not found (404); check the repository name: {detail}"),
        415 => {
            format!("{what} {place}: the registry does not accept this media type (415): {detail}")
        }
        _ => format!("{what} {place}: HTTP {status}: {detail}"),
    };
    let mut error = RegistryError::new(Kind::of_status(status), host, message)
        .with_status(status)
        .with_codes(error_codes(&body));
    if !repository.is_empty() {
        error = error.in_repository(repository);
    }
    error.into()
}

/// A registry error body as one short, escaped line: the `errors` of the distribution spec's JSON, or
/// the start of the text.
pub(crate) fn describe_body(body: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
