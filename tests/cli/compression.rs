//! Layer compression end to end: the same archive whatever the number of compression threads, layers
//! that `gzip -t` / `zstd -t` accept, gzip layers of many blocks (one gzip member, blocks joined by
//! sync flushes) read by every consumer, zstd archives loaded and run by podman and by skopeo + umoci +
//! runc, and refused by `docker load`, which cannot read zstd.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::docker::{Dockerd, Podman};
use support::{blob_name, json_entry, read_tar, run_ok, stdout_of};

/// Bytes that compress like machine code: a small alphabet with repeats at varying distances.
fn data_file(dir: &Path, len: usize) -> PathBuf {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut data: Vec<u8> = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if state.is_multiple_of(3) && data.len() > 64 {
            let back = 1 + (state >> 8) as usize % data.len().min(30_000);
            let start = data.len() - back;
            for i in 0..(4 + (state >> 40) as usize % 16) {
                data.push(data[start + i]);
            }
        } else {
            data.push((state >> 16) as u8 & 0x3f);
        }
    }
    data.truncate(len);
    let path = dir.join("data.bin");
    std::fs::write(&path, data).unwrap();
    path
}

/// Packages the hello fixture with a 1.5 MB data file (a layer of several gzip blocks) as `tag`, with
/// `extra` options and compression threads; returns the archive and the data file.
fn package(
    dir: &Path,
    tag: &str,
    extra: &[&str],
    threads: usize,
    out_name: &str,
) -> Option<(PathBuf, PathBuf)> {
    let fixture = support::hello_fixture(support::X86_64_MUSL)?;
    let data = data_file(dir, 1_500_000);
    let out = dir.join(out_name);
    let include = format!("{}:/data.bin", data.display());
    let mut args = vec!["--tag", tag, "--include", &include];
    args.extend_from_slice(extra);
    run_ok(
        support::zeroimage()
            .env("ZEROIMAGE_THREADS", threads.to_string())
            .arg(&fixture)
            .arg("-o")
            .arg(&out)
            .args(&args),
    );
    Some((out, data))
}

fn layer_blobs(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = read_tar(archive);
    let index = json_entry(&entries, "index.json");
    let manifest = json_entry(&entries, &blob_name(&index["manifests"][0]["digest"]));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                entries[&blob_name(&l["digest"])].clone(),
            )
        })
        .collect()
}

/// `tool -t` on `bytes` (gzip and zstd both take `-t` for an integrity test of standard input).
fn integrity_test(tool: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(tool)
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "{} -t refused a layer",
        tool.display()
    );
}

#[test]
fn archives_are_identical_whatever_the_thread_count_and_pass_integrity_tests() {
    let dir = tempfile::tempdir().unwrap();
    for (format, tool, media_type) in [
        (
            "gzip",
            "gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "zstd",
            "zstd",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let mut archives = Vec::new();
        for threads in [1, 2, 8, 16] {
            let name = format!("{format}-{threads}.tar");
            let Some((archive, _)) = package(
                dir.path(),
                "app:1",
                &["--compression", format],
                threads,
                &name,
            ) else {
                return;
            };
            archives.push(std::fs::read(&archive).unwrap());
        }
        assert!(
            archives[0] == archives[1],
            "{format}: 1 and 2 threads differ"
        );
        assert!(
            archives[0] == archives[2],
            "{format}: 1 and 8 threads differ"
        );
        assert!(
            archives[0] == archives[3],
            "{format}: 1 and 16 threads differ"
        );
        let archive = dir.path().join(format!("{format}-1.tar"));
        let layers = layer_blobs(&archive);
        assert_eq!(layers.len(), 2, "essentials and program");
        assert!(
            layers[0].1.len() > 2 * zeroimage::codec::compress::GZIP_BLOCK / 4,
            "the essentials layer spans several blocks"
        );
        let Some(tool) = support::peer(tool) else {
            return;
        };
        for (kind, bytes) in &layers {
            assert_eq!(kind, media_type);
            integrity_test(&tool, bytes);
        }
    }
}

#[test]
fn a_zstd_archive_has_no_docker_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, _)) = package(
        dir.path(),
        "app:1",
        &["--compression", "zstd:5"],
        2,
        "z.tar",
    ) else {
        return;
    };
    let entries = read_tar(&archive);
    assert!(!entries.contains_key("manifest.json"));
    assert!(entries.contains_key("index.json") && entries.contains_key("oci-layout"));
    let Some((gzip, _)) = package(dir.path(), "app:1", &[], 2, "g.tar") else {
        return;
    };
    assert!(read_tar(&gzip).contains_key("manifest.json"));
}

/// Checks the data file came through: `rootfs/data.bin` equals `data`.
fn assert_same_file(rootfs: &Path, data: &Path) {
    let unpacked = std::fs::read(rootfs.join("data.bin")).unwrap();
    assert!(
        unpacked == std::fs::read(data).unwrap(),
        "data.bin differs after unpacking"
    );
}

/// skopeo copies the archive into an OCI layout; umoci unpacks it (checked byte for byte) and runc
/// runs the program. umoci 0.4.7 (Debian 12) refuses zstd layers ("blob is not correct mediatype"), so
/// for those skopeo rewrites the layers as gzip on the way: it has to read all of ours to do it.
fn skopeo_umoci_runc(compression: &str) {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let Some(umoci) = support::peer("umoci") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, data)) = package(
        dir.path(),
        "hello:6.0",
        &["--compression", compression],
        2,
        "a.tar",
    ) else {
        return;
    };
    let layout = dir.path().join("layout");
    let mut copy = Command::new(&skopeo);
    copy.args(["copy", "-q"]);
    if compression == "zstd" {
        copy.args(["--dest-compress-format", "gzip"]);
    }
    run_ok(copy.args([
        &format!("oci-archive:{}", archive.display()),
        &format!("oci:{}:copied", layout.display()),
    ]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join(blob_name(&index["manifests"][0]["digest"]))).unwrap(),
    )
    .unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{compression}"
        );
    }
    let rootfs = dir.path().join("rootfs");
    run_ok(
        Command::new(&umoci)
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:copied", layout.display()))
            .arg(&rootfs),
    );
    assert_same_file(&rootfs, &data);
    let Some(stdout) = support::run_layout_in_runc(&layout, "copied", &["r"], &[]) else {
        return;
    };
    assert!(
        stdout.starts_with("hello from the zeroimage fixture\nargv=/hello r\n"),
        "{stdout}"
    );
}

#[test]
fn skopeo_umoci_and_runc_read_gzip_layers_of_many_blocks() {
    skopeo_umoci_runc("gzip");
}

#[test]
fn skopeo_umoci_and_runc_read_zstd_layers() {
    skopeo_umoci_runc("zstd");
}

fn podman_loads_and_runs(compression: &str, tag: &str) {
    let Some(podman) = Podman::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, _)) = package(dir.path(), tag, &["--compression", compression], 2, "p.tar")
    else {
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
        loaded.contains(&format!("Loaded image: docker.io/{tag}")),
        "{loaded}"
    );
    let output = run_ok(podman.run().args([&format!("docker.io/{tag}"), "p"]));
    assert!(
        stdout_of(&output).starts_with("hello from the zeroimage fixture\nargv=/hello p\n"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn podman_loads_and_runs_gzip_layers_of_many_blocks() {
    podman_loads_and_runs("gzip", "zi-test/blocks:1");
}

#[test]
fn podman_loads_and_runs_zstd_layers() {
    podman_loads_and_runs("zstd", "zi-test/zstd:1");
}

#[test]
fn docker_loads_gzip_layers_of_many_blocks_and_refuses_a_zstd_archive() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((gzip, _)) = package(dir.path(), "zi-test/blocks:2", &[], 2, "g.tar") else {
        return;
    };
    let output = run_ok(docker.client().arg("load").arg("-i").arg(&gzip));
    assert!(
        stdout_of(&output).contains("Loaded image: zi-test/blocks:2"),
        "{}",
        stdout_of(&output)
    );
    let output =
        run_ok(
            docker
                .client()
                .args(["run", "--rm", "--network", "none", "zi-test/blocks:2", "d"]),
        );
    assert!(
        stdout_of(&output).starts_with("hello from the zeroimage fixture\nargv=/hello d\n"),
        "{}",
        stdout_of(&output)
    );

    // No manifest.json: Docker before 25 stops at once, and nothing is loaded.
    let Some((zstd, _)) = package(
        dir.path(),
        "zi-test/zstd:2",
        &["--compression", "zstd"],
        2,
        "z.tar",
    ) else {
        return;
    };
    let output = docker
        .client()
        .arg("load")
        .arg("-i")
        .arg(&zstd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "docker loaded a zstd archive");
    assert!(
        stderr.contains("manifest.json") || stderr.contains("json"),
        "{stderr}"
    );
    let images = run_ok(docker.client().args(["images", "-q", "zi-test/zstd"]));
    assert_eq!(stdout_of(&images).trim(), "", "nothing was loaded");
}
