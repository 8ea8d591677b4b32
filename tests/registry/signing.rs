//! Signing pushes with a key, checked by implementations that are not ours: the `.sig` manifest is
//! read with plain HTTP and its signature checked with `openssl dgst`, the `.att` envelopes with
//! Python's `cryptography` over DSSE's pre-authentication encoding; then `zeroimage verify` and
//! `--from-verify-key` against what the registry holds, and every tampering refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::support;
use support::registry::{Setup, TestRegistry};
use support::{X86_64_MUSL, isolated_zeroimage, run_ok, stderr_of, stdout_of};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A P-256 key pair made by openssl: (private PKCS#8 PEM, public PEM).
fn openssl_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    support::sigstore::openssl_key(Path::new("openssl"), dir, name)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET http://HOST/v2/PATH` with `accept`: the status and the body.
fn get(host: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let mut response = agent()
        .get(&format!("http://{host}/v2/{path}"))
        .header("Accept", accept)
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (status, body)
}

fn get_json(host: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(host, path, OCI_MANIFEST);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// Uploads `bytes` as a blob of `repository`; returns its digest.
fn put_blob(host: &str, repository: &str, bytes: &[u8]) -> String {
    let digest = zeroimage::oci::Digest::of(bytes).to_string();
    let response = agent()
        .post(&format!("http://{host}/v2/{repository}/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{host}{location}")
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let response = agent()
        .put(&format!("{url}{separator}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .send(bytes)
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    digest
}

fn put_manifest(host: &str, repository: &str, reference: &str, bytes: &[u8]) -> u16 {
    agent()
        .put(&format!(
            "http://{host}/v2/{repository}/manifests/{reference}"
        ))
        .header("Content-Type", OCI_MANIFEST)
        .send(bytes)
        .unwrap()
        .status()
        .as_u16()
}

/// Copies the config and layers `manifest` names from one repository to another.
fn copy_blobs(host: &str, from: &str, to: &str, manifest: &[u8]) {
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    for blob in std::iter::once(&manifest["config"]).chain(layers) {
        let digest = blob["digest"].as_str().unwrap();
        let (status, bytes) = get(host, &format!("{from}/blobs/{digest}"), "*/*");
        assert_eq!(status, 200);
        put_blob(host, to, &bytes);
    }
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

/// Builds the hello image and pushes it to `reference` with `extra` flags; returns its digest.
fn push_hello(dir: &Path, reference: &str, extra: &[&str]) -> String {
    let hello = support::hello_fixture(X86_64_MUSL).unwrap();
    let output = run_ok(
        isolated_zeroimage(dir)
            .arg(&hello)
            .args(["--push", reference, "--message-format", "json"])
            .args(extra),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    summary["digest"].as_str().unwrap().to_owned()
}

fn verify(dir: &Path, key: &Path, reference: &str, extra: &[&str]) -> std::process::Output {
    isolated_zeroimage(dir)
        .arg("verify")
        .arg("--key")
        .arg(key)
        .arg(reference)
        .args(extra)
        .output()
        .unwrap()
}

/// Checks a DSSE envelope with Python's `cryptography` over the pre-authentication encoding; returns
/// the statement's predicate type and first subject digest.
fn python_dsse(envelope: &Path, public: &Path) -> Option<(String, String)> {
    const CHECK: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
envelope = json.load(open(sys.argv[1]))
key = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
payload = base64.b64decode(envelope["payload"])
kind = envelope["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))
statement = json.loads(payload)
print(statement["predicateType"])
print(statement["subject"][0]["digest"]["sha256"])
"#;
    let python = support::sbom_tools::venv().join("bin/python3");
    let python = support::peer_at(
        "python3 with cryptography (scripts/test)",
        python.is_file().then_some(python),
    )?;
    let output = Command::new(python)
        .args(["-c", CHECK])
        .arg(envelope)
        .arg(public)
        .output()
        .unwrap();
    if !output.status.success() {
        return Some((String::new(), stderr_of(&output)));
    }
    let text = stdout_of(&output);
    let mut lines = text.lines();
    Some((
        lines.next().unwrap_or_default().to_owned(),
        lines.next().unwrap_or_default().to_owned(),
    ))
}

#[test]
fn a_signed_push_is_checked_by_openssl_and_python_and_by_verify() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() || support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (key, public) = openssl_key(dir.path(), "one");
    let (_, other) = openssl_key(dir.path(), "two");
    let reference = format!("{host}/signed/hello:1.0");
    let digest = push_hello(
        dir.path(),
        &reference,
        &[
            "--sign",
            key.to_str().unwrap(),
            "--sbom",
            "spdx",
            "--provenance",
        ],
    );

    // The .sig manifest, read with plain HTTP: one simple-signing layer naming this digest and
    // repository, signed by the key as openssl sees it.
    let manifest = get_json(
        &host,
        &format!("signed/hello/manifests/{}", sig_tag(&digest)),
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = &layers[0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let (status, payload) = get(
        &host,
        &format!("signed/hello/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    );
    assert_eq!(status, 200);
    let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        parsed["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        parsed["critical"]["identity"]["docker-reference"],
        format!("{host}/signed/hello")
    );
    assert_eq!(
        parsed["critical"]["type"],
        "cosign container image signature"
    );
    let signature = BASE64
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let payload_file = dir.path().join("payload.json");
    let signature_file = dir.path().join("signature.der");
    std::fs::write(&payload_file, &payload).unwrap();
    std::fs::write(&signature_file, &signature).unwrap();
    let openssl = |public: &Path| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(public)
            .arg("-signature")
            .arg(&signature_file)
            .arg(&payload_file)
            .output()
            .unwrap()
    };
    let checked = openssl(&public);
    assert!(checked.status.success(), "{}", stderr_of(&checked));
    assert_eq!(stdout_of(&checked).trim(), "Verified OK");
    assert!(
        !openssl(&other).status.success(),
        "another key must not verify it"
    );

    // The .att envelopes (the SBOM and the provenance), checked by Python over DSSE's PAE.
    let attestations = get_json(
        &host,
        &format!(
            "signed/hello/manifests/sha256-{}.att",
            digest.trim_start_matches("sha256:")
        ),
    );
    let mut predicates = Vec::new();
    for layer in attestations["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
        let (_, envelope) = get(
            &host,
            &format!("signed/hello/blobs/{}", layer["digest"].as_str().unwrap()),
            "*/*",
        );
        let file = dir.path().join("envelope.json");
        std::fs::write(&file, &envelope).unwrap();
        let Some((predicate, subject)) = python_dsse(&file, &public) else {
            return;
        };
        assert_eq!(subject, digest.trim_start_matches("sha256:"), "{predicate}");
        assert_eq!(layer["annotations"]["predicateType"], predicate.as_str());
        predicates.push(predicate);
        let (failed, _) = python_dsse(&file, &other).unwrap();
        assert!(failed.is_empty(), "another key must not verify an envelope");
    }
    predicates.sort();
    assert_eq!(
        predicates,
        [
            "https://slsa.dev/provenance/v1",
            "https://spdx.dev/Document"
        ]
    );

    // zeroimage verify: a line per signature with the right key, one error line with another.
    let ok = verify(dir.path(), &public, &reference, &["--attestations"]);
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    let lines = stdout_of(&ok);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.contains(&format!("cosign signature of {digest}")),
        "{lines}"
    );
    let refused = verify(dir.path(), &other, &reference, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = stderr_of(&refused);
    assert!(stderr.contains("no signature by key"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stdout_of(&refused).is_empty());
}

#[test]
fn signatures_are_merged_never_lost_and_tampering_is_refused() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() || support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (one, one_pub) = openssl_key(dir.path(), "one");
    let (two, two_pub) = openssl_key(dir.path(), "two");
    let reference = format!("{host}/merge/hello:1.0");
    let digest = push_hello(dir.path(), &reference, &[]);
    let unsigned = verify(dir.path(), &one_pub, &reference, &[]);
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(
        stderr_of(&unsigned).contains("no signature is attached"),
        "{}",
        stderr_of(&unsigned)
    );

    // Two keys sign the image already in the registry; signing again adds nothing.
    for key in [&one, &two, &one] {
        let output = run_ok(
            isolated_zeroimage(dir.path())
                .arg("sign")
                .arg("--key")
                .arg(key)
                .arg(&reference),
        );
        assert_eq!(stdout_of(&output).trim(), format!("{reference}@{digest}"));
    }
    let sig = get_json(
        &host,
        &format!("merge/hello/manifests/{}", sig_tag(&digest)),
    );
    assert_eq!(sig["layers"].as_array().unwrap().len(), 2, "{sig}");
    for public in [&one_pub, &two_pub] {
        let output = verify(dir.path(), public, &reference, &[]);
        assert!(output.status.success(), "{}", stderr_of(&output));
    }

    // The same signatures copied beside another image: they cover another digest.
    let other_digest = push_hello(
        dir.path(),
        &format!("{host}/merge/other:1.0"),
        &["--env", "A=1"],
    );
    assert_ne!(other_digest, digest);
    let (_, sig_bytes) = get(
        &host,
        &format!("merge/hello/manifests/{}", sig_tag(&digest)),
        OCI_MANIFEST,
    );
    copy_blobs(&host, "merge/hello", "merge/other", &sig_bytes);
    assert_eq!(
        put_manifest(&host, "merge/other", &sig_tag(&other_digest), &sig_bytes),
        201
    );
    let copied = verify(
        dir.path(),
        &one_pub,
        &format!("{host}/merge/other:1.0"),
        &[],
    );
    assert_eq!(copied.status.code(), Some(1));
    let stderr = stderr_of(&copied);
    assert!(
        stderr.contains(&format!("covers {digest}, not {other_digest}")),
        "{stderr}"
    );

    // The image and its signatures copied to another repository: they name the first one.
    let (_, top) = get(
        &host,
        &format!("merge/hello/manifests/{digest}"),
        OCI_MANIFEST,
    );
    copy_blobs(&host, "merge/hello", "moved/hello", &top);
    copy_blobs(&host, "merge/hello", "moved/hello", &sig_bytes);
    let sig_json: serde_json::Value = serde_json::from_slice(&sig_bytes).unwrap();
    assert_eq!(put_manifest(&host, "moved/hello", "1.0", &top), 201);
    assert_eq!(
        put_manifest(&host, "moved/hello", &sig_tag(&digest), &sig_bytes),
        201
    );
    let moved = verify(
        dir.path(),
        &one_pub,
        &format!("{host}/moved/hello:1.0"),
        &[],
    );
    assert_eq!(moved.status.code(), Some(1));
    assert!(
        stderr_of(&moved).contains(&format!("names repository {host}/merge/hello")),
        "{}",
        stderr_of(&moved)
    );

    // A payload changed after signing (the signature kept): no signature by the key covers it.
    let layer = &sig_json["layers"][0];
    let (_, payload) = get(
        &host,
        &format!("merge/hello/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    );
    let tampered = String::from_utf8(payload).unwrap().replace(
        "cosign container image signature",
        "cosign container image signaturE",
    );
    let tampered_digest = put_blob(&host, "merge/hello", tampered.as_bytes());
    let mut forged = sig_json.clone();
    forged["layers"] = serde_json::json!([{
        "mediaType": layer["mediaType"],
        "digest": tampered_digest,
        "size": tampered.len(),
        "annotations": layer["annotations"],
    }]);
    let diff_config = serde_json::json!({"architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [tampered_digest]}});
    let config_bytes = serde_json::to_vec(&diff_config).unwrap();
    forged["config"]["digest"] = put_blob(&host, "merge/hello", &config_bytes).into();
    forged["config"]["size"] = config_bytes.len().into();
    assert_eq!(
        put_manifest(
            &host,
            "merge/hello",
            &sig_tag(&digest),
            &serde_json::to_vec(&forged).unwrap()
        ),
        201
    );
    let forged_out = verify(dir.path(), &one_pub, &reference, &[]);
    assert_eq!(forged_out.status.code(), Some(1));
    assert!(
        stderr_of(&forged_out).contains("no signature by key"),
        "{}",
        stderr_of(&forged_out)
    );

    // A tag of 10,000 layers: refused by verify and by sign (never overwritten), in one line.
    let mut flood = forged.clone();
    flood["layers"] = serde_json::Value::Array(vec![forged["layers"][0].clone(); 10_000]);
    assert_eq!(
        put_manifest(
            &host,
            "merge/hello",
            &sig_tag(&digest),
            &serde_json::to_vec(&flood).unwrap()
        ),
        201
    );
    let flooded = verify(dir.path(), &one_pub, &reference, &[]);
    assert_eq!(flooded.status.code(), Some(1));
    let stderr = stderr_of(&flooded);
    assert!(stderr.contains("10000 layers; at most 1000"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let sign = isolated_zeroimage(dir.path())
        .arg("sign")
        .arg("--key")
        .arg(&one)
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(sign.status.code(), Some(1));
    assert!(
        stderr_of(&sign).contains("10000 layers"),
        "{}",
        stderr_of(&sign)
    );
}

#[test]
fn from_verify_key_refuses_an_unsigned_or_wrongly_signed_base_before_building() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (key, public) = openssl_key(dir.path(), "base");
    let (_, other) = openssl_key(dir.path(), "other");
    let signed = format!("{host}/bases/signed:1");
    let unsigned = format!("{host}/bases/unsigned:1");
    push_hello(dir.path(), &signed, &["--sign", key.to_str().unwrap()]);
    push_hello(dir.path(), &unsigned, &[]);
    let build = |base: &str, public: &Path, out: &Path| {
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .args(["--from", base, "--entrypoint-path", "/app/hello", "-o"])
            .arg(out)
            .arg("--from-verify-key")
            .arg(public)
            .output()
            .unwrap()
    };
    let out = dir.path().join("ok.tar");
    let accepted = build(&signed, &public, &out);
    assert!(accepted.status.success(), "{}", stderr_of(&accepted));
    assert!(
        stderr_of(&accepted).contains("Verified"),
        "{}",
        stderr_of(&accepted)
    );
    assert!(out.is_file());
    for (base, key, why) in [
        (&unsigned, &public, "no signature is attached"),
        (&signed, &other, "no signature by key"),
    ] {
        let out = dir.path().join("refused.tar");
        let refused = build(base, key, &out);
        assert_eq!(refused.status.code(), Some(1));
        let stderr = stderr_of(&refused);
        assert!(
            stderr.contains("--from-verify-key") && stderr.contains(why),
            "{stderr}"
        );
        assert!(!out.exists(), "nothing is written for a refused base");
    }
}

#[test]
fn an_archive_named_for_a_registry_carries_its_signatures_and_push_publishes_them() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (key, public) = openssl_key(dir.path(), "carry");
    let (_, other) = openssl_key(dir.path(), "other");
    let archive = dir.path().join("app.tar");
    let name = format!("{host}/carried/hello:1.0");
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .args([
                "-t",
                &name,
                "--sbom",
                "spdx",
                "--message-format",
                "json",
                "-o",
            ])
            .arg(&archive)
            .arg("--sign")
            .arg(&key),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap().to_owned();
    let signatures = summary["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2, "{summary}");
    assert!(
        signatures
            .iter()
            .all(|s| s["repository"] == format!("{host}/carried/hello").as_str()),
        "{summary}"
    );
    // Only the SBOM is written beside the archive; nothing went to the registry yet.
    assert_eq!(
        summary["attachments"].as_array().unwrap().len(),
        1,
        "{summary}"
    );
    assert_eq!(get(&host, "carried/hello/tags/list", "*/*").0, 404);
    support::validate::archive(&archive);

    let ok = verify(
        dir.path(),
        &public,
        archive.to_str().unwrap(),
        &["--attestations"],
    );
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    assert_eq!(stdout_of(&ok).lines().count(), 2, "{}", stdout_of(&ok));
    let refused = verify(dir.path(), &other, archive.to_str().unwrap(), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));

    // zeroimage push, with no key: the signatures go into their tags, where openssl checks them.
    run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(&name),
    );
    let sig = get_json(
        &host,
        &format!("carried/hello/manifests/{}", sig_tag(&digest)),
    );
    let layer = &sig["layers"][0];
    let (_, payload) = get(
        &host,
        &format!("carried/hello/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    );
    let payload_file = dir.path().join("payload.json");
    let signature_file = dir.path().join("signature.der");
    std::fs::write(&payload_file, &payload).unwrap();
    std::fs::write(
        &signature_file,
        BASE64
            .decode(
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let checked = run_ok(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&public)
            .arg("-signature")
            .arg(&signature_file)
            .arg(&payload_file),
    );
    assert_eq!(stdout_of(&checked).trim(), "Verified OK");
    let pushed = verify(dir.path(), &public, &name, &["--attestations"]);
    assert!(pushed.status.success(), "{}", stderr_of(&pushed));
    // The referrers tag lists the SBOM only: the signatures are in their own tags.
    let (status, referrers) = get(
        &host,
        &format!(
            "carried/hello/manifests/sha256-{}",
            digest.trim_start_matches("sha256:")
        ),
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(status, 200);
    let referrers: serde_json::Value = serde_json::from_slice(&referrers).unwrap();
    assert_eq!(
        referrers["manifests"].as_array().unwrap().len(),
        1,
        "{referrers}"
    );

    // Pushed elsewhere, they would not verify: they are left out, with a warning.
    let elsewhere = run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(format!("{host}/elsewhere/hello:1.0")),
    );
    let stderr = stderr_of(&elsewhere);
    assert!(
        stderr.contains(&format!(
            "name {host}/carried/hello, not {host}/elsewhere/hello"
        )),
        "{stderr}"
    );
    assert_eq!(
        get(
            &host,
            &format!("elsewhere/hello/manifests/{}", sig_tag(&digest)),
            OCI_MANIFEST
        )
        .0,
        404
    );
    // zeroimage push --sign signs there.
    let elsewhere = format!("{host}/elsewhere/hello:1.0");
    run_ok(
        isolated_zeroimage(dir.path())
            .arg("push")
            .arg(&archive)
            .arg(&elsewhere)
            .arg("--sign")
            .arg(&key),
    );
    let signed = verify(dir.path(), &public, &elsewhere, &[]);
    assert!(signed.status.success(), "{}", stderr_of(&signed));
}

#[test]
fn a_wrong_password_is_refused_before_anything_is_built() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("cosign");
    run_ok(
        isolated_zeroimage(dir.path())
            .arg("generate-key-pair")
            .arg("--output-key-prefix")
            .arg(&prefix)
            .env("COSIGN_PASSWORD", "right horse"),
    );
    let key = dir.path().join("cosign.key");
    let archive = dir.path().join("app.tar");
    let build = |password: &str| {
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .args(["-t", "registry.example.com/app:1", "-o"])
            .arg(&archive)
            .arg("--sign")
            .arg(&key)
            .env("COSIGN_PASSWORD", password)
            .output()
            .unwrap()
    };
    let refused = build("wrong horse");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = stderr_of(&refused);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cosign.key"), "{stderr}");
    assert!(!stderr.contains("Packaging"), "{stderr}");
    assert!(!archive.exists());
    let accepted = build("right horse");
    assert!(accepted.status.success(), "{}", stderr_of(&accepted));
    assert!(archive.is_file());
}

#[test]
fn cargo_zeroimage_signs_and_checks_its_base_from_cargo_toml() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() || support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    support::copy_fixture("hello", dir.path());
    let keys = dir.path().join("hello/keys");
    std::fs::create_dir(&keys).unwrap();
    let (key, public) = openssl_key(&keys, "release");
    let (_, stranger) = openssl_key(&keys, "stranger");
    let base = format!("{host}/cargo/base:1");
    push_hello(dir.path(), &base, &["--sign", key.to_str().unwrap()]);
    let manifest = dir.path().join("hello/Cargo.toml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let pushed = format!("{host}/cargo/signed:1");
    let write_settings = |verify_key: &str| {
        std::fs::write(
            &manifest,
            format!(
                "{original}\n[package.metadata.zeroimage]\npush = [\"{pushed}\"]\n\
                 sign-key = \"keys/release.pem\"\nsignature-format = \"both\"\n\
                 from = \"{base}\"\nfrom-verify-key = \"keys/{verify_key}\"\n\
                 entrypoint-path = \"/app/hello\"\n"
            ),
        )
        .unwrap();
    };
    let build = || {
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--message-format", "json", "-o"])
            .arg(dir.path().join("hello.tar"))
            .output()
            .unwrap()
    };
    write_settings("stranger.pub");
    let _ = &stranger;
    let refused = build();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = stderr_of(&refused);
    assert!(stderr.contains("no signature by key"), "{stderr}");
    assert!(
        get(&host, "cargo/signed/tags/list", "*/*").0 == 404,
        "nothing was pushed"
    );

    write_settings("release.pub");
    let output = build();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let formats: Vec<&str> = summary["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["format"].as_str().unwrap())
        .collect();
    assert!(
        formats.contains(&"cosign") && formats.contains(&"bundle"),
        "{summary}"
    );
    let ok = verify(dir.path(), &public, &pushed, &["--attestations"]);
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    let lines = stdout_of(&ok);
    assert!(lines.contains("bundle"), "{lines}");
    assert!(lines.contains("cosign signature"), "{lines}");
}

#[test]
fn a_signature_the_registry_refuses_fails_the_push_before_any_tag_moves() {
    use support::fake_registry::{self, Behaviour};
    use support::http::{Reply, TestServer};
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let accept = fake_registry::handler(Behaviour::default());
    let registry = TestServer::start(move |request| {
        if request.method == "PUT" && request.path().ends_with(".sig") {
            return Reply::status(403)
                .header("Content-Type", "application/json")
                .body(
                    r#"{"errors":[{"code":"DENIED","message":"signatures are not allowed here"}]}"#,
                );
        }
        accept(request)
    });
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = openssl_key(dir.path(), "key");
    let output = isolated_zeroimage(dir.path())
        .arg(&hello)
        .args([
            "--push",
            &format!("{}/team/app:1.0", registry.host()),
            "--sign",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("signing the image in"), "{stderr}");
    assert!(
        stderr.contains("signatures are not allowed here"),
        "{stderr}"
    );
    let puts: Vec<String> = registry
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path().contains("/manifests/"))
        .map(|r| r.path().to_owned())
        .collect();
    assert!(puts.iter().any(|p| p.ends_with(".sig")), "{puts:?}");
    assert!(
        !puts.iter().any(|p| p.ends_with("/manifests/1.0")),
        "the tag was not moved: {puts:?}"
    );
}

#[test]
fn a_huge_signature_manifest_is_refused_within_bounds() {
    use support::http::{Reply, TestServer};
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    run_ok(
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .arg("-o")
            .arg(&archive),
    );
    let entries = support::read_tar(&archive);
    let index = support::json_entry(&entries, "index.json");
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest = entries[&support::blob_name(&index["manifests"][0]["digest"])].clone();
    let config_digest =
        serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["config"]["digest"].clone();
    let config = entries[&support::blob_name(&config_digest)].clone();
    let config_path = format!("/blobs/{}", config_digest.as_str().unwrap());
    let sig_path = format!("/manifests/{}", sig_tag(&digest));
    // A signature whose annotation alone is 100 MB: far past what is read of a manifest.
    let huge = {
        let mut body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"annotations":{"dev.cosignproject.cosign/signature":""#.to_vec();
        body.resize(body.len() + 100_000_000, b'A');
        body.extend_from_slice(br#""}}]}"#);
        std::sync::Arc::new(body)
    };
    let registry = TestServer::start(move |request| {
        let path = request.path();
        if path == "/v2/" {
            Reply::status(200).body("{}")
        } else if path.ends_with("/manifests/1.0")
            || path.ends_with(&format!("/manifests/{digest}"))
        {
            Reply::status(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.clone())
        } else if path.ends_with(&config_path) {
            Reply::status(200).body(config.clone())
        } else if path.ends_with(&sig_path) {
            Reply::status(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(huge.as_slice().to_vec())
        } else {
            Reply::status(404)
        }
    });
    let (_, public) = openssl_key(dir.path(), "key");
    let output = Command::new("prlimit")
        .arg("--as=1073741824")
        .arg(support::bin_dir().join("zeroimage"))
        .args(["verify", "--key"])
        .arg(&public)
        .arg(format!("{}/team/app:1.0", registry.host()))
        .env("HOME", dir.path())
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("larger than 4 MiB"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn bundles_in_the_registry_verify_with_sigstore_js() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let Some((node, modules)) = support::sigstore::sigstore_verify() else {
        return;
    };
    if support::hello_fixture(X86_64_MUSL).is_none() || support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (key, public) = openssl_key(dir.path(), "bundle");
    let (_, other) = openssl_key(dir.path(), "other");
    let reference = format!("{host}/bundled/hello:1.0");
    let digest = push_hello(
        dir.path(),
        &reference,
        &[
            "--sign",
            key.to_str().unwrap(),
            "--signature-format",
            "bundle",
            "--sbom",
            "spdx",
        ],
    );
    // No cosign tag: the signatures are referrers, listed (distribution 2.8) in the fallback tag.
    assert_eq!(
        get(
            &host,
            &format!("bundled/hello/manifests/{}", sig_tag(&digest)),
            OCI_MANIFEST
        )
        .0,
        404
    );
    let (status, index) = get(
        &host,
        &format!(
            "bundled/hello/manifests/sha256-{}",
            digest.trim_start_matches("sha256:")
        ),
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let (_, image_manifest) = get(
        &host,
        &format!("bundled/hello/manifests/{digest}"),
        OCI_MANIFEST,
    );
    let artifact = dir.path().join("manifest.json");
    std::fs::write(&artifact, &image_manifest).unwrap();
    let mut contents = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        if entry["artifactType"] != "application/vnd.dev.sigstore.bundle.v0.3+json" {
            continue;
        }
        let content = entry["annotations"]["dev.sigstore.bundle.content"]
            .as_str()
            .unwrap()
            .to_owned();
        let manifest = get_json(
            &host,
            &format!(
                "bundled/hello/manifests/{}",
                entry["digest"].as_str().unwrap()
            ),
        );
        let (_, bundle) = get(
            &host,
            &format!(
                "bundled/hello/blobs/{}",
                manifest["layers"][0]["digest"].as_str().unwrap()
            ),
            "*/*",
        );
        let file = dir.path().join(format!("{content}.sigstore.json"));
        std::fs::write(&file, &bundle).unwrap();
        let signed = (content == "message-signature").then_some(artifact.as_path());
        let ok = support::sigstore::node_verify(&node, &modules, &file, &public, signed);
        assert!(
            ok.status.success(),
            "{content}: {}{}",
            stdout_of(&ok),
            stderr_of(&ok)
        );
        let refused = support::sigstore::node_verify(&node, &modules, &file, &other, signed);
        assert!(
            !refused.status.success(),
            "{content}: another key must not verify it"
        );
        contents.push(content);
    }
    contents.sort();
    assert_eq!(contents, ["dsse-envelope", "message-signature"]);
    let ok = verify(dir.path(), &public, &reference, &["--attestations"]);
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    assert_eq!(stdout_of(&ok).lines().count(), 2, "{}", stdout_of(&ok));
}

#[test]
fn a_multi_platform_push_signs_the_index_and_each_platform() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let (Some(amd64), Some(arm64)) = (
        support::hello_fixture(X86_64_MUSL),
        support::hello_fixture(support::AARCH64_MUSL),
    ) else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (key, public) = openssl_key(dir.path(), "multi");
    let reference = format!("{host}/multi/hello:1");
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg("--platform-binary")
            .arg(format!("linux/amd64={}", amd64.display()))
            .arg("--platform-binary")
            .arg(format!("linux/arm64={}", arm64.display()))
            .args(["--push", &reference, "--message-format", "json", "--sign"])
            .arg(&key),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut digests = vec![summary["digest"].as_str().unwrap().to_owned()];
    for platform in summary["platforms"].as_array().unwrap() {
        digests.push(platform["manifest_digest"].as_str().unwrap().to_owned());
    }
    assert_eq!(digests.len(), 3, "{summary}");
    for digest in &digests {
        let sig = get_json(&host, &format!("multi/hello/manifests/{}", sig_tag(digest)));
        let (_, payload) = get(
            &host,
            &format!(
                "multi/hello/blobs/{}",
                sig["layers"][0]["digest"].as_str().unwrap()
            ),
            "*/*",
        );
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            payload["critical"]["image"]["docker-manifest-digest"],
            digest.as_str()
        );
        // Each platform verifies by its own digest too.
        let ok = verify(
            dir.path(),
            &public,
            &format!("{host}/multi/hello@{digest}"),
            &[],
        );
        assert!(ok.status.success(), "{digest}: {}", stderr_of(&ok));
    }
}

#[test]
fn an_oci_layout_keeps_the_signatures_and_verify_reads_them_there() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(dir.path(), "layout");
    let (_, other) = openssl_key(dir.path(), "other");
    let layout = dir.path().join("oci");
    run_ok(
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .args([
                "-t",
                "registry.example.com/team/app:1.0",
                "--sbom",
                "spdx",
                "-o",
            ])
            .arg(dir.path().join("app.tar"))
            .arg("--oci-layout")
            .arg(&layout)
            .arg("--sign")
            .arg(&key),
    );
    support::validate::layout_dir(&layout);
    let target = format!("{}:registry.example.com/team/app:1.0", layout.display());
    let ok = verify(dir.path(), &public, &target, &["--attestations"]);
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    assert_eq!(stdout_of(&ok).lines().count(), 2, "{}", stdout_of(&ok));
    assert!(
        stdout_of(&ok).contains("in registry.example.com/team/app"),
        "{}",
        stdout_of(&ok)
    );
    let refused = verify(dir.path(), &other, &target, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
}

#[test]
fn resolve_signs_every_image_it_pushes() {
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    if support::peer("openssl").is_none() || !support::target_installed(X86_64_MUSL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    support::copy_fixture("hello", dir.path());
    let (key, public) = openssl_key(dir.path(), "resolve");
    let yaml = dir.path().join("deploy.yaml");
    std::fs::write(&yaml, "spec:\n  image: zeroimage://hello\n").unwrap();
    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .args(["resolve", "-f"])
            .arg(&yaml)
            .arg("--manifest-path")
            .arg(dir.path().join("hello/Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.path().join("target"))
            .args(["--repository", &format!("{host}/resolved"), "--sign"])
            .arg(&key),
    );
    let resolved = stdout_of(&output);
    let image = resolved
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .unwrap()
        .to_owned();
    assert!(
        image.starts_with(&format!("{host}/resolved/hello@sha256:")),
        "{resolved}"
    );
    let ok = verify(dir.path(), &public, &image, &[]);
    assert!(ok.status.success(), "{}", stderr_of(&ok));
}
