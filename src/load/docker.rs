//! Docker: the Engine API's `POST /images/load` on docker's unix socket (`$DOCKER_HOST` when it is a
//! `unix://` address, else the current docker context's when that is a unix socket, else
//! `/var/run/docker.sock` or, without it, Docker Desktop's or rootless Docker's), the tar streamed in
//! chunks. A daemon reached any other way (`tcp://` with or without TLS, `ssh://`) is left to the
//! docker CLI, which knows how to reach it: `docker load` reading the same stream.

use std::io::{BufRead, BufReader, Read};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::stream::{Failure, write_image};
#[cfg(windows)]
use super::windows::{FileTypeExt, UnixStream};
use super::{Selection, command, http, socket_error};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::oci::Compression;
use crate::util::cancel::CancelToken;
use crate::util::sanitize;

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// A load may take a while to unpack; the daemon must still answer within this much silence.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Quick requests (version, inspect).
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest JSON answer or message line read from the daemon.
const MAX_JSON: u64 = 4 << 20;
/// The first Engine API version (Docker 23.0) that reads zstd layers.
const ZSTD_API: (u32, u32) = (1, 42);

const START: &str = "start Docker (`sudo systemctl start docker`), or point DOCKER_HOST \
                     (unix:///PATH) at its socket";
const PERMISSION: &str = "add your user to the `docker` group (`sudo usermod -aG docker $USER`, \
                          then log in again), or use rootless Docker's socket through DOCKER_HOST";
#[cfg(unix)]
const INSTALL: &str = "install the docker CLI, or set DOCKER_HOST=unix:///PATH to reach the daemon's \
                       socket directly";
#[cfg(windows)]
const INSTALL: &str = "install Docker Desktop, whose docker CLI loads images on Windows";

/// How docker is reached.
enum Endpoint {
    /// Its API on a unix socket; `origin` says where the path came from.
    Socket { path: PathBuf, origin: String },
    /// The docker CLI, for the reason given.
    Cli(String),
}

fn endpoint() -> Endpoint {
    // Docker on Windows listens on a named pipe: its CLI reaches it.
    if cfg!(windows) {
        return Endpoint::Cli("on Windows".to_owned());
    }
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
            Some(path) => Endpoint::Socket {
                path: PathBuf::from(path),
                origin: "DOCKER_HOST".to_owned(),
            },
            None => Endpoint::Cli(format!("DOCKER_HOST={}", sanitize::outside(&host, 200))),
        },
        _ => match current_context() {
            Some(context) => context_endpoint(&context),
            None => default_socket(),
        },
    }
}

/// `/var/run/docker.sock`, else the socket Docker Desktop (`~/.docker/run/docker.sock`, where
/// macOS's Docker Desktop puts it when /var/run has no link to it) or rootless Docker
/// (`$XDG_RUNTIME_DIR/docker.sock`) listens on, whichever exists first.
fn default_socket() -> Endpoint {
    let mut candidates = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".docker/run/docker.sock"));
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(PathBuf::from(runtime).join("docker.sock"));
    }
    let found = candidates.iter().position(|path| {
        #[cfg(unix)]
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
    });
    match found {
        None | Some(0) => Endpoint::Socket {
            path: PathBuf::from(DEFAULT_SOCKET),
            origin: "docker's default; DOCKER_HOST names another".to_owned(),
        },
        Some(index) => Endpoint::Socket {
            path: candidates.swap_remove(index),
            origin: "found for want of /var/run/docker.sock; DOCKER_HOST names another".to_owned(),
        },
    }
}

/// A named context's endpoint, from its metadata (`contexts/meta/<sha256 of the name>/meta.json`
/// beside docker's config.json, as the docker CLI stores it): its unix socket directly (Docker
/// Desktop's `desktop-linux` context, rootless docker's), anything else through the docker CLI.
fn context_endpoint(context: &str) -> Endpoint {
    let shown = sanitize::outside(context, 100);
    let socket = context_host(context).and_then(|host| {
        host.strip_prefix("unix://")
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
    });
    match socket {
        Some(path) => Endpoint::Socket {
            path,
            origin: format!("docker context `{shown}`"),
        },
        None => Endpoint::Cli(format!("docker context `{shown}`")),
    }
}

/// The `Host` of the docker endpoint of `context`'s metadata, when it can be read.
fn context_host(context: &str) -> Option<String> {
    use sha2::Digest;
    let config = crate::registry::credentials::docker_config_path()?;
    let hash = sha2::Sha256::digest(context.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let path = config
        .parent()?
        .join("contexts/meta")
        .join(hex)
        .join("meta.json");
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON).read_to_end(&mut bytes).ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let host = meta
        .get("Endpoints")?
        .get("docker")?
        .get("Host")?
        .as_str()?;
    Some(host.to_owned())
}

/// The docker context in use when it is not `default`: `$DOCKER_CONTEXT`, else `currentContext` of
/// docker's config.json.
fn current_context() -> Option<String> {
    let named = match std::env::var("DOCKER_CONTEXT") {
        Ok(context) if !context.is_empty() => context,
        _ => {
            let path = crate::registry::credentials::docker_config_path()?;
            let file = std::fs::File::open(path).ok()?;
            let mut bytes = Vec::new();
            file.take(MAX_JSON).read_to_end(&mut bytes).ok()?;
            let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            config.get("currentContext")?.as_str()?.to_owned()
        }
    };
    (!named.is_empty() && named != "default").then_some(named)
}

fn connect(path: &Path, origin: &str, timeout: Duration) -> Result<UnixStream> {
    let stream = UnixStream::connect(path)
        .map_err(|e| socket_error("docker", "DOCKER_HOST", path, origin, &e, START, PERMISSION))?;
    let set = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    set.map_err(|e| Error::Invalid(format!("docker socket {}: {e}", path.display())))?;
    Ok(stream)
}

/// The socket can be connected to, or the CLI is installed.
pub(super) fn preflight() -> Result<()> {
    match endpoint() {
        Endpoint::Socket { path, origin } => connect(&path, &origin, SHORT_TIMEOUT).map(drop),
        Endpoint::Cli(_) => command::installed("docker", INSTALL),
    }
}

/// Loads the selection; returns the name docker lists it under and its image ID.
pub(super) fn load(
    selection: &Selection,
    blobs: &dyn BlobSource,
    name: &Reference,
    cx: &Context,
) -> Result<(String, String)> {
    let listener = cx.listener();
    match endpoint() {
        Endpoint::Socket { path, origin } => {
            listener.detail(&format!(
                "docker's Engine API at {} ({origin})",
                path.display()
            ));
            load_with_api(&path, &origin, selection, blobs, name, cx.cancel())
        }
        Endpoint::Cli(why) => {
            listener.detail(&format!("{why}: loading with `docker load`"));
            load_with_cli(selection, blobs, name, cx.cancel())
        }
    }
}

fn daemon_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "docker at {}: {what}: {}",
        path.display(),
        sanitize::outside(&e.to_string(), sanitize::EXCERPT)
    ))
}

/// A bounded JSON answer to a GET: the status and the document (`Null` when it is not JSON).
fn get(path: &Path, origin: &str, url: &str) -> Result<(u16, serde_json::Value)> {
    let stream = connect(path, origin, SHORT_TIMEOUT)?;
    let mut writer = &stream;
    http::write_head(&mut writer, "GET", url, &[])
        .map_err(|e| daemon_error(path, "sending a request", e))?;
    let mut response = http::read_response(BufReader::new(&stream))
        .map_err(|e| daemon_error(path, "reading its answer", e))?;
    let mut body = Vec::new();
    (&mut response)
        .take(MAX_JSON)
        .read_to_end(&mut body)
        .map_err(|e| daemon_error(path, "reading its answer", e))?;
    Ok((
        response.status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
}

/// The daemon's own error text in an error answer.
fn message(document: &serde_json::Value) -> String {
    let text = document
        .get("message")
        .or_else(|| document.get("error"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("no message");
    sanitize::outside(text.trim(), sanitize::EXCERPT)
}

fn api_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Docker before 23.0 (API 1.42) fails on zstd layers in the middle of a load; say so first.
fn check_zstd(
    version: &serde_json::Value,
    selection: &Selection,
    name: &Reference,
    path: &Path,
) -> Result<()> {
    let api = version
        .get("ApiVersion")
        .and_then(serde_json::Value::as_str);
    if api.and_then(api_version).is_none_or(|v| v >= ZSTD_API) {
        return Ok(());
    }
    let zstd = selection
        .tree
        .manifests
        .iter()
        .flat_map(|node| node.manifest.value().layers.iter())
        .find(|layer| layer.media_type.layer_compression() == Some(Compression::Zstd));
    match zstd {
        None => Ok(()),
        Some(layer) => Err(Error::Invalid(format!(
            "docker {} at {} cannot load zstd-compressed layers (layer {} of {}); Docker 23 and \
             later can: upgrade docker, use gzip layers (--compression gzip, on a base with gzip \
             layers), or load into podman or containerd",
            sanitize::outside(
                version
                    .get("Version")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?"),
                40
            ),
            path.display(),
            layer.digest,
            name.familiar()
        ))),
    }
}

fn load_with_api(
    path: &Path,
    origin: &str,
    selection: &Selection,
    blobs: &dyn BlobSource,
    name: &Reference,
    cancel: &CancelToken,
) -> Result<(String, String)> {
    let (status, version) = get(path, origin, "/version")?;
    if status != 200 {
        return Err(daemon_error(
            path,
            "asking for its version",
            message(&version),
        ));
    }
    check_zstd(&version, selection, name, path)?;

    let stream = connect(path, origin, TIMEOUT)?;
    let mut writer = &stream;
    let sent = http::write_head(
        &mut writer,
        "POST",
        "/images/load?quiet=0",
        &[
            ("Content-Type", "application/x-tar"),
            ("Transfer-Encoding", "chunked"),
        ],
    )
    .map_err(Failure::Write)
    .and_then(|()| {
        let mut body = http::ChunkedWriter::new(writer);
        write_image(&mut body, &selection.tree, blobs, Some(name), cancel)?;
        body.finish().map(drop).map_err(Failure::Write)
    });
    if let Err(Failure::Source(error)) = sent {
        return Err(error);
    }
    // Even when sending failed, the daemon may have said why before it closed the connection.
    let answer = http::read_response(BufReader::new(&stream));
    let mut response = match (answer, sent) {
        (Ok(response), _) => response,
        (Err(_), Err(Failure::Write(e))) => {
            return Err(daemon_error(
                path,
                "it closed the connection during the load",
                e,
            ));
        }
        (Err(e), _) => return Err(daemon_error(path, "reading its answer to the load", e)),
    };
    if response.status != 200 {
        let mut body = Vec::new();
        let _ = (&mut response).take(MAX_JSON).read_to_end(&mut body);
        let document = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        return Err(daemon_error(
            path,
            &format!("refused {} (HTTP {})", name.familiar(), response.status),
            message(&document),
        ));
    }
    // One JSON message per line: progress, `stream` text, or an error.
    let mut lines = BufReader::new(response);
    let mut loaded = false;
    loop {
        let mut line = Vec::new();
        (&mut lines)
            .take(MAX_JSON)
            .read_until(b'\n', &mut line)
            .map_err(|e| daemon_error(path, "reading its answer to the load", e))?;
        if line.is_empty() {
            break;
        }
        let Ok(document) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if document.get("error").is_some() || document.get("errorDetail").is_some() {
            return Err(daemon_error(
                path,
                &format!("loading {} failed", name.familiar()),
                message(&document),
            ));
        }
        if let Some(text) = document.get("stream").and_then(serde_json::Value::as_str) {
            loaded |= text.contains("Loaded image");
        }
    }
    if !loaded {
        return Err(daemon_error(
            path,
            &format!("loading {}", name.familiar()),
            "the daemon did not confirm the load",
        ));
    }
    let shown = name.familiar();
    let url = format!("/images/{}/json", http::encode_path(&shown));
    let (status, inspect) = get(path, origin, &url)?;
    let id = inspect.get("Id").and_then(serde_json::Value::as_str);
    match (status, id) {
        (200, Some(id)) => Ok((shown, sanitize::outside(id, 200))),
        _ => Err(daemon_error(
            path,
            &format!("{shown} was loaded but cannot be inspected"),
            message(&inspect),
        )),
    }
}

fn load_with_cli(
    selection: &Selection,
    blobs: &dyn BlobSource,
    name: &Reference,
    cancel: &CancelToken,
) -> Result<(String, String)> {
    let finished = command::run_fed(
        Command::new("docker").arg("load"),
        "docker",
        INSTALL,
        cancel,
        |w| write_image(w, &selection.tree, blobs, Some(name), cancel),
    )?;
    if !finished.success {
        return Err(Error::Invalid(format!(
            "`docker load` of {} failed: {}",
            name.familiar(),
            finished.message()
        )));
    }
    let shown = name.familiar();
    let inspect = command::run(
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &shown]),
        "docker",
        INSTALL,
        cancel,
    )?;
    if !inspect.success {
        return Err(Error::Invalid(format!(
            "`docker image inspect {shown}` failed after the load: {}",
            inspect.message()
        )));
    }
    Ok((shown, sanitize::outside(inspect.stdout.trim(), 200)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert_eq!(api_version("1.41"), Some((1, 41)));
        assert!(api_version("1.41").unwrap() < ZSTD_API);
        assert!(api_version("1.100").unwrap() > ZSTD_API);
        assert_eq!(api_version("x"), None);
    }
}
