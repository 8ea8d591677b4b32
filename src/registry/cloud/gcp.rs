//! Google Artifact Registry and Container Registry without a login step: an access token from
//! Application Default Credentials (a service account key, signed into a JWT; or the refresh token
//! `gcloud auth application-default login` writes), else from the metadata server on Google's
//! machines (GCE, Cloud Build, GKE). The registry takes it as the password of `oauth2accesstoken`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64_URL};

use super::http::{Endpoint, get, post};
use super::{CloudError, Found};
use crate::context::{Context, Credential};
use crate::error::Result;
use crate::registry::client::ClientOptions;
use crate::util::{fsutil, sanitize};

/// The scope asked for: what `gcloud auth print-access-token` gets, enough to push.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, when a credentials file names none.
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Most a credentials file may hold.
const MAX_CREDENTIALS_FILE: u64 = 1 << 20;

/// True for Artifact Registry (`REGION-docker.pkg.dev`) and Container Registry (`gcr.io`,
/// `us.gcr.io` ...) hosts.
pub fn is_google_host(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    host.ends_with("-docker.pkg.dev") || host == "gcr.io" || host.ends_with(".gcr.io")
}

/// Where Application Default Credentials are: `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
/// `application_default_credentials.json`.
fn adc_file() -> Option<(PathBuf, &'static str)> {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        return Some((PathBuf::from(path), "GOOGLE_APPLICATION_CREDENTIALS"));
    }
    let dir = std::env::var_os("CLOUDSDK_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            if cfg!(windows) {
                std::env::var_os("APPDATA").map(|a| PathBuf::from(a).join("gcloud"))
            } else {
                fsutil::home_dir().map(|h| PathBuf::from(h).join(".config/gcloud"))
            }
        })?;
    let path = dir.join("application_default_credentials.json");
    path.is_file()
        .then_some((path, "gcloud's application default credentials"))
}

#[derive(serde::Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type", default)]
    kind: String,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

/// An access token for a Google registry, and its source.
pub(super) fn credential(client: &ClientOptions, cx: &Context) -> Result<Option<Found>> {
    let token = if let Some((path, named)) = adc_file() {
        Some(from_file(&path, named, client, cx)?)
    } else {
        metadata(client, cx)?
    };
    Ok(token.map(|(token, source)| Found {
        credential: Credential::Basic {
            username: "oauth2accesstoken".to_owned(),
            password: token,
        },
        source: format!("a Google access token ({source})"),
    }))
}

fn from_file(
    path: &Path,
    named: &str,
    client: &ClientOptions,
    cx: &Context,
) -> Result<(String, String)> {
    let bytes = fsutil::read_regular(path, MAX_CREDENTIALS_FILE, "the Google credentials file")?;
    let shown = path.display().to_string();
    let file: CredentialsFile = serde_json::from_slice(&bytes).map_err(|e| {
        CloudError::new(format!(
            "{shown} ({named}) is not a Google credentials file ({})",
            sanitize::outside(&e.to_string(), 200)
        ))
    })?;
    let missing = |key: &str| {
        CloudError::new(format!(
            "{shown} ({named}) is a {} credentials file without `{key}`",
            sanitize::outside(&file.kind, 50)
        ))
    };
    let token_uri = Endpoint::parse(
        file.token_uri.as_deref().unwrap_or(TOKEN_URI),
        "the credentials file's token_uri",
    )?;
    let form = match file.kind.as_str() {
        "service_account" => {
            let email = file
                .client_email
                .as_deref()
                .ok_or_else(|| missing("client_email"))?;
            let key = file
                .private_key
                .as_deref()
                .ok_or_else(|| missing("private_key"))?;
            let jwt = service_account_jwt(
                email,
                key,
                file.private_key_id.as_deref(),
                &token_uri.url(),
                path,
            )?;
            format!(
                "grant_type={}&assertion={jwt}",
                form("urn:ietf:params:oauth:grant-type:jwt-bearer")
            )
        }
        "authorized_user" => format!(
            "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
            form(
                file.client_id
                    .as_deref()
                    .ok_or_else(|| missing("client_id"))?
            ),
            form(
                file.client_secret
                    .as_deref()
                    .ok_or_else(|| missing("client_secret"))?
            ),
            form(
                file.refresh_token
                    .as_deref()
                    .ok_or_else(|| missing("refresh_token"))?
            )
        ),
        other => {
            return Err(CloudError::new(format!(
                "{shown} ({named}) holds `{}` credentials; a service_account key or \
                 authorized_user credentials are read",
                sanitize::outside(other, 50)
            )));
        }
    };
    let answer = post(
        &token_uri,
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        )],
        form.as_bytes(),
        client,
        cx,
    )?;
    let token = access_token(&answer, &token_uri)?;
    Ok((token, format!("{} credentials in {shown}", file.kind)))
}

/// The `access_token` of a token endpoint's JSON answer, or its error, escaped.
fn access_token(answer: &super::http::Answer, endpoint: &Endpoint) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Token {
        access_token: Option<String>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let parsed: Option<Token> = serde_json::from_slice(&answer.body).ok();
    match parsed {
        Some(Token {
            access_token: Some(token),
            ..
        }) if answer.status == 200 && !token.is_empty() => Ok(token),
        Some(Token {
            error: Some(error),
            error_description,
            ..
        }) => Err(CloudError::new(format!(
            "{} refused the credentials ({}): {}: {}",
            endpoint.shown(),
            answer.status,
            sanitize::outside(&error, 100),
            sanitize::outside(error_description.as_deref().unwrap_or(""), 300)
        ))),
        _ => Err(CloudError::new(format!(
            "{} answered {} without an access token: {}",
            endpoint.shown(),
            answer.status,
            sanitize::outside(&String::from_utf8_lossy(&answer.body), 200)
        ))),
    }
}

/// A JWT asserting the service account, signed RS256 with its key, for `audience`.
fn service_account_jwt(
    email: &str,
    private_key: &str,
    key_id: Option<&str>,
    audience: &str,
    path: &Path,
) -> Result<String> {
    let der = pem_body(private_key).ok_or_else(|| {
        CloudError::new(format!(
            "{}: private_key is not a PEM `PRIVATE KEY`",
            path.display()
        ))
    })?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| {
        CloudError::new(format!(
            "{}: private_key is not an RSA key in PKCS#8 ({e})",
            path.display()
        ))
    })?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = kid.into();
    }
    let claims = serde_json::json!({
        "iss": email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        BASE64_URL.encode(header.to_string()),
        BASE64_URL.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| CloudError::new(format!("{}: signing the JWT failed", path.display())))?;
    Ok(format!("{signing_input}.{}", BASE64_URL.encode(signature)))
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = start + pem[start..].find("-----END PRIVATE KEY-----")?;
    let body: String = pem[start..end].split_whitespace().collect();
    BASE64.decode(body).ok()
}

/// The metadata server's token for the machine's service account: at `GCE_METADATA_HOST`, or at
/// the usual address on a machine that says it is Google's.
fn metadata(client: &ClientOptions, cx: &Context) -> Result<Option<(String, String)>> {
    let host = match std::env::var("GCE_METADATA_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        Some(host) => host,
        None if on_google() => "metadata.google.internal".to_owned(),
        None => return Ok(None),
    };
    let endpoint = Endpoint::parse(
        &format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token"),
        "GCE_METADATA_HOST",
    )?;
    let answer = get(
        &endpoint,
        &[("Metadata-Flavor", "Google".to_owned())],
        client,
        cx,
    )?;
    let token = access_token(&answer, &endpoint)?;
    Ok(Some((
        token,
        format!("the metadata server at {}", endpoint.shown()),
    )))
}

/// Google's machines say so in their DMI product name, as Google's own libraries check.
fn on_google() -> bool {
    std::fs::read_to_string("/sys/class/dmi/id/product_name")
        .is_ok_and(|name| name.contains("Google"))
}

fn form(value: &str) -> String {
    crate::registry::transport::http::encode(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_registry_hosts() {
        for host in ["europe-west1-docker.pkg.dev", "gcr.io", "eu.gcr.io"] {
            assert!(is_google_host(host), "{host}");
        }
        for host in ["docker.pkg.dev.evil.example", "gcr.io.example", "ghcr.io"] {
            assert!(!is_google_host(host), "{host}");
        }
    }
}
