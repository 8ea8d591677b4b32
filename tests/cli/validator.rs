//! The conformance check the harness runs on every archive the tests write (`support::validate`)
//! must catch what it is there for: each test takes a sound archive written by `zeroimage`, damages
//! one thing (re-linking every document above it, so that only that one thing is wrong), and expects
//! the check to name it. A check that passed everything would pass here never. The last tests check
//! that the harness does run it on what a run writes.

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
            filesystems: 1,
            hard_links: 0,
            symlinks: 0,
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
    // With `--message-format json -q`, no status line: the summary's `path` says it.
    let json = run_ok(
        zeroimage()
            .arg(&program)
            .args(["--message-format", "json", "-q", "-o", "quiet.tar"])
            .current_dir(dir.path()),
    );
    assert_eq!(
        support::json_archives(&json.stdout)
            .into_iter()
            .map(|path| dir.path().join(path))
            .collect::<Vec<_>>(),
        [dir.path().join("quiet.tar")],
        "{}",
        support::stdout_of(&json)
    );
}

#[test]
fn a_layout_directory_is_checked_as_an_archive_but_for_blobs_nothing_names() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "laid\n"),
    );
    let layout = dir.path().join("oci");
    run_ok(
        zeroimage()
            .arg(&program)
            .args(["-t", "app:1", "--oci-layout"])
            .arg(&layout),
    );
    let checked = validate::check_layout_dir(&layout).unwrap();
    assert_eq!(
        (checked.images, checked.layers, checked.referrers),
        (1, 1, 1)
    );
    // A blob nothing names is what a replaced image leaves: fine in a layout.
    let stray = b"an image replaced long ago";
    std::fs::write(layout.join(path_of(&sha256(stray))), stray).unwrap();
    validate::check_layout_dir(&layout).unwrap();
    // A temporary file left behind, and a blob whose bytes changed, are caught.
    let leftover = layout.join("blobs/sha256/.0123.abcdef.partial");
    std::fs::write(&leftover, "half").unwrap();
    let problems = validate::check_layout_dir(&layout).unwrap_err();
    assert!(
        problems.join("\n").contains(".0123.abcdef.partial"),
        "{problems:?}"
    );
    std::fs::remove_file(&leftover).unwrap();
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = layout.join(path_of(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes.push(b' ');
    std::fs::write(&manifest, bytes).unwrap();
    let problems = validate::check_layout_dir(&layout).unwrap_err();
    assert!(
        problems.join("\n").contains("does not match its name"),
        "{problems:?}"
    );
}

/// One entry of a crafted layer.
enum Crafted<'a> {
    Dir(&'a str),
    File(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    /// A file whose name is written into the header as is (`tar` refuses `..` through its API).
    RawName(&'a [u8]),
}

/// A gzip-compressed layer holding `crafted`, and its diff id.
fn crafted_layer(crafted: &[Crafted]) -> (Vec<u8>, String) {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in crafted {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(0);
        match entry {
            Crafted::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Crafted::File(path) => {
                let content = b"content\n";
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                builder
                    .append_data(&mut header, path, &content[..])
                    .unwrap();
            }
            Crafted::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Crafted::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Crafted::RawName(name) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// The sound archive with a second layer holding `crafted` on top of its own (config, manifest and
/// everything above re-linked): only the layer's contents can be wrong.
fn with_layer(dir: &Path, crafted: &[Crafted]) -> Entries {
    let mut entries = sound_archive(dir);
    let (layer, diff_id) = crafted_layer(crafted);
    let layer_digest = sha256(&layer);
    let size = layer.len() as u64;
    entries.push((path_of(&layer_digest), layer));
    let (digest, mut manifest) = image_manifest(&entries);
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut config = json_of(&entries, &path_of(&config_digest));
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(diff_id.into());
    let new_config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = sha256(&new_config).into();
    manifest["config"]["size"] = new_config.len().into();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": size,
        }));
    let position = entries
        .iter()
        .position(|(n, _)| *n == path_of(&config_digest))
        .unwrap();
    entries[position] = (path_of(&sha256(&new_config)), new_config);
    // manifest.json lists the layers too.
    let mut list = json_of(&entries, "manifest.json");
    list[0]["Config"] = path_of(&sha256(&serde_json::to_vec(&config).unwrap())).into();
    list[0]["Layers"]
        .as_array_mut()
        .unwrap()
        .push(path_of(&layer_digest).into());
    let position = entries
        .iter()
        .position(|(n, _)| n == "manifest.json")
        .unwrap();
    entries[position].1 = serde_json::to_vec(&list).unwrap();
    replace_blob(
        &mut entries,
        &digest,
        serde_json::to_vec(&manifest).unwrap(),
    );
    entries
}

#[test]
fn links_whiteouts_and_dangling_symbolic_links_of_a_sound_layer_pass() {
    let dir = tempfile::tempdir().unwrap();
    let entries = with_layer(
        dir.path(),
        &[
            Crafted::Dir("srv/"),
            Crafted::File("srv/data"),
            Crafted::HardLink("srv/again", "srv/data"),
            // Through a link that leads to a directory: placed in it.
            Crafted::Dir("usr/lib/"),
            Crafted::Symlink("lib", "usr/lib"),
            Crafted::File("lib/libz.so"),
            Crafted::HardLink("srv/libz", "/usr/lib/libz.so"),
            // A link may dangle; only placing something through it is wrong.
            Crafted::Symlink("srv/outside", "../../elsewhere"),
            Crafted::File("srv/.wh.nothing-below"),
            // Parents a base layer leaves out are created.
            Crafted::File("opt/deep/file"),
        ],
    );
    let checked = validate::check_bytes(&tar_of(&entries)).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(
        (checked.filesystems, checked.hard_links, checked.symlinks),
        (1, 2, 2),
        "{checked:?}"
    );
}

#[test]
fn a_hard_link_to_a_file_no_entry_put_there_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let entries = with_layer(
        dir.path(),
        &[
            Crafted::Dir("srv/"),
            Crafted::HardLink("srv/again", "srv/data"),
        ],
    );
    assert_caught(
        &entries,
        &[
            "layers[1]",
            "`srv/again` is a hard link to `srv/data`, which no entry before it put there",
        ],
    );
    // Nor one to a directory, nor one that comes before its target.
    let entries = with_layer(
        dir.path(),
        &[
            Crafted::HardLink("first", "srv/data"),
            Crafted::Dir("srv/"),
            Crafted::File("srv/data"),
            Crafted::HardLink("dir-link", "srv"),
        ],
    );
    assert_caught(&entries, &["`first` is a hard link to `srv/data`"]);
    assert_caught(
        &entries,
        &["`dir-link` is a hard link to `srv`, a directory"],
    );
}

#[test]
fn entries_placed_through_a_dangling_link_below_a_file_or_above_the_root_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let entries = with_layer(
        dir.path(),
        &[
            Crafted::Symlink("lib", "usr/lib"),
            Crafted::File("lib/libz.so"),
            Crafted::File("etc"),
            Crafted::File("etc/passwd"),
            Crafted::Symlink("a", "b"),
            Crafted::Symlink("b", "a"),
            Crafted::File("a/x"),
            Crafted::RawName(b"../escaped"),
        ],
    );
    assert_caught(
        &entries,
        &[
            "`lib/libz.so` is placed through a symbolic link that leads nowhere",
            "`/usr` is missing",
        ],
    );
    assert_caught(
        &entries,
        &["`etc/passwd` is placed below `/etc`, which is not a directory"],
    );
    assert_caught(
        &entries,
        &["`a/x` is reached through more than 40 symbolic links"],
    );
    assert_caught(&entries, &["`../escaped` climbs above the image root"]);
}

#[test]
fn every_archive_a_successful_run_writes_is_checked_by_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "counted\n"),
    );
    // Tests run in parallel in this process: the count only grows, by at least this test's runs.
    let before = validate::archives_checked();
    support::package(&program, &dir.path().join("app.tar"), &[]);
    let after_file = validate::archives_checked();
    assert!(
        after_file > before,
        "the archive of -o FILE was not checked"
    );
    run_ok(zeroimage().arg(&program).args(["-o", "-"]));
    assert!(
        validate::archives_checked() > after_file,
        "the archive written to standard output was not checked"
    );
    // What the harness calls fails on that file once damaged (a layer one byte longer than its
    // descriptor says): the check reads the file the run wrote, not something of its own.
    let damaged = dir.path().join("damaged.tar");
    support::package(&program, &damaged, &[]);
    let mut entries = entries_of(&damaged);
    let (_, manifest) = image_manifest(&entries);
    let layer = path_of(manifest["layers"][0]["digest"].as_str().unwrap());
    let position = entries.iter().position(|(n, _)| *n == layer).unwrap();
    entries[position].1.push(0);
    std::fs::write(&damaged, tar_of(&entries)).unwrap();
    let panicked = std::panic::catch_unwind(|| validate::archive(&damaged));
    assert!(panicked.is_err(), "a layer one byte longer passed");
}

#[test]
fn the_harness_finds_the_archives_cargo_zeroimage_writes_in_its_target_dir() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path();
    let write = |path: &str| {
        let path = target.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
    };
    write("old/release/stale.tar");
    let old = std::fs::File::options()
        .write(true)
        .open(target.join("old/release/stale.tar"))
        .unwrap();
    old.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    let started = std::time::SystemTime::now();
    for path in [
        "x86_64-unknown-linux-musl/release/app.tar",
        "zeroimage/release/multi.tar",
        "debug/plain.tar",
        "release/deps/not-an-image.tar",
        "release/build/x-1/out/not-either.tar",
        "x86_64-unknown-linux-musl/release/app.tar.partial",
    ] {
        write(path);
    }
    let mut found: Vec<_> = support::archives_in_target_dir(target, started)
        .into_iter()
        .map(|p| p.strip_prefix(target).unwrap().display().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "debug/plain.tar",
            "x86_64-unknown-linux-musl/release/app.tar",
            "zeroimage/release/multi.tar"
        ]
    );
}
