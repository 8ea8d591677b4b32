//! What we write, pinned: JSON snapshots, a golden digest for a fixed input, and reproducibility across
//! umask, TZ, input metadata, working directory and day.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support;
use support::tiny_elf::{self, Machine, Shape};
use support::{blob_name, json_entry, read_tar};

/// The fixed input: a hand-built static x86-64 program, the same bytes on every machine.
fn fixed_input(dir: &Path) -> std::path::PathBuf {
    tiny_elf::write(
        dir,
        "hello",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hello from a fixed input\n"),
    )
}

fn pretty(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn documents_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixed_input(dir.path());
    let out = dir.path().join("hello.tar");
    support::package(&input, &out, &["--tag", "hello:1.0"]);
    let entries = read_tar(&out);
    let index = json_entry(&entries, "index.json");
    let manifest_name = blob_name(&index["manifests"][0]["digest"]);
    let manifest = json_entry(&entries, &manifest_name);
    let config_name = blob_name(&manifest["config"]["digest"]);
    insta::assert_snapshot!("index.json", pretty(&entries["index.json"]));
    insta::assert_snapshot!("manifest.json", pretty(&entries["manifest.json"]));
    insta::assert_snapshot!(
        "oci-layout",
        String::from_utf8_lossy(&entries["oci-layout"])
    );
    insta::assert_snapshot!("image-manifest", pretty(&entries[&manifest_name]));
    insta::assert_snapshot!("image-config", pretty(&entries[&config_name]));
}

#[test]
fn archive_layout_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixed_input(dir.path());
    let out = dir.path().join("hello.tar");
    support::package(&input, &out, &[]);
    let file = std::fs::File::open(&out).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut listing = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
            (0, 0, 0)
        );
        assert_eq!(h.username().unwrap(), Some(""));
        listing.push(format!(
            "{:o} {}",
            h.mode().unwrap(),
            entry.path().unwrap().display()
        ));
    }
    let listing = listing.join("\n");
    // Blob names are digests: the same ones the golden test pins.
    insta::assert_snapshot!("archive-listing", listing);

    // Every blob hashes to its name and is referenced.
    let entries = read_tar(&out);
    for (name, bytes) in &entries {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(zeroimage::oci::Digest::of(bytes).hex(), hex, "{name}");
        }
    }
}

#[test]
fn layer_holds_only_the_program_as_root_owned_0755() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixed_input(dir.path());
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = dir.path().join("hello.tar");
    support::package(&input, &out, &[]);
    let entries = read_tar(&out);
    let index = json_entry(&entries, "index.json");
    let manifest = json_entry(&entries, &blob_name(&index["manifests"][0]["digest"]));
    let layer = &entries[&blob_name(&manifest["layers"][0]["digest"])];
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&layer[..]), &mut raw).unwrap();
    let config = json_entry(&entries, &blob_name(&manifest["config"]["digest"]));
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        zeroimage::oci::Digest::of(&raw).to_string()
    );
    let mut archive = tar::Archive::new(&raw[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        seen.push((
            entry.path().unwrap().display().to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
        ));
        assert_eq!(data, std::fs::read(&input).unwrap());
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
    }
    assert_eq!(seen, [("hello".to_owned(), 0o755, 0, 0)]);
}

/// Deliberately pinned. If a change to the format is intended, update these and say why in the commit.
/// The tool version is part of the config (history comment), so a version bump changes them too.
const GOLDEN_MANIFEST_DIGEST: &str =
    "sha256:7f519f6370fae917293fd68a8a2fa9ad82a1cd2b7838dbf4fe23ba5827905239";
/// The archive holds the default SPDX document (and its artifact manifest, `{}` and `referrers.json`);
/// the image itself, and so the manifest digest, is the same with or without it.
const GOLDEN_ARCHIVE_DIGEST: &str =
    "sha256:b9dc24f63b3dabbcaadbb25e1fa8399785986202c5fdebd18a130f75b8d237fc";

#[test]
fn golden_digest_of_a_fixed_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixed_input(dir.path());
    let out = dir.path().join("hello.tar");
    let output = support::package(
        &input,
        &out,
        &["--message-format", "json", "--tag", "hello:1.0"],
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["manifest_digest"], GOLDEN_MANIFEST_DIGEST,
        "image format changed"
    );
    assert_eq!(
        support::file_digest(&out),
        GOLDEN_ARCHIVE_DIGEST,
        "archive bytes changed"
    );
}

#[test]
fn created_time_follows_source_date_epoch_and_created_option() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixed_input(dir.path());
    let out = dir.path().join("hello.tar");
    let created_of = |out: &Path| {
        let entries = read_tar(out);
        let index = json_entry(&entries, "index.json");
        let manifest = json_entry(&entries, &blob_name(&index["manifests"][0]["digest"]));
        let config = json_entry(&entries, &blob_name(&manifest["config"]["digest"]));
        assert_eq!(config["created"], config["history"][0]["created"]);
        config["created"].as_str().unwrap().to_owned()
    };
    support::package(&input, &out, &[]);
    assert_eq!(created_of(&out), "1970-01-01T00:00:00Z");
    support::run_ok(
        support::zeroimage()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg(&input)
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(created_of(&out), "2023-11-14T22:13:20Z");
    let mtime = tar::Archive::new(std::fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .header()
        .mtime()
        .unwrap();
    assert_eq!(mtime, 1_700_000_000);
    support::package(&input, &out, &["--created", "2024-05-01T12:00:00Z"]);
    assert_eq!(created_of(&out), "2024-05-01T12:00:00Z");
    support::package(&input, &out, &["--created", "@86400"]);
    assert_eq!(created_of(&out), "1970-01-02T00:00:00Z");
    support::package(&input, &out, &["--created", "now"]);
    assert!(created_of(&out).starts_with("20"), "now is after 2000");
    let output = support::zeroimage()
        .env("SOURCE_DATE_EPOCH", "soon")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SOURCE_DATE_EPOCH"));
}

#[test]
fn reproducible_across_umask_tz_mtime_mode_owner_and_directory() {
    let Some(fixture) = support::hello_fixture(support::X86_64_MUSL) else {
        return;
    };
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let a = one.path().join("hello");
    let b = two.path().join("hello");
    std::fs::copy(&fixture, &a).unwrap();
    std::fs::copy(&fixture, &b).unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        Command::new("touch")
            .args(["-d", "2001-02-03 04:05:06"])
            .arg(&a)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("touch")
            .args(["-d", "2030-01-01 00:00:00"])
            .arg(&b)
            .status()
            .unwrap()
            .success()
    );
    if support::is_root() {
        assert!(
            Command::new("chown")
                .arg("65534:65534")
                .arg(&b)
                .status()
                .unwrap()
                .success()
        );
    }
    let run = |cwd: &Path, umask: &str, tz: &str| {
        let script = format!("umask {umask} && exec \"$0\" \"$@\"");
        support::run_ok(
            support::zeroimage_via("sh", &["-c", &script])
                .args(["hello", "-o", "out.tar", "-q"])
                .current_dir(cwd)
                .env("TZ", tz),
        );
        support::file_digest(&cwd.join("out.tar"))
    };
    let first = run(one.path(), "022", "UTC");
    let second = run(two.path(), "077", "Pacific/Kiritimati");
    assert_eq!(
        first, second,
        "same program, different surroundings: archives differ"
    );
}
