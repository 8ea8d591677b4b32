//! Credentials cloud registries hand out without a login step, asked for only when docker's and
//! podman's configuration has none for the registry: an ECR token from the AWS credential chain
//! (`aws`), GitHub's token inside GitHub Actions for `ghcr.io`, and a Google access token for
//! Artifact Registry and GCR (`gcp`). `--no-cloud-credentials` turns them off. `-v` names the source
//! that answered, never the secret; tokens live in memory for the run only.

pub mod aws;
pub mod gcp;
mod http;
pub mod sigv4;
mod sso;

use crate::context::{Context, Credential};
use crate::error::{Error, Result};
use crate::registry::client::ClientOptions;

/// A credential and where it came from (for `-v`).
pub(crate) struct Found {
    pub credential: Credential,
    pub source: String,
}

/// The error a cloud source ends with.
pub(crate) struct CloudError;

impl CloudError {
    #[allow(clippy::new_ret_no_self)] // the one constructor of the library's error
    pub fn new(message: String) -> Error {
        Error::CloudCredentials(message)
    }
}

/// The credential for `registry`: from the keychain of `cx` (docker's and podman's configuration
/// unless it has another), else from the registry's cloud (unless `client` turns that off).
pub(crate) fn for_registry(
    registry: &str,
    client: &ClientOptions,
    cx: &Context,
) -> Result<Option<Credential>> {
    match crate::registry::credentials::from_keychain(registry, cx)? {
        Some(credential) => Ok(Some(credential)),
        None => credential(registry, client, cx),
    }
}

/// The cloud credential for `registry`, when it is a cloud's registry and its credentials can be
/// had; `None` otherwise. An error means the cloud was asked and refused: the push would only fail
/// later without credentials.
fn credential(registry: &str, client: &ClientOptions, cx: &Context) -> Result<Option<Credential>> {
    if !client.cloud_credentials {
        return Ok(None);
    }
    let host = registry;
    if let Some(credential) = client.cloud_tokens.get(host) {
        return Ok(Some(credential));
    }
    let found = if let Some(ecr) = aws::ecr_host(host) {
        match aws::ecr_credential(&ecr, &aws::env(), client, cx) {
            Ok(found) => found,
            // ECR Public serves anyone: AWS keys without its permissions must not cost a pull of
            // a public base (the Lambda base images) that works anonymously.
            Err(e) if ecr.public && !e.is_interrupted() => {
                cx.listener().warning(&format!(
                    "{host}: no ECR Public token ({e}); going on without credentials"
                ));
                None
            }
            Err(e) => return Err(e.context(&format!("credentials for {host}"))),
        }
    } else if is_github(host) {
        github(|name| std::env::var(name))
    } else if gcp::is_google_host(host) {
        gcp::credential(client, cx).map_err(|e| e.context(&format!("credentials for {host}")))?
    } else {
        None
    };
    Ok(found.map(|found| {
        cx.listener()
            .detail(&format!("{host}: using {}", found.source));
        client.cloud_tokens.put(host, found.credential.clone());
        found.credential
    }))
}

fn is_github(host: &str) -> bool {
    matches!(host, "ghcr.io" | "docker.pkg.github.com")
}

/// Inside GitHub Actions, the workflow's `GITHUB_TOKEN` (when the workflow maps it into the
/// environment) as `GITHUB_ACTOR`.
fn github(var: impl Fn(&str) -> std::result::Result<String, std::env::VarError>) -> Option<Found> {
    if var("GITHUB_ACTIONS").ok()?.as_str() != "true" {
        return None;
    }
    let token = var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty())?;
    let actor = var("GITHUB_ACTOR")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "github-actions".to_owned());
    Some(Found {
        source: format!(
            "GITHUB_TOKEN as `{}` (GitHub Actions)",
            crate::util::sanitize::outside(&actor, 100)
        ),
        credential: Credential::Basic {
            username: actor,
            password: token,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_actions_token_only_inside_actions() {
        let env = |actions: &'static str| {
            move |name: &str| match name {
                "GITHUB_ACTIONS" => Ok(actions.to_owned()),
                "GITHUB_TOKEN" => Ok("ghs_secret".to_owned()),
                "GITHUB_ACTOR" => Ok("octocat".to_owned()),
                _ => Err(std::env::VarError::NotPresent),
            }
        };
        let found = github(env("true")).unwrap();
        assert!(!found.source.contains("ghs_secret"));
        assert!(
            matches!(found.credential, Credential::Basic { ref username, .. } if username == "octocat")
        );
        assert!(github(env("false")).is_none());
    }
}
