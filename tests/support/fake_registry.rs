//! Just enough of the OCI Distribution API to receive a push, with knobs to make it behave like a
//! hostile or broken registry. Unlike the real distribution registry it verifies nothing: tests use it
//! to prove that *we* check what we send and where credentials go.

use super::http::{Reply, Request};

/// How the fake registry behaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Demand Basic authentication with this user and password.
    pub basic: Option<(String, String)>,
    /// Demand a bearer token (`Bearer fake-token`) from this realm.
    pub bearer_realm: Option<String>,
    /// Answer upload POSTs and PATCHes with a Location at this absolute URL instead of our own path.
    pub upload_location: Option<String>,
    /// Answer manifest PUTs with this instead of 201.
    pub manifest_reply: Option<Reply>,
}

/// The request handler for a [`super::http::TestServer`].
pub fn handler(behaviour: Behaviour) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |request: &Request| {
        if let Some(challenge) = missing_auth(&behaviour, request) {
            return Reply::status(401)
                .header("WWW-Authenticate", challenge)
                .header("Content-Type", "application/json")
                .body(
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
        }
        let path = request.path();
        match request.method.as_str() {
            "GET" if path == "/v2/" => Reply::status(200).body("{}"),
            "HEAD" if path.contains("/blobs/sha256:") => Reply::status(404),
            "POST" if path.ends_with("/blobs/uploads/") => {
                let location = behaviour
                    .upload_location
                    .clone()
                    .unwrap_or_else(|| format!("{path}session-1"));
                Reply::status(202).header("Location", location)
            }
            "PATCH" => {
                let location = behaviour
                    .upload_location
                    .clone()
                    .unwrap_or_else(|| path.to_owned());
                Reply::status(202).header("Location", location)
            }
            "PUT" if path.contains("/blobs/uploads/") => Reply::status(201),
            "PUT" if path.contains("/manifests/") => behaviour
                .manifest_reply
                .clone()
                .unwrap_or_else(|| Reply::status(201)),
            _ => Reply::status(404),
        }
    }
}

/// The challenge to answer with when the request lacks the credentials the behaviour demands.
fn missing_auth(behaviour: &Behaviour, request: &Request) -> Option<String> {
    use base64::Engine as _;
    let given = request.header("authorization").unwrap_or_default();
    if let Some((user, password)) = &behaviour.basic {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if given != expected {
            return Some(r#"Basic realm="fake""#.to_owned());
        }
    }
    if let Some(realm) = &behaviour.bearer_realm {
        if given != "Bearer fake-token" {
            return Some(format!(r#"Bearer realm="{realm}",service="fake""#));
        }
    }
    None
}

/// A token service that hands `fake-token` to anyone.
pub fn token_handler() -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    |_: &Request| Reply::status(200).body(r#"{"token":"fake-token"}"#)
}

/// Another origin that accepts uploads sent to it (blob storage a Location points at).
pub fn storage_handler() -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    |request: &Request| match request.method.as_str() {
        "PATCH" => Reply::status(202).header("Location", request.target.clone()),
        "PUT" => Reply::status(201),
        _ => Reply::status(404),
    }
}

/// Manifests a fake registry received: the reference each was pushed to, and its bytes.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A registry with the OCI 1.1 referrers API: it keeps every manifest pushed, answers a manifest
/// with a `subject` with `OCI-Subject` (when `announce` is set) and lists a subject's referrers at
/// `GET /v2/<name>/referrers/<digest>`. Blobs are accepted without being kept.
pub fn referrers_api_handler(
    announce: bool,
) -> (impl Fn(&Request) -> Reply + Send + Sync + 'static, Received) {
    let manifests = Received::default();
    let stored = manifests.clone();
    let handler = move |request: &Request| {
        let path = request.path().to_owned();
        match request.method.as_str() {
            "GET" if path == "/v2/" => Reply::status(200).body("{}"),
            "HEAD" if path.contains("/blobs/sha256:") => Reply::status(404),
            "POST" if path.ends_with("/blobs/uploads/") => {
                Reply::status(202).header("Location", format!("{path}session-1"))
            }
            "PUT" if path.contains("/blobs/uploads/") => Reply::status(201),
            "PUT" if path.contains("/manifests/") => {
                let reference = path.rsplit('/').next().unwrap_or_default().to_owned();
                let value: serde_json::Value =
                    serde_json::from_slice(&request.body).unwrap_or_default();
                stored
                    .lock()
                    .unwrap()
                    .push((reference, request.body.clone()));
                match value["subject"]["digest"].as_str() {
                    Some(subject) if announce => {
                        Reply::status(201).header("OCI-Subject", subject.to_owned())
                    }
                    _ => Reply::status(201),
                }
            }
            "GET" if path.contains("/referrers/") => {
                let subject = path.rsplit('/').next().unwrap_or_default();
                let listed: Vec<serde_json::Value> = stored
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|(_, body)| {
                        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                        (value["subject"]["digest"] == subject).then(|| {
                            serde_json::json!({
                                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "artifactType": value["artifactType"],
                                "size": body.len(),
                            })
                        })
                    })
                    .collect();
                Reply::status(200)
                    .header("Content-Type", "application/vnd.oci.image.index.v1+json")
                    .body(
                        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": listed})
                            .to_string(),
                    )
            }
            _ => Reply::status(404),
        }
    };
    (handler, manifests)
}
