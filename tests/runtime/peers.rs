//! End-to-end proof with the real consumers: skopeo, umoci + runc, oci-image-tool, podman, docker,
//! containerd and qemu. Each test skips visibly when its tool is missing, and fails instead under
//! ZEROIMAGE_REQUIRE_PEERS=1 (scripts/test, CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::containerd::Containerd;
use support::docker::{Dockerd, Podman};
use support::{blob_name, json_entry, read_tar, run_ok, stdout_of};

const GREETING_LINE: &str = "hello from the zeroimage fixture";

/// Packages the x86-64 musl fixture as `name`; returns the archive and our JSON summary.
fn fixture_image(dir: &Path, tag: &str) -> Option<(PathBuf, serde_json::Value)> {
    let fixture = support::hello_fixture(support::X86_64_MUSL)?;
    let out = dir.join("hello.tar");
    let output = support::package(&fixture, &out, &["--tag", tag, "--message-format", "json"]);
    let summary = serde_json::from_slice(&output.stdout).expect("summary JSON");
    Some((out, summary))
}

/// Checks the fixture's output: it ran as the entrypoint, with our args, env and docker's PATH.
fn assert_fixture_ran(stdout: &str, args: &str, greeting: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            GREETING_LINE.to_owned(),
            format!("argv=/hello{args}"),
            format!("GREETING={greeting}"),
            format!(
                "PATH={}",
                zeroimage::assemble::DEFAULT_PATH_ENV.trim_start_matches("PATH=")
            ),
        ],
        "container output:\n{stdout}"
    );
}

#[test]
fn skopeo_inspects_and_copies_both_layouts() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = fixture_image(dir.path(), "zi-test/hello:1.0") else {
        return;
    };
    let source = format!("oci-archive:{}", archive.display());

    let inspect = run_ok(Command::new(&skopeo).args(["inspect", &source]));
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["Digest"], summary["manifest_digest"]);
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"], serde_json::json!([summary["layer_digest"]]));
    assert_eq!(info["Created"], "1970-01-01T00:00:00Z");

    let config = run_ok(Command::new(&skopeo).args(["inspect", "--config", &source]));
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/hello"])
    );

    // The tag selects the image inside the archive, as ref.name says.
    let layout = dir.path().join("layout");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        &format!("{source}:1.0"),
        &format!("oci:{}:copied", layout.display()),
    ]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"], summary["manifest_digest"],
        "skopeo kept the manifest as is"
    );

    // docker-archive: reads Docker's manifest.json and finds the image by its RepoTag.
    let via_docker = dir.path().join("via-docker");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        &format!("docker-archive:{}:zi-test/hello:1.0", archive.display()),
        &format!("oci:{}:x", via_docker.display()),
    ]));
    let inspect = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--config",
        &format!("oci:{}:x", via_docker.display()),
    ]));
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/hello"])
    );
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn umoci_unpacks_and_runc_runs_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, _)) = fixture_image(dir.path(), "hello:2.0") else {
        return;
    };
    // Our archive, extracted, is itself an OCI image layout; umoci unpacks the image its tag names.
    let Some(stdout) = support::run_in_runc(&archive, "2.0", &["arg1"], &["GREETING=from runc"])
    else {
        return;
    };
    assert_fixture_ran(&stdout, " arg1", "from runc");

    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let rootfs = dir.path().join("rootfs");
    support::unpack_rootfs(&archive, &rootfs);
    let program = std::fs::metadata(rootfs.join("hello")).unwrap();
    assert_eq!(program.permissions().mode() & 0o7777, 0o755);
    assert_eq!((program.uid(), program.gid()), (0, 0));
    assert_eq!(
        support::dir_listing(&rootfs),
        ["hello"],
        "the image holds only the program"
    );
}

#[test]
fn oci_image_tool_validates_the_layout_and_documents() {
    let Some(tool) = support::peer("oci-image-tool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = fixture_image(dir.path(), "hello:3.0") else {
        return;
    };
    let layout = dir.path().join("layout");
    support::extract(&archive, &layout);
    // `--type imageLayout` is unimplemented in oci-image-tool 1.0.0-rc1 and its tar reader is broken:
    // `--type image` on the extracted directory validates the whole layout (digests, sizes, schemas).
    let output = run_ok(
        Command::new(&tool)
            .args(["validate", "--type", "image", "--ref", "name=3.0"])
            .arg(&layout),
    );
    let text = stdout_of(&output);
    assert!(
        text.contains("autodetected image file type is: imageLayout"),
        "{text}"
    );
    assert!(text.contains("Validation succeeded"), "{text}");

    let manifest_blob = layout.join(blob_name(&summary["manifest_digest"]));
    let config_blob = layout.join(blob_name(&summary["config_digest"]));
    for (kind, path) in [
        ("imageIndex", layout.join("index.json")),
        ("manifest", manifest_blob),
        ("config", config_blob),
    ] {
        let output = run_ok(
            Command::new(&tool)
                .args(["validate", "--type", kind])
                .arg(&path),
        );
        assert!(
            stdout_of(&output).contains("Validation succeeded"),
            "{kind}"
        );
    }
    // A corrupted layout is caught, so the check above can fail.
    let layer = layout.join(blob_name(&summary["layer_digest"]));
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes.push(0);
    std::fs::write(&layer, bytes).unwrap();
    let output = Command::new(&tool)
        .args(["validate", "--type", "image"])
        .arg(&layout)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "oci-image-tool accepted a corrupted layer"
    );
}

#[test]
fn podman_loads_and_runs_the_archive_by_name() {
    let Some(podman) = Podman::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = fixture_image(dir.path(), "zi-test/hello:4.0") else {
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
    let loaded = stdout_of(&output);
    assert!(
        loaded.contains("Loaded image: docker.io/zi-test/hello:4.0"),
        "{loaded}"
    );

    let output = run_ok(podman.run().args([
        "-e",
        "GREETING=from podman",
        "docker.io/zi-test/hello:4.0",
        "a",
        "b",
    ]));
    assert_fixture_ran(&stdout_of(&output), " a b", "from podman");

    let inspect =
        run_ok(
            podman
                .command()
                .args(["image", "inspect", "docker.io/zi-test/hello:4.0"]),
        );
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect[0]["Digest"], summary["manifest_digest"]);
    assert_eq!(inspect[0]["Architecture"], "amd64");
}

#[test]
fn docker_loads_and_runs_the_archive_by_name() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = fixture_image(dir.path(), "zi-test/hello:5.0") else {
        return;
    };
    let output = run_ok(docker.client().arg("load").arg("-i").arg(&archive));
    assert!(
        stdout_of(&output).contains("Loaded image: zi-test/hello:5.0"),
        "{}",
        stdout_of(&output)
    );

    let output = run_ok(docker.client().args([
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "GREETING=from docker",
        "zi-test/hello:5.0",
        "x",
    ]));
    assert_fixture_ran(&stdout_of(&output), " x", "from docker");

    let output = run_ok(
        docker
            .client()
            .args(["image", "inspect", "zi-test/hello:5.0"]),
    );
    let inspect: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        inspect[0]["Id"], summary["config_digest"],
        "docker's image id is our config digest"
    );
    assert_eq!(inspect[0]["Architecture"], "amd64");
    assert_eq!(
        inspect[0]["Config"]["Entrypoint"],
        serde_json::json!(["/hello"])
    );
}

#[test]
fn containerd_imports_the_archive_and_runs_it_by_name() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, summary)) = fixture_image(dir.path(), "zi-test/hello:6.0") else {
        return;
    };
    let output = run_ok(
        containerd
            .ctr("default")
            .args(["images", "import", "--snapshotter", "native"])
            .arg(&archive),
    );
    assert!(
        stdout_of(&output).contains(&format!(
            "unpacking docker.io/zi-test/hello:6.0 ({})...done",
            summary["manifest_digest"].as_str().unwrap()
        )),
        "{}",
        stdout_of(&output)
    );
    // Arguments given to `ctr run` would replace the entrypoint: the image's own runs.
    let output = run_ok(&mut containerd.run("default", "docker.io/zi-test/hello:6.0", &[]));
    assert_fixture_ran(&stdout_of(&output), "", "<unset>");
}

#[test]
fn arm64_image_is_labelled_arm64_and_its_program_runs_under_qemu() {
    let Some(qemu) = support::peer("qemu-aarch64-static") else {
        return;
    };
    let Some(fixture) = support::hello_fixture(support::AARCH64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello-arm64.tar");
    let output = support::package(&fixture, &out, &["--message-format", "json"]);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["platform"], "linux/arm64",
        "detected from the ELF header, not the host"
    );

    let entries = read_tar(&out);
    let index = json_entry(&entries, "index.json");
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
    let config = json_entry(&entries, &blob_name(&summary["config_digest"]));
    assert_eq!(config["architecture"], "arm64");
    if let Some(skopeo) = support::peer("skopeo") {
        let inspect = run_ok(
            Command::new(skopeo).args(["inspect", &format!("oci-archive:{}", out.display())]),
        );
        let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(info["Architecture"], "arm64");
    }

    // Take the program back out of the layer and run it.
    let unpacked = dir.path().join("rootfs");
    support::unpack_rootfs(&out, &unpacked);
    let output = run_ok(
        Command::new(qemu)
            .arg(unpacked.join("hello"))
            .arg("q")
            .env("GREETING", "from qemu"),
    );
    let stdout = stdout_of(&output);
    assert!(
        stdout.starts_with(&format!("{GREETING_LINE}\nargv=")),
        "{stdout}"
    );
    assert!(stdout.contains("GREETING=from qemu"), "{stdout}");
}
