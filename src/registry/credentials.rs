//! Registry credentials where docker, podman and skopeo keep them: `config.json` (`auths`,
//! `credHelpers`, `credsStore`, identity tokens), `$DOCKER_CONFIG`, `$REGISTRY_AUTH_FILE` and the
//! containers `auth.json`; and `login`/`logout`, which write docker's format. [`DockerConfig`] is the
//! [`Keychain`] a [`Context`] uses unless it is given another.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::context::{Context, Keychain};
use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;
use crate::util::child::Process;
use crate::util::fsutil;
use crate::util::sanitize;

/// How long a credential helper may take before it is stopped, unless
/// `ZEROIMAGE_CREDENTIAL_HELPER_TIMEOUT` (seconds) says otherwise.
pub(crate) const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

fn helper_timeout() -> Duration {
    std::env::var("ZEROIMAGE_CREDENTIAL_HELPER_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(HELPER_TIMEOUT, |s| Duration::from_secs(s.max(1)))
}
/// Most a helper may print on standard output (a JSON credential is a few KiB).
const HELPER_STDOUT_LIMIT: u64 = 1 << 20;
/// Most of a helper's standard error we keep (we quote a short, redacted excerpt).
const HELPER_STDERR_LIMIT: u64 = 64 << 10;

/// Docker Hub's key in config.json, as `docker login` writes it.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

pub use crate::context::Credential;

/// The credentials docker, podman and skopeo use: the first of the [`search_path`] files that has one
/// for the registry, read from the file or asked of the credential helper it configures. The keychain
/// a [`Context`] uses unless given another.
#[derive(Clone, Copy, Debug, Default)]
pub struct DockerConfig;

impl Keychain for DockerConfig {
    fn credential(&self, registry: &str, cx: &Context<'_>) -> Result<Option<Credential>> {
        lookup(registry, cx)
    }
}

/// The credential for `registry` from the keychain of `cx` ([`DockerConfig`] unless it has
/// another).
pub(crate) fn from_keychain(registry: &str, cx: &Context) -> Result<Option<Credential>> {
    cx.keychain()
        .unwrap_or(&DockerConfig)
        .credential(registry, cx)
}

/// The key docker uses for a registry in config.json.
pub(crate) fn config_key(registry: &str) -> String {
    if registry == crate::image::reference::DOCKER_HUB
        || registry == "registry-1.docker.io"
        || registry == "index.docker.io"
    {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// `registry`'s host as written in a config key such as `https://host:5000/v1/`.
fn key_host(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Docker's config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    fsutil::home_dir().map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// The files searched, in order: `$REGISTRY_AUTH_FILE`, docker's config.json, then the containers
/// auth.json (`$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`).
pub fn search_path() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    }
    files.extend(docker_config_path());
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    if let Some(home) = fsutil::home_dir() {
        files.push(PathBuf::from(home).join(".config/containers/auth.json"));
    }
    files
}

/// The credential for `registry` (a host, `docker.io` for Docker Hub) from the first file that has
/// one; `None` means anonymous. A configured credential helper that is not installed is reported to
/// the listener of `cx` and skipped.
pub fn lookup(registry: &str, cx: &Context) -> Result<Option<Credential>> {
    for file in search_path() {
        if let Some(credential) = lookup_in(&file, registry, cx)? {
            return Ok(Some(credential));
        }
    }
    Ok(None)
}

fn read_config(file: &Path) -> Result<Option<Value>> {
    let Some(bytes) =
        fsutil::read_regular_if_present(file, fsutil::MAX_SMALL_FILE, "a credentials file")?
    else {
        return Ok(None);
    };
    parse_config(&bytes, file).map(Some)
}

fn parse_config(bytes: &[u8], file: &Path) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::input(
            file,
            format!(
                "is not valid JSON ({}); fix or remove it",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })
}

/// The credential for `registry` in one config file.
pub fn lookup_in(file: &Path, registry: &str, cx: &Context) -> Result<Option<Credential>> {
    let Some(bytes) =
        fsutil::read_regular_if_present(file, fsutil::MAX_SMALL_FILE, "a credentials file")?
    else {
        return Ok(None);
    };
    match find_in_config(&bytes, registry, file)? {
        None => Ok(None),
        Some(Found::Credential(credential)) => Ok(Some(credential)),
        Some(Found::Helper(helper)) => helper_get(&helper, &config_key(registry), file, cx),
    }
}

/// Where a config file keeps a registry's credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// In the file itself (`auths`).
    Credential(Credential),
    /// With a credential helper (`credHelpers`, `credsStore`): its name, `docker-credential-<name>`.
    Helper(String),
}

/// What the config file content `bytes` says about `registry`'s credential, without running any
/// helper; `file` names it in errors.
pub(crate) fn find_in_config(bytes: &[u8], registry: &str, file: &Path) -> Result<Option<Found>> {
    let config = parse_config(bytes, file)?;
    let key = config_key(registry);
    if let Some(helper) = config
        .get("credHelpers")
        .and_then(|h| h.get(&key).or_else(|| h.get(registry)))
        && let Some(helper) = helper.as_str()
    {
        return Ok(Some(Found::Helper(helper.to_owned())));
    }
    let wanted = key_host(&key);
    if let Some(auths) = config.get("auths").and_then(Value::as_object) {
        for (entry_key, entry) in auths {
            if key_host(entry_key) != wanted {
                continue;
            }
            if let Some(token) = entry
                .get("identitytoken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                return Ok(Some(Found::Credential(Credential::IdentityToken(
                    token.to_owned(),
                ))));
            }
            if let Some(auth) = entry
                .get("auth")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                let decoded = BASE64
                    .decode(auth.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .ok_or_else(|| {
                        Error::input(
                            file,
                            format!(
                                "has an invalid `auth` for `{}`",
                                sanitize::outside(entry_key, 100)
                            ),
                        )
                    })?;
                let (username, password) = decoded.split_once(':').ok_or_else(|| {
                    Error::input(
                        file,
                        format!(
                            "has an `auth` for `{}` without `user:password`",
                            sanitize::outside(entry_key, 100)
                        ),
                    )
                })?;
                return Ok(Some(Found::Credential(Credential::Basic {
                    username: username.to_owned(),
                    password: password.to_owned(),
                })));
            }
        }
    }
    if let Some(store) = config.get("credsStore").and_then(Value::as_str) {
        return Ok(Some(Found::Helper(store.to_owned())));
    }
    Ok(None)
}

/// Asks `docker-credential-<helper> get` for `server`'s credential. A helper that is not installed
/// means anonymous, with a warning naming the file that configures it.
fn helper_get(helper: &str, server: &str, file: &Path, cx: &Context) -> Result<Option<Credential>> {
    let program = helper_program(helper)?;
    let Some(output) = run_helper(&program, "get", server.as_bytes(), cx.cancel())? else {
        cx.listener().warning(&format!(
            "{} names the credential helper {program}, which is not installed; continuing without \
             credentials for {server}",
            file.display()
        ));
        return Ok(None);
    };
    if !output.success {
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        if text.to_ascii_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(Error::Invalid(format!(
            "credential helper {program} failed for {server}: {}",
            output.excerpt()
        )));
    }
    helper_credential(&output.stdout).ok_or_else(|| {
        Error::Invalid(format!(
            "credential helper {program} did not print a JSON credential for {server}"
        ))
    })
}

/// The credential a helper printed for `get` (`None` inside for an empty secret); `None` when it is
/// not JSON.
pub(crate) fn helper_credential(stdout: &[u8]) -> Option<Option<Credential>> {
    let value: Value = serde_json::from_slice(stdout).ok()?;
    let username = value
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = value
        .get("Secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(match (username, secret) {
        (_, "") => None,
        ("<token>", token) => Some(Credential::IdentityToken(token.to_owned())),
        (user, password) => Some(Credential::Basic {
            username: user.to_owned(),
            password: password.to_owned(),
        }),
    })
}

/// `docker-credential-<helper>`, for a helper name that cannot smuggle a path.
pub(crate) fn helper_program(helper: &str) -> Result<String> {
    let valid = !helper.is_empty()
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(Error::Invalid(format!(
            "credential helper name `{}` is not valid (letters, digits, `-`, `_`, `.`)",
            sanitize::outside(helper, 60)
        )));
    }
    Ok(format!("docker-credential-{helper}"))
}

/// What a helper run produced (bounded).
pub(super) struct HelperOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl HelperOutput {
    /// The first line of what the helper said on stderr, escaped, short, and with anything that looks
    /// like a token removed: helpers have been seen to print secrets in their errors.
    pub(super) fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(no message)");
        sanitize::outside(&sanitize::redact_tokens(first), 120)
    }
}

/// Runs a credential helper with `input` on stdin, within [`HELPER_TIMEOUT`] and the output limits.
/// `None` when the helper is not installed. `cancel` stops it.
fn run_helper(
    program: &str,
    verb: &str,
    input: &[u8],
    cancel: &CancelToken,
) -> Result<Option<HelperOutput>> {
    run_bounded(Command::new(program).arg(verb), program, input, cancel)
}

/// Runs `command` (called `program` in messages) with `input` on stdin, within the credential
/// helpers' time and output limits; `None` when it is not installed. `cancel` stops it.
pub(super) fn run_bounded(
    command: &mut Command,
    program: &str,
    input: &[u8],
    cancel: &CancelToken,
) -> Result<Option<HelperOutput>> {
    let mut process = match crate::util::child::spawn(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        cancel,
    ) {
        Ok(process) => process,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(Error::Interrupted),
        Err(e) => {
            return Err(Error::Invalid(format!(
                "cannot run credential helper {program}: {e}"
            )));
        }
    };
    let result = collect_helper(&mut process, program, input, cancel);
    if result.is_err() {
        // Stopped with everything it started, so nothing of it can hold the run or the terminal.
        process.stop();
    }
    result.map(Some)
}

fn collect_helper(
    process: &mut Process,
    program: &str,
    input: &[u8],
    cancel: &CancelToken,
) -> Result<HelperOutput> {
    let child = process.child();
    let failed = |what: &str| Error::Invalid(format!("credential helper {program} {what}"));
    let timeout = helper_timeout();
    let deadline = Instant::now() + timeout;
    let (sender, receiver) = mpsc::channel();
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    for (stream, limit, is_stdout) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            HELPER_STDOUT_LIMIT,
            true,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            HELPER_STDERR_LIMIT,
            false,
        ),
    ] {
        let Some(stream) = stream else { continue };
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let result = stream.take(limit + 1).read_to_end(&mut bytes);
            let _ = sender.send((is_stdout, result.map(|_| bytes)));
        });
    }
    drop(sender);
    let mut stdout = None;
    let mut stderr = Vec::new();
    for _ in 0..2 {
        // In short steps, so a cancel is seen even when the helper ignores the signal.
        let (is_stdout, bytes) = loop {
            cancel.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(received) => break received,
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(_) => {
                    return Err(failed(&format!(
                        "did not finish within {} s; it was stopped",
                        timeout.as_secs()
                    )));
                }
            }
        };
        let bytes = bytes.map_err(|e| failed(&format!("could not be read: {e}")))?;
        if is_stdout {
            if bytes.len() as u64 > HELPER_STDOUT_LIMIT {
                return Err(failed(&format!(
                    "printed more than {} KiB; it was stopped",
                    HELPER_STDOUT_LIMIT >> 10
                )));
            }
            stdout = Some(bytes);
        } else {
            if bytes.len() as u64 > HELPER_STDERR_LIMIT {
                return Err(failed(&format!(
                    "printed more than {} KiB of messages; it was stopped",
                    HELPER_STDERR_LIMIT >> 10
                )));
            }
            stderr = bytes;
        }
        cancel.check()?;
    }
    let status = loop {
        if let Some(status) = process
            .try_wait()
            .map_err(|e| failed(&format!("could not be waited for: {e}")))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            return Err(failed(&format!(
                "did not finish within {} s; it was stopped",
                timeout.as_secs()
            )));
        }
        cancel.check()?;
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(HelperOutput {
        success: status.success(),
        stdout: stdout.unwrap_or_default(),
        stderr,
    })
}

/// The credential helper that keeps `key`'s login: its `credHelpers` entry, else `credsStore`.
fn configured_helper(config: &Value, key: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Stores `username`/`password` for `registry` as `docker login` does: in the configured credential
/// helper when there is one (stopped when `cancel` is cancelled), else base64 in `auths` of `file`.
/// Other keys of the file are kept.
pub fn store(
    file: &Path,
    registry: &str,
    username: &str,
    password: &str,
    cancel: &CancelToken,
) -> Result<()> {
    let mut config = read_config(file)?.unwrap_or_else(|| Value::Object(Map::new()));
    let key = config_key(registry);
    let helper = configured_helper(&config, &key);
    if let Some(helper) = helper {
        let program = helper_program(&helper)?;
        let payload =
            serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
        let output = run_helper(&program, "store", payload.to_string().as_bytes(), cancel)?
            .ok_or_else(|| {
                Error::input(
                    file,
                    format!("names the credential helper {program}, which is not installed; install it or remove `credsStore`/`credHelpers`"),
                )
            })?;
        if !output.success {
            return Err(Error::Invalid(format!(
                "credential helper {program} could not store the login: {}",
                output.excerpt()
            )));
        }
        return Ok(());
    }
    let root = config
        .as_object_mut()
        .ok_or_else(|| Error::input(file, "is not a JSON object"))?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| Error::input(file, "has an `auths` that is not an object"))?;
    auths.insert(
        key,
        serde_json::json!({"auth": BASE64.encode(format!("{username}:{password}"))}),
    );
    write_config(file, &config)
}

/// Removes the stored login for `registry` (from the helper or `auths`); false when there was none.
/// `cancel` stops the helper.
pub(crate) fn erase(file: &Path, registry: &str, cancel: &CancelToken) -> Result<bool> {
    let Some(mut config) = read_config(file)? else {
        return Ok(false);
    };
    let key = config_key(registry);
    let helper = configured_helper(&config, &key);
    let mut removed = false;
    if let Some(helper) = helper {
        let program = helper_program(&helper)?;
        if let Some(output) = run_helper(&program, "erase", key.as_bytes(), cancel)? {
            removed = output.success;
        }
    }
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        let wanted = key_host(&key).to_owned();
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| key_host(k) == wanted)
            .cloned()
            .collect();
        for k in keys {
            auths.remove(&k);
            removed = true;
        }
    }
    write_config(file, &config)?;
    Ok(removed)
}

/// Writes atomically with mode 0600: the file holds secrets. A symbolic link (dotfile managers keep
/// config.json in a repository) is written through: the file it points at is replaced, the link stays.
/// Windows files have no Unix mode: there the file takes its directory's permissions (in the user's
/// profile, the user's own), as the docker CLI's does.
fn write_config(file: &Path, config: &Value) -> Result<()> {
    let resolved = fsutil::resolve_links(file)?;
    let file = resolved.as_path();
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let (mut temp_file, temp) =
        crate::util::outputs::temp_file(dir, std::ffi::OsStr::new("config.json"), "", 0o600)
            .map_err(Error::io("writing", file))?;
    // The mode is set, not masked: the file holds secrets whatever the umask.
    #[cfg(unix)]
    temp_file
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(Error::io("writing", file))?;
    let text = serde_json::to_string_pretty(config).unwrap_or_default();
    temp_file
        .write_all(text.as_bytes())
        .map_err(Error::io("writing", file))?;
    drop(temp_file);
    temp.persist(file)
        .map_err(|e| Error::io("writing", file)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::report::Silent;

    fn write(dir: &Path, json: &str) -> PathBuf {
        let file = dir.join("config.json");
        std::fs::write(&file, json).unwrap();
        file
    }

    #[test]
    fn auths_with_basic_credentials_and_identity_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let auth = BASE64.encode("alice:s3cret:with:colons");
        let file = write(
            dir.path(),
            &format!(
                r#"{{"auths": {{"https://registry.example.com/v1/": {{"auth": "{auth}"}},
                   "ghcr.io": {{"identitytoken": "tok"}},
                   "https://index.docker.io/v1/": {{"auth": "{auth}"}}}}}}"#
            ),
        );
        assert_eq!(
            lookup_in(&file, "registry.example.com", &Context::new(&Silent)).unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3cret:with:colons".into()
            })
        );
        assert_eq!(
            lookup_in(&file, "ghcr.io", &Context::new(&Silent)).unwrap(),
            Some(Credential::IdentityToken("tok".into()))
        );
        assert!(
            lookup_in(&file, "docker.io", &Context::new(&Silent))
                .unwrap()
                .is_some(),
            "Docker Hub's legacy key"
        );
        assert_eq!(
            lookup_in(&file, "other.example.com", &Context::new(&Silent)).unwrap(),
            None
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok123".into())).contains("tok123"));
    }

    #[test]
    fn store_and_erase_keep_other_keys_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), r#"{"auths": {}, "psFormat": "table"}"#);
        store(&file, "localhost:5000", "carol", "pw", &CancelToken::new()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("psFormat"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            lookup_in(&file, "localhost:5000", &Context::new(&Silent)).unwrap(),
            Some(Credential::Basic {
                username: "carol".into(),
                password: "pw".into()
            })
        );
        assert!(erase(&file, "localhost:5000", &CancelToken::new()).unwrap());
        assert_eq!(
            lookup_in(&file, "localhost:5000", &Context::new(&Silent)).unwrap(),
            None
        );
        assert!(!erase(&file, "localhost:5000", &CancelToken::new()).unwrap());
    }
}
