//! `--oci-layout DIR` read by the real consumers of OCI layouts: `oci-image-tool validate`,
//! `skopeo inspect oci:DIR:NAME`, `umoci unpack --image DIR:NAME` + runc, and `podman pull
//! oci:DIR:NAME` + `podman run`, on a layout holding two images (and their SBOMs), one of which was
//! replaced.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support;
use support::docker::Podman;
use support::{run_ok, stdout_of};

const GREETING_LINE: &str = "hello from the zeroimage fixture";

/// Adds the x86-64 musl fixture to `layout` as `tag` with `extra` flags; the JSON summary.
fn add_fixture(layout: &Path, tag: &str, extra: &[&str]) -> Option<Value> {
    let fixture = support::hello_fixture(support::X86_64_MUSL)?;
    let output = run_ok(
        support::zeroimage()
            .arg(&fixture)
            .args(["-t", tag, "--message-format", "json", "--oci-layout"])
            .arg(layout)
            .args(extra),
    );
    Some(serde_json::from_slice(&output.stdout).expect("summary JSON"))
}

/// A layout holding `zi-test/hello:6.0` (added twice: the second replaced the first) and
/// `other:1`; the summaries of the images it holds.
fn two_image_layout(layout: &Path) -> Option<(Value, Value)> {
    add_fixture(layout, "zi-test/hello:6.0", &[])?;
    let other = add_fixture(layout, "other:1", &["--created", "@1", "--sbom", "none"])?;
    let hello = add_fixture(layout, "zi-test/hello:6.0", &["--provenance"])?;
    Some((hello, other))
}

/// The fixture printed its greeting, with our arguments and environment.
fn assert_fixture_ran(stdout: &str, args: &str, greeting: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], GREETING_LINE, "{stdout}");
    assert_eq!(lines[1], format!("argv=/hello{args}"), "{stdout}");
    assert_eq!(lines[2], format!("GREETING={greeting}"), "{stdout}");
}

#[test]
fn oci_image_tool_validates_the_layout_and_each_name() {
    let Some(tool) = support::peer("oci-image-tool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let Some(_) = two_image_layout(&layout) else {
        return;
    };
    // `--type imageLayout` is unimplemented in oci-image-tool 1.0.0-rc1: `--type image` on a
    // directory validates it as a layout (every reference, or the one named).
    for refs in [
        &[][..],
        &["--ref", "name=zi-test/hello:6.0"],
        &["--ref", "name=other:1"],
    ] {
        let output = run_ok(
            Command::new(&tool)
                .args(["validate", "--type", "image"])
                .args(refs)
                .arg(&layout),
        );
        let text = stdout_of(&output);
        assert!(
            text.contains("autodetected image file type is: imageLayout"),
            "{text}"
        );
        assert!(text.contains("Validation succeeded"), "{refs:?}: {text}");
    }
    // The check can fail: the other image's layer damaged.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.join(support::blob_name(&index["manifests"][0]["digest"]))).unwrap(),
    )
    .unwrap();
    let layer = layout.join(support::blob_name(&manifest["layers"][0]["digest"]));
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
        "oci-image-tool accepted a damaged layer"
    );
}

#[test]
fn skopeo_inspects_each_image_of_the_layout_by_name() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let Some((hello, other)) = two_image_layout(&layout) else {
        return;
    };
    for (name, summary) in [("zi-test/hello:6.0", &hello), ("other:1", &other)] {
        let source = format!("oci:{}:{name}", layout.display());
        let inspect = run_ok(Command::new(&skopeo).args(["inspect", &source]));
        let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(info["Digest"], summary["digest"], "{name}");
        assert_eq!(info["Layers"], serde_json::json!([summary["layer_digest"]]));
        assert_eq!(info["Architecture"], "amd64");
    }
    // And copies it out whole, as any layout.
    let copy = dir.path().join("copy.tar");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "-q",
        &format!("oci:{}:other:1", layout.display()),
        &format!("oci-archive:{}", copy.display()),
    ]));
    support::validate::archive(&copy);
}

#[test]
fn umoci_unpacks_each_image_by_name_and_runc_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let Some(_) = two_image_layout(&layout) else {
        return;
    };
    for (name, greeting) in [("zi-test/hello:6.0", "from runc"), ("other:1", "again")] {
        let env = format!("GREETING={greeting}");
        let Some(stdout) = support::run_layout_in_runc(&layout, name, &["x"], &[env.as_str()])
        else {
            return;
        };
        assert_fixture_ran(&stdout, " x", greeting);
    }
}

#[test]
fn podman_pulls_the_image_from_the_layout_by_name_and_runs_it() {
    let Some(podman) = Podman::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let Some((hello, _)) = two_image_layout(&layout) else {
        return;
    };
    // podman 4 names what it pulls from a layout after the directory: a relative, lowercase path.
    let output = run_ok(
        podman
            .command()
            .current_dir(dir.path())
            .args(["pull", "-q", "--signature-policy"])
            .arg(podman.policy())
            .arg("oci:layout:zi-test/hello:6.0"),
    );
    let id = stdout_of(&output).trim().to_owned();
    let inspect = run_ok(podman.command().args(["image", "inspect", &id]));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect[0]["Digest"], hello["digest"]);
    let output = run_ok(podman.run().args(["-e", "GREETING=from podman", &id, "a"]));
    assert_fixture_ran(&stdout_of(&output), " a", "from podman");
}
