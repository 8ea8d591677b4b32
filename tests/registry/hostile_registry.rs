//! Registries and archives that misbehave on purpose, served on 127.0.0.1 by the test: credentials must
//! stay with their origin, TLS must not be left, corrupt blobs must not be committed, silence and Ctrl-C
//! must end a push promptly, hostile text must not reach the terminal raw, and memory stays bounded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use support::fake_registry::{self, Behaviour};
use support::http::{Reply, TestServer};
use support::tiny_elf::{self, Machine, Shape};
use support::{isolated_zeroimage, stderr_of, stdout_of};

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
    let err = stderr_of(output);
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
    let output = isolated_zeroimage(dir.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", registry.host()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
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

#[test]
fn storage_refusing_a_redirected_upload_is_not_blamed_on_the_credentials() {
    // Blob storage on another origin that wants credentials of its own: ours never go there.
    let storage = TestServer::start(|_: &support::http::Request| {
        Reply::status(401).header("WWW-Authenticate", r#"Basic realm="storage""#)
    });
    let registry = TestServer::start(fake_registry::handler(Behaviour {
        basic: Some(("alice".into(), "s3cret".into())),
        upload_location: Some(format!("{}/upload/session-1", storage.url())),
        ..Behaviour::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    log_in(dir.path(), &registry.host(), "alice", "s3cret");
    let archive = archive(dir.path(), "hi\n");
    let output = isolated_zeroimage(dir.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", registry.host()))
        .output()
        .unwrap();
    let err = assert_clean_failure(&output);
    assert!(!err.contains("rejected the credentials"), "{err}");
    assert!(
        err.contains(&format!(
            "{}, where {} sent the request, refused it (HTTP 401); no credentials were sent there",
            storage.url().trim_end_matches('/'),
            registry.host()
        )),
        "{err}"
    );
    for request in storage.requests() {
        assert_eq!(request.header("authorization"), None);
    }
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
    let output = isolated_zeroimage(dir.path())
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
        isolated_zeroimage(dir.path())
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
    assert!(output.status.success(), "{}", stderr_of(&output));
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
    let output = isolated_zeroimage(dir.path())
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
    let output = isolated_zeroimage(dir.path())
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
fn plain_http_that_stalls_after_https_failed_is_what_the_error_says() {
    // Plain HTTP only (a TLS handshake is hung up on at once), and no answer to GET /v2/ in time.
    let slow = TestServer::start(|_: &support::http::Request| {
        std::thread::sleep(Duration::from_secs(8));
        Reply::status(200)
    });
    let dir = tempfile::tempdir().unwrap();
    let archive = archive(dir.path(), "hi\n");
    let output = isolated_zeroimage(dir.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", slow.host()))
        .args(["--registry-timeout", "1"])
        .output()
        .unwrap();
    let err = assert_clean_failure(&output);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.starts_with(&format!(
            "error: GET {}/v2/: the transfer made no progress within the time limit",
            slow.url()
        )),
        "the plain HTTP failure comes first: {err}"
    );
    assert!(
        line.contains("; tried after HTTPS failed: GET https://"),
        "{err}"
    );
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
    let mut child = isolated_zeroimage(dir.path())
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
        let output = isolated_zeroimage(dir.path())
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
    let output = isolated_zeroimage(dir.path())
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
    let mut child = isolated_zeroimage(dir.path())
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
    let mut login = isolated_zeroimage(dir.path())
        .args(["login", &registry.host(), "-u", "carol", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let output = login.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
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
    let output = isolated_zeroimage(other.path())
        .arg("push")
        .arg(&archive)
        .arg(format!("{}/team/app:1", anonymous.host()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let err = stderr_of(&output);
    assert!(
        err.contains("warning:") && err.contains("docker-credential-zeroimage-test-missing-helper"),
        "{err}"
    );
}

/// A tiny program, its archive (SBOM and provenance attached) and the digests of its image and of
/// each attached document's artifact manifest.
fn attached_archive(dir: &Path) -> (PathBuf, PathBuf, String, Vec<String>) {
    let program = tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "attached\n"),
    );
    let archive = dir.join("attached.tar");
    let output = support::run_ok(
        isolated_zeroimage(dir)
            .arg(&program)
            .arg("-o")
            .arg(&archive)
            .args(["--provenance", "--message-format", "json"]),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifests = summary["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["manifest_digest"].as_str().unwrap().to_owned())
        .collect();
    (
        program,
        archive,
        summary["digest"].as_str().unwrap().to_owned(),
        manifests,
    )
}

/// The manifest PUTs a fake registry received, by the reference they named.
fn manifest_puts(server: &TestServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path().contains("/manifests/"))
        .map(|r| r.path().rsplit('/').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_registry_refusing_artifact_manifests_still_gets_the_image_and_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (program, archive, digest, documents) = attached_archive(dir.path());
    let refusing = || {
        TestServer::start(fake_registry::handler(Behaviour {
            refuse_subject: true,
            ..Behaviour::default()
        }))
    };
    // Built and pushed in one run, and an archive built earlier pushed with `zeroimage push`.
    for push_subcommand in [false, true] {
        let registry = refusing();
        let reference = format!("{}/team/app:1.0", registry.host());
        let mut command = isolated_zeroimage(dir.path());
        if push_subcommand {
            command.arg("push").arg(&archive).arg(&reference);
        } else {
            command
                .arg(&program)
                .args(["--provenance", "--push", &reference]);
        }
        let output = command.args(["--message-format", "json"]).output().unwrap();
        let err = stderr_of(&output);
        assert_eq!(output.status.code(), Some(0), "{err}");
        assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
        let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(warnings.len(), 2, "one per document refused: {err}");
        for (warning, what) in warnings.iter().zip(["SPDX SBOM", "provenance statement"]) {
            assert!(
                warning.contains(what)
                    && warning.contains("not attached to")
                    && warning.contains("MANIFEST_INVALID: manifest invalid"),
                "{warning}"
            );
        }
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            summary["pushed"],
            serde_json::json!([format!("{reference}@{digest}")])
        );
        let refused = summary["attachments_not_pushed"].as_array().unwrap();
        let kinds: Vec<&str> = refused
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["spdx", "provenance"]);
        for (entry, document) in refused.iter().zip(&documents) {
            assert_eq!(entry["manifest_digest"], document.as_str());
            assert_eq!(entry["repository"], format!("{}/team/app", registry.host()));
            assert!(
                entry["error"]
                    .as_str()
                    .unwrap()
                    .contains("MANIFEST_INVALID"),
                "{entry}"
            );
        }
        let puts = manifest_puts(&registry);
        assert_eq!(
            puts.last().map(String::as_str),
            Some("1.0"),
            "the tag is set: {puts:?}"
        );
    }
}

#[test]
fn require_attachments_fails_the_push_before_the_tag_and_names_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let (program, archive, digest, _) = attached_archive(dir.path());
    for push_subcommand in [false, true] {
        let registry = TestServer::start(fake_registry::handler(Behaviour {
            refuse_subject: true,
            ..Behaviour::default()
        }));
        let reference = format!("{}/team/app:1.0", registry.host());
        let mut command = isolated_zeroimage(dir.path());
        if push_subcommand {
            command.arg("push").arg(&archive).arg(&reference);
        } else {
            command
                .arg(&program)
                .args(["--provenance", "--push", &reference]);
        }
        let output = command
            .args(["--require-attachments", "--message-format", "json"])
            .output()
            .unwrap();
        let err = assert_clean_failure(&output);
        assert!(
            err.contains("the SPDX SBOM (sha256:")
                && err.contains("could not be attached to")
                && err.contains("MANIFEST_INVALID")
                && err.contains("no tag was set (--require-attachments)")
                && err.contains("; 1 more document was not attached either"),
            "{err}"
        );
        assert!(output.stdout.is_empty(), "no summary on failure");
        let puts = manifest_puts(&registry);
        assert!(
            puts.contains(&digest),
            "the image went up by digest: {puts:?}"
        );
        assert!(!puts.contains(&"1.0".to_owned()), "no tag: {puts:?}");
    }
}

#[test]
fn cargo_toml_can_require_attachments() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let registry = TestServer::start(fake_registry::handler(Behaviour {
        refuse_subject: true,
        ..Behaviour::default()
    }));
    let run = |setting: &str, tag: &str| {
        std::fs::write(
            &manifest,
            format!("{text}\n[package.metadata.zeroimage]\n{setting}\n"),
        )
        .unwrap();
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--push")
            .arg(format!("{}/cargo/hello:{tag}", registry.host()))
            .arg("-o")
            .arg(dir.path().join("hello.tar"))
            .output()
            .unwrap()
    };
    let output = run("require-attachments = true", "required");
    let err = assert_clean_failure(&output);
    assert!(
        err.contains("the SPDX SBOM") && err.contains("no tag was set"),
        "{err}"
    );
    assert!(!manifest_puts(&registry).contains(&"required".to_owned()));
    let output = run("require-attachments = false", "optional");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("MANIFEST_INVALID"));
    assert!(manifest_puts(&registry).contains(&"optional".to_owned()));
}

#[test]
fn fallback_tag_writes_raced_by_another_push_end_with_every_referrer_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, archive, _, documents) = attached_archive(dir.path());
    let other = |n: char| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", n.to_string().repeat(64)),
            "size": 500,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        })
    };
    for honours_if_match in [false, true] {
        let (handler, state) =
            fake_registry::fallback_race_handler(honours_if_match, other('a'), other('b'));
        let registry = TestServer::start(handler);
        let output = isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(format!("{}/team/app:1.0", registry.host()))
            .arg("-v")
            .output()
            .unwrap();
        let err = stderr_of(&output);
        assert!(output.status.success(), "{err}");
        let state = state.lock().unwrap();
        let (tag, index) = state
            .stored
            .iter()
            .find(|(r, _)| r.starts_with("sha256-"))
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(index).unwrap();
        let listed: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let mut expected = vec![a.as_str(), b.as_str()];
        expected.extend(documents.iter().map(String::as_str));
        assert_eq!(
            listed, expected,
            "{tag} (If-Match honoured: {honours_if_match}): {err}"
        );
        assert!(
            state.if_match.iter().all(Option::is_some),
            "each write names the index it was merged from: {:?}",
            state.if_match
        );
        assert_eq!(state.if_match.len(), 2, "{:?}", state.if_match);
        assert_eq!(state.refused, usize::from(honours_if_match));
    }
}

#[test]
fn garbage_under_the_fallback_tag_is_a_warning_and_the_image_keeps_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (_, archive, digest, _) = attached_archive(dir.path());
    let garbage = [
        Reply::status(200)
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .body("\x1b[2J{not json\r"),
        Reply::status(200)
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            )
            .body(r#"{"schemaVersion":2,"manifests":[]}"#),
        Reply::status(200).body(r#"{"schemaVersion":2,"config":{},"layers":[]}"#),
    ];
    for reply in garbage {
        let registry = TestServer::start(fake_registry::handler(Behaviour {
            manifest_get: Some(reply.clone()),
            ..Behaviour::default()
        }));
        let reference = format!("{}/team/app:1.0", registry.host());
        let fallback = digest.replace(':', "-");
        let output = isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(&reference)
            .output()
            .unwrap();
        let err = stderr_of(&output);
        assert!(output.status.success(), "{err}");
        assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
        let warning = err
            .lines()
            .find(|l| l.starts_with("warning:"))
            .unwrap_or_else(|| panic!("a warning: {err}"));
        assert!(
            warning.contains(&format!("team/app:{fallback}")) && warning.contains("remove it"),
            "{warning}"
        );
        let puts = manifest_puts(&registry);
        assert!(
            !puts.contains(&fallback),
            "someone else's tag is left alone: {puts:?}"
        );
        assert_eq!(puts.last().map(String::as_str), Some("1.0"), "{puts:?}");
        assert_eq!(stdout_of(&output).trim(), format!("{reference}@{digest}"));
    }
}
