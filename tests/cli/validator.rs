//! The conformance check the harness runs on every archive the tests write (`support::validate`)
//! must catch what it is there for: each test takes a sound archive written by `zeroimage`, damages
//! one thing (re-linking every document above it, so that only that one thing is wrong), and expects
//! the check to name it. A check that passed everything would pass here never.

use std::io::Read;
use std::path::Path;

use crate::support;
use serde_json::Value;
use support::tiny_elf::{self, Machine, Shape};
use support::validate::{self, Checked};
use support::{run_ok, zeroimage};

/// The entries of a tar, in order, bytes and all.
type Entries = Vec<(String, Vec<u8>)>;

fn entries_of(archive: &Path) -> Entries {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut entries = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.push((name, bytes));
    }
    entries
}

fn tar_of(entries: &Entries) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    zeroimage::oci::Digest::of(bytes).to_string()
}

fn path_of(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn get<'e>(entries: &'e Entries, name: &str) -> &'e [u8] {
    &entries
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .1
}

fn json_of(entries: &Entries, name: &str) -> Value {
    serde_json::from_slice(get(entries, name)).unwrap()
}

/// Replaces the blob `old` (a digest) by `bytes` under its own digest, and every descriptor and
/// `manifest.json` path naming it, document by document up to `index.json`: the archive stays
/// consistent but for what the caller changed on purpose.
fn replace_blob(entries: &mut Entries, old: &str, bytes: Vec<u8>) -> String {
    let new = sha256(&bytes);
    let size = bytes.len() as u64;
    let old_path = path_of(old);
    let position = entries.iter().position(|(n, _)| *n == old_path).unwrap();
    entries[position] = (path_of(&new), bytes);
    relink(entries, old, &new, size);
    new
}

/// Points every descriptor of `old` at `new` (of `size` bytes), re-storing each changed document.
fn relink(entries: &mut Entries, old: &str, new: &str, size: u64) {
    fn visit(value: &mut Value, old: &str, new: &str, size: u64) -> bool {
        let mut changed = false;
        match value {
            Value::Object(map) => {
                if map.get("digest").and_then(Value::as_str) == Some(old) {
                    map.insert("digest".into(), new.into());
                    map.insert("size".into(), size.into());
                    changed = true;
                }
                for v in map.values_mut() {
                    changed |= visit(v, old, new, size);
                }
            }
            Value::Array(items) => {
                for v in items {
                    changed |= visit(v, old, new, size);
                }
            }
            Value::String(s) if *s == path_of(old) => {
                *s = path_of(new);
                changed = true;
            }
            _ => {}
        }
        changed
    }
    let names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).collect();
    for name in names {
        let Ok(mut doc) = serde_json::from_slice::<Value>(get(entries, &name)) else {
            continue;
        };
        if !visit(&mut doc, old, new, size) {
            continue;
        }
        let bytes = serde_json::to_vec(&doc).unwrap();
        match name.strip_prefix("blobs/sha256/") {
            Some(hex) => {
                replace_blob(entries, &format!("sha256:{hex}"), bytes);
            }
            None => {
                let position = entries.iter().position(|(n, _)| *n == name).unwrap();
                entries[position].1 = bytes;
            }
        }
    }
}

/// A sound single-platform archive (with its SBOM attached), as entries.
fn sound_archive(dir: &Path) -> Entries {
    let program = tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "checked\n"),
    );
    let archive = dir.join("app.tar");
    run_ok(zeroimage().arg(&program).arg("-o").arg(&archive));
    entries_of(&archive)
}

/// The image manifest's digest and document, of a single-platform archive.
fn image_manifest(entries: &Entries) -> (String, Value) {
    let index = json_of(entries, "index.json");
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest = json_of(entries, &path_of(&digest));
    (digest, manifest)
}

/// Asserts that the check fails, with a problem holding every one of `needles`.
fn assert_caught(entries: &Entries, needles: &[&str]) {
    let problems = validate::check_bytes(&tar_of(entries))
        .expect_err("the damaged archive passed the conformance check");
    assert!(
        problems
            .iter()
            .any(|p| needles.iter().all(|needle| p.contains(needle))),
        "no problem names {needles:?}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_sound_archive_passes_and_every_part_of_it_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sound_archive(dir.path());
    let checked = validate::check_bytes(&tar_of(&entries)).unwrap();
    assert_eq!(
        checked,
        Checked {
            blobs: entries
                .iter()
                .filter(|(n, _)| n.starts_with("blobs/"))
                .count(),
            images: 1,
            layers: 1,
            referrers: 1,
            docker_entries: 1,
        }
    );
    // What a multi-platform archive adds: the index, two images, their platforms.
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let multi = dir.path().join("multi.tar");
    run_ok(
        zeroimage()
            .arg("--platform-binary")
            .arg(format!("linux/amd64={}", amd.display()))
            .arg("--platform-binary")
            .arg(format!("linux/arm64={}", arm.display()))
            .arg("-o")
            .arg(&multi),
    );
    let checked = validate::archive(&multi);
    assert_eq!((checked.images, checked.layers), (2, 2), "{checked:?}");
}

#[test]
fn a_blob_whose_bytes_changed_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let (_, manifest) = image_manifest(&entries);
    let layer = path_of(manifest["layers"][0]["digest"].as_str().unwrap());
    let position = entries.iter().position(|(n, _)| *n == layer).unwrap();
    let bytes = &mut entries[position].1;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    assert_caught(&entries, &[&layer, "does not match its name"]);
}

#[test]
fn a_layer_whose_diff_id_is_wrong_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let (_, manifest) = image_manifest(&entries);
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut config = json_of(&entries, &path_of(&config_digest));
    let wrong = sha256(b"not the layer");
    config["rootfs"]["diff_ids"][0] = wrong.clone().into();
    replace_blob(
        &mut entries,
        &config_digest,
        serde_json::to_vec(&config).unwrap(),
    );
    assert_caught(
        &entries,
        &["layers[0]", &format!("the config's diff_id is {wrong}")],
    );
}

#[test]
fn a_missing_blob_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let (_, manifest) = image_manifest(&entries);
    let layer = path_of(manifest["layers"][0]["digest"].as_str().unwrap());
    entries.retain(|(n, _)| *n != layer);
    assert_caught(&entries, &[&layer, "missing from the archive"]);
    // And manifest.json, which names it too.
    assert_caught(
        &entries,
        &["manifest.json[0]", &layer, "not in the archive"],
    );
}

#[test]
fn a_descriptor_with_the_wrong_size_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let (digest, mut manifest) = image_manifest(&entries);
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    manifest["layers"][0]["size"] = (size + 1).into();
    replace_blob(
        &mut entries,
        &digest,
        serde_json::to_vec(&manifest).unwrap(),
    );
    assert_caught(&entries, &[&format!("says size {}", size + 1)]);
}

#[test]
fn a_layer_compressed_otherwise_than_its_media_type_says_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let (digest, mut manifest) = image_manifest(&entries);
    manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd".into();
    replace_blob(
        &mut entries,
        &digest,
        serde_json::to_vec(&manifest).unwrap(),
    );
    assert_caught(&entries, &["layers[0]", "Zstd"]);
}

#[test]
fn a_docker_manifest_json_naming_no_image_of_the_layout_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let mut list = json_of(&entries, "manifest.json");
    // Config and layer swapped: both are in the archive, but no image is so.
    let config = list[0]["Config"].clone();
    list[0]["Config"] = list[0]["Layers"][0].clone();
    list[0]["Layers"][0] = config;
    let position = entries
        .iter()
        .position(|(n, _)| n == "manifest.json")
        .unwrap();
    entries[position].1 = serde_json::to_vec(&list).unwrap();
    assert_caught(&entries, &["manifest.json[0]", "is no image of index.json"]);
}

#[test]
fn an_attachment_about_another_image_and_a_stray_blob_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let referrers = json_of(&entries, "referrers.json");
    let artifact = referrers["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut manifest = json_of(&entries, &path_of(&artifact));
    // Its subject: a manifest that is in the archive (a stray blob) but no image of index.json.
    let stray = br#"{"schemaVersion":2}"#.to_vec();
    let stray_digest = sha256(&stray);
    entries.push((path_of(&stray_digest), stray.clone()));
    manifest["subject"]["digest"] = stray_digest.clone().into();
    manifest["subject"]["size"] = stray.len().into();
    replace_blob(
        &mut entries,
        &artifact,
        serde_json::to_vec(&manifest).unwrap(),
    );
    assert_caught(
        &entries,
        &[&format!(
            "its subject {stray_digest} is not an image of index.json"
        )],
    );

    // A blob nothing names.
    let again = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(again.path());
    let orphan = b"nobody's".to_vec();
    let orphan_path = path_of(&sha256(&orphan));
    entries.push((orphan_path.clone(), orphan));
    assert_caught(&entries, &[&orphan_path, "named by no descriptor"]);
}

#[test]
fn an_index_giving_an_image_another_platform_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    let multi = dir.path().join("multi.tar");
    run_ok(
        zeroimage()
            .arg("--platform-binary")
            .arg(format!("linux/amd64={}", amd.display()))
            .arg("--platform-binary")
            .arg(format!("linux/arm64={}", arm.display()))
            .arg("-o")
            .arg(&multi),
    );
    let mut entries = entries_of(&multi);
    let top = json_of(&entries, "index.json");
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut index = json_of(&entries, &path_of(&index_digest));
    let platforms: Vec<Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["platform"].clone())
        .collect();
    index["manifests"][0]["platform"] = platforms[1].clone();
    index["manifests"][1]["platform"] = platforms[0].clone();
    replace_blob(
        &mut entries,
        &index_digest,
        serde_json::to_vec(&index).unwrap(),
    );
    assert_caught(&entries, &["the index gives platform architecture"]);
}

#[test]
fn random_bytes_and_an_entry_twice_are_caught() {
    let problems = validate::check_bytes(&[0x5a; 3000]).expect_err("random bytes passed");
    assert!(!problems.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sound_archive(dir.path());
    let index = get(&entries, "index.json").to_vec();
    entries.push(("index.json".into(), index));
    assert_caught(&entries, &["index.json appears twice"]);
}

#[test]
fn the_harness_finds_the_archives_a_run_says_it_wrote() {
    // `Zeroimage::output` validates what the `Written` lines name: the line's form is the contract.
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app name",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "found\n"),
    );
    let output = run_ok(zeroimage().arg(&program).current_dir(dir.path()));
    let written: Vec<_> = support::written_archives(&output.stderr)
        .into_iter()
        .map(|path| dir.path().join(path))
        .collect();
    assert_eq!(
        written,
        [dir.path().join("app name.tar")],
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = run_ok(zeroimage().arg(&program).arg("-o").arg("-"));
    assert!(support::written_archives(&out.stderr).is_empty());
    validate::archive_bytes(&out.stdout);
}
