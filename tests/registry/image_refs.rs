//! `--image-refs FILE`: the images a run made, pinned by digest, then the documents attached to them,
//! written only when the run succeeded; on `zeroimage`, `cargo zeroimage --workspace` and `resolve`
//! (with its `-o FILE` and JSON summary), against a real registry on 127.0.0.1.

use std::path::Path;
use std::process::Command;

use crate::support;
use support::registry::{Setup, TestRegistry};
use support::{X86_64_MUSL, isolated_zeroimage, run_ok, stderr_of, stdout_of};

/// The manifest `reference` names, as skopeo reads it from the registry.
fn raw_manifest(skopeo: &Path, reference: &str) -> serde_json::Value {
    let output = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_push_lists_each_repository_once_then_each_document_that_is_in_the_registry() {
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
    let refs = dir.path().join("refs.txt");
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .args(["--push", &format!("{host}/team/hello:1.0")])
            .args(["--push", &format!("{host}/team/hello:latest")])
            .args(["--push", &format!("{host}/mirror/hello:1.0")])
            .args(["--sbom", "both", "--provenance", "--message-format", "json"])
            .arg("--image-refs")
            .arg(&refs),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap();
    let lines = read_lines(&refs);
    // Two repositories (two tags in one are one line), then three documents in each.
    assert_eq!(
        lines[..2],
        [
            format!("{host}/team/hello@{digest}"),
            format!("{host}/mirror/hello@{digest}")
        ],
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2 + 2 * 3, "{lines:?}");
    let mut kinds = Vec::new();
    for line in &lines[2..] {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 2, "{line}");
        kinds.push(fields[1]);
        // Each document is in the registry, about this image.
        let manifest = raw_manifest(&skopeo, fields[0]);
        assert_eq!(manifest["subject"]["digest"], digest, "{line}");
        let (repository, _) = fields[0].split_once('@').unwrap();
        assert!(
            lines[..2]
                .iter()
                .any(|l| l.starts_with(&format!("{repository}@")))
        );
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "provenance",
            "provenance",
            "sbom-cyclonedx",
            "sbom-cyclonedx",
            "sbom-spdx",
            "sbom-spdx"
        ]
    );
    // The file is all there is: no temporary file beside it.
    assert_eq!(
        support::dir_listing(dir.path())
            .iter()
            .filter(|n| n.contains("refs"))
            .collect::<Vec<_>>(),
        ["refs.txt"]
    );
}

#[test]
fn an_archive_lists_its_name_and_tag_with_the_digest_and_its_documents_by_name() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("refs.txt");
    let archive = dir.path().join("app.tar");
    let output = run_ok(
        isolated_zeroimage(dir.path())
            .arg(&hello)
            .args([
                "-t",
                "localhost:5000/app:2.1",
                "--message-format",
                "json",
                "-o",
            ])
            .arg(&archive)
            .arg("--image-refs")
            .arg(&refs),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap();
    let sbom = summary["attachments"][0]["manifest_digest"]
        .as_str()
        .unwrap();
    assert_eq!(
        read_lines(&refs),
        [
            format!("localhost:5000/app:2.1@{digest}"),
            format!("localhost:5000/app@{sbom} sbom-spdx"),
        ]
    );
}

#[test]
fn a_failed_run_leaves_the_refs_file_as_it_was_and_a_bad_path_is_refused_before_building() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("refs.txt");
    std::fs::write(&refs, "from an earlier run\n").unwrap();
    // Nothing listens on this port: the push fails after the image is built.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = isolated_zeroimage(dir.path())
        .arg(&hello)
        .args([
            "--push",
            &format!("127.0.0.1:{port}/app:1"),
            "--retries",
            "0",
        ])
        .arg("--image-refs")
        .arg(&refs)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", stderr_of(&output));
    assert_eq!(
        std::fs::read_to_string(&refs).unwrap(),
        "from an earlier run\n"
    );
    assert_eq!(
        support::dir_listing(dir.path())
            .iter()
            .filter(|n| n.contains("refs"))
            .collect::<Vec<_>>(),
        ["refs.txt"],
        "no temporary file is left"
    );

    // Paths that cannot take the file: one line naming it, before anything is written.
    let archive = dir.path().join("app.tar");
    let cases: [(std::path::PathBuf, &str); 4] = [
        (dir.path().join("missing/refs.txt"), "cannot be written"),
        (dir.path().to_owned(), "is a directory"),
        (archive.clone(), "is also the archive (-o)"),
        ("-".into(), "takes a file path"),
    ];
    for (path, message) in cases {
        let output = isolated_zeroimage(dir.path())
            .arg(&hello)
            .arg("-o")
            .arg(&archive)
            .arg("--image-refs")
            .arg(&path)
            .output()
            .unwrap();
        let err = stderr_of(&output);
        assert!(!output.status.success(), "{path:?}: {err}");
        assert!(err.contains(message), "{path:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!archive.exists(), "{path:?}: nothing is built");
    }
}

fn workspace_manifest() -> std::path::PathBuf {
    support::root().join("fixtures/workspace/Cargo.toml")
}

#[test]
fn a_workspace_lists_every_image_and_resolve_lists_what_it_pushed_with_a_json_summary() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = registry.host();
    let target_dir = dir.path().join("target");
    let refs = dir.path().join("workspace.refs");
    let output = run_ok(
        support::cargo_zeroimage()
            .env("DOCKER_CONFIG", dir.path())
            .arg("--manifest-path")
            .arg(workspace_manifest())
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--workspace", "--repository", &format!("{host}/ws")])
            .args(["--message-format", "json", "--image-refs"])
            .arg(&refs),
    );
    let summaries: Vec<serde_json::Value> = stdout_of(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines = read_lines(&refs);
    let images: Vec<&String> = lines.iter().filter(|l| !l.contains(' ')).collect();
    assert_eq!(images.len(), summaries.len(), "{lines:?}");
    for summary in &summaries {
        let line = format!(
            "{host}/ws/{}@{}",
            summary["bin"].as_str().unwrap(),
            summary["digest"].as_str().unwrap()
        );
        assert!(images.contains(&&line), "{line} in {lines:?}");
    }
    // Images first, then one SPDX document per image.
    assert!(lines[..images.len()].iter().all(|l| !l.contains(' ')));
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(" sbom-spdx")).count(),
        summaries.len()
    );

    // resolve: the YAML to a file, the summary as JSON, the images in the refs file.
    let yaml = dir.path().join("deploy.yaml");
    std::fs::write(
        &yaml,
        "containers:\n  - image: zeroimage://server/api\n  - image: zeroimage://tools\n  - image: zeroimage://server/api\n",
    )
    .unwrap();
    let resolved = dir.path().join("resolved.yaml");
    let resolve_refs = dir.path().join("resolve.refs");
    let resolve = || {
        let mut cmd = support::cargo_zeroimage();
        cmd.env("DOCKER_CONFIG", dir.path())
            .args(["resolve", "-f"])
            .arg(&yaml)
            .arg("--manifest-path")
            .arg(workspace_manifest())
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--repository", &format!("{host}/resolve")]);
        cmd
    };
    let output = run_ok(
        resolve()
            .args(["--message-format", "json", "-o"])
            .arg(&resolved)
            .arg("--image-refs")
            .arg(&resolve_refs),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let replaced = summary["replaced"].as_array().unwrap();
    assert_eq!(replaced.len(), 3, "{summary}");
    assert_eq!(replaced[0]["line"], 2);
    assert_eq!(replaced[0]["reference"], "zeroimage://server/api");
    assert_eq!(replaced[1]["bin"], "cli");
    assert_eq!(replaced[2]["image"], replaced[0]["image"]);
    let text = std::fs::read_to_string(&resolved).unwrap();
    for entry in replaced {
        let image = entry["image"].as_str().unwrap();
        assert!(text.contains(image), "{text}");
        let (_, digest) = image.split_once('@').unwrap();
        let manifest = raw_manifest(&skopeo, image);
        assert!(manifest["layers"].is_array(), "{image} is in the registry");
        assert!(lines_of_refs_contain(&resolve_refs, image), "{digest}");
    }
    let images = summary["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "each image once: {summary}");
    assert_eq!(
        read_lines(&resolve_refs)
            .iter()
            .filter(|l| !l.contains(' '))
            .count(),
        2
    );

    // The JSON needs the YAML in a file; the YAML may not replace an input: refused before building.
    for (args, message) in [
        (vec!["--message-format", "json"], "-o FILE"),
        (
            vec!["-o", yaml.to_str().unwrap()],
            "is also a YAML input (-f)",
        ),
    ] {
        let before = std::fs::read_to_string(&yaml).unwrap();
        let output = resolve().args(&args).output().unwrap();
        let err = stderr_of(&output);
        assert!(!output.status.success(), "{err}");
        assert!(err.contains(message), "{err}");
        assert!(!err.contains("Compiling"), "{err}");
        assert_eq!(std::fs::read_to_string(&yaml).unwrap(), before);
    }
}

fn lines_of_refs_contain(path: &Path, line: &str) -> bool {
    read_lines(path).iter().any(|l| l == line)
}
