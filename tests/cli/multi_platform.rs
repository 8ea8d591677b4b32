//! Multi-platform archives: one image index over one image per platform, with shared layers stored
//! once, read by skopeo (--all), podman, docker, runc and qemu.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::docker::{Dockerd, Podman};
use support::tiny_elf;
use support::{AARCH64_MUSL, X86_64_MUSL, blob_name, json_entry, read_tar, run_ok, stdout_of};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Builds the two-platform hello image with cargo zeroimage (plus a CA layer to share); returns the
/// archive and the JSON summary.
fn two_platform_image(dir: &Path) -> Option<(PathBuf, serde_json::Value)> {
    if !support::target_installed(AARCH64_MUSL) || !support::target_installed(X86_64_MUSL) {
        assert!(!support::peers_required(), "both musl targets are required");
        eprintln!("SKIPPED: x86_64 and aarch64 musl targets needed");
        return None;
    }
    let ca = dir.join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let output = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(support::root().join("fixtures/hello/Cargo.toml"))
            .args([
                "--target",
                X86_64_MUSL,
                "--target",
                AARCH64_MUSL,
                "--message-format",
                "json",
                "-q",
            ])
            .args(["-t", "zi-multi/hello:1.0"])
            .arg(format!("--ca-certs={}", ca.display()))
            .arg("-o")
            .arg(dir.join("hello.tar")),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    Some((PathBuf::from(summary["path"].as_str().unwrap()), summary))
}

#[test]
fn several_targets_make_one_index_with_shared_layers_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = two_platform_image(dir.path()) else {
        return;
    };
    // The default place, <target-dir>/zeroimage/<profile>/, is checked with the `targets` setting.
    assert_eq!(archive, dir.path().join("hello.tar"));
    assert_eq!(summary["platform"], "linux/amd64,linux/arm64");
    assert_eq!(
        summary["targets"],
        serde_json::json!([X86_64_MUSL, AARCH64_MUSL])
    );
    assert!(summary.get("manifest_digest").is_none());

    let entries = read_tar(&archive);
    let index = json_entry(&entries, "index.json");
    let top = &index["manifests"];
    assert_eq!(
        top.as_array().unwrap().len(),
        1,
        "skopeo needs exactly one descriptor"
    );
    assert_eq!(top[0]["mediaType"], INDEX);
    assert_eq!(top[0]["digest"], summary["digest"]);
    assert_eq!(
        top[0]["annotations"]["io.containerd.image.name"],
        "docker.io/zi-multi/hello:1.0"
    );
    let inner = json_entry(&entries, &blob_name(&top[0]["digest"]));
    let manifests = inner["manifests"].as_array().unwrap();
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let mut first_layers = Vec::new();
    for (m, arch) in manifests.iter().zip(["amd64", "arm64"]) {
        let manifest = json_entry(&entries, &blob_name(&m["digest"]));
        let config = json_entry(&entries, &blob_name(&manifest["config"]["digest"]));
        assert_eq!(config["architecture"], arch);
        first_layers.push(manifest["layers"][0]["digest"].clone());
    }
    assert_eq!(first_layers[0], first_layers[1], "the CA layer is shared");
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let shared = blob_name(&first_layers[0]);
    assert_eq!(
        stdout_of(&listing).lines().filter(|l| *l == shared).count(),
        1,
        "stored once"
    );
    // Docker's manifest.json describes the first platform.
    let docker = json_entry(&entries, "manifest.json");
    assert_eq!(docker.as_array().unwrap().len(), 1);
    let first_manifest = json_entry(&entries, &blob_name(&manifests[0]["digest"]));
    assert_eq!(
        docker[0]["Config"],
        blob_name(&first_manifest["config"]["digest"])
    );
}

#[test]
fn skopeo_copies_all_platforms_and_each_runs() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(qemu) = support::peer("qemu-aarch64-static") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = two_platform_image(dir.path()) else {
        return;
    };
    let source = format!("oci-archive:{}", archive.display());

    let all = dir.path().join("all");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        "--all",
        &source,
        &format!("oci:{}:multi", all.display()),
    ]));
    let raw = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        &format!("oci:{}:multi", all.display()),
    ]));
    let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(raw["mediaType"], INDEX);
    let archs: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert_eq!(
        support::file_digest(&all.join(blob_name(&summary["digest"]))),
        summary["digest"].as_str().unwrap(),
        "skopeo kept our index as it is"
    );

    // Without --all skopeo picks this machine's platform; that image runs in runc.
    let host = dir.path().join("host");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        &source,
        &format!("oci:{}:amd64", host.display()),
    ]));
    if let Some(stdout) = support::run_layout_in_runc(&host, "amd64", &["x"], &[]) {
        assert!(
            stdout.starts_with("hello from the zeroimage fixture\nargv=/hello x\n"),
            "{stdout}"
        );
    }
    // The arm64 image, chosen by platform, runs under qemu.
    let arm = dir.path().join("arm");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        "--override-arch",
        "arm64",
        &source,
        &format!("oci:{}:arm64", arm.display()),
    ]));
    let inspect =
        run_ok(Command::new(&skopeo).args(["inspect", &format!("oci:{}:arm64", arm.display())]));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Architecture"], "arm64");
    let rootfs = dir.path().join("arm-rootfs");
    let arm_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(arm.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(arm.join(blob_name(&arm_index["manifests"][0]["digest"]))).unwrap(),
    )
    .unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = std::fs::read(arm.join(blob_name(&layer["digest"]))).unwrap();
        tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]))
            .unpack(&rootfs)
            .unwrap();
    }
    let output = run_ok(Command::new(qemu).arg(rootfs.join("hello")).arg("on-arm"));
    assert!(stdout_of(&output).contains("argv=") && stdout_of(&output).contains("on-arm"));
    assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file());
}

#[test]
fn podman_loads_the_matching_platform_and_runs_it() {
    let Some(podman) = Podman::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, _)) = two_platform_image(dir.path()) else {
        return;
    };
    let output = run_ok(
        podman
            .command()
            .arg("load")
            .arg("--signature-policy")
            .arg(podman.policy())
            .arg("-i")
            .arg(&archive),
    );
    assert!(
        stdout_of(&output).contains("Loaded image: docker.io/zi-multi/hello:1.0"),
        "{}",
        stdout_of(&output)
    );
    let output = run_ok(podman.run().args(["docker.io/zi-multi/hello:1.0", "p"]));
    assert!(stdout_of(&output).starts_with("hello from the zeroimage fixture\nargv=/hello p\n"));
    let inspect =
        run_ok(
            podman
                .command()
                .args(["image", "inspect", "docker.io/zi-multi/hello:1.0"]),
        );
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect[0]["Architecture"], "amd64");
}

#[test]
fn docker_loads_the_first_platform_and_runs_it() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, _)) = two_platform_image(dir.path()) else {
        return;
    };
    let output = run_ok(docker.client().arg("load").arg("-i").arg(&archive));
    assert!(
        stdout_of(&output).contains("Loaded image: zi-multi/hello:1.0"),
        "{}",
        stdout_of(&output)
    );
    let output = run_ok(docker.client().args([
        "run",
        "--rm",
        "--network",
        "none",
        "zi-multi/hello:1.0",
        "d",
    ]));
    assert!(stdout_of(&output).starts_with("hello from the zeroimage fixture\nargv=/hello d\n"));
    let inspect = run_ok(
        docker
            .client()
            .args(["image", "inspect", "zi-multi/hello:1.0"]),
    );
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect[0]["Architecture"], "amd64");
}

#[test]
fn targets_setting_in_cargo_toml_makes_a_multi_platform_image() {
    if !support::target_installed(AARCH64_MUSL) {
        assert!(!support::peers_required());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[package.metadata.zeroimage]\ntargets = [\"{AARCH64_MUSL}\", \"{X86_64_MUSL}\"]\n"
    ));
    std::fs::write(&manifest, text).unwrap();
    let target_dir = dir.path().join("target");
    let output = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--message-format", "json", "-q", "--target-dir"])
            .arg(&target_dir),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["platform"], "linux/arm64,linux/amd64");
    assert_eq!(
        summary["path"],
        target_dir
            .join("zeroimage/release/hello.tar")
            .display()
            .to_string()
    );
}

#[test]
fn platform_binaries_are_each_checked_against_their_platform() {
    let dir = tempfile::tempdir().unwrap();
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let pb = |platform: &str, path: &Path| format!("{platform}={}", path.display());

    let output = run_ok(
        support::zeroimage()
            .current_dir(dir.path())
            .args([
                "--platform-binary",
                &pb("linux/amd64", &amd),
                "--platform-binary",
                &pb("linux/arm64/v8", &arm),
            ])
            .args(["--message-format", "json"]),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["path"], "app.tar",
        "named after the program, in the current directory"
    );
    assert_eq!(summary["platform"], "linux/amd64,linux/arm64/v8");
    let entries = read_tar(&dir.path().join("app.tar"));
    let index = json_entry(&entries, "index.json");
    assert_eq!(index["manifests"][0]["mediaType"], INDEX);

    let refused = |args: &[String], needle: &str| {
        let output = support::zeroimage()
            .current_dir(dir.path())
            .args(args)
            .args(["-o", "bad.tar"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!dir.path().join("bad.tar").exists());
    };
    let flag = "--platform-binary".to_owned();
    refused(
        &[
            flag.clone(),
            pb("linux/amd64", &amd),
            flag.clone(),
            pb("linux/amd64", &arm),
        ],
        "arm64 executable",
    );
    refused(
        &[
            flag.clone(),
            pb("linux/amd64", &amd),
            flag.clone(),
            pb("linux/amd64", &amd),
        ],
        "are both linux/amd64",
    );
    let renamed = dir.path().join("app-arm64");
    std::fs::copy(&arm, &renamed).unwrap();
    refused(
        &[
            flag.clone(),
            pb("linux/amd64", &amd),
            flag.clone(),
            pb("linux/arm64", &renamed),
        ],
        "--entrypoint-path",
    );
    let output = support::zeroimage()
        .arg(&amd)
        .args(["--platform-binary", &pb("linux/arm64", &arm)])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "ENTRYPOINT and --platform-binary do not mix"
    );
}
