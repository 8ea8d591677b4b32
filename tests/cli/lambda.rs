//! `--lambda`: AWS Lambda's rules checked before anything is written. An image Lambda runs passes
//! (one gzip manifest, as skopeo reads it); each rule broken is refused in one line with nothing
//! written: an index, zstd layers, a base with uncompressed layers (made so by skopeo), an entrypoint
//! through a base's symbolic link or in a directory others cannot enter (bases made by umoci); the
//! Cargo.toml-free `zeroimage` and a push to an ECR host without `--lambda` warn instead.

use std::path::Path;
use std::process::Output;

use crate::support;
use support::bases;
use support::tiny_elf::{self, Machine, Shape};
use support::{run_ok, stdout_of};

fn program(dir: &Path) -> std::path::PathBuf {
    tiny_elf::write(
        dir,
        "fn",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    )
}

/// Runs zeroimage with `args`, expecting the `--lambda` refusal naming `expected`; nothing written.
fn refused(dir: &Path, args: &[&str], expected: &str) {
    let out = dir.join("refused.tar");
    let output: Output = support::zeroimage()
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg("--lambda")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?}: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    assert!(
        errors[0].starts_with("error: AWS Lambda cannot run this image (--lambda): "),
        "{stderr}"
    );
    assert!(errors[0].contains(expected), "{args:?}: {stderr}");
    assert!(!out.exists(), "{args:?}: an archive was written");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("refused"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_image_lambda_runs_passes_and_one_it_cannot_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let fn_path = program(dir.path());
    let fn_arg = fn_path.to_str().unwrap();

    // One platform, gzip, absolute entrypoint: passes, and skopeo sees one gzip manifest.
    let out = dir.path().join("fn.tar");
    let output = run_ok(
        support::zeroimage()
            .arg(&fn_path)
            .arg("-o")
            .arg(&out)
            .args(["-t", "fn:1", "--lambda"]),
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(skopeo) = support::peer("skopeo") {
        let raw = stdout_of(&run_ok(std::process::Command::new(&skopeo).args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}", out.display()),
        ])));
        let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
            "{raw}"
        );
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "{raw}"
            );
        }
    }

    refused(
        dir.path(),
        &[fn_arg, "--compression", "zstd"],
        "layer 1 of 1 is zstd-compressed",
    );
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let amd = format!("--platform-binary=linux/amd64={}", amd.display());
    let arm = format!("--platform-binary=linux/arm64={}", arm.display());
    refused(dir.path(), &[&amd, &arm], "image index of 2 platforms");
    let arm7 = tiny_elf::write(dir.path(), "fn7", &tiny_elf::arm_with_cpu_arch(10));
    refused(
        dir.path(),
        &[arm7.to_str().unwrap()],
        "its platform is linux/arm/v7",
    );
}

#[test]
fn bases_lambda_cannot_use_are_refused_naming_the_fix() {
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fn_path = program(dir.path());
    let fn_arg = fn_path.to_str().unwrap();

    // The busybox base, its layers decompressed by skopeo.
    let layout = bases::busybox_layout(&umoci, dir.path(), None);
    let plain = dir.path().join("plain.tar");
    let unpacked = dir.path().join("plain-dir");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("dir:{}", unpacked.display()),
        &["--dest-decompress"],
    );
    run_ok(
        std::process::Command::new(&skopeo)
            .args(["copy", "-q", "--dest-oci-accept-uncompressed-layers"])
            .arg(format!("dir:{}", unpacked.display()))
            .arg(format!("oci-archive:{}:latest", plain.display())),
    );
    let gzip = dir.path().join("gzip.tar");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("oci-archive:{}:latest", gzip.display()),
        &[],
    );
    refused(
        dir.path(),
        &[fn_arg, "--from-archive", plain.to_str().unwrap()],
        "layers 1, 2 of 3 are uncompressed",
    );
    let ok = dir.path().join("on-busybox.tar");
    run_ok(
        support::zeroimage()
            .arg(&fn_path)
            .arg("--from-archive")
            .arg(&gzip)
            .arg("-o")
            .arg(&ok)
            .arg("--lambda"),
    );

    // A base whose /app is a link to /srv, and whose /locked others cannot enter.
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(stage.join("srv")).unwrap();
    std::fs::create_dir_all(stage.join("locked")).unwrap();
    std::os::unix::fs::symlink("srv", stage.join("app")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(stage.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let odd = bases::layout_of(&umoci, dir.path(), "odd", &stage);
    let odd_archive = dir.path().join("odd.tar");
    bases::copy(
        &skopeo,
        &odd,
        "latest",
        &format!("oci-archive:{}:latest", odd_archive.display()),
        &[],
    );
    let base = odd_archive.to_str().unwrap();
    refused(
        dir.path(),
        &[
            fn_arg,
            "--from-archive",
            base,
            "--entrypoint-path",
            "/app/fn",
        ],
        "reached through the symbolic link /app",
    );
    refused(
        dir.path(),
        &[
            fn_arg,
            "--from-archive",
            base,
            "--entrypoint-path",
            "/locked/fn",
        ],
        "the directory /locked (mode 0700)",
    );
    let ok = dir.path().join("in-srv.tar");
    run_ok(
        support::zeroimage()
            .arg(&fn_path)
            .args([
                "--from-archive",
                base,
                "--entrypoint-path",
                "/srv/fn",
                "--lambda",
            ])
            .arg("-o")
            .arg(&ok),
    );
}

#[test]
fn a_push_to_an_ecr_host_warns_without_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let fn_path = program(dir.path());
    let reference = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:1";
    let output = support::zeroimage()
        .arg(&fn_path)
        .args(["--compression", "zstd", "--push", reference])
        .args(["--registry-timeout", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "warning: AWS Lambda cannot run this image (pushed to ECR): layer 1 of 1 is \
             zstd-compressed"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--lambda makes this an error"), "{stderr}");
    // The same push elsewhere does not warn (it fails on the unreachable registry either way).
    let output = support::zeroimage()
        .arg(&fn_path)
        .args(["--compression", "zstd", "--push", "registry.invalid/fn:1"])
        .args(["--registry-timeout", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("AWS Lambda"), "{stderr}");
}
