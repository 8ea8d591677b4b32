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
    /// Answer manifest GETs (the referrers fallback tag, on a push) with this instead of 404.
    pub manifest_get: Option<Reply>,
    /// Refuse artifact manifests as Quay and older Harbor are reported to: a manifest PUT whose
    /// body has a `subject` gets 400 `MANIFEST_INVALID`.
    pub refuse_subject: bool,
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
            "GET" if path.contains("/manifests/") && behaviour.manifest_get.is_some() => {
                behaviour.manifest_get.clone().unwrap_or_else(|| Reply::status(404))
            }
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
            "PUT" if path.contains("/manifests/") && behaviour.refuse_subject && has_subject(request) => {
                Reply::status(400)
                    .header("Content-Type", "application/json")
                    .body(
                        r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"message":"unknown field subject"}}]}"#,
                    )
            }
            "PUT" if path.contains("/manifests/") => behaviour
                .manifest_reply
                .clone()
                .unwrap_or_else(|| Reply::status(201)),
            _ => Reply::status(404),
        }
    }
}

fn has_subject(request: &Request) -> bool {
    serde_json::from_slice::<serde_json::Value>(&request.body)
        .is_ok_and(|v| v.get("subject").is_some())
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
    if let Some(realm) = &behaviour.bearer_realm
        && given != "Bearer fake-token"
    {
        return Some(format!(r#"Bearer realm="{realm}",service="fake""#));
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

/// Another pusher's writes to a subject's fallback tag, as a registry without the referrers API sees
/// them, and what became of the tag.
#[derive(Debug, Default)]
pub struct FallbackRace {
    /// Manifests by reference (tag or digest), as last written.
    pub stored: std::collections::BTreeMap<String, Vec<u8>>,
    /// Every `If-Match` sent with a write of a fallback tag (`None`: none sent).
    pub if_match: Vec<Option<String>>,
    /// Writes of a fallback tag answered 412.
    pub refused: usize,
}

/// A registry without the referrers API where another push races ours on the fallback tag
/// `sha256-<hex>`. The tag already holds an index listing `first` (a signature, say). When our first
/// write of it arrives, the other push has just written too, listing `first` and `second`:
/// - `honours_if_match`: the registry sends an ETag with the index and honours `If-Match`, so our
///   write, made from the older index, is refused with 412;
/// - otherwise (as distribution 2.8: an ETag sent, `If-Match` ignored), our write is taken and the
///   other push's write, made from the index it read before ours, lands right after it.
pub fn fallback_race_handler(
    honours_if_match: bool,
    first: serde_json::Value,
    second: serde_json::Value,
) -> (
    impl Fn(&Request) -> Reply + Send + Sync + 'static,
    std::sync::Arc<std::sync::Mutex<FallbackRace>>,
) {
    use std::sync::{Arc, Mutex};
    let state = Arc::new(Mutex::new(FallbackRace::default()));
    let shared = state.clone();
    let index = |descriptors: Vec<serde_json::Value>| -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descriptors,
        }))
        .unwrap()
    };
    let seeded = index(vec![first.clone()]);
    let raced = index(vec![first, second]);
    let etag = |bytes: &[u8]| format!("\"{}\"", zeroimage::oci::Digest::of(bytes));
    let handler = move |request: &Request| {
        let path = request.path().to_owned();
        let reference = path.rsplit('/').next().unwrap_or_default().to_owned();
        let fallback = reference.starts_with("sha256-");
        let mut state = shared.lock().unwrap();
        if fallback {
            state
                .stored
                .entry(reference.clone())
                .or_insert_with(|| seeded.clone());
        }
        match request.method.as_str() {
            "GET" if path == "/v2/" => Reply::status(200).body("{}"),
            "HEAD" if path.contains("/blobs/sha256:") => Reply::status(404),
            "POST" if path.ends_with("/blobs/uploads/") => {
                Reply::status(202).header("Location", format!("{path}session-1"))
            }
            "PUT" if path.contains("/blobs/uploads/") => Reply::status(201),
            "GET" if path.contains("/manifests/") => match state.stored.get(&reference) {
                Some(bytes) => Reply::status(200)
                    .header("Content-Type", "application/vnd.oci.image.index.v1+json")
                    .header("ETag", etag(bytes))
                    .body(bytes.clone()),
                None => Reply::status(404),
            },
            "PUT" if path.contains("/manifests/") => {
                if !fallback {
                    state.stored.insert(reference, request.body.clone());
                    return Reply::status(201);
                }
                let if_match = request.header("if-match").map(str::to_owned);
                let first_write = state.if_match.is_empty();
                state.if_match.push(if_match.clone());
                if first_write && honours_if_match {
                    state.stored.insert(reference.clone(), raced.clone());
                }
                let current = etag(&state.stored[&reference]);
                if honours_if_match && if_match.is_some_and(|m| m != current) {
                    state.refused += 1;
                    return Reply::status(412);
                }
                state.stored.insert(reference.clone(), request.body.clone());
                if first_write && !honours_if_match {
                    state.stored.insert(reference, raced.clone());
                }
                Reply::status(201)
            }
            _ => Reply::status(404),
        }
    };
    (handler, state)
}
