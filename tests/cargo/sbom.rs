//! SBOMs and provenance: what they list (real cargo builds of `fixtures/sbomdeps` and
//! `fixtures/workspace`, a cargo-auditable binary, a Go binary), checked by the real validators
//! (spdx-tools, the CycloneDX 1.6 schema, the SLSA v1 schema); how they are attached (the archive's
//! `referrers.json`, files beside it, the loopback registry's fallback tag, a registry with the
//! referrers API); and that every consumer of the archive behaves as before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;
use serde_json::Value;
use support::registry::{Setup, TestRegistry};
use support::sbom_tools::{validate_cyclonedx, validate_provenance, validate_spdx};
use support::tiny_elf::{self, Machine, Shape};
use support::{
    X86_64_MUSL, cargo_zeroimage, read_tar, root, run_ok, stderr_of, stdout_json, stdout_of,
    zeroimage,
};
use zeroimage::sbom::Component;

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `cargo zeroimage` on `fixtures/NAME`, its archive at `dir/NAME.tar`, with `extra` arguments.
fn cargo_fixture(name: &str, dir: &Path, extra: &[&str]) -> Value {
    let output = run_ok(
        cargo_zeroimage()
            .arg("--manifest-path")
            .arg(support::fixture_manifest(name))
            .arg("-o")
            .arg(dir.join(format!("{name}.tar")))
            .args(["--message-format", "json", "-q"])
            .args(extra),
    );
    stdout_json(&output)
}

/// Checksums by (name, version) from a Cargo.lock.
fn lock_checksums(lock: &Path) -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(lock).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").and_then(|s| s.as_str()) == Some(CRATES_IO))
        .map(|p| {
            (
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["version"].as_str().unwrap().to_owned(),
                ),
                p["checksum"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The SPDX packages by name: (version, purl, sha256, comment).
fn spdx_packages(doc: &Value) -> BTreeMap<String, Value> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

fn purl_of(package: &Value) -> Option<String> {
    package["externalRefs"]
        .as_array()?
        .iter()
        .find(|r| r["referenceType"] == "purl")
        .map(|r| r["referenceLocator"].as_str().unwrap().to_owned())
}

fn relationships(doc: &Value) -> Vec<(String, String, String)> {
    let ids: BTreeMap<&str, &str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["SPDXID"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let name = |id: &Value| {
        let id = id.as_str().unwrap();
        ids.get(id).copied().unwrap_or(id).to_owned()
    };
    doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                name(&r["spdxElementId"]),
                r["relationshipType"].as_str().unwrap().to_owned(),
                name(&r["relatedSpdxElement"]),
            )
        })
        .collect()
}

#[test]
fn cargo_sbom_lists_exactly_the_crates_linked_for_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = cargo_fixture("sbomdeps", dir.path(), &["--sbom", "both"]);
    let spdx_path = dir.path().join("sbomdeps.spdx.json");
    let cdx_path = dir.path().join("sbomdeps.cdx.json");
    validate_spdx(&spdx_path);
    validate_cyclonedx(&cdx_path);
    let doc = json(&spdx_path);
    let packages = spdx_packages(&doc);
    let names: Vec<&str> = packages.keys().map(String::as_str).collect();
    // The image, the program, the crate, what it links and builds with, and the compiler: the
    // Windows-only fnv and the optional hex (its feature is off) are absent.
    assert_eq!(
        names,
        [
            "/sbomdeps",
            "docker.io/library/sbomdeps",
            "itoa",
            "rustc",
            "sbomdeps",
            "version_check"
        ]
    );
    let sums = lock_checksums(&root().join("fixtures/sbomdeps/Cargo.lock"));
    for (name, version) in [("itoa", "1.0.19"), ("version_check", "0.9.5")] {
        let package = &packages[name];
        assert_eq!(package["versionInfo"], version);
        assert_eq!(
            purl_of(package).unwrap(),
            format!("pkg:cargo/{name}@{version}")
        );
        assert_eq!(
            package["checksums"][0]["checksumValue"].as_str().unwrap(),
            sums[&(name.to_owned(), version.to_owned())]
        );
        assert_eq!(
            package["downloadLocation"],
            format!("https://crates.io/api/v1/crates/{name}/{version}/download")
        );
    }
    assert_eq!(packages["itoa"]["licenseDeclared"], "MIT OR Apache-2.0");
    let root_package = &packages["sbomdeps"];
    assert_eq!(root_package["versionInfo"], "0.2.0");
    assert_eq!(
        purl_of(root_package),
        None,
        "a local crate has no crates.io purl"
    );
    assert_eq!(root_package["originator"], "Person: Ada (ada@example.com)");
    assert!(
        root_package["sourceInfo"]
            .as_str()
            .unwrap()
            .starts_with("built from commit "),
        "{root_package}"
    );
    let program = &packages["/sbomdeps"];
    assert_eq!(program["checksums"][0]["algorithm"], "SHA256");
    let rootfs = tempfile::tempdir().unwrap();
    support::unpack_rootfs(&dir.path().join("sbomdeps.tar"), rootfs.path());
    assert_eq!(
        format!(
            "sha256:{}",
            program["checksums"][0]["checksumValue"].as_str().unwrap()
        ),
        support::file_digest(&rootfs.path().join("sbomdeps")),
        "the program's checksum is of the bytes in the image"
    );
    let image = &packages["docker.io/library/sbomdeps"];
    let manifest_digest = out["manifest_digest"].as_str().unwrap();
    assert_eq!(
        format!(
            "sha256:{}",
            image["checksums"][0]["checksumValue"].as_str().unwrap()
        ),
        manifest_digest
    );
    let rels = relationships(&doc);
    for expected in [
        (
            "SPDXRef-DOCUMENT",
            "DESCRIBES",
            "docker.io/library/sbomdeps",
        ),
        ("docker.io/library/sbomdeps", "CONTAINS", "/sbomdeps"),
        ("/sbomdeps", "GENERATED_FROM", "sbomdeps"),
        ("/sbomdeps", "STATIC_LINK", "itoa"),
        ("sbomdeps", "DEPENDS_ON", "itoa"),
        ("version_check", "BUILD_DEPENDENCY_OF", "sbomdeps"),
        ("rustc", "BUILD_TOOL_OF", "/sbomdeps"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(rels.contains(&expected), "{expected:?} in {rels:?}");
    }
    assert!(!rels.contains(&(
        "/sbomdeps".to_owned(),
        "STATIC_LINK".to_owned(),
        "version_check".to_owned()
    )));
    let rustc = &packages["rustc"];
    let release = String::from_utf8(run_ok(Command::new("rustc").arg("-vV")).stdout).unwrap();
    assert!(
        release.contains(&format!(
            "release: {}",
            rustc["versionInfo"].as_str().unwrap()
        )),
        "{release}"
    );

    // CycloneDX: the same crates, build-time ones `excluded`.
    let cdx = json(&cdx_path);
    let components: BTreeMap<String, Value> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c.clone()))
        .collect();
    let names: Vec<&str> = components.keys().map(String::as_str).collect();
    assert_eq!(names, ["/sbomdeps", "itoa", "sbomdeps", "version_check"]);
    assert_eq!(components["itoa"]["scope"], "required");
    assert_eq!(components["version_check"]["scope"], "excluded");
    assert_eq!(components["itoa"]["purl"], "pkg:cargo/itoa@1.0.19");
    assert_eq!(
        components["itoa"]["hashes"][0]["content"].as_str().unwrap(),
        sums[&("itoa".to_owned(), "1.0.19".to_owned())]
    );
    assert_eq!(cdx["metadata"]["component"]["type"], "container");
    assert_eq!(
        format!(
            "sha256:{}",
            cdx["metadata"]["component"]["hashes"][0]["content"]
                .as_str()
                .unwrap()
        ),
        manifest_digest
    );
    assert_eq!(cdx["formulation"][0]["components"][0]["name"], "rustc");

    // With the feature on, the optional crate is linked and listed, still without fnv.
    let with_hex = tempfile::tempdir().unwrap();
    cargo_fixture("sbomdeps", with_hex.path(), &["-F", "hex"]);
    let doc = json(&with_hex.path().join("sbomdeps.spdx.json"));
    let packages = spdx_packages(&doc);
    assert_eq!(
        purl_of(&packages["hex"]).unwrap(),
        "pkg:cargo/hex@0.4.3",
        "{packages:?}"
    );
    assert!(!packages.contains_key("fnv"));
    assert!(
        packages["sbomdeps"]["comment"]
            .as_str()
            .unwrap()
            .contains("features: hex"),
        "{}",
        packages["sbomdeps"]
    );
}

#[test]
fn workspace_members_get_only_their_own_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    let server = dir.path().join("server");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::create_dir_all(&server).unwrap();
    cargo_fixture("workspace", &tools, &["-p", "tools"]);
    let doc = json(&tools.join("workspace.spdx.json"));
    validate_spdx(&tools.join("workspace.spdx.json"));
    let packages = spdx_packages(&doc);
    let sums = lock_checksums(&root().join("fixtures/workspace/Cargo.lock"));
    assert_eq!(
        packages["itoa"]["checksums"][0]["checksumValue"]
            .as_str()
            .unwrap(),
        sums[&("itoa".to_owned(), "1.0.19".to_owned())]
    );
    assert_eq!(packages["tools"]["versionInfo"], "0.3.1");
    assert!(!packages.contains_key("server"));
    // `cargo metadata` alone would unify the workspace: the server links nothing but itself.
    cargo_fixture("workspace", &server, &["-p", "server", "--bin", "api"]);
    let packages = spdx_packages(&json(&server.join("workspace.spdx.json")));
    let names: Vec<&str> = packages.keys().map(String::as_str).collect();
    assert_eq!(names, ["/api", "docker.io/library/api", "rustc", "server"]);
}

#[test]
fn documents_are_reproducible_and_provenance_validates() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    let mut runs = Vec::new();
    for run in ["one", "two"] {
        let out_dir = dir.path().join(run);
        std::fs::create_dir(&out_dir).unwrap();
        let output = run_ok(
            zeroimage()
                .arg(&program)
                .arg("-o")
                .arg(out_dir.join("app.tar"))
                .args(["--sbom", "both", "--provenance", "--message-format", "json"])
                .args(["-t", "registry.example.com/team/app:1.0", "-v"]),
        );
        assert!(
            stderr_of(&output).contains("SBOM of")
                && stderr_of(&output).contains("the program file alone"),
            "-v says where the contents came from: {}",
            stderr_of(&output)
        );
        runs.push((out_dir, stdout_json(&output)));
    }
    for name in [
        "app.tar",
        "app.spdx.json",
        "app.cdx.json",
        "app.provenance.json",
    ] {
        assert_eq!(
            std::fs::read(runs[0].0.join(name)).unwrap(),
            std::fs::read(runs[1].0.join(name)).unwrap(),
            "{name} differs between two runs"
        );
    }
    let (out_dir, out) = &runs[0];
    validate_spdx(&out_dir.join("app.spdx.json"));
    validate_cyclonedx(&out_dir.join("app.cdx.json"));
    validate_provenance(&out_dir.join("app.provenance.json"));
    let statement = json(&out_dir.join("app.provenance.json"));
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        out["digest"].as_str().unwrap()
    );
    assert_eq!(
        statement["subject"][0]["name"],
        "registry.example.com/team/app"
    );
    let predicate = &statement["predicate"];
    assert_eq!(
        predicate["buildDefinition"]["externalParameters"]["tag"],
        "registry.example.com/team/app:1.0"
    );
    assert!(
        predicate["runDetails"].get("metadata").is_none(),
        "no time without --created now"
    );
    let doc = json(&out_dir.join("app.spdx.json"));
    assert_eq!(doc["creationInfo"]["created"], "1970-01-01T00:00:00Z");
    let packages = spdx_packages(&doc);
    let names: Vec<&str> = packages.keys().map(String::as_str).collect();
    assert_eq!(names, ["/app", "registry.example.com/team/app"]);
    let sha = support::file_digest(&program);
    assert_eq!(
        format!(
            "sha256:{}",
            packages["/app"]["checksums"][0]["checksumValue"]
                .as_str()
                .unwrap()
        ),
        sha
    );

    // --message-format json lists every document with its digests and file.
    let attachments = out["attachments"].as_array().unwrap();
    let kinds: Vec<&str> = attachments
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["spdx", "cyclonedx", "provenance"]);
    for attachment in attachments {
        let path = PathBuf::from(attachment["path"].as_str().unwrap());
        assert_eq!(
            support::file_digest(&path),
            attachment["document_digest"].as_str().unwrap()
        );
        assert_eq!(attachment["subject"], out["digest"]);
    }

    // --created now: the statement records when the build ran, and validates still.
    let timed = dir.path().join("timed");
    std::fs::create_dir(&timed).unwrap();
    run_ok(
        zeroimage()
            .arg(&program)
            .arg("-o")
            .arg(timed.join("app.tar"))
            .args(["--sbom", "none", "--provenance", "--created", "now", "-q"]),
    );
    assert!(!timed.join("app.spdx.json").exists(), "--sbom none");
    validate_provenance(&timed.join("app.provenance.json"));
    let metadata = &json(&timed.join("app.provenance.json"))["predicate"]["runDetails"]["metadata"];
    assert!(metadata["startedOn"].as_str().unwrap() <= metadata["finishedOn"].as_str().unwrap());
}

#[test]
fn the_archive_keeps_one_image_and_lists_its_attachments_apart() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    let archive = dir.path().join("app.tar");
    let out = stdout_json(&run_ok(
        zeroimage().arg(&program).arg("-o").arg(&archive).args([
            "--sbom",
            "both",
            "--provenance",
            "--message-format",
            "json",
        ]),
    ));
    let entries = read_tar(&archive);
    let index = support::json_entry(&entries, "index.json");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], out["digest"]);
    let referrers = support::json_entry(&entries, "referrers.json");
    let listed = referrers["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (descriptor, (kind, media_type)) in listed.iter().zip([
        ("spdx", "application/spdx+json"),
        ("cdx", "application/vnd.cyclonedx+json"),
        ("provenance", "application/vnd.in-toto+json"),
    ]) {
        assert_eq!(descriptor["artifactType"], media_type);
        assert_eq!(
            descriptor["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let manifest = support::json_entry(&entries, &support::blob_name(&descriptor["digest"]));
        assert_eq!(manifest["artifactType"], media_type);
        assert_eq!(manifest["subject"]["digest"], out["digest"]);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(
            entries[&support::blob_name(&manifest["config"]["digest"])],
            b"{}"
        );
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.created"],
            "1970-01-01T00:00:00Z"
        );
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], media_type);
        let title = layer["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap();
        assert!(title.starts_with("app.") && title.contains(kind), "{title}");
        assert_eq!(
            entries[&support::blob_name(&layer["digest"])],
            std::fs::read(dir.path().join(title)).unwrap(),
            "the archive holds the same document as the file beside it"
        );
    }

    // Consumers see one image, as before.
    if let Some(skopeo) = support::peer("skopeo") {
        let copied = dir.path().join("copied");
        run_ok(Command::new(&skopeo).args([
            "copy",
            "-q",
            &format!("oci-archive:{}", archive.display()),
            &format!("oci:{}:app", copied.display()),
        ]));
        let inspected = run_ok(
            Command::new(&skopeo).args(["inspect", &format!("oci-archive:{}", archive.display())]),
        );
        let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
        assert_eq!(inspected["Digest"], out["digest"]);
        run_ok(Command::new(&skopeo).args([
            "copy",
            "-q",
            &format!("oci-archive:{}", archive.display()),
            &format!(
                "docker-archive:{}:app:latest",
                dir.path().join("d.tar").display()
            ),
        ]));
    }
    if let Some(tool) = support::peer("oci-image-tool") {
        let layout = dir.path().join("layout");
        support::extract(&archive, &layout);
        // As in tests/runtime/peers.rs: `--type image` on the extracted layout validates all of it.
        let output = run_ok(
            Command::new(tool)
                .args(["validate", "--type", "image", "--ref", "name=latest"])
                .arg(&layout),
        );
        assert!(stdout_of(&output).contains("Validation succeeded"));
    }
    if let Some((_dir, rootfs)) = support::unpack_with_umoci(&archive, "latest") {
        assert!(rootfs.join("app").is_file());
    }
}

#[test]
fn multi_platform_images_get_one_sbom_per_platform_and_provenance_about_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let archive = dir.path().join("app.tar");
    let out = stdout_json(&run_ok(
        zeroimage()
            .arg("--platform-binary")
            .arg(format!("linux/amd64={}", amd.display()))
            .arg("--platform-binary")
            .arg(format!("linux/arm64={}", arm.display()))
            .arg("-o")
            .arg(&archive)
            .args(["--provenance", "--message-format", "json"]),
    ));
    let platforms = out["platforms"].as_array().unwrap();
    for (platform, slug) in platforms.iter().zip(["linux-amd64", "linux-arm64"]) {
        let path = dir.path().join(format!("app.{slug}.spdx.json"));
        validate_spdx(&path);
        let doc = json(&path);
        let image = &spdx_packages(&doc)["docker.io/library/app"];
        assert_eq!(
            format!(
                "sha256:{}",
                image["checksums"][0]["checksumValue"].as_str().unwrap()
            ),
            platform["manifest_digest"].as_str().unwrap()
        );
    }
    let attachments = out["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 3);
    assert_eq!(attachments[0]["subject"], platforms[0]["manifest_digest"]);
    assert_eq!(attachments[0]["platform"], "linux/amd64");
    assert_eq!(attachments[1]["subject"], platforms[1]["manifest_digest"]);
    assert_eq!(attachments[2]["kind"], "provenance");
    assert_eq!(
        attachments[2]["subject"], out["digest"],
        "provenance is about the index"
    );
    let statement = json(&dir.path().join("app.provenance.json"));
    validate_provenance(&dir.path().join("app.provenance.json"));
    let subjects: Vec<String> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("sha256:{}", s["digest"]["sha256"].as_str().unwrap()))
        .collect();
    assert_eq!(
        subjects,
        [
            out["digest"].as_str().unwrap(),
            platforms[0]["manifest_digest"].as_str().unwrap(),
            platforms[1]["manifest_digest"].as_str().unwrap()
        ]
    );
    // The image index lists only the images, never the attachments.
    let entries = read_tar(&archive);
    let index = support::json_entry(&entries, &support::blob_name(&out["digest"]));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
}

fn skopeo_raw(skopeo: &Path, image: &str) -> Value {
    let output = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn registry_blob(host: &str, repository: &str, digest: &str) -> Vec<u8> {
    let url = format!("http://{host}/v2/{repository}/blobs/{digest}");
    let mut response = ureq::get(&url).call().unwrap();
    response.body_mut().read_to_vec().unwrap()
}

/// Pushes with `zeroimage` and a throwaway docker config (anonymous).
fn push_program(dir: &Path, program: &Path, reference: &str, extra: &[&str]) -> Value {
    let config = dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    stdout_json(&run_ok(
        zeroimage()
            .arg(program)
            .env("DOCKER_CONFIG", &config)
            .env_remove("REGISTRY_AUTH_FILE")
            .env("HOME", &config)
            .env("XDG_RUNTIME_DIR", config.join("runtime"))
            .args(["--push", reference, "--message-format", "json"])
            .args(extra),
    ))
}

#[test]
fn push_lists_documents_under_the_fallback_tag_without_duplicates() {
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
        &tiny_elf::build(Machine::X86_64, Shape::Static, "pushed\n"),
    );
    let host = registry.host();
    let reference = format!("{host}/team/app:1.0");
    let first = push_program(dir.path(), &program, &reference, &["--provenance"]);
    let digest = first["digest"].as_str().unwrap();
    let tag = format!("{host}/team/app:{}", digest.replace(':', "-"));
    let index = skopeo_raw(&skopeo, &tag);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed = index["manifests"].as_array().unwrap();
    let types: Vec<&str> = listed
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.in-toto+json"]
    );
    for (descriptor, attachment) in listed.iter().zip(first["attachments"].as_array().unwrap()) {
        assert_eq!(descriptor["digest"], attachment["manifest_digest"]);
        let manifest = skopeo_raw(
            &skopeo,
            &format!("{host}/team/app@{}", descriptor["digest"].as_str().unwrap()),
        );
        assert_eq!(manifest["subject"]["digest"], digest);
        assert_eq!(manifest["artifactType"], descriptor["artifactType"]);
        let document = registry_blob(
            &host,
            "team/app",
            manifest["layers"][0]["digest"].as_str().unwrap(),
        );
        assert_eq!(
            zeroimage::oci::Digest::of(&document).to_string(),
            attachment["document_digest"].as_str().unwrap()
        );
    }
    // The image tag still names a plain manifest (what Lambda needs).
    let image = skopeo_raw(&skopeo, &reference);
    assert_eq!(
        image["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // The same push again adds nothing; another document is added beside those already there.
    push_program(dir.path(), &program, &reference, &["--provenance"]);
    assert_eq!(skopeo_raw(&skopeo, &tag), index, "no duplicates");
    push_program(dir.path(), &program, &reference, &["--sbom", "cyclonedx"]);
    let merged = skopeo_raw(&skopeo, &tag);
    let types: Vec<&str> = merged["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.in-toto+json",
            "application/vnd.cyclonedx+json"
        ]
    );

    // `zeroimage push ARCHIVE` sends the attachments the archive holds.
    let archive = dir.path().join("app.tar");
    run_ok(
        zeroimage()
            .arg(&program)
            .arg("-o")
            .arg(&archive)
            .args(["--sbom", "both", "-q"]),
    );
    let other = format!("{host}/mirror/app:1.0");
    let config = dir.path().join("docker-config");
    let pushed = run_ok(
        zeroimage()
            .arg("push")
            .arg(&archive)
            .arg(&other)
            .env("DOCKER_CONFIG", &config)
            .env("HOME", &config)
            .env_remove("REGISTRY_AUTH_FILE"),
    );
    assert!(
        stderr_of(&pushed).contains("Attached"),
        "{}",
        stderr_of(&pushed)
    );
    let mirrored = skopeo_raw(
        &skopeo,
        &format!("{host}/mirror/app:{}", digest.replace(':', "-")),
    );
    let types: Vec<&str> = mirrored["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.cyclonedx+json"]
    );
}

#[test]
fn a_registry_with_the_referrers_api_gets_the_documents_through_it() {
    use support::fake_registry::referrers_api_handler;
    use support::http::TestServer;
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "api\n"),
    );
    for announce in [true, false] {
        let (handler, manifests) = referrers_api_handler(announce);
        let server = TestServer::start(handler);
        let out = push_program(
            dir.path(),
            &program,
            &format!("{}/team/app:1.0", server.host()),
            &["--provenance"],
        );
        let references: Vec<String> = manifests
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.clone())
            .collect();
        let attached: Vec<String> = out["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["manifest_digest"].as_str().unwrap().to_owned())
            .collect();
        for digest in &attached {
            assert!(references.contains(digest), "{digest} in {references:?}");
        }
        assert!(
            !references.iter().any(|r| r.starts_with("sha256-")),
            "no fallback tag with the referrers API: {references:?}"
        );
        let asked = server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path().contains("/referrers/"));
        assert_eq!(asked, !announce, "the API is asked only when not announced");
        assert_eq!(references.last().unwrap(), "1.0", "the tag comes last");
    }
}

#[test]
fn a_cargo_auditable_binary_carries_its_dependency_list_into_the_sbom() {
    if support::peer("cargo-auditable").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target_dir = dir.path().join("target");
    run_ok(
        cargo_zeroimage()
            .arg("--manifest-path")
            .arg(root().join("fixtures/sbomdeps/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--auditable", "--sbom", "none", "-q"]),
    );
    let binary = target_dir.join(X86_64_MUSL).join("release/sbomdeps");
    let copy = dir.path().join("sbomdeps");
    std::fs::copy(&binary, &copy).unwrap();
    run_ok(zeroimage().arg(&copy).args(["--sbom", "both", "-q"]));
    let spdx = dir.path().join("sbomdeps.spdx.json");
    validate_spdx(&spdx);
    validate_cyclonedx(&dir.path().join("sbomdeps.cdx.json"));
    let doc = json(&spdx);
    let packages = spdx_packages(&doc);
    assert_eq!(purl_of(&packages["itoa"]).unwrap(), "pkg:cargo/itoa@1.0.19");
    assert!(!packages.contains_key("fnv") && !packages.contains_key("hex"));
    assert!(
        packages["/sbomdeps"]["comment"]
            .as_str()
            .unwrap()
            .contains("cargo auditable"),
        "{}",
        packages["/sbomdeps"]
    );
    let rels = relationships(&doc);
    assert!(rels.contains(&(
        "/sbomdeps".to_owned(),
        "GENERATED_FROM".to_owned(),
        "sbomdeps".to_owned()
    )));
    assert!(rels.contains(&(
        "sbomdeps".to_owned(),
        "DEPENDS_ON".to_owned(),
        "itoa".to_owned()
    )));
}

#[test]
fn a_go_binary_sbom_lists_its_modules_with_their_sums() {
    let dir = tempfile::tempdir().unwrap();
    let Some((program, sum)) = support::sbom_tools::go_program(dir.path()) else {
        return;
    };
    run_ok(zeroimage().arg(&program).args(["--sbom", "both", "-q"]));
    let spdx = dir.path().join("hello.spdx.json");
    validate_spdx(&spdx);
    validate_cyclonedx(&dir.path().join("hello.cdx.json"));
    let doc = json(&spdx);
    let packages = spdx_packages(&doc);
    let module = &packages["example.com/greeting"];
    assert_eq!(module["versionInfo"], "v1.2.3");
    assert_eq!(
        purl_of(module).unwrap(),
        "pkg:golang/example.com/greeting@v1.2.3"
    );
    assert!(
        module["comment"].as_str().unwrap().contains(&sum),
        "{module} holds {sum}"
    );
    assert_eq!(
        packages["example.com/hello"]["primaryPackagePurpose"],
        "APPLICATION"
    );
    assert!(packages.contains_key("go"));
    let cdx = json(&dir.path().join("hello.cdx.json"));
    let greeting = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "example.com/greeting")
        .unwrap();
    assert!(
        greeting["properties"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["value"] == sum.as_str())
    );

    // A distribution's Go program (built outside module mode, dynamically linked): its package path
    // and Go version.
    if let Some(registry) = support::peer("docker-registry") {
        let copy = dir.path().join("registry");
        std::fs::copy(registry, &copy).unwrap();
        run_ok(zeroimage().arg(&copy).args(["--allow-dynamic", "-q"]));
        let doc = json(&dir.path().join("registry.spdx.json"));
        validate_spdx(&dir.path().join("registry.spdx.json"));
        let packages = spdx_packages(&doc);
        assert!(
            packages.contains_key("github.com/docker/distribution/cmd/registry"),
            "{:?}",
            packages.keys()
        );
        assert!(
            packages["go"]["versionInfo"]
                .as_str()
                .unwrap()
                .starts_with("1.")
        );
    }
}

#[test]
fn an_archive_whose_attachments_are_about_another_image_is_refused_by_push() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "x\n"),
    );
    let archive = dir.path().join("app.tar");
    run_ok(zeroimage().arg(&program).arg("-o").arg(&archive).arg("-q"));
    // Rewrite the artifact manifest's subject: its digest no longer matches what referrers.json says,
    // and a consistent rewrite names an image the archive does not hold.
    let entries = read_tar(&archive);
    let referrers = support::json_entry(&entries, "referrers.json");
    let name = support::blob_name(&referrers["manifests"][0]["digest"]);
    let mut manifest = support::json_entry(&entries, &name);
    manifest["subject"]["digest"] = Value::String(format!("sha256:{}", "0".repeat(64)));
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = zeroimage::oci::Digest::of(&bytes).to_string();
    let mut referrers = referrers.clone();
    referrers["manifests"][0]["digest"] = Value::String(digest.clone());
    referrers["manifests"][0]["size"] = Value::from(bytes.len());
    let layout = dir.path().join("layout");
    support::extract(&archive, &layout);
    std::fs::write(
        layout.join(support::blob_name(&Value::String(digest))),
        &bytes,
    )
    .unwrap();
    std::fs::write(
        layout.join("referrers.json"),
        serde_json::to_vec(&referrers).unwrap(),
    )
    .unwrap();
    let tampered = dir.path().join("tampered.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&tampered)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    let output = zeroimage()
        .arg("push")
        .arg(&tampered)
        .arg("127.0.0.1:9/app:1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("not this archive's image"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn cargo_toml_settings_choose_the_documents_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("hello");
    support::copy_fixture("hello", &crate_dir);
    let manifest = crate_dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.zeroimage]\nsbom = \"cyclonedx\"\nprovenance = true\n");
    std::fs::write(&manifest, &text).unwrap();
    let target_dir = dir.path().join("target");
    let run = |out: &Path, extra: &[&str]| {
        stdout_json(&run_ok(
            cargo_zeroimage()
                .arg("--manifest-path")
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target_dir)
                .arg("-o")
                .arg(out)
                .args(["--message-format", "json", "-q"])
                .args(extra),
        ))
    };
    let out = run(&dir.path().join("a.tar"), &[]);
    let kinds: Vec<&str> = out["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cyclonedx", "provenance"]);
    validate_cyclonedx(&dir.path().join("a.cdx.json"));
    validate_provenance(&dir.path().join("a.provenance.json"));
    let out = run(&dir.path().join("b.tar"), &["--sbom", "spdx"]);
    let kinds: Vec<&str> = out["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["spdx", "provenance"],
        "--sbom wins over the setting"
    );

    // A bad value names the file, before anything is built.
    std::fs::write(&manifest, text.replace("\"cyclonedx\"", "\"xml\"")).unwrap();
    let output = cargo_zeroimage()
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("-o")
        .arg(dir.path().join("c.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(err.contains("Cargo.toml") && err.contains("sbom"), "{err}");
    assert!(!err.contains("Compiling"), "{err}");
}

#[test]
fn damaged_embedded_lists_give_a_warning_and_an_sbom_of_the_program_alone() {
    let Some(objcopy) = support::peer("objcopy") else {
        return;
    };
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Not zlib data; and a Go header claiming a 2^62-byte module list.
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"not zlib at all").unwrap();
    let mut header = b"\xff Go buildinf:\x08\x02".to_vec();
    header.resize(32, 0);
    header.extend_from_slice(&[0x02, b'g', b'o']);
    header.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let go = dir.path().join("go");
    std::fs::write(&go, &header).unwrap();
    for (section, contents, what) in [
        (".dep-v0", &garbage, "cargo auditable dependency list"),
        (".go.buildinfo", &go, "Go build information"),
    ] {
        let program = dir.path().join(format!("hello{section}"));
        run_ok(
            Command::new(&objcopy)
                .arg("--add-section")
                .arg(format!("{section}={}", contents.display()))
                .arg(&hello)
                .arg(&program),
        );
        let output = run_ok(zeroimage().arg(&program).arg("-v"));
        let err = stderr_of(&output);
        assert!(
            err.contains("warning:") && err.contains(&format!("its {what} could not be read")),
            "{err}"
        );
        let spdx = dir.path().join(format!("hello{section}.spdx.json"));
        validate_spdx(&spdx);
        let names: Vec<String> = spdx_packages(&json(&spdx)).into_keys().collect();
        assert_eq!(names.len(), 2, "the image and the program: {names:?}");
    }
}

/// The index under the fallback tag of `digest` in `repository`, read through the registry API.
fn fallback_index(host: &str, repository: &str, digest: &str) -> Value {
    let url = format!(
        "http://{host}/v2/{repository}/manifests/{}",
        digest.replace(':', "-")
    );
    let mut response = ureq::get(&url)
        .header("Accept", "application/vnd.oci.image.index.v1+json")
        .call()
        .unwrap();
    serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap()
}

/// Uploads `bytes` as a blob of `repository`, through the registry API.
fn upload_blob(host: &str, repository: &str, bytes: &[u8]) {
    let started = ureq::post(&format!("http://{host}/v2/{repository}/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(started.status().as_u16(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with('/') {
        format!("http://{host}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let digest = zeroimage::oci::Digest::of(bytes).to_string();
    let done = ureq::put(&format!(
        "{location}{separator}digest={}",
        digest.replace(':', "%3A")
    ))
    .header("Content-Type", "application/octet-stream")
    .send(bytes)
    .unwrap();
    assert_eq!(done.status().as_u16(), 201);
}

/// What `zeroimage` pushes with `extra`, started now (anonymous, a docker config of its own).
fn spawn_push(
    config: &Path,
    program: &Path,
    reference: &str,
    extra: &[&str],
) -> std::process::Child {
    support::isolated_zeroimage(config)
        .arg(program)
        .args(["--push", reference, "--message-format", "json"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_pushes_of_one_image_with_different_documents_keep_every_referrer() {
    // Each round races three pushes on a fresh repository; before the read-back, every round lost
    // one or two of the three documents.
    const ROUNDS: usize = 5;
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "raced\n"),
    );
    let host = registry.host();
    for round in 0..ROUNDS {
        let repository = format!("race/app{round}");
        let reference = format!("{host}/{repository}:1.0");
        // Registry 2.8 rewrites a blob's link file in place when two uploads of that blob commit at
        // once, and a manifest checked in that moment names it unknown: a race of its storage, not of
        // the referrers. So the blobs the three pushes share (the image's, the empty config) are
        // there first, and the pushes race on the fallback tag alone.
        run_ok(
            zeroimage()
                .arg(&program)
                .env("DOCKER_CONFIG", &config)
                .env("HOME", &config)
                .env_remove("REGISTRY_AUTH_FILE")
                .args(["--push", &reference, "--sbom", "none", "-q"]),
        );
        upload_blob(&host, &repository, b"{}");
        let children: Vec<_> = [
            &["--sbom", "spdx"][..],
            &["--sbom", "cyclonedx"],
            &["--sbom", "none", "--provenance"],
        ]
        .iter()
        .map(|extra| spawn_push(&config, &program, &reference, extra))
        .collect();
        let mut digests = Vec::new();
        let mut ours = Vec::new();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", stderr_of(&output));
            assert!(
                !stderr_of(&output).contains("warning"),
                "{}",
                stderr_of(&output)
            );
            let out = stdout_json(&output);
            digests.push(out["digest"].as_str().unwrap().to_owned());
            let attached = out["attachments"].as_array().unwrap();
            assert_eq!(attached.len(), 1, "{out}");
            ours.push(attached[0]["manifest_digest"].as_str().unwrap().to_owned());
        }
        digests.dedup();
        assert_eq!(digests.len(), 1, "one image: {digests:?}");
        let index = fallback_index(&host, &repository, &digests[0]);
        let mut listed: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_owned())
            .collect();
        listed.sort();
        ours.sort();
        assert_eq!(listed, ours, "round {round}: {index}");
    }
}

#[test]
fn a_foreign_image_under_the_fallback_tag_is_left_alone_and_the_image_is_still_tagged() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let build = |name: &str, message: &str| -> (PathBuf, String) {
        let program = tiny_elf::write(
            dir.path(),
            name,
            &tiny_elf::build(Machine::X86_64, Shape::Static, message),
        );
        let archive = dir.path().join(format!("{name}.tar"));
        let out = stdout_json(&run_ok(
            zeroimage()
                .arg(&program)
                .arg("-o")
                .arg(&archive)
                .args(["--message-format", "json"]),
        ));
        (archive, out["digest"].as_str().unwrap().to_owned())
    };
    let push = |archive: &Path, reference: &str, extra: &[&str]| -> Output {
        zeroimage()
            .arg("push")
            .arg(archive)
            .arg(reference)
            .args(extra)
            .env("DOCKER_CONFIG", &config)
            .env("HOME", &config)
            .env_remove("REGISTRY_AUTH_FILE")
            .output()
            .unwrap()
    };
    let (mine, digest) = build("app", "mine\n");
    let (squatter, squatter_digest) = build("other", "squatter\n");
    // Someone tagged an image of theirs with the name of our image's referrers tag.
    let fallback = format!("{host}/team/app:{}", digest.replace(':', "-"));
    assert!(push(&squatter, &fallback, &[]).status.success());

    let required = push(
        &mine,
        &format!("{host}/team/app:1.0"),
        &["--require-attachments"],
    );
    let err = stderr_of(&required);
    assert_eq!(required.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not an OCI image index of referrers") && err.contains("no tag was set"),
        "{err}"
    );
    let missing = Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/team/app:1.0"))
        .output()
        .unwrap();
    assert!(!missing.status.success(), "the tag was not set");

    let pushed = push(&mine, &format!("{host}/team/app:1.0"), &[]);
    let err = stderr_of(&pushed);
    assert!(pushed.status.success(), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("warning:")
            && l.contains(&format!("team/app:{}", digest.replace(':', "-")))
            && l.contains("application/vnd.oci.image.manifest.v1+json")),
        "{err}"
    );
    assert_eq!(
        stdout_of(&pushed).trim(),
        format!("{host}/team/app:1.0@{digest}")
    );
    let inspect = |image: &str| -> String {
        let output = run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{image}")),
        );
        support::file_digest_of_bytes(&stdout_of(&output))
    };
    assert_eq!(inspect(&format!("{host}/team/app:1.0")), digest);
    assert_eq!(
        inspect(&fallback),
        squatter_digest,
        "their tag is untouched"
    );
}

/// Components whose every outside field is hostile: names, versions, licenses, homepages,
/// repositories, git URLs and checksums that are not what their field expects.
fn hostile_components() -> Vec<Component> {
    use zeroimage::sbom::{Ecosystem, Origin};
    let texts = [
        "a b/<c>{d}|e^`f\\g\"h",
        "pkg:cargo/x@1?y=z#w",
        "%zz%41",
        "名前-ü",
        "\u{1b}[31mred\u{7}",
        "",
        "..",
        "/",
        "urn:cdx:0000",
        "LicenseRef-x",
    ];
    let licenses = [
        ")MIT(",
        "MIT OR",
        "(MIT",
        "MIT/Apache-2.0",
        "Apache-2.0 / MIT",
        "GPL-2.0+",
        "LGPL-3.0",
        "MIT OR LicenseRef-Proprietary.v2",
        "LicenseRef-x AND LicenseRef-x",
        "Apache-2.0 WITH LLVM-exception",
        "DocumentRef-a:LicenseRef-b",
        "MIT WITH AdditionRef-c",
        "NOASSERTION",
        "NONE",
        "MIT OR NOASSERTION",
        "see LICENSE",
        "BSD",
        "  ",
        "\u{1b}]0;title\u{7}MIT",
    ];
    let urls = [
        "https://example.com/a b/<x>{y}|z^`?q=\"1\"#f g",
        "http://[::1]:8080/x",
        "https://localhost/",
        "https://example.museum/%zz/ü",
        "https://user:pa ss@example.com:99999/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "git@github.com:a/b.git",
        "not a url",
        "https://",
        "https://exa mple.com/",
    ];
    let git_urls = [
        "",
        "file:///home/me/repo",
        "ssh://git@github.com/a/b.git",
        "https://github.com/a b/<c>",
        "not a url",
    ];
    let mut components = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        for ecosystem in [Ecosystem::Cargo, Ecosystem::Go] {
            let origin = match (ecosystem, i % 3) {
                (Ecosystem::Go, _) => Origin::GoModule,
                (_, 0) => Origin::CratesIo,
                (_, 1) => Origin::Registry(format!("sparse+{}", urls[i % urls.len()])),
                _ => Origin::Git {
                    url: git_urls[i % git_urls.len()].to_owned(),
                    commit: Some(text.to_string()),
                },
            };
            let mut c = Component::new(ecosystem, text, text, origin);
            c.license = Some(licenses[i % licenses.len()].to_owned());
            c.homepage = Some(urls[i % urls.len()].to_owned());
            c.repository = Some(urls[(i + 3) % urls.len()].to_owned());
            c.sha256 = Some(text.to_string());
            c.go_sum = Some(text.to_string());
            c.authors = vec![format!("{text} <{text}>"), "(x) <@>".to_owned()];
            c.description = Some(text.to_string());
            c.features = vec![text.to_string()];
            c.replaced_by = (i % 4 == 0).then(|| text.to_string());
            components.push(c);
        }
    }
    for (i, license) in licenses.iter().enumerate() {
        let mut c = Component::new(
            Ecosystem::Cargo,
            "licensed",
            &i.to_string(),
            Origin::CratesIo,
        );
        c.license = Some((*license).to_owned());
        components.push(c);
    }
    for (i, url) in urls.iter().chain(&git_urls).enumerate() {
        let mut c = Component::new(
            Ecosystem::Cargo,
            "linked",
            &i.to_string(),
            Origin::Git {
                url: (*url).to_owned(),
                commit: None,
            },
        );
        c.homepage = Some((*url).to_owned());
        c.repository = Some((*url).to_owned());
        components.push(c);
    }
    // Every license and exception identifier the SPDX parser knows, deprecated ones too, but those
    // the validator cannot know (and NOASSERTION, which the list carries but is no license); twenty
    // to a package, since the CycloneDX validator compares every two components (uniqueItems).
    let known = |name: &&str| !VALIDATOR_LACKS.contains(name) && *name != "NOASSERTION";
    let licenses: Vec<String> = spdx::identifiers::LICENSES
        .iter()
        .map(|l| l.name)
        .filter(known)
        .map(str::to_owned)
        .collect();
    let exceptions: Vec<String> = spdx::identifiers::EXCEPTIONS
        .iter()
        .map(|e| e.name)
        .filter(known)
        .map(|name| format!("Apache-2.0 WITH {name}"))
        .collect();
    for (i, group) in licenses.chunks(20).chain(exceptions.chunks(20)).enumerate() {
        let mut c = Component::new(Ecosystem::Cargo, "listed", &i.to_string(), Origin::CratesIo);
        c.license = Some(group.join(" OR "));
        components.push(c);
    }
    components
}

/// SPDX identifiers pyspdxtools refuses in a valid expression: those added to the SPDX license list
/// (3.27 to 3.29, which the `spdx` crate carries) after the list of the validator's
/// `license-expression` was made, and a license whose name ends in `-exception`, which it reads as
/// an exception.
const VALIDATOR_LACKS: &[&str] = &[
    "ALGLIB-Documentation",
    "Advanced-Cryptics-Dictionary",
    "BOLA-1.1",
    "BSD-2-Clause-pos-unchanged",
    "BSD-3-Clause-OpenWebUI",
    "BSD-3-Clause-Tso",
    "BSD-Mark-Modifications",
    "BSD-Source-Code-no-disclaimer",
    "BSD-Source-alt-GPL",
    "BSD-ask-to-endorse",
    "Brian-Gladman-3-Clause-no-conversion",
    "Buddy",
    "Bugroff",
    "CAPEC-tou",
    "CC-BY-NC-3.0-IGO",
    "Classpath-exception-2.0-short",
    "ESA-PL-permissive-2.4",
    "ESA-PL-strong-copyleft-2.4",
    "ESA-PL-weak-copyleft-2.4",
    "FDK-MPEG-H",
    "Google-Patent-WebM",
    "HPND-SMC",
    "HPND-sell-variant-critical-systems",
    "Hippocratic-3.0-core",
    "ISO-permission",
    "Informatica",
    "MIT-STK",
    "MMPL-1.0.1",
    "MVT-1.1",
    "NIST-PD-TNT",
    "OSC-1.0",
    "OSSP",
    "OpenMDW-1.0",
    "ParaType-Free-Font-1.3",
    "SGMLUG-PM",
    "Simple-Library-Usage-exception",
    "Spelling-Provider-LGPL-exception",
    "TekHVC",
    "UnRAR",
    "Vixie-Cron",
    "WTFNMFPL",
    "WordNet",
    "X11-no-permit-persons",
    "atc-game",
    "hyphen-bulgarian",
    "kvirc-openssl-exception",
    "rsync-linking-exception",
    "sqlitestudio-OpenSSL-exception",
    "MPL-2.0-no-copyleft-exception",
];

#[test]
fn documents_of_hostile_metadata_pass_both_validators() {
    use zeroimage::sbom::{DocumentKind, Edge, ImageSubject, Inventory, ProgramFile, Source};
    let dir = tempfile::tempdir().unwrap();
    let components = hostile_components();
    let count = components.len();
    let inventory = Inventory {
        source: Source::Cargo,
        root: Some(0),
        edges: (1..count)
            .flat_map(|i| {
                [
                    Edge {
                        from: 0,
                        to: i,
                        build: false,
                    },
                    Edge {
                        from: 0,
                        to: i,
                        build: true,
                    },
                ]
            })
            .collect(),
        components,
        tools: Vec::new(),
    };
    let name: zeroimage::image::reference::Reference = "example.com/hostile:1".parse().unwrap();
    let digest = zeroimage::oci::Digest::of(b"manifest");
    let platform = zeroimage::oci::platform::Platform::linux("amd64", None).unwrap();
    let program = ProgramFile::new("/app", &zeroimage::oci::Digest::of(b"program"), 7);
    let subject = ImageSubject {
        name: &name,
        manifest_digest: &digest,
        platform: &platform,
        base: Some(("example.com/base \u{1b}[1m:1", &digest)),
        program: &program,
        created: zeroimage::util::timestamp::Timestamp::EPOCH,
    };
    let spdx = dir.path().join("hostile.spdx.json");
    let cdx = dir.path().join("hostile.cdx.json");
    std::fs::write(
        &spdx,
        zeroimage::sbom::document(DocumentKind::Spdx, &subject, &inventory),
    )
    .unwrap();
    std::fs::write(
        &cdx,
        zeroimage::sbom::document(DocumentKind::CycloneDx, &subject, &inventory),
    )
    .unwrap();
    validate_spdx(&spdx);
    validate_cyclonedx(&cdx);

    // What is written: expressions as expressions, other text as text, URLs encoded.
    let doc = json(&spdx);
    let declared = |name: &str| -> Vec<String> {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .map(|p| p["licenseDeclared"].as_str().unwrap().to_owned())
            .collect()
    };
    for license in declared("listed") {
        assert!(
            license.contains(" OR ") && !license.contains("LicenseRef"),
            "every listed identifier is read as one: {license}"
        );
    }
    let licensed = declared("licensed");
    assert!(licensed.contains(&"MIT OR Apache-2.0".to_owned()));
    assert!(licensed.contains(&"GPL-2.0-or-later".to_owned()));
    let extracted = doc["hasExtractedLicensingInfos"].as_array().unwrap();
    let text_ref = extracted
        .iter()
        .find(|e| e["extractedText"] == ")MIT(")
        .expect(")MIT( is kept as text");
    assert!(licensed.contains(&text_ref["licenseId"].as_str().unwrap().to_owned()));
    assert!(
        extracted
            .iter()
            .any(|e| e["licenseId"] == "LicenseRef-Proprietary.v2"),
        "a LicenseRef an expression names is defined"
    );
    let bom = json(&cdx);
    let components = bom["components"].as_array().unwrap();
    assert!(
        components
            .iter()
            .any(|c| c["licenses"][0]["license"]["name"] == ")MIT(")
    );
    assert!(
        components
            .iter()
            .any(|c| c["licenses"][0]["expression"] == "MIT OR Apache-2.0")
    );
    assert!(components.iter().any(|c| {
        c["externalReferences"][0]["url"]
            == "https://example.com/a%20b/%3Cx%3E%7By%7D%7Cz%5E%60?q=%221%22#f%20g"
    }));
}

/// The hello fixture with `contents` added as its section `section` (objcopy), at `dir/name`; `None`
/// (skipped) without objcopy or the fixture.
fn hello_with_section(dir: &Path, name: &str, section: &str, contents: &[u8]) -> Option<PathBuf> {
    let objcopy = support::peer("objcopy")?;
    let hello = support::hello_fixture(X86_64_MUSL)?;
    let data = dir.join(format!("{name}.section"));
    std::fs::write(&data, contents).unwrap();
    let program = dir.join(name);
    run_ok(
        Command::new(objcopy)
            .arg("--add-section")
            .arg(format!("{section}={}", data.display()))
            .arg(&hello)
            .arg(&program),
    );
    Some(program)
}

/// A `.go.buildinfo` section in Go 1.18's inline form holding `modinfo`.
fn go_buildinfo(modinfo: &str) -> Vec<u8> {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let mut section = b"\xff Go buildinf:\x08\x02".to_vec();
    section.resize(32, 0);
    let mut framed = vec![0xaf; 16];
    framed.extend_from_slice(modinfo.as_bytes());
    framed.extend_from_slice(&[0xf9; 16]);
    for text in [b"go1.22.1".as_slice(), &framed] {
        varint(text.len(), &mut section);
        section.extend_from_slice(text);
    }
    section
}

/// A `.dep-v0` section: `json` zlib-compressed, as cargo auditable writes it.
fn dep_v0(json: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(json).unwrap();
    encoder.finish().unwrap()
}

/// `zeroimage PROGRAM --sbom both -o DIR/NAME.tar` within 256 MiB of address space and 60 s of CPU
/// time (prlimit). glibc reserves 64 MiB of address space for each thread's arena; one arena makes
/// the address space what the program allocates. `None` (skipped) without prlimit.
fn zeroimage_within_256_mib(program: &Path) -> Option<Output> {
    let prlimit = support::peer("prlimit")?;
    let out = program.with_extension("tar");
    let output = support::zeroimage_via(prlimit, &[&format!("--as={}", 256u64 << 20), "--cpu=60"])
        .env("MALLOC_ARENA_MAX", "1")
        .arg(program)
        .args(["--sbom", "both", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    Some(output)
}

/// The values of `"key":"..."` in a JSON document, in order, found without parsing it whole.
fn string_values(document: &[u8], key: &str) -> Vec<String> {
    let needle = format!("\"{key}\":\"");
    let text = String::from_utf8_lossy(document);
    text.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &text[at + needle.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn embedded_lists_of_100k_modules_are_written_within_256_mib() {
    let dir = tempfile::tempdir().unwrap();
    // The most modules accepted, all different (Go); and as many cargo packages all named alike, in
    // a chain, whose identifiers must be made unique in one pass.
    let mut modinfo = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n".to_owned();
    for i in 1..100_000 {
        modinfo.push_str(&format!("dep\texample.com/m{i}\tv1.0.{i}\th1:x=\n"));
    }
    let packages: Vec<String> = (0..100_000)
        .map(|i| {
            let next = if i + 1 < 100_000 { format!("{}", i + 1) } else { String::new() };
            format!(
                r#"{{"name":"same","version":"1.0.0","source":"crates.io","dependencies":[{next}]{}}}"#,
                if i == 0 { r#","root":true"# } else { "" }
            )
        })
        .collect();
    let json = format!(r#"{{"packages":[{}]}}"#, packages.join(","));
    // The packages: the modules and (Go) the toolchain.
    for (name, section, contents, packages) in [
        (
            "go100k",
            ".go.buildinfo",
            go_buildinfo(&modinfo),
            100_000 + 1,
        ),
        ("cargo100k", ".dep-v0", dep_v0(json.as_bytes()), 100_000),
    ] {
        let Some(program) = hello_with_section(dir.path(), name, section, &contents) else {
            return;
        };
        let Some(output) = zeroimage_within_256_mib(&program) else {
            return;
        };
        let err = stderr_of(&output);
        assert!(
            output.status.success(),
            "{name}: {:?}: {err}",
            output.status
        );
        assert!(!err.contains("warning"), "{name}: {err}");
        let spdx = std::fs::read(dir.path().join(format!("{name}.spdx.json"))).unwrap();
        let ids = string_values(&spdx, "SPDXID");
        // The document, the image and the program besides the packages.
        assert_eq!(ids.len(), packages + 3, "{name}");
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{name}: SPDX identifiers repeat");
        let cdx = std::fs::read(dir.path().join(format!("{name}.cdx.json"))).unwrap();
        let refs = string_values(&cdx, "bom-ref");
        let unique: std::collections::HashSet<&String> = refs.iter().collect();
        assert_eq!(unique.len(), refs.len(), "{name}: bom-refs repeat");
        assert!(refs.len() > 100_000, "{name}: {}", refs.len());
    }
}

#[test]
fn hostile_embedded_lists_are_refused_within_bounded_memory_and_time() {
    let dir = tempfile::tempdir().unwrap();
    // 60 KB of zlib naming package 0 as a dependency 31 million times; 524,000 `mod` lines in 4 MiB;
    // two thousand build settings.
    let mut edges =
        br#"{"packages":[{"name":"a","version":"1"},{"name":"b","version":"1","dependencies":[0"#
            .to_vec();
    for _ in 1..31_000_000 {
        edges.extend_from_slice(b",0");
    }
    edges.extend_from_slice(b"]}]}");
    let settings: String = (0..2_000)
        .map(|i| format!("build\tkey{i}=value\n"))
        .collect();
    for (name, section, contents, reason) in [
        (
            "edges",
            ".dep-v0",
            dep_v0(&edges),
            "lists more than 1000000 dependencies",
        ),
        (
            "mods",
            ".go.buildinfo",
            go_buildinfo(&"mod\ta\tv\n".repeat(524_000)),
            "lists more than 100000 modules",
        ),
        (
            "settings",
            ".go.buildinfo",
            go_buildinfo(&format!("mod\ta\tv1\t\n{settings}")),
            "lists more than 1000 build settings",
        ),
    ] {
        let Some(program) = hello_with_section(dir.path(), name, section, &contents) else {
            return;
        };
        let Some(output) = zeroimage_within_256_mib(&program) else {
            return;
        };
        let err = stderr_of(&output);
        assert!(
            output.status.success(),
            "{name}: {:?}: {err}",
            output.status
        );
        assert!(
            err.contains("warning:")
                && err.contains(reason)
                && err.contains("the program file alone"),
            "{name}: {err}"
        );
        let spdx = dir.path().join(format!("{name}.spdx.json"));
        validate_spdx(&spdx);
        assert_eq!(spdx_packages(&json(&spdx)).len(), 2, "{name}");
    }
}

#[test]
fn a_license_that_is_no_spdx_expression_is_kept_as_text_with_a_warning_and_urls_are_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("hello");
    support::copy_fixture("hello", &crate_dir);
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "publish = false\n",
        "publish = false\nlicense = \")MIT(\"\nhomepage = \"https://example.com/a b/<x>\"\n\
         repository = \"https://example.com/r|e^p{o}\"\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let output = run_ok(
        cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(dir.path().join("target"))
            .arg("-o")
            .arg(dir.path().join("hello.tar"))
            .args(["--sbom", "both"]),
    );
    let err = stderr_of(&output);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            "warning: hello 0.1.0 declares the license `)MIT(`, which is not an SPDX expression; the \
          SBOM records it as text (use an expression such as `MIT OR Apache-2.0`, or \
          `LicenseRef-...` for a license of your own)"
        ],
        "{err}"
    );
    let spdx = dir.path().join("hello.spdx.json");
    let cdx = dir.path().join("hello.cdx.json");
    validate_spdx(&spdx);
    validate_cyclonedx(&cdx);
    let doc = json(&spdx);
    let package = &spdx_packages(&doc)["hello"];
    let id = package["licenseDeclared"].as_str().unwrap();
    assert!(id.starts_with("LicenseRef-declared-"), "{package}");
    assert_eq!(package["homepage"], "https://example.com/a%20b/%3Cx%3E");
    let info = doc["hasExtractedLicensingInfos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["licenseId"] == id)
        .unwrap();
    assert_eq!(info["extractedText"], ")MIT(");
    let bom = json(&cdx);
    let component = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hello")
        .unwrap();
    assert_eq!(
        component["licenses"],
        serde_json::json!([{"license": {"name": ")MIT("}}])
    );
    assert_eq!(
        component["externalReferences"],
        serde_json::json!([
            {"type": "website", "url": "https://example.com/a%20b/%3Cx%3E"},
            {"type": "vcs", "url": "https://example.com/r%7Ce%5Ep%7Bo%7D"},
        ])
    );
}
