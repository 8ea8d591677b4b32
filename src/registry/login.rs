//! `login` and `logout`: check credentials against a registry and store them where `docker login`
//! does, or remove them.

use std::path::{Path, PathBuf};

use super::client::{ClientOptions, Registry};
use super::credentials::{self, Credential};
use super::transport::http::Payload;
use crate::error::{Error, Result};
use crate::report::Listener;

/// The credentials file: `explicit`, else `$REGISTRY_AUTH_FILE`, else docker's config.json.
pub fn auth_file(explicit: Option<&Path>) -> Result<PathBuf> {
    explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from))
        .or_else(credentials::docker_config_path)
        .ok_or_else(|| {
            Error::Invalid(
                "cannot find a home directory for the credentials file; pass --authfile".to_owned(),
            )
        })
}

/// Checks `username` and `password` against `registry` (a host, a URL, or one of Docker Hub's
/// names), then stores them in the [`auth_file`].
pub fn login(
    registry: &str,
    username: &str,
    password: &str,
    authfile: Option<&Path>,
    options: &ClientOptions,
    listener: &dyn Listener,
) -> Result<()> {
    let host = normalize_registry(registry);
    let credential = Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    let mut client = Registry::connect(&host, Some(credential), options, listener)?;
    let url = client.url("/v2/");
    let response = client.send("GET", &url, "", &[], &Payload::Empty)?;
    match response.status().as_u16() {
        200 => {}
        401 => return Err(client.refused(&response)),
        _ => return Err(client.unexpected("logging in to", "", response)),
    }
    let file = auth_file(authfile)?;
    credentials::store(&file, &host, username, password)?;
    listener.status(
        "Logged in",
        &format!("to {host} as {username} ({})", file.display()),
    );
    Ok(())
}

/// Removes the credentials stored in the [`auth_file`] for `registry`; only warns when there were none.
pub fn logout(registry: &str, authfile: Option<&Path>, listener: &dyn Listener) -> Result<()> {
    let host = normalize_registry(registry);
    let file = auth_file(authfile)?;
    if credentials::erase(&file, &host)? {
        listener.status("Logged out", &format!("of {host} ({})", file.display()));
    } else {
        listener.warning(&format!("not logged in to {host} ({})", file.display()));
    }
    Ok(())
}

/// `https://host/` and Docker Hub's aliases to the host as references name it.
fn normalize_registry(input: &str) -> String {
    let host = input.split_once("://").map_or(input, |(_, rest)| rest);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "hub.docker.com" => {
            crate::image::reference::DOCKER_HUB.to_owned()
        }
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_registry;

    #[test]
    fn registry_urls_and_docker_hub_names_become_hosts() {
        assert_eq!(
            normalize_registry("https://r.example.com/v2/"),
            "r.example.com"
        );
        assert_eq!(normalize_registry("localhost:5000"), "localhost:5000");
        assert_eq!(normalize_registry("index.docker.io"), "docker.io");
    }
}
