//! Base images: `--from-archive` with an oci-archive, a docker-archive and an OCI layout, multi-platform
//! bases, what is inherited, and the result run by the real consumers. The bases are made in the test
//! with umoci and skopeo from this machine's files (see tests/support/bases.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::bases;
use support::{probe_report, run_ok, zeroimage};

/// A busybox base as an oci-archive `dir/base.tar` (image `latest`), or `None` when tools are missing.
fn busybox_archive(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let (umoci, skopeo) = bases::tools()?;
    let layout = bases::busybox_layout(&umoci, dir, None);
    let archive = dir.join("base.tar");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("oci-archive:{}:latest", archive.display()),
        &[],
    );
    Some((archive, layout, skopeo))
}

/// Packages the probe on `from` (a `--from-archive` value) as `probe:based` with `extra` options; returns
/// the archive and the JSON summary.
fn build_on(
    dir: &Path,
    from: &str,
    name: &str,
    extra: &[&str],
) -> Option<(PathBuf, serde_json::Value)> {
    let probe = support::probe_fixture()?;
    let archive = dir.join(name);
    let output = run_ok(
        zeroimage()
            .arg(&probe)
            .arg("-o")
            .arg(&archive)
            .args([
                "-t",
                "probe:based",
                "--from-archive",
                from,
                "--message-format",
                "json",
            ])
            .args(extra),
    );
    Some((archive, serde_json::from_slice(&output.stdout).unwrap()))
}

fn run_probe(archive: &Path) -> Option<BTreeMap<String, String>> {
    let stdout = support::run_in_runc(
        archive,
        "based",
        &[],
        &[&format!("PROBE_FILE={}", bases::MARKER)],
    )?;
    Some(probe_report(&stdout))
}

fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_oci_archive_base_is_inherited_and_the_program_sees_its_files_env_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let Some((base, layout, skopeo)) = busybox_archive(dir.path()) else {
        return;
    };
    let from = base.display().to_string();
    let Some((archive, summary)) = build_on(
        dir.path(),
        &from,
        "based.tar",
        &["-e", "MODE=ours", "--label", "org.example.app=probe"],
    ) else {
        return;
    };
    let base_manifest: serde_json::Value = serde_json::from_slice(
        &run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:latest", layout.display())),
        )
        .stdout,
    )
    .unwrap();
    let base_digest = support::file_digest_of_bytes(
        &String::from_utf8(
            run_ok(
                Command::new(&skopeo)
                    .args(["inspect", "--raw"])
                    .arg(format!("oci:{}:latest", layout.display())),
            )
            .stdout,
        )
        .unwrap(),
    );
    assert_eq!(summary["base"]["name"], from.as_str());
    assert_eq!(summary["base"]["digest"], base_digest.as_str());

    // Layers and diff ids: the base's, as they are, then ours.
    let manifest = support::image_manifest(&archive);
    let ours = layer_digests(&manifest);
    let theirs = layer_digests(&base_manifest);
    assert_eq!(ours.len(), theirs.len() + 1);
    assert_eq!(
        &ours[..theirs.len()],
        theirs.as_slice(),
        "base layers copied as they are"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.name"],
        from.as_str()
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"],
        base_digest.as_str()
    );
    let inspect: serde_json::Value = serde_json::from_slice(
        &run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--config"])
                .arg(format!("oci-archive:{}", archive.display())),
        )
        .stdout,
    )
    .unwrap();
    let config = &inspect["config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["/probe"]));
    assert!(config.get("Cmd").is_none(), "Cmd is reset: {config}");
    assert_eq!(
        config["Env"],
        serde_json::json!(["GREETING=from the base", "PATH=/bin:/usr/bin", "MODE=ours"])
    );
    assert_eq!(config["User"], bases::BASE_USER);
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(config["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert_eq!(config["Labels"]["org.example.base"], "busybox");
    assert_eq!(config["Labels"]["org.example.app"], "probe");
    let diff_ids = inspect["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), ours.len());
    let history = inspect["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["created_by"], "COPY probe /probe");
    assert!(history.len() > 1, "the base's history comes first");

    // The program runs on the base: its file, its user (resolved through its /etc/passwd), its env.
    if let Some(report) = run_probe(&archive) {
        assert_eq!(report["uid"], bases::BASE_UID);
        assert_eq!(report["user"], bases::BASE_USER);
        assert_eq!(report["cwd"], "/srv");
        assert_eq!(report["env.GREETING"], "from the base");
        assert_eq!(report["env.MODE"], "ours");
        assert_eq!(report["file"], bases::MARKER_TEXT);
    }

    // Reproducible: the same base, program and options give the same bytes.
    let (again, _) = build_on(
        dir.path(),
        &from,
        "based-again.tar",
        &["-e", "MODE=ours", "--label", "org.example.app=probe"],
    )
    .unwrap();
    assert_eq!(support::file_digest(&archive), support::file_digest(&again));
}

#[test]
fn docker_archive_and_oci_layout_bases_work_like_the_oci_archive() {
    let dir = tempfile::tempdir().unwrap();
    let Some((oci, layout, skopeo)) = busybox_archive(dir.path()) else {
        return;
    };
    let docker = dir.path().join("docker-base.tar");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("docker-archive:{}:example.com/base:1", docker.display()),
        &[],
    );
    let layout_dir = dir.path().join("copied-layout");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("oci:{}:v1", layout_dir.display()),
        &[],
    );
    let (from_oci, _) = build_on(dir.path(), &oci.display().to_string(), "a.tar", &[]).unwrap();
    for (from, name) in [
        (
            format!("{}:example.com/base:1", docker.display()),
            "from-docker.tar",
        ),
        (format!("{}", docker.display()), "from-docker-untagged.tar"),
        (format!("{}:v1", layout_dir.display()), "from-layout.tar"),
    ] {
        let (archive, summary) = build_on(dir.path(), &from, name, &[]).unwrap();
        assert_eq!(summary["base"]["name"], from.as_str());
        let config = support::image_config(&archive);
        assert_eq!(
            config["rootfs"]["diff_ids"],
            support::image_config(&from_oci)["rootfs"]["diff_ids"],
            "{from}: the same layers underneath"
        );
        if let Some(report) = run_probe(&archive) {
            assert_eq!(report["file"], bases::MARKER_TEXT, "{from}");
            assert_eq!(report["user"], bases::BASE_USER, "{from}");
        }
    }
}

#[test]
fn each_platform_gets_its_own_base_from_a_multi_platform_index() {
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let layout = bases::multi_platform_layout(&umoci, dir.path());
    let multi = dir.path().join("multi.tar");
    bases::copy(
        &skopeo,
        &layout,
        "multi",
        &format!("oci-archive:{}:multi", multi.display()),
        &["--all"],
    );
    let (amd, arm) = support::tiny_elf::two_platform_programs(dir.path());
    let archive = dir.path().join("on-multi.tar");
    run_ok(
        zeroimage()
            .args([
                "--platform-binary",
                &format!("linux/amd64={}", amd.display()),
            ])
            .args([
                "--platform-binary",
                &format!("linux/arm64={}", arm.display()),
            ])
            .arg("--from-archive")
            .arg(&multi)
            .arg("-o")
            .arg(&archive),
    );
    let entries = support::read_tar(&archive);
    let index = support::json_entry(&entries, "index.json");
    let inner = support::json_entry(
        &entries,
        &support::blob_name(&index["manifests"][0]["digest"]),
    );
    for entry in inner["manifests"].as_array().unwrap() {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        let manifest = support::json_entry(&entries, &support::blob_name(&entry["digest"]));
        let config =
            support::json_entry(&entries, &support::blob_name(&manifest["config"]["digest"]));
        assert!(
            config["config"]["Env"]
                .as_array()
                .unwrap()
                .contains(&format!("BASE_ARCH={arch}").into()),
            "{arch} built on the {arch} base: {config}"
        );
        let base_layer = &entries[&support::blob_name(&manifest["layers"][0]["digest"])];
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&base_layer[..]));
        let marker = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("etc/base-marker"))
            .map(|mut e| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                text
            });
        assert_eq!(marker.as_deref(), Some(format!("{arch} base").as_str()));
    }

    // A platform the base does not offer: one line listing what it does.
    let output = zeroimage()
        .args([
            "--platform-binary",
            &format!("linux/amd64={}", amd.display()),
        ])
        .args([
            "--platform-binary",
            &format!("linux/riscv64={}", amd.display()),
        ])
        .arg("--from-archive")
        .arg(&multi)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.path().join("never.tar").exists());
}

#[test]
fn a_base_platform_that_differs_is_refused_with_what_it_offers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let layout = bases::multi_platform_layout(&umoci, dir.path());
    let multi = dir.path().join("multi.tar");
    bases::copy(
        &skopeo,
        &layout,
        "multi",
        &format!("oci-archive:{}:multi", multi.display()),
        &["--all"],
    );
    let program = support::tiny_elf::write(
        dir.path(),
        "app",
        &support::tiny_elf::build(
            support::tiny_elf::Machine::X86_64,
            support::tiny_elf::Shape::Static,
            "x\n",
        ),
    );
    let output = zeroimage()
        .arg(&program)
        .args(["--arch", "s390x", "--allow-dynamic"])
        .arg("--from-archive")
        .arg(&multi)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    // The ELF check comes first: an x86-64 program cannot be labelled s390x.
    assert!(err.contains("amd64"), "{err}");

    let arm = support::tiny_elf::write(
        dir.path(),
        "arm",
        &support::tiny_elf::build(
            support::tiny_elf::Machine::Aarch64,
            support::tiny_elf::Shape::Static,
            "x\n",
        ),
    );
    let amd_only = dir.path().join("amd-only.tar");
    bases::copy(
        &skopeo,
        &layout,
        "amd64",
        &format!("oci-archive:{}:amd64", amd_only.display()),
        &[],
    );
    let output = zeroimage()
        .arg(&arm)
        .arg("--from-archive")
        .arg(&amd_only)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 2, "status line and one error: {err}");
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "names what the base is and what is built: {err}"
    );
    assert!(!dir.path().join("never.tar").exists());
}

#[test]
fn an_archive_with_several_images_needs_a_tag_and_a_corrupt_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let layout = bases::multi_platform_layout(&umoci, dir.path());
    // An OCI layout holding three images (amd64, arm64 and the index over both).
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let output = zeroimage()
        .arg(&probe)
        .arg("--from-archive")
        .arg(&layout)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("PATH:TAG") && err.contains("amd64"), "{err}");
    run_ok(
        zeroimage()
            .arg(&probe)
            .arg("--from-archive")
            .arg(format!("{}:amd64", layout.display()))
            .arg("-o")
            .arg(dir.path().join("tagged.tar")),
    );

    // One byte of a base layer flipped: refused as corrupt, nothing written.
    let base = dir.path().join("single.tar");
    bases::copy(
        &skopeo,
        &layout,
        "amd64",
        &format!("oci-archive:{}:amd64", base.display()),
        &[],
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--raw"])
                .arg(format!("oci-archive:{}", base.display())),
        )
        .stdout,
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let mut file = tar::Archive::new(std::fs::File::open(&base).unwrap());
    let at = file
        .entries_with_seek()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().ends_with(&layer))
        .unwrap()
        .raw_file_position();
    let mut bytes = std::fs::read(&base).unwrap();
    bytes[usize::try_from(at).unwrap() + 20] ^= 0x40;
    let corrupt = dir.path().join("corrupt.tar");
    std::fs::write(&corrupt, bytes).unwrap();
    let output = zeroimage()
        .arg(&probe)
        .arg("--from-archive")
        .arg(&corrupt)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert!(!dir.path().join("never.tar").exists());
    assert!(
        support::dir_listing(dir.path())
            .iter()
            .all(|n| !n.ends_with(".partial")),
        "no partial archive left"
    );
}

#[test]
fn podman_and_docker_load_and_run_an_image_built_on_a_base() {
    use support::docker::{Dockerd, Podman};
    let dir = tempfile::tempdir().unwrap();
    let Some((base, _, _)) = busybox_archive(dir.path()) else {
        return;
    };
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let archive = dir.path().join("loadable.tar");
    run_ok(
        zeroimage()
            .arg(&probe)
            .args(["-t", "zi-test/based:1", "--from-archive"])
            .arg(&base)
            .arg("-o")
            .arg(&archive),
    );
    let expect = |stdout: &[u8], engine: &str| {
        let report = probe_report(&String::from_utf8_lossy(stdout));
        assert_eq!(report["file"], bases::MARKER_TEXT, "{engine}: {report:?}");
        assert_eq!(report["user"], bases::BASE_USER, "{engine}");
        assert_eq!(report["uid"], bases::BASE_UID, "{engine}");
        assert_eq!(report["env.GREETING"], "from the base", "{engine}");
        assert_eq!(report["cwd"], "/srv", "{engine}");
    };
    let marker_env = format!("PROBE_FILE={}", bases::MARKER);
    if let Some(podman) = Podman::new() {
        run_ok(
            podman
                .command()
                .arg("load")
                .arg("--signature-policy")
                .arg(podman.policy())
                .arg("-i")
                .arg(&archive),
        );
        let output = run_ok(
            podman
                .run()
                .args(["-e", &marker_env, "docker.io/zi-test/based:1"]),
        );
        expect(&output.stdout, "podman");
    }
    if let Some(docker) = Dockerd::start() {
        let loaded = run_ok(docker.client().arg("load").arg("-i").arg(&archive));
        assert!(
            String::from_utf8_lossy(&loaded.stdout).contains("zi-test/based:1"),
            "docker load reads manifest.json, which lists the base's layers too"
        );
        let output = run_ok(docker.client().args([
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            &marker_env,
            "zi-test/based:1",
        ]));
        expect(&output.stdout, "docker");
    }
}

/// zeroimage with a docker config and a blob cache of the test's own.
fn zi(home: &Path, cache: &Path) -> support::Zeroimage {
    let mut cmd = support::isolated_zeroimage(home);
    cmd.env("ZEROIMAGE_CACHE_DIR", cache);
    cmd
}

fn raw_digest(skopeo: &Path, image: &str) -> String {
    let raw = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
    );
    support::file_digest_of_bytes(&String::from_utf8(raw.stdout).unwrap())
}

#[test]
fn registry_bases_by_tag_and_by_digest_are_pulled_once_and_mounted_when_pushed() {
    use support::registry::{Setup, TestRegistry};
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let host = registry.host();
    let layout = bases::busybox_layout(&umoci, dir.path(), None);
    let oci = format!("{host}/base/busybox:oci");
    let v2s2 = format!("{host}/base/busybox:v2s2");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("docker://{oci}"),
        &["--dest-tls-verify=false"],
    );
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("docker://{v2s2}"),
        &["--dest-tls-verify=false", "--format", "v2s2"],
    );
    let home = dir.path().join("home");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&home).unwrap();
    let build = |from: &str, out: &str| -> serde_json::Value {
        let output = run_ok(
            zi(&home, &cache)
                .arg(&probe)
                .args([
                    "-t",
                    "probe:based",
                    "--from",
                    from,
                    "--message-format",
                    "json",
                    "-o",
                ])
                .arg(dir.path().join(out)),
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };

    // By tag: the tag is resolved to the digest skopeo sees, and the program runs on the base.
    let first = build(&oci, "first.tar");
    assert_eq!(first["base"]["digest"], raw_digest(&skopeo, &oci).as_str());
    assert_eq!(first["base"]["name"], oci.as_str());
    if let Some(report) = run_probe(&dir.path().join("first.tar")) {
        assert_eq!(report["file"], bases::MARKER_TEXT);
        assert_eq!(report["user"], bases::BASE_USER);
    }
    let gets = registry.blob_gets();
    assert!(gets >= 3, "config and two layers fetched: {gets}");

    // Again: every blob comes from the cache, and the bytes are the same.
    let second = build(&oci, "second.tar");
    assert_eq!(registry.blob_gets(), gets, "no blob fetched twice");
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(
        support::file_digest(&dir.path().join("first.tar")),
        support::file_digest(&dir.path().join("second.tar"))
    );

    // --no-cache: fetched again into a private directory, and the cache given is left untouched.
    let untouched = dir.path().join("untouched-cache");
    run_ok(
        zi(&home, &untouched)
            .arg(&probe)
            .args(["--no-cache", "--from", &oci, "-o"])
            .arg(dir.path().join("no-cache.tar")),
    );
    assert!(registry.blob_gets() > gets, "--no-cache downloads again");
    assert!(
        !untouched.exists() || support::dir_listing(&untouched.join("blobs/sha256")).is_empty(),
        "--no-cache leaves the cache alone"
    );

    // Pinned by digest, a Docker v2 schema 2 base: its layers keep their bytes under OCI media types.
    let pinned = format!("{host}/base/busybox@{}", raw_digest(&skopeo, &v2s2));
    let docker = build(&pinned, "pinned.tar");
    assert_eq!(
        docker["base"]["digest"],
        raw_digest(&skopeo, &v2s2).as_str()
    );
    let manifest = support::image_manifest(&dir.path().join("pinned.tar"));
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
    assert_eq!(
        support::image_config(&dir.path().join("pinned.tar"))["rootfs"]["diff_ids"],
        support::image_config(&dir.path().join("first.tar"))["rootfs"]["diff_ids"]
    );

    // Pushed to the same registry: the base's layers are mounted from its repository, not uploaded.
    let before = registry.uploaded_blobs().len();
    let pushed = run_ok(zi(&home, &cache).arg(&probe).args([
        "-t",
        "probe:based",
        "--from",
        &oci,
        "--push",
        &format!("{host}/apps/probe:1"),
    ]));
    let uploaded = &registry.uploaded_blobs()[before..];
    assert_eq!(
        uploaded.len(),
        4,
        "only our layer, config, SBOM and its empty config: {uploaded:?}"
    );
    assert!(registry.mounts() >= 2, "the base's layers were mounted");
    assert!(
        String::from_utf8_lossy(&pushed.stdout).contains(&format!("{host}/apps/probe:1@sha256:"))
    );
    let image = format!("{host}/apps/probe:1");
    let inspect: serde_json::Value = serde_json::from_slice(
        &run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--tls-verify=false"])
                .arg(format!("docker://{image}")),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn a_registry_base_behind_bearer_tokens_is_pulled_with_the_stored_login() {
    use support::registry::{Setup, TestRegistry};
    use support::token_server::TokenServer;
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    if support::peer("openssl").is_none() {
        return;
    }
    let tokens = TokenServer::start(dir.path(), "robot", "s3cret", "refresh-me");
    let realm = tokens.realm();
    let Some(registry) = TestRegistry::start(Setup {
        token: Some((&realm, &tokens.cert)),
        ..Setup::default()
    }) else {
        return;
    };
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let host = registry.host();
    let layout = bases::busybox_layout(&umoci, dir.path(), None);
    let base = format!("{host}/private/busybox:1");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("docker://{base}"),
        &["--dest-tls-verify=false", "--dest-creds", "robot:s3cret"],
    );
    let cache = dir.path().join("cache");
    let anonymous = dir.path().join("anonymous");
    std::fs::create_dir(&anonymous).unwrap();
    let output = zi(&anonymous, &cache)
        .arg(&probe)
        .args(["--from", &base, "-o"])
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("zeroimage login"), "{err}");

    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "robot:s3cret");
    std::fs::write(
        home.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let archive = dir.path().join("private.tar");
    run_ok(
        zi(&home, &cache)
            .arg(&probe)
            .args(["-t", "probe:based", "--from", &base, "-o"])
            .arg(&archive),
    );
    if let Some(report) = run_probe(&archive) {
        assert_eq!(report["file"], bases::MARKER_TEXT);
    }
}

#[test]
fn a_gnu_program_runs_on_a_glibc_base_and_is_refused_on_one_without_libc() {
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let host_gnu = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let Some(gnu_hello) = support::fixture_binary("hello", &host_gnu) else {
        return;
    };
    // A base made of this machine's own loader and C library, as `ldd` lists them for the program.
    let glibc = bases::glibc_layout(&umoci, dir.path(), &gnu_hello, true);
    let glibc_archive = dir.path().join("glibc.tar");
    bases::copy(
        &skopeo,
        &glibc,
        "latest",
        &format!("oci-archive:{}:latest", glibc_archive.display()),
        &[],
    );
    let nolibc = bases::glibc_layout(&umoci, dir.path(), &gnu_hello, false);
    let nolibc_archive = dir.path().join("nolibc.tar");
    bases::copy(
        &skopeo,
        &nolibc,
        "latest",
        &format!("oci-archive:{}:latest", nolibc_archive.display()),
        &[],
    );

    // cargo zeroimage on a -gnu target with a glibc base: the dynamic program is accepted, and runs.
    let archive = dir.path().join("gnu.tar");
    let manifest = support::root().join("fixtures/hello/Cargo.toml");
    let built = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .args([
                "--target",
                &host_gnu,
                "-t",
                "hello:gnu",
                "-v",
                "--from-archive",
            ])
            .arg(&glibc_archive)
            .arg("-o")
            .arg(&archive),
    );
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(
        err.contains("the base has its loader and libraries"),
        "{err}"
    );
    if let Some(stdout) = support::run_in_runc(&archive, "gnu", &["on", "glibc"], &["GREETING=gnu"])
    {
        assert!(
            stdout.starts_with(
                "hello from the zeroimage fixture\nargv=/hello on glibc\nGREETING=gnu\n"
            ),
            "{stdout}"
        );
    }

    // The same program on a base without libc: refused, naming what is missing.
    let output = zeroimage()
        .arg(&gnu_hello)
        .arg("--from-archive")
        .arg(&nolibc_archive)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let error = err.lines().last().unwrap();
    assert!(
        error.contains("is dynamically linked and")
            && error.contains("lacks")
            && error.contains("libc.so.6")
            && error.contains("ld-linux"),
        "{error}"
    );
    assert!(!dir.path().join("never.tar").exists());
}

#[test]
fn cargo_toml_from_archive_foreign_layers_and_the_ca_certs_note() {
    let dir = tempfile::tempdir().unwrap();
    let Some((base, layout, _)) = busybox_archive(dir.path()) else {
        return;
    };

    // `from-archive` in Cargo.toml, relative to it; `-v` notes that --ca-certs replaces no bundle here.
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    support::copy_fixture("hello", &project);
    let crate_dir = project.join("hello");
    std::fs::copy(&base, crate_dir.join("base.tar")).unwrap();
    let manifest_path = crate_dir.join("Cargo.toml");
    let mut manifest = std::fs::read_to_string(&manifest_path).unwrap();
    manifest.push_str("\n[package.metadata.zeroimage]\nfrom-archive = \"base.tar\"\n");
    std::fs::write(&manifest_path, manifest).unwrap();
    let archive = dir.path().join("from-settings.tar");
    let output = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest_path)
            .args(["--message-format", "json", "-o"])
            .arg(&archive),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["base"]["name"],
        crate_dir.join("base.tar").display().to_string()
    );
    assert!(
        support::image_manifest(&archive)["layers"]
            .as_array()
            .unwrap()
            .len()
            == 3
    );

    // A base with a foreign layer (a Windows-style non-distributable layer): refused, named.
    let foreign = dir.path().join("foreign-layout");
    run_ok(Command::new("cp").arg("-r").arg(&layout).arg(&foreign));
    let index_path = foreign.join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let blob = |digest: &str| {
        foreign
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let mut image: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&old)).unwrap()).unwrap();
    image["layers"][0]["mediaType"] =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
    let bytes = serde_json::to_vec(&image).unwrap();
    let digest = support::file_digest_of_bytes(std::str::from_utf8(&bytes).unwrap());
    std::fs::write(blob(&digest), &bytes).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = digest.clone().into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let output = zeroimage()
        .arg(&probe)
        .arg("--from-archive")
        .arg(&foreign)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("foreign"), "{err}");
    assert!(!dir.path().join("never.tar").exists());
}

#[test]
fn ca_certs_over_a_base_bundle_replace_it_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let theirs = dir.path().join("theirs.pem");
    let ours = dir.path().join("ours.pem");
    let (cert_a, _) = support::self_signed_certificate(dir.path(), "a", "base CA");
    let (cert_b, _) = support::self_signed_certificate(dir.path(), "b", "our CA one");
    let (cert_c, _) = support::self_signed_certificate(dir.path(), "c", "our CA two");
    std::fs::copy(&cert_a, &theirs).unwrap();
    let two = [
        std::fs::read(&cert_b).unwrap(),
        std::fs::read(&cert_c).unwrap(),
    ]
    .concat();
    std::fs::write(&ours, two).unwrap();
    let layout = bases::busybox_layout(&umoci, dir.path(), Some(&theirs));
    let base = dir.path().join("with-bundle.tar");
    bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("oci-archive:{}:latest", base.display()),
        &[],
    );
    let archive = dir.path().join("ca.tar");
    let output = run_ok(
        zeroimage()
            .arg(&probe)
            .arg(format!("--ca-certs={}", ours.display()))
            .args(["-v", "-t", "probe:based", "--from-archive"])
            .arg(&base)
            .arg("-o")
            .arg(&archive),
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--ca-certs replaces"), "{err}");
    if let Some(report) = run_probe(&archive) {
        assert_eq!(report["certificates"], "2", "our bundle, not the base's");
    }
}

#[test]
fn nonroot_reads_the_accounts_of_a_base_whose_etc_is_a_link_and_names_a_file_too_large() {
    use support::tiny_elf::{self, Machine, Shape};
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "x\n"),
    );
    // A base whose /etc is a link to usr/etc, where the accounts are (made by zeroimage itself:
    // --include keeps a link as a link).
    let base_with = |name: &str, passwd: &str| {
        let stage = dir.path().join(name);
        std::fs::create_dir_all(stage.join("usr/etc")).unwrap();
        std::fs::write(stage.join("usr/etc/passwd"), passwd).unwrap();
        std::fs::write(stage.join("usr/etc/group"), "root:x:0:\n").unwrap();
        std::os::unix::fs::symlink("usr/etc", stage.join("etc")).unwrap();
        let base = dir.path().join(format!("{name}.tar"));
        run_ok(
            zeroimage()
                .arg(&program)
                .args(["-q", "--sbom", "none", "--include"])
                .arg(format!("{}:/usr", stage.join("usr").display()))
                .arg("--include")
                .arg(format!("{}:/etc", stage.join("etc").display()))
                .arg("-o")
                .arg(&base),
        );
        base
    };
    let passwd = "root:x:0:0:root:/root:/bin/sh\n";
    let base = base_with("linked", passwd);
    let out = dir.path().join("nonroot.tar");
    run_ok(
        zeroimage()
            .arg(&program)
            .args(["-q", "--nonroot", "-t", "app:nonroot", "--from-archive"])
            .arg(&base)
            .arg("-o")
            .arg(&out),
    );
    if let Some((_unpacked, root)) = support::unpack_with_umoci(&out, "nonroot") {
        assert!(
            std::fs::symlink_metadata(root.join("etc"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(root.join("usr/etc/passwd")).unwrap(),
            format!("{passwd}nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
            "the base's accounts, read through the link, with nonroot added"
        );
    }

    // A passwd larger than what is read of a base: said with its size and its real path.
    let big = format!("{passwd}{}", "#\n".repeat(600_000));
    let base = base_with("big", &big);
    let output = zeroimage()
        .arg(&program)
        .args(["-q", "--nonroot", "--from-archive"])
        .arg(&base)
        .arg("-o")
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: --nonroot: /etc/passwd of the base image {} is {} bytes (reached through a link: \
             /usr/etc/passwd), more than the 1 MiB read from a base image's file; drop --nonroot and \
             set --user",
            base.display(),
            big.len()
        )
    );
    assert!(!dir.path().join("never.tar").exists());
}

#[test]
fn target_all_builds_every_platform_of_the_base_that_has_an_installed_musl_target() {
    let dir = tempfile::tempdir().unwrap();
    let Some((umoci, skopeo)) = bases::tools() else {
        return;
    };
    for target in [support::X86_64_MUSL, support::AARCH64_MUSL] {
        if !support::target_installed(target) {
            return;
        }
    }
    // The two-platform base, and an index over it that also lists linux/s390x (no rustup musl
    // target exists for it).
    let layout = bases::multi_platform_layout(&umoci, dir.path());
    bases::arch_image(&umoci, &layout, dir.path(), "s390x");
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let multi = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "multi")
        .unwrap()
        .clone();
    let blob = |digest: &serde_json::Value| {
        layout.join(format!(
            "blobs/sha256/{}",
            digest.as_str().unwrap().trim_start_matches("sha256:")
        ))
    };
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&multi["digest"])).unwrap()).unwrap();
    let mut s390x = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "s390x")
        .unwrap()
        .clone();
    s390x.as_object_mut().unwrap().remove("annotations");
    s390x["platform"] = serde_json::json!({"architecture": "s390x", "os": "linux"});
    index["manifests"].as_array_mut().unwrap().push(s390x);
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = zeroimage::oci::Digest::of(&bytes);
    std::fs::write(layout.join(digest.blob_path()), &bytes).unwrap();
    let mut top = top.clone();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "wide"},
        }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let wide = dir.path().join("wide.tar");
    bases::copy(
        &skopeo,
        &layout,
        "wide",
        &format!("oci-archive:{}:wide", wide.display()),
        &["--all"],
    );

    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let archive = dir.path().join("all.tar");
    let output = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--target", "all", "--from-archive"])
            .arg(&wide)
            .arg("-o")
            .arg(&archive),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "Skipping linux/s390x of base {}: s390x-unknown-linux-musl is not installed \
             (rustup target add s390x-unknown-linux-musl)",
            wide.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("unknown/unknown"), "{stderr}");
    let entries = support::read_tar(&archive);
    let top = support::json_entry(&entries, "index.json");
    let built = support::json_entry(
        &entries,
        &support::blob_name(&top["manifests"][0]["digest"]),
    );
    let platforms: Vec<String> = built["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{built}");
    for entry in built["manifests"].as_array().unwrap() {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        let manifest = support::json_entry(&entries, &support::blob_name(&entry["digest"]));
        let config =
            support::json_entry(&entries, &support::blob_name(&manifest["config"]["digest"]));
        assert!(
            config["config"]["Env"]
                .as_array()
                .unwrap()
                .contains(&format!("BASE_ARCH={arch}").into()),
            "{arch} built on the {arch} base: {config}"
        );
    }

    // Without a base, `all` has nothing to stand for: refused before cargo runs.
    let output = support::cargo_zeroimage()
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", "all", "-o"])
        .arg(dir.path().join("never.tar"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: target `all` (in --target) builds every platform of the base image, and there is no base"),
        "{stderr}"
    );
    assert!(!stderr.contains("Compiling"), "{stderr}");
    assert!(!dir.path().join("never.tar").exists());

    // `targets = "all"` in Cargo.toml, with the base there too.
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[package.metadata.zeroimage]\ntargets = \"all\"\nfrom-archive = \"{}\"\n",
        wide.display()
    ));
    std::fs::write(&manifest, text).unwrap();
    let from_settings = dir.path().join("settings.tar");
    run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["-q", "-o"])
            .arg(&from_settings),
    );
    assert_eq!(
        std::fs::read(&from_settings).unwrap(),
        std::fs::read(&archive).unwrap(),
        "the setting builds what the flags built"
    );
}
