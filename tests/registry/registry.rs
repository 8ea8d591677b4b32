//! Pushing to a real CNCF distribution registry on 127.0.0.1: anonymous, htpasswd Basic auth over TLS
//! with a CA made in the test, skipped and mounted blobs, retries behind a fault-injecting proxy, and a
//! registry that goes away mid-upload.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support;
use support::proxy::{Fault, FaultProxy};
use support::registry::{Setup, TestRegistry};
use support::tiny_elf::{self, Machine, Shape};
use support::token_server::TokenServer;
use support::{X86_64_MUSL, isolated_zeroimage, run_ok, stderr_of, stdout_of};

fn skopeo_inspect(skopeo: &Path, image: &str, extra: &[&str]) -> serde_json::Value {
    let output = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--tls-verify=false"])
            .args(extra)
            .arg(format!("docker://{image}")),
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn anonymous_push_of_two_tags_then_pull_and_run() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let first = format!("{host}/team/hello:1.0");
    let second = format!("{host}/mirror/hello:latest");
    let output = run_ok(isolated_zeroimage(dir.path()).arg(&hello).args([
        "--push",
        &first,
        "--push",
        &second,
        "--message-format",
        "json",
        "-v",
    ]));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        summary["pushed"],
        serde_json::json!([format!("{first}@{digest}"), format!("{second}@{digest}")])
    );
    assert_eq!(summary["path"], "", "no -o: no archive kept");
    assert!(
        support::dir_listing(dir.path())
            .iter()
            .all(|n| !n.ends_with(".tar"))
    );
    assert!(
        stderr_of(&output).contains("mounted from team/hello"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(
        registry.uploaded_blobs().len(),
        4,
        "config, layer, the SBOM and its empty config uploaded once, then mounted"
    );

    for image in [&first, &second] {
        assert_eq!(
            skopeo_inspect(&skopeo, image, &[])["Digest"],
            digest.as_str()
        );
    }
    // Pull back what we pushed and run it.
    let pulled = dir.path().join("pulled.tar");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{first}"),
        &format!("oci-archive:{}:pulled", pulled.display()),
    ]));
    if let Some(stdout) = support::run_in_runc(&pulled, "pulled", &["pushed"], &[]) {
        assert!(
            stdout.starts_with("hello from the zeroimage fixture\nargv=/hello pushed\n"),
            "{stdout}"
        );
    }
}

#[test]
fn second_push_uploads_nothing_and_a_new_version_only_what_changed() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let reference = format!("{}/app/server:v", registry.host());
    let push = |message: &str, tag: &str| -> serde_json::Value {
        let program = tiny_elf::write(
            dir.path(),
            "server",
            &tiny_elf::build(Machine::X86_64, Shape::Static, message),
        );
        let out = dir.path().join("server.tar");
        let output = run_ok(
            isolated_zeroimage(dir.path())
                .arg(&program)
                .arg("-o")
                .arg(&out)
                .arg(format!("--ca-certs={}", ca.display()))
                .args([
                    "--push",
                    &format!("{reference}{tag}"),
                    "--message-format",
                    "json",
                ]),
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    push("version one\n", "1");
    let after_first = registry.uploaded_blobs();
    assert_eq!(
        after_first.len(),
        5,
        "CA layer, program layer, config, the SBOM and its empty config"
    );
    push("version one\n", "1");
    assert_eq!(
        registry.uploaded_blobs(),
        after_first,
        "the same image again uploads no blob"
    );
    let second = push("version two\n", "2");
    let new: Vec<String> = registry.uploaded_blobs()[after_first.len()..].to_vec();
    let mut expected = vec![
        second["layer_digest"].as_str().unwrap().to_owned(),
        second["config_digest"].as_str().unwrap().to_owned(),
        second["attachments"][0]["document_digest"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    expected.sort();
    let mut new_sorted = new.clone();
    new_sorted.sort();
    assert_eq!(
        new_sorted, expected,
        "only the changed program layer, its config and its SBOM"
    );
}

#[test]
fn push_subcommand_sends_an_archive_built_earlier_and_multi_platform_keeps_its_index() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let archive = dir.path().join("multi.tar");
    let built = run_ok(
        isolated_zeroimage(dir.path())
            .args([
                "--platform-binary",
                &format!("linux/amd64={}", amd.display()),
            ])
            .args([
                "--platform-binary",
                &format!("linux/arm64={}", arm.display()),
            ])
            .arg("-o")
            .arg(&archive)
            .args(["--message-format", "json"]),
    );
    let digest = serde_json::from_slice::<serde_json::Value>(&built.stdout).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let reference = format!("{}/multi/app:1", registry.host());
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(&reference),
    );
    assert_eq!(stdout_of(&output).trim(), format!("{reference}@{digest}"));
    let raw = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let platforms: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    assert_eq!(
        support::file_digest_of_bytes(&stdout_of(&raw_bytes(&skopeo, &reference))),
        digest,
        "the index we built, byte for byte"
    );

    // A corrupted blob is caught while reading, and nothing is tagged.
    let corrupt = dir.path().join("corrupt.tar");
    let mut bytes = std::fs::read(&archive).unwrap();
    let entries = support::read_tar(&archive);
    let layer_name = entries
        .keys()
        .find(|k| k.starts_with("blobs/") && entries[*k].len() > 100 && entries[*k][0] == 0x1f)
        .unwrap()
        .clone();
    let needle = entries[&layer_name][40..56].to_vec();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    let bad_ref = format!("{}/multi/corrupt:1", registry.host());
    let output = isolated_zeroimage(dir.path())
        .arg("push")
        .arg(&corrupt)
        .arg(&bad_ref)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("corrupt"),
        "{}",
        stderr_of(&output)
    );
    let inspect = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{bad_ref}"),
        ])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "no tag for a corrupt push");
}

#[test]
fn push_subcommand_sends_an_image_of_a_layout_directory_with_its_documents() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "laid out\n"),
    );
    let layout = dir.path().join("oci");
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg(&program)
            .args(["-t", "app:1", "--provenance", "--message-format", "json"])
            .arg("--oci-layout")
            .arg(&layout),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap();
    let reference = format!("{}/laid/app:1", registry.host());
    run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&layout)
            .arg(&reference),
    );
    let info = skopeo_inspect(&skopeo, &reference, &[]);
    assert_eq!(info["Digest"], digest);
    // The documents `referrers.json` lists for this image went up too, under the fallback tag.
    let fallback = format!("{}/laid/app:{}", registry.host(), digest.replace(':', "-"));
    let index: serde_json::Value =
        serde_json::from_slice(&raw_bytes(&skopeo, &fallback).stdout).unwrap();
    let mut kinds: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["application/spdx+json", "application/vnd.in-toto+json"]
    );
}

fn raw_bytes(skopeo: &Path, reference: &str) -> Output {
    run_ok(Command::new(skopeo).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
}

#[test]
fn basic_auth_over_tls_with_login_logout_and_clear_failures() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup {
        user: Some(("ci", "correct horse")),
        tls: true,
        token: None,
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "secure\n"),
    );
    let host = registry.host();
    let reference = format!("{host}/secure/app:1");
    let ca = registry.ca_file();
    let ca_arg = ca.display().to_string();

    // Not logged in: the registry's 401 becomes advice.
    let output = isolated_zeroimage(dir.path())
        .arg(&program)
        .args(["--push", &reference, "--ca-file", &ca_arg])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains(&format!(
            "{host} requires authentication; log in with `zeroimage login {host}`"
        )),
        "{}",
        stderr_of(&output)
    );

    // A wrong password is refused at login, and never printed.
    let login = |password: &str| {
        let mut child = isolated_zeroimage(dir.path())
            .args([
                "login",
                &host,
                "-u",
                "ci",
                "--password-stdin",
                "--ca-file",
                &ca_arg,
                "-v",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let output = login("wrong pass");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("rejected the credentials of user `ci` (401 unauthorized)"),
        "{err}"
    );
    assert!(
        !err.contains("wrong pass") && !stdout_of(&output).contains("wrong pass"),
        "password leaked: {err}"
    );
    assert!(
        !dir.path().join("config.json").exists(),
        "nothing stored for a failed login"
    );

    let output = login("correct horse");
    assert!(output.status.success(), "{}", stderr_of(&output));
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(
        config.contains(&host) && config.contains("\"auth\""),
        "{config}"
    );
    assert!(
        !config.contains("correct horse"),
        "stored base64-encoded as docker does"
    );

    // Without the CA the TLS check fails clearly; with it, the push works.
    let output = isolated_zeroimage(dir.path())
        .arg(&program)
        .args(["--push", &reference])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).to_lowercase().contains("certificate"),
        "{}",
        stderr_of(&output)
    );
    let output = run_ok(isolated_zeroimage(dir.path()).arg(&program).args([
        "--push",
        &reference,
        "--ca-file",
        &ca_arg,
        "-v",
        "--message-format",
        "json",
    ]));
    assert!(
        !stderr_of(&output).contains("correct horse"),
        "verbose output shows no secret"
    );
    let digest = serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let inspected = skopeo_inspect(&skopeo, &reference, &["--creds", "ci:correct horse"]);
    assert_eq!(inspected["Digest"], digest.as_str());

    // logout removes the entry; pushing then needs a login again.
    let output = run_ok(isolated_zeroimage(dir.path()).args(["logout", &host]));
    assert!(
        stderr_of(&output).contains("Logged out"),
        "{}",
        stderr_of(&output)
    );
    assert!(
        !std::fs::read_to_string(dir.path().join("config.json"))
            .unwrap()
            .contains(&host)
    );
}

#[test]
fn retries_survive_a_500_and_a_dropped_connection() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "retry\n"),
    );
    for fault in [Fault::Error500Once, Fault::DropOnce] {
        let proxy = FaultProxy::start(registry.port, fault);
        let reference = format!("{}/retry/app:1", proxy.host());
        let output = run_ok(
            isolated_zeroimage(dir.path())
                .arg(&program)
                .args(["--push", &reference]),
        );
        assert_eq!(
            proxy.injected.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{fault:?} was injected"
        );
        assert!(
            stderr_of(&output).contains("    Retrying ") && stderr_of(&output).contains("waiting"),
            "{fault:?}: a status line says a retry waits, without -v: {}",
            stderr_of(&output)
        );
        assert!(stdout_of(&output).starts_with(&format!("{reference}@sha256:")));
    }
}

#[test]
fn registry_gone_mid_upload_fails_cleanly_without_a_tag() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(mut registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 48 MiB that do not compress: a chunked upload, cut off in its first chunk.
    let big = tiny_elf::with_noise(Machine::X86_64, "big\n", 48 << 20);
    let program = tiny_elf::write(dir.path(), "big", &big);
    drop(big);
    let proxy = FaultProxy::start(registry.port, Fault::GoneAfter(4 << 20));
    let reference = format!("{}/gone/big:1", proxy.host());
    let output = isolated_zeroimage(dir.path())
        .arg(&program)
        .args(["--push", &reference, "--retries", "2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let err = stderr_of(&output);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(&proxy.host()) || err.contains("gone/big"),
        "names the registry: {err}"
    );
    drop(proxy);
    registry.restart();
    let direct = format!("{}/gone/big:1", registry.host());
    let inspect = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{direct}"),
        ])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "a failed push leaves no tag");
    assert!(
        String::from_utf8_lossy(&inspect.stderr).contains("manifest unknown"),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}

#[test]
fn bearer_token_flow_with_a_password_and_with_an_identity_token() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path(), "robot", "s3cret", "refresh-me");
    let realm = tokens.realm();
    let Some(registry) = TestRegistry::start(Setup {
        token: Some((&realm, &tokens.cert)),
        ..Setup::default()
    }) else {
        return;
    };
    let host = registry.host();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "token\n"),
    );

    // Anonymous: the token service refuses, and the error says to log in.
    let home = dir.path().join("anon");
    std::fs::create_dir(&home).unwrap();
    let output = isolated_zeroimage(&home)
        .arg(&program)
        .args(["--push", &format!("{host}/tok/app:1")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains(&format!("{host} requires authentication")),
        "{}",
        stderr_of(&output)
    );

    // User and password from docker's config.json: Basic to the token service, Bearer to the registry.
    let home = dir.path().join("password");
    std::fs::create_dir(&home).unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "robot:s3cret");
    std::fs::write(
        home.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let reference = format!("{host}/tok/app:1");
    let output = run_ok(
        isolated_zeroimage(&home)
            .arg(&program)
            .args(["--push", &reference]),
    );
    let digest = stdout_of(&output)
        .trim()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    assert!(tokens.issued.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // An identity token (OAuth2 refresh token), as `docker login` stores for some registries.
    let home = dir.path().join("identity");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(
        home.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"identitytoken": "refresh-me"}}}}}}"#),
    )
    .unwrap();
    let second = format!("{host}/tok/app:2");
    run_ok(
        isolated_zeroimage(&home)
            .arg(&program)
            .args(["--push", &second]),
    );

    for image in [&reference, &second] {
        let raw = Command::new(&skopeo)
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                "robot:s3cret",
                &format!("docker://{image}"),
            ])
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        assert_eq!(support::file_digest_of_bytes(&stdout_of(&raw)), digest);
    }
}

#[test]
fn cargo_zeroimage_pushes_from_flags_and_from_cargo_toml() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let from_toml = format!("{}/cargo/hello:from-toml", registry.host());
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[package.metadata.zeroimage]\npush = [\"{from_toml}\"]\n"
    ));
    std::fs::write(&manifest, text).unwrap();

    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["-q", "--message-format", "json", "-o"])
            .arg(dir.path().join("hello.tar")),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap();
    assert_eq!(
        summary["pushed"],
        serde_json::json!([format!("{from_toml}@{digest}")])
    );
    assert!(
        Path::new(summary["path"].as_str().unwrap()).is_file(),
        "cargo zeroimage keeps its archive"
    );
    assert_eq!(skopeo_inspect(&skopeo, &from_toml, &[])["Digest"], digest);

    let from_flag = format!("{}/cargo/hello:from-flag", registry.host());
    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["-q", "--push", &from_flag, "-o"])
            .arg(dir.path().join("hello.tar")),
    );
    assert_eq!(
        stdout_of(&output).trim(),
        format!("{from_flag}@{digest}"),
        "the flag replaces the setting"
    );
    let missing = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{from_toml}-x"),
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

#[test]
fn large_layers_go_up_in_chunks() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 40 MiB that do not compress: above the single-request limit, so it goes in 16 MiB chunks.
    let big = tiny_elf::with_noise(Machine::X86_64, "large\n", 40 << 20);
    let program = tiny_elf::write(dir.path(), "large", &big);
    drop(big);
    let reference = format!("{}/big/large:1", registry.host());
    let output = run_ok(isolated_zeroimage(dir.path()).arg(&program).args([
        "--push",
        &reference,
        "--message-format",
        "json",
    ]));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let patches = registry
        .log()
        .lines()
        .filter(|l| {
            l.contains("msg=\"response completed\"") && l.contains("http.request.method=PATCH")
        })
        .count();
    assert!(
        patches >= 3,
        "a 40 MiB layer in 16 MiB chunks: {patches} PATCH requests"
    );
    assert_eq!(
        skopeo_inspect(&skopeo, &reference, &[])["Digest"],
        summary["digest"]
    );
    assert!(
        registry
            .uploaded_blobs()
            .contains(&summary["layer_digest"].as_str().unwrap().to_owned())
    );
}

#[test]
fn archive_on_stdout_is_pushed_and_only_the_archive_reaches_stdout() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "streamed\n"),
    );
    let file = dir.path().join("app.tar");
    support::package(&program, &file, &[]);
    let expected = std::fs::read(&file).unwrap();

    let reference = format!("{}/stream/app:1", registry.host());
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .current_dir(dir.path())
            .arg(&program)
            .args(["-o", "-", "--push", &reference]),
    );
    assert!(
        output.stdout == expected,
        "stdout holds more than the archive"
    );
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!("Pushed {reference}@sha256:")),
        "{err}"
    );
    let manifest_digest = |archive: &Path| {
        support::json_entry(&support::read_tar(archive), "index.json")["manifests"][0]["digest"]
            .clone()
    };
    assert_eq!(
        skopeo_inspect(&skopeo, &reference, &[])["Digest"],
        manifest_digest(&file)
    );

    // cargo zeroimage, likewise.
    let manifest = support::root().join("fixtures/hello/Cargo.toml");
    let built = dir.path().join("hello.tar");
    run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("-q")
            .arg("-o")
            .arg(&built),
    );
    let reference = format!("{}/stream/hello:1", registry.host());
    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .current_dir(dir.path())
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["-o", "-", "--push", &reference]),
    );
    assert!(
        output.stdout == std::fs::read(&built).unwrap(),
        "stdout holds more than the archive"
    );
    assert!(
        stderr_of(&output).contains(&format!("Pushed {reference}@sha256:")),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(
        skopeo_inspect(&skopeo, &reference, &[])["Digest"],
        manifest_digest(&built)
    );
}

fn workspace_manifest() -> std::path::PathBuf {
    support::root().join("fixtures/workspace/Cargo.toml")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout_of(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn workspace_images_are_each_pushed_to_the_repository_or_a_bin_pattern() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .arg("--manifest-path")
            .arg(workspace_manifest())
            .args(["--workspace", "-q", "--message-format", "json"])
            .args(["--repository", &format!("{host}/ws")])
            .arg("-o")
            .arg(dir.path().join("{bin}.tar")),
    );
    let images = json_lines(&output);
    let mut seen = Vec::new();
    for image in &images {
        let (bin, version) = (
            image["bin"].as_str().unwrap(),
            image["version"].as_str().unwrap(),
        );
        let digest = image["digest"].as_str().unwrap();
        let reference = format!("{host}/ws/{bin}:{version}");
        assert_eq!(
            image["pushed"],
            serde_json::json!([format!("{reference}@{digest}")])
        );
        assert_eq!(skopeo_inspect(&skopeo, &reference, &[])["Digest"], digest);
        seen.push(bin.to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["api", "cli", "worker"]);
    // Each image's tag went up once, to its own repository.
    let mut tags: Vec<String> = registry
        .manifest_puts()
        .into_iter()
        .filter(|uri| !uri.contains("/manifests/sha256:"))
        .collect();
    // The registry has no referrers API, so each image's SBOM index goes up
    // under the fallback tag `sha256-<digest>`: one per image.
    let fallback = tags
        .iter()
        .filter(|uri| uri.contains("/manifests/sha256-"))
        .count();
    assert_eq!(fallback, 3, "{tags:?}");
    tags.retain(|uri| !uri.contains("/manifests/sha256-"));
    tags.sort();
    assert_eq!(
        tags,
        [
            "/v2/ws/api/manifests/1.4.0",
            "/v2/ws/cli/manifests/0.3.1",
            "/v2/ws/worker/manifests/1.4.0"
        ]
    );

    // `{bin}` in --push names one repository per binary; without it, two images would collide.
    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .arg("--manifest-path")
            .arg(workspace_manifest())
            .args(["-p", "server", "--bins", "-q"])
            .args(["--push", &format!("{host}/team/{{bin}}:edge")])
            .arg("-o")
            .arg(dir.path().join("{bin}.tar")),
    );
    let mut lines: Vec<String> = stdout_of(&output).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{host}/team/api:edge@sha256:")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("{host}/team/worker:edge@sha256:")),
        "{lines:?}"
    );
    let output = support::cargo_zeroimage()
        .env("DOCKER_CONFIG", dir.path())
        .arg("--manifest-path")
        .arg(workspace_manifest())
        .args(["--workspace", "--push", &format!("{host}/team/one:1"), "-o"])
        .arg(dir.path().join("{bin}.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("error: images `api` and `worker` would both be pushed to")
            && err.contains("put {bin} in the reference"),
        "{err}"
    );
    assert!(
        !registry.log().contains("/v2/team/one/"),
        "nothing was pushed"
    );
}

/// A YAML stream with every shape resolve must keep: comments (one naming a reference), odd quoting,
/// an image that is not ours, a block scalar, CRLF line ends, anchors, several documents.
const DEPLOYMENT: &str = "\
# zeroimage://server/api in a comment stays a comment
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {app: \"api\"}}
spec:
  template:
    spec:
      containers:
        - name: api
          image: zeroimage://server/api   # resolved
          args: ['--listen', \":8080\"]
        - name: proxy
          image: \"nginx:1.25\"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: worker
spec:
  template:
    spec:
      containers:
      - image: 'zeroimage://server/worker'\r
        name: worker\r
      - \"image\": \"zeroimage://server/api\"
        name: api-again
      initContainers:
      - image: &tools zeroimage://tools
        command:
          - |
            echo zeroimage://tools is left alone in text
...
";

#[test]
fn resolve_pins_each_reference_to_a_digest_pushed_once_and_keeps_every_other_byte() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let file = dir.path().join("deploy.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let target_dir = dir.path().join("target");
    let resolve = |input: &str| {
        let mut cmd = support::cargo_zeroimage();
        cmd.env("DOCKER_CONFIG", dir.path())
            .args(["resolve", "-f", input, "--manifest-path"])
            .arg(workspace_manifest())
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(dir.path());
        cmd
    };
    let output =
        run_ok(resolve(file.to_str().unwrap()).args(["--repository", &format!("{host}/resolve")]));
    let resolved = stdout_of(&output);
    let err = stderr_of(&output);

    // Only the references changed, each into REPOSITORY/BIN@DIGEST, quotes and all else kept.
    let before: Vec<&str> = DEPLOYMENT.split_inclusive('\n').collect();
    let after: Vec<&str> = resolved.split_inclusive('\n').collect();
    assert_eq!(before.len(), after.len(), "{resolved}");
    let mut pinned = Vec::new();
    for (line, (old, new)) in before.iter().zip(&after).enumerate() {
        let is_reference = [10, 23, 25, 28].contains(&(line + 1));
        if !is_reference {
            assert_eq!(old, new, "line {} changed", line + 1);
            continue;
        }
        let start = old.find("zeroimage://").unwrap();
        let end = old[start..]
            .find(['\'', '"', ' ', '\r', '\n'])
            .map_or(old.len(), |e| start + e);
        assert_eq!(&new[..start], &old[..start], "line {}", line + 1);
        let digest_end = new[start..]
            .find(['\'', '"', ' ', '\r', '\n'])
            .map_or(new.len(), |e| start + e);
        assert_eq!(&new[digest_end..], &old[end..], "line {}", line + 1);
        pinned.push((
            old[start..end].to_owned(),
            new[start..digest_end].to_owned(),
        ));
    }
    let expect = |reference: &str, repository: &str| -> String {
        let (_, value) = pinned.iter().find(|(r, _)| r == reference).unwrap();
        let prefix = format!("{host}/resolve/{repository}@sha256:");
        assert!(value.starts_with(&prefix), "{value}");
        value.clone()
    };
    let api = expect("zeroimage://server/api", "api");
    let worker = expect("zeroimage://server/worker", "worker");
    let tools = expect("zeroimage://tools", "cli");
    assert_eq!(
        pinned
            .iter()
            .filter(|(r, _)| r == "zeroimage://server/api")
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        [&api, &api],
        "a repeated reference resolves to the same image"
    );
    for image in [&api, &worker, &tools] {
        let (name, digest) = image.split_once('@').unwrap();
        assert_eq!(
            skopeo_inspect(&skopeo, image, &[])["Digest"],
            digest,
            "{name} is in the registry"
        );
    }
    assert!(err.contains("Resolved zeroimage://server/api to"), "{err}");
    // One build and one push per binary, however often it is named.
    assert_eq!(err.matches("    Finished ").count(), 1, "{err}");
    let mut tags: Vec<String> = registry
        .manifest_puts()
        .into_iter()
        .filter(|uri| !uri.contains("/manifests/sha256:"))
        .collect();
    // The registry has no referrers API, so each image's SBOM index goes up
    // under the fallback tag `sha256-<digest>`: one per image.
    let fallback = tags
        .iter()
        .filter(|uri| uri.contains("/manifests/sha256-"))
        .count();
    assert_eq!(fallback, 3, "{tags:?}");
    tags.retain(|uri| !uri.contains("/manifests/sha256-"));
    tags.sort();
    assert_eq!(
        tags,
        [
            "/v2/resolve/api/manifests/1.4.0",
            "/v2/resolve/cli/manifests/0.3.1",
            "/v2/resolve/worker/manifests/1.4.0"
        ]
    );

    // Standard input gives the same text; ZEROIMAGE_REPOSITORY names the repository.
    let output = run_ok(
        resolve("-")
            .env("ZEROIMAGE_REPOSITORY", format!("{host}/resolve"))
            .stdin(std::fs::File::open(&file).unwrap()),
    );
    assert_eq!(stdout_of(&output), resolved);
}

/// A keychain a library user hands in: it records which registries it was asked about.
struct FixedKeychain {
    username: &'static str,
    password: &'static str,
    asked: std::sync::Mutex<Vec<String>>,
}

impl zeroimage::Keychain for FixedKeychain {
    fn credential(
        &self,
        registry: &str,
        _: &zeroimage::Context<'_>,
    ) -> zeroimage::Result<Option<zeroimage::Credential>> {
        self.asked.lock().unwrap().push(registry.to_owned());
        Ok(Some(zeroimage::Credential::Basic {
            username: self.username.to_owned(),
            password: self.password.to_owned(),
        }))
    }
}

/// A push through the library takes its credentials from the keychain in its context: no config file,
/// no credential helper, no change to PATH or HOME. Without it the same push is refused.
#[test]
fn a_push_uses_the_keychain_its_context_is_given() {
    use zeroimage::error::registry::RegistryErrorKind;
    use zeroimage::job::package::Input;
    use zeroimage::job::{Job, JobOptions};
    use zeroimage::registry::client::ClientOptions;
    use zeroimage::registry::push::PushOptions;
    use zeroimage::report::Silent;
    use zeroimage::{Context, Error};

    let Some(registry) = TestRegistry::start(Setup {
        user: Some(("keyed", "from the keychain")),
        tls: true,
        token: None,
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "keychain\n"),
    );
    let host = registry.host();
    let job = Job {
        inputs: vec![Input {
            path: program,
            platform: Default::default(),
        }],
        options: JobOptions {
            push: vec![format!("{host}/keyed/app:1").parse().unwrap()],
            push_options: PushOptions {
                client: ClientOptions {
                    ca_file: Some(registry.ca_file()),
                    ..ClientOptions::default()
                },
                ..PushOptions::default()
            },
            ..JobOptions::default()
        },
    };
    let keychain = FixedKeychain {
        username: "keyed",
        password: "from the keychain",
        asked: Default::default(),
    };
    let outcome = job
        .run(&Context::new(&Silent).with_keychain(&keychain))
        .unwrap();
    assert_eq!(*keychain.asked.lock().unwrap(), [host]);
    assert_eq!(outcome.pushed.len(), 1);
    assert_eq!(outcome.pushed[0].digest, outcome.summary.digest.to_string());
    let puts = registry.manifest_puts();
    assert!(
        puts.iter().any(|uri| uri == "/v2/keyed/app/manifests/1"),
        "{puts:?}"
    );

    // The default keychain has nothing for this registry: the same push is refused.
    let error = job.run(&Context::new(&Silent)).unwrap_err();
    assert!(
        matches!(&error, Error::Registry(e) if e.kind == RegistryErrorKind::Unauthorized),
        "{error}"
    );
}
