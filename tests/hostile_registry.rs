//! Registries and archives that misbehave on purpose, served on 127.0.0.1 by the test: credentials must
//! stay with their origin, TLS must not be left, corrupt blobs must not be committed, silence and Ctrl-C
//! must end a push promptly, hostile text must not reach the terminal raw, and memory stays bounded.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::fake_registry::{self, Behaviour};
use support::http::{Reply, TestServer};
use support::tiny_elf::{self, Machine, Shape};
use support::zeroimage;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// zeroimage with a docker config of the test's own (and nothing of the machine's).
fn zi(config_dir: &Path) -> support::Zeroimage {
    let mut cmd = zeroimage();
    cmd.env("DOCKER_CONFIG", config_dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("XDG_RUNTIME_DIR", config_dir.join("runtime"))
        .env("HOME", config_dir);
    cmd
}

/// Stores `user:password` for `host` in the test's docker config.
fn log_in(config_dir: &Path, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
}

/// A small image archive of a tiny program.
fn archive(dir: &Path, message: &str) -> PathBuf {
    let program = tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, message),
    );
    let out = dir.join(format!("app-{}.tar", message.len()));
    support::package(&program, &out, &["-q"]);
    out
}

/// A refused run: exit 1 and one `error:` line, with no raw control character anywhere on stderr.
fn assert_clean_failure(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters reached the terminal: {err:?}"
    );
    err
}

#[test]
fn credentials_do_not_follow_an_upload_location_to_another_origin() {
    let storage = TestServer::start(fake_registry::storage_handler());
    let registry = TestServer::start(fake_registry::handler(Behaviour {
        basic: Some(("alice".into(), "s3cret".into())),
        upload_location: Some(format!("{}/upload/session-1", storage.url())),
        ..Behaviour::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    log_in(dir.path(), &registry.host(), "alice", "s3cret");
    let archive = archive(dir.path(), "hi\n");
    let output = zi(dir.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", registry.host()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let received = storage.requests();
    assert!(!received.is_empty(), "the uploads went to the Location");
    for request in &received {
        assert_eq!(
            request.header("authorization"),
            None,
            "{} {} carried the registry's credentials to another origin",
            request.method,
            request.target
        );
    }
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.header("authorization").is_some()),
        "the registry itself still got them"
    );
}

/// A CA, and a certificate for 127.0.0.1 signed by it, made with openssl.
fn tls_material(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    support::peer("openssl")?;
    let (ca, ca_key) = support::self_signed_certificate(dir, "ca", "hostile test CA");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    support::run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    support::run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    Some((ca, cert, key))
}

#[test]
fn an_https_registry_cannot_send_the_upload_to_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = tls_material(dir.path()) else {
        return;
    };
    let storage = TestServer::start(fake_registry::storage_handler());
    let registry = TestServer::start_tls(
        &cert,
        &key,
        fake_registry::handler(Behaviour {
            basic: Some(("alice".into(), "s3cret".into())),
            upload_location: Some(format!("{}/upload/session-1", storage.url())),
            ..Behaviour::default()
        }),
    );
    log_in(dir.path(), &registry.host(), "alice", "s3cret");
    let archive = archive(dir.path(), "hi\n");
    let output = zi(dir.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", registry.host()))
        .arg("--ca-file")
        .arg(&ca)
        .output()
        .unwrap();
    let err = assert_clean_failure(&output);
    assert!(err.contains("refusing to leave TLS"), "{err}");
    assert!(
        storage.requests().is_empty(),
        "nothing went out in clear text"
    );
}

#[test]
fn a_plain_http_token_realm_is_refused_for_an_https_registry_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = tls_material(dir.path()) else {
        return;
    };
    let tokens = TestServer::start(fake_registry::token_handler());
    let registry = TestServer::start_tls(
        &cert,
        &key,
        fake_registry::handler(Behaviour {
            bearer_realm: Some(format!("{}/token", tokens.url())),
            ..Behaviour::default()
        }),
    );
    log_in(dir.path(), &registry.host(), "alice", "s3cret");
    let archive = archive(dir.path(), "hi\n");
    let push = |extra: &[&str]| {
        zi(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(format!("{}/team/app:1", registry.host()))
            .arg("--ca-file")
            .arg(&ca)
            .args(extra)
            .output()
            .unwrap()
    };
    let err = assert_clean_failure(&push(&[]));
    assert!(
        err.contains("plain HTTP") && err.contains("--insecure-registry"),
        "{err}"
    );
    assert!(
        tokens.requests().is_empty(),
        "the password never went out in clear text"
    );

    let output = push(&["--insecure-registry", &tokens.host()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let asked = tokens.requests();
    assert!(
        asked[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "docker's rule: the realm the user allowed gets the credentials"
    );
}

/// The archive with one byte of the blob `digest` flipped (same size, wrong content).
fn corrupt_blob(archive: &Path, digest: &str, out: &Path) {
    let hex = digest.trim_start_matches("sha256:");
    let mut file = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut position = None;
    for entry in file.entries_with_seek().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy().ends_with(hex) {
            position = Some(entry.raw_file_position());
        }
    }
    let mut bytes = std::fs::read(archive).unwrap();
    let at = usize::try_from(position.expect("blob in archive")).unwrap() + 1;
    bytes[at] ^= 0x01;
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn a_corrupt_small_blob_is_never_committed_even_by_a_registry_that_does_not_verify() {
    let registry = TestServer::start(fake_registry::handler(Behaviour::default()));
    let dir = tempfile::tempdir().unwrap();
    let good = archive(dir.path(), "hi\n");
    let config = support::image_manifest(&good)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = dir.path().join("corrupt.tar");
    corrupt_blob(&good, &config, &bad);
    let output = zi(dir.path())
        .arg("push")
        .arg(&bad)
        .arg(format!("{}/team/app:1", registry.host()))
        .output()
        .unwrap();
    let err = assert_clean_failure(&output);
    assert!(err.contains("corrupt"), "{err}");
    let requests = registry.requests();
    let hex = config.trim_start_matches("sha256:");
    for request in &requests {
        assert!(
            !(request.method == "PUT" && request.target.contains(hex) && !request.truncated),
            "the corrupt config was committed: {} {}",
            request.method,
            request.target
        );
        assert!(
            !request.path().contains("/manifests/"),
            "a manifest was pushed over a corrupt blob"
        );
    }
}

#[test]
fn a_silent_registry_fails_within_the_timeout_without_retrying_on_both_schemes() {
    let silent = TestServer::silent();
    let dir = tempfile::tempdir().unwrap();
    let archive = archive(dir.path(), "hi\n");
    let started = Instant::now();
    let output = zi(dir.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", silent.host()))
        .args(["--registry-timeout", "2"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = assert_clean_failure(&output);
    assert!(took < Duration::from_secs(8), "took {took:?}: {err}");
    assert!(err.contains("time limit"), "{err}");
}

#[test]
fn ctrl_c_ends_a_push_to_a_silent_registry_at_once_and_leaves_no_temporary_file() {
    let silent = TestServer::silent();
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    let mut child = zi(dir.path())
        .arg(&program)
        .arg("--push")
        .arg(format!("{}/team/app:1", silent.host()))
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !support::dir_listing(&tmp).is_empty(),
        "the push is under way with its temporary archive"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let deadline = signalled + Duration::from_secs(5);
    let signal = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break std::os::unix::process::ExitStatusExt::signal(&status);
        }
        assert!(Instant::now() < deadline, "still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    // Ended by the signal, as cargo is: a shell shows 130.
    assert_eq!(signal, Some(libc::SIGINT), "{err}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(
        support::dir_listing(&tmp),
        Vec::<String>::new(),
        "temporary files left"
    );
}

#[test]
fn hostile_error_text_is_escaped_and_cut_short() {
    let escapes = TestServer::start(fake_registry::handler(Behaviour {
        manifest_reply: Some(
            Reply::status(400).body("\x1b]0;owned\x07\x1b[2J\rPushed evil\n".repeat(3)),
        ),
        ..Behaviour::default()
    }));
    let errors = serde_json::json!({"errors": (0..20000)
        .map(|i| serde_json::json!({"code": "DENIED", "message": format!("\x1b[31mno {i}\r")}))
        .collect::<Vec<_>>()});
    let flood = TestServer::start(fake_registry::handler(Behaviour {
        manifest_reply: Some(Reply::status(403).body(errors.to_string())),
        ..Behaviour::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let archive = archive(dir.path(), "hi\n");
    for (server, shown) in [(&escapes, "\\u{1b}]0;owned"), (&flood, "DENIED")] {
        let output = zi(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(format!("{}/team/app:1", server.host()))
            .output()
            .unwrap();
        let err = assert_clean_failure(&output);
        assert!(err.len() < 2000, "{} bytes of error", err.len());
        assert!(err.contains(shown), "escaped, not dropped: {err}");
    }

    let random = dir.path().join("random.tar");
    let mut noise = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push((x & 0xff) as u8);
    }
    std::fs::write(&random, noise).unwrap();
    let output = zi(dir.path())
        .arg("push")
        .arg(&random)
        .arg(format!("{}/team/app:1", escapes.host()))
        .output()
        .unwrap();
    assert_clean_failure(&output);
}

/// Writes a tar of `entries` (name, bytes), as an attacker would.
fn write_tar(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    builder.finish().unwrap();
}

fn blob_entry(bytes: Vec<u8>) -> (String, Vec<u8>) {
    let digest = zeroimage::oci::Digest::of(&bytes);
    (digest.blob_path(), bytes)
}

#[test]
fn an_index_listing_one_large_manifest_thousands_of_times_stays_within_memory() {
    let Some(prlimit) = support::peer("prlimit") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = blob_entry(b"{}".to_vec());
    let padding = "x".repeat(1 << 20);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": zeroimage::oci::Digest::of(&config.1).to_string(), "size": 2},
        "layers": [],
        "annotations": {"padding": padding},
    })
    .to_string()
    .into_bytes();
    let manifest_digest = zeroimage::oci::Digest::of(&manifest).to_string();
    let descriptor = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest.len()});
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": vec![descriptor; 8000],
    })
    .to_string()
    .into_bytes();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": zeroimage::oci::Digest::of(&index).to_string(), "size": index.len()}]})
    .to_string()
    .into_bytes();
    let hostile = dir.path().join("amplify.tar");
    write_tar(
        &hostile,
        &[
            config,
            blob_entry(manifest),
            blob_entry(index),
            ("index.json".to_owned(), top),
            (
                "oci-layout".to_owned(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
        ],
    );
    let registry = TestServer::start(fake_registry::handler(Behaviour::default()));
    let limit = format!("--as={}", 1536u64 << 20);
    let output = support::zeroimage_via(prlimit, &[&limit])
        .arg("push")
        .arg(&hostile)
        .arg(format!("{}/team/app:1", registry.host()))
        .env("DOCKER_CONFIG", dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let err = assert_clean_failure(&output);
    assert!(err.contains("8000 manifests"), "{err}");
}

#[test]
fn pushing_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("archive.tar");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let mut child = zi(dir.path())
        .arg("push")
        .arg(&fifo)
        .arg("127.0.0.1:9/team/app:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(5);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zeroimage push blocked on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn login_writes_through_a_symlinked_config_and_a_missing_creds_store_means_anonymous() {
    let registry = TestServer::start(fake_registry::handler(Behaviour {
        basic: Some(("carol".into(), "pw".into())),
        ..Behaviour::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let dotfiles = dir.path().join("dotfiles");
    std::fs::create_dir(&dotfiles).unwrap();
    std::fs::write(dotfiles.join("docker.json"), r#"{"psFormat": "table"}"#).unwrap();
    std::os::unix::fs::symlink(dotfiles.join("docker.json"), dir.path().join("config.json"))
        .unwrap();
    let mut login = zi(dir.path())
        .args(["login", &registry.host(), "-u", "carol", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let output = login.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let link = std::fs::symlink_metadata(dir.path().join("config.json")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    let stored = std::fs::read_to_string(dotfiles.join("docker.json")).unwrap();
    assert!(
        stored.contains("psFormat") && stored.contains("auth"),
        "{stored}"
    );

    let anonymous = TestServer::start(fake_registry::handler(Behaviour::default()));
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("config.json"),
        r#"{"credsStore": "zeroimage-test-missing-helper"}"#,
    )
    .unwrap();
    let archive = archive(dir.path(), "hi\n");
    let output = zi(other.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", anonymous.host()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("warning:") && err.contains("docker-credential-zeroimage-test-missing-helper"),
        "{err}"
    );
}
