//! `--oci-layout DIR`: images added to an OCI image layout directory, beside the others there, an
//! image of the same name replaced, the documents listed in `referrers.json`; the same image as the
//! archive's; read back with `--from-archive DIR:NAME`; runs at once taking turns on the lock; and
//! every kind of bad directory refused in one line with nothing changed. (skopeo, umoci, podman and
//! oci-image-tool read these layouts in `tests/runtime/oci_layout.rs`.)

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;
use support::tiny_elf::{self, Machine, Shape};
use support::{read_tar, stderr_of, stdout_json, zeroimage};

fn tiny(dir: &Path, name: &str, message: &str) -> PathBuf {
    tiny_elf::write(
        dir,
        name,
        &tiny_elf::build(Machine::X86_64, Shape::Static, message),
    )
}

/// Adds `program` to `layout` as `tag` (with `extra` flags); the JSON summary.
fn add(program: &Path, layout: &Path, tag: &str, extra: &[&str]) -> Value {
    let output = support::run_ok(
        zeroimage()
            .arg(program)
            .args(["-t", tag, "--message-format", "json", "--oci-layout"])
            .arg(layout)
            .args(extra),
    );
    stdout_json(&output)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `(ref.name, io.containerd.image.name, digest)` of each entry of the layout's index.json.
fn entries(layout: &Path) -> Vec<(String, String, String)> {
    let index = json_file(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = |key: &str| d["annotations"][key].as_str().unwrap_or("").to_owned();
            (
                name("org.opencontainers.image.ref.name"),
                name("io.containerd.image.name"),
                d["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join(support::blob_name(&json!(digest)))
}

/// `(artifactType, subject digest)` of each document `referrers.json` lists, read from its manifest.
fn documents(layout: &Path) -> Vec<(String, String)> {
    let referrers = json_file(&layout.join("referrers.json"));
    let mut found: Vec<(String, String)> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let manifest = json_file(&blob(layout, d["digest"].as_str().unwrap()));
            (
                manifest["artifactType"].as_str().unwrap().to_owned(),
                manifest["subject"]["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Every path under `dir` (relative) with its bytes and mode; directories without bytes.
fn snapshot(dir: &Path) -> Vec<(String, Option<Vec<u8>>, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                pending.push(path.clone());
                found.push((name, None, meta.permissions().mode()));
            } else {
                let bytes = std::fs::read(&path).ok();
                found.push((name, bytes, meta.permissions().mode()));
            }
        }
    }
    found.sort();
    found
}

/// Exit 1, one `error:` line holding every needle, nothing on stdout.
fn assert_refused(output: &Output, needles: &[&str]) {
    let err = stderr_of(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing `{needle}` in: {err}");
    }
    assert!(output.stdout.is_empty(), "stdout should be empty");
}

const SPDX: &str = "application/spdx+json";
const PROVENANCE: &str = "application/vnd.in-toto+json";

#[test]
fn a_second_image_is_added_beside_the_first_and_the_same_name_replaces_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let other = tiny(dir.path(), "other", "other\n");
    let layout = dir.path().join("oci");

    let first = add(&app, &layout, "app:1", &[]);
    // No archive without -o: the JSON says so, and nothing is written beside the program.
    assert_eq!(first["path"], "");
    assert_eq!(
        first["oci_layout"],
        json!({"path": layout.display().to_string(), "ref_name": "app:1"})
    );
    assert!(!dir.path().join("app.tar").exists());
    let first_digest = first["digest"].as_str().unwrap().to_owned();

    let second = add(
        &other,
        &layout,
        "registry.example.com/team/other:2",
        &["--provenance"],
    );
    let second_digest = second["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        entries(&layout),
        [
            (
                "app:1".to_owned(),
                "docker.io/library/app:1".to_owned(),
                first_digest.clone()
            ),
            (
                "registry.example.com/team/other:2".to_owned(),
                "registry.example.com/team/other:2".to_owned(),
                second_digest.clone()
            ),
        ],
        "the first image is kept, the second listed under its whole name"
    );
    let mut expected = vec![
        (SPDX.to_owned(), first_digest.clone()),
        (SPDX.to_owned(), second_digest.clone()),
        (PROVENANCE.to_owned(), second_digest.clone()),
    ];
    expected.sort();
    assert_eq!(documents(&layout), expected);
    let first_blobs: Vec<PathBuf> = [&first["config_digest"], &first["layer_digest"]]
        .iter()
        .map(|d| blob(&layout, d.as_str().unwrap()))
        .collect();

    // app:1 again, another image (another time): its entry is replaced, in place of none added.
    let again = add(&app, &layout, "app:1", &["--created", "@7"]);
    let again_digest = again["digest"].as_str().unwrap().to_owned();
    assert_ne!(again_digest, first_digest);
    assert_eq!(
        entries(&layout),
        [
            (
                "registry.example.com/team/other:2".to_owned(),
                "registry.example.com/team/other:2".to_owned(),
                second_digest.clone()
            ),
            (
                "app:1".to_owned(),
                "docker.io/library/app:1".to_owned(),
                again_digest.clone()
            ),
        ]
    );
    // The replaced image's blobs stay; its SBOM is no longer listed (nothing names that image).
    for path in first_blobs {
        assert!(path.is_file(), "{} was removed", path.display());
    }
    let mut expected = vec![
        (SPDX.to_owned(), again_digest.clone()),
        (SPDX.to_owned(), second_digest.clone()),
        (PROVENANCE.to_owned(), second_digest),
    ];
    expected.sort();
    assert_eq!(documents(&layout), expected);
}

#[test]
fn the_layout_holds_the_archives_image_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let layout = dir.path().join("oci");
    let archive = dir.path().join("app.tar");
    let output = support::run_ok(
        zeroimage()
            .arg(&app)
            .args(["-t", "app:1.0", "--provenance", "--message-format", "json"])
            .arg("-o")
            .arg(&archive)
            .arg("--oci-layout")
            .arg(&layout),
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["path"], archive.display().to_string());
    assert_eq!(summary["oci_layout"]["ref_name"], "app:1.0");
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!(
            "Stored app:1.0 in {} (OCI layout, {})",
            layout.display(),
            summary["digest"].as_str().unwrap()
        )),
        "{err}"
    );

    let tar = read_tar(&archive);
    let archived: Value = serde_json::from_slice(&tar["index.json"]).unwrap();
    assert_eq!(
        entries(&layout),
        [(
            "app:1.0".to_owned(),
            "docker.io/library/app:1.0".to_owned(),
            archived["manifests"][0]["digest"]
                .as_str()
                .unwrap()
                .to_owned()
        )]
    );
    assert_eq!(archived["manifests"][0]["digest"], summary["digest"]);
    let mut blobs = 0;
    for (name, bytes) in &tar {
        if name.starts_with("blobs/sha256/") {
            assert_eq!(
                &std::fs::read(layout.join(name)).unwrap(),
                bytes,
                "{name} differs"
            );
            blobs += 1;
        }
    }
    assert_eq!(
        std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .count(),
        blobs,
        "the layout holds exactly the archive's blobs"
    );
    assert_eq!(
        json_file(&layout.join("referrers.json")),
        serde_json::from_slice::<Value>(&tar["referrers.json"]).unwrap()
    );

    // The layout alone, from the same inputs: the same image.
    let alone = dir.path().join("alone");
    let only = add(&app, &alone, "app:1.0", &["--provenance"]);
    assert_eq!(only["digest"], summary["digest"]);
    assert_eq!(
        std::fs::read(alone.join("index.json")).unwrap(),
        std::fs::read(layout.join("index.json")).unwrap()
    );
}

#[test]
fn images_are_read_back_from_the_layout_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let other = tiny(dir.path(), "other", "other\n");
    let layout = dir.path().join("oci");
    let first = add(&app, &layout, "app:1", &[]);
    let second = add(&other, &layout, "team/other:2", &["--sbom", "none"]);
    let tool = tiny(dir.path(), "tool", "tool\n");
    for (name, expected) in [
        ("app:1", &first),
        ("team/other:2", &second),
        // A tag alone, when one image has it.
        ("2", &second),
    ] {
        let output = support::run_ok(
            zeroimage()
                .arg(&tool)
                .args(["--message-format", "json", "--from-archive"])
                .arg(format!("{}:{name}", layout.display()))
                .arg("-o")
                .arg(dir.path().join("tool.tar")),
        );
        let built = stdout_json(&output);
        assert_eq!(built["base"]["digest"], expected["digest"], "{name}");
    }
    let output = zeroimage()
        .arg(&tool)
        .arg("--from-archive")
        .arg(&layout)
        .arg("-o")
        .arg(dir.path().join("none.tar"))
        .output()
        .unwrap();
    assert_refused(&output, &["holds 2 images", "app:1", "team/other:2"]);
}

#[test]
fn runs_adding_to_one_layout_at_once_keep_each_others_entries() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let program = tiny(dir.path(), &format!("app{i}"), &format!("app {i}\n"));
            zeroimage()
                .arg(&program)
                .args(["-t", &format!("app{i}:1"), "--oci-layout"])
                .arg(&layout)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
    }
    let mut names: Vec<String> = entries(&layout).into_iter().map(|e| e.0).collect();
    names.sort();
    assert_eq!(
        names,
        ["app0:1", "app1:1", "app2:1", "app3:1", "app4:1", "app5:1"]
    );
    assert_eq!(documents(&layout).len(), 6, "every run's SBOM is listed");
    support::validate::layout_dir(&layout);
}

/// Starts a run adding to `layout` in a process group of its own; its stderr is collected in the
/// returned buffer as it comes.
fn start(program: &Path, layout: &Path, tag: &str) -> (std::process::Child, Arc<Mutex<String>>) {
    let mut child = zeroimage()
        .arg(program)
        .args(["-t", tag, "--oci-layout"])
        .arg(layout)
        .own_process_group()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let mut stream = child.stderr.take().unwrap();
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, text)
}

/// Waits (at most 30 s) until the run's stderr holds `needle`.
fn wait_for(child: &mut std::process::Child, text: &Mutex<String>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text.lock().unwrap().contains(needle) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ended ({status}) before `{needle}`: {}",
                text.lock().unwrap()
            );
        }
        assert!(Instant::now() < deadline, "no `{needle}`");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (at most 30 s) for the run to end.
fn wait_end(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_run_waits_for_the_layouts_lock_and_a_cancel_ends_the_wait() {
    use rustix::fs::{FlockOperation, flock};
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let layout = dir.path().join("oci");
    add(&app, &layout, "app:1", &[]);
    let before = snapshot(&layout);

    // Another writer holds the layout: the run says it waits; Ctrl-C ends it, nothing changed.
    let held = std::fs::File::open(&layout).unwrap();
    flock(&held, FlockOperation::LockExclusive).unwrap();
    let (mut child, text) = start(&app, &layout, "app:2");
    wait_for(&mut child, &text, "Waiting for another run to finish with");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = wait_end(&mut child);
    assert_eq!(
        status.signal(),
        Some(libc::SIGINT),
        "{}",
        text.lock().unwrap()
    );
    assert_eq!(
        snapshot(&layout),
        before,
        "a cancelled wait changes nothing"
    );

    // The writer finishes: the waiting run goes on and adds its image.
    let (mut child, text) = start(&app, &layout, "app:2");
    wait_for(&mut child, &text, "Waiting for another run to finish with");
    flock(&held, FlockOperation::Unlock).unwrap();
    let status = wait_end(&mut child);
    assert!(status.success(), "{}", text.lock().unwrap());
    let names: Vec<String> = entries(&layout).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["app:1", "app:2"]);
}

/// A layout holding `app:1`, for the bad-input tests to break.
fn good_layout(dir: &Path) -> (PathBuf, PathBuf) {
    let app = tiny(dir, "app", "app\n");
    let layout = dir.join("oci");
    add(&app, &layout, "app:1", &[]);
    (app, layout)
}

/// Runs zeroimage adding `program` to `layout` as `app:2`, expecting a one-line refusal.
fn refused(program: &Path, layout: &Path, needles: &[&str]) {
    let output = zeroimage()
        .arg(program)
        .args(["-t", "app:2", "--oci-layout"])
        .arg(layout)
        .output()
        .unwrap();
    assert_refused(&output, needles);
}

#[test]
fn a_file_or_a_directory_that_is_not_a_layout_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let file = dir.path().join("file");
    std::fs::write(&file, "mine").unwrap();
    refused(
        &app,
        &file,
        &["file", "is a file", "--oci-layout takes a directory"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    refused(
        &app,
        &file.join("sub"),
        &["file/sub", "a part of that path is a file"],
    );

    let other = dir.path().join("photos");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("cat.jpg"), "meow").unwrap();
    let before = snapshot(&other);
    refused(
        &app,
        &other,
        &[
            "photos",
            "not empty and not an OCI image layout",
            "no oci-layout file",
        ],
    );
    assert_eq!(snapshot(&other), before, "no blob scattered into it");
    // Nothing left beside the program either.
    assert!(!dir.path().join("app.tar").exists());
}

#[test]
fn a_broken_index_json_oci_layout_or_referrers_json_is_refused_and_nothing_changes() {
    for (file, content, needles) in [
        (
            "index.json",
            "{\"manifests\": [",
            &["oci/index.json", "is not a valid image index"][..],
        ),
        (
            "index.json",
            "{\"schemaVersion\": 1, \"manifests\": []}",
            &["oci/index.json", "schemaVersion 1"][..],
        ),
        (
            "oci-layout",
            "not json",
            &["oci/oci-layout", "is not valid JSON", "imageLayoutVersion"][..],
        ),
        (
            "oci-layout",
            "{\"imageLayoutVersion\": \"2.0.0\"}",
            &["oci/oci-layout", "2.0.0", "only 1.0.0"][..],
        ),
        (
            "referrers.json",
            "[]",
            &["oci/referrers.json", "is not a valid image index"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (app, layout) = good_layout(dir.path());
        std::fs::write(layout.join(file), content).unwrap();
        let before = snapshot(&layout);
        refused(&app, &layout, needles);
        assert_eq!(
            snapshot(&layout),
            before,
            "{file} broken: something changed"
        );
    }
}

#[test]
fn a_damaged_blob_or_a_linked_blobs_directory_is_refused_and_what_was_added_is_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let (app, layout) = good_layout(dir.path());
    let image = json_file(&layout.join("index.json"));
    let manifest = json_file(&blob(
        &layout,
        image["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let layer = blob(&layout, layer_digest);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&layer, &bytes).unwrap();
    let before = snapshot(&layout);
    // Another configuration, the same layer: the new config is written first, then the damaged
    // layer is found and the config taken back.
    let output = zeroimage()
        .arg(&app)
        .args(["-q", "-t", "app:2", "-e", "A=1", "--oci-layout"])
        .arg(&layout)
        .output()
        .unwrap();
    assert_refused(
        &output,
        &[
            &layer_digest["sha256:".len()..],
            "does not hash to",
            "layout is damaged",
        ],
    );
    assert_eq!(snapshot(&layout), before);

    let dir = tempfile::tempdir().unwrap();
    let (app, layout) = good_layout(dir.path());
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(layout.join("blobs"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, layout.join("blobs")).unwrap();
    let before = (snapshot(&layout), snapshot(&elsewhere));
    refused(&app, &layout, &["oci/blobs", "is a symbolic link"]);
    assert_eq!((snapshot(&layout), snapshot(&elsewhere)), before);
}

#[test]
fn an_archive_inside_the_layout_directory_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let layout = dir.path().join("oci");
    for output in [layout.clone(), layout.join("app.tar")] {
        std::fs::create_dir_all(&layout).unwrap();
        let out = zeroimage()
            .arg(&app)
            .arg("-o")
            .arg(&output)
            .arg("--oci-layout")
            .arg(&layout)
            .output()
            .unwrap();
        assert_refused(&out, &["is inside the --oci-layout directory"]);
        assert_eq!(snapshot(&layout), [], "nothing written");
    }
}

#[test]
fn a_name_a_layout_cannot_list_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let app = tiny(dir.path(), "app", "app\n");
    let layout = dir.path().join("oci");
    let output = zeroimage()
        .arg(&app)
        .args(["-t", "team/app__x:1", "--oci-layout"])
        .arg(&layout)
        .output()
        .unwrap();
    assert_refused(
        &output,
        &["team/app__x:1", "cannot name an image in an OCI layout"],
    );
    assert!(!layout.exists());
}

#[test]
fn an_unwritable_layout_or_parent_is_refused_and_nothing_changes() {
    let Some(mut as_nobody) = unprivileged() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (app, layout) = good_layout(dir.path());
    std::fs::set_permissions(&layout, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(&layout);
    let output = as_nobody
        .arg(&app)
        .args(["-t", "app:2", "--oci-layout"])
        .arg(&layout)
        .output()
        .unwrap();
    assert_refused(
        &output,
        &["oci", "cannot be written", "writable --oci-layout"],
    );
    assert_eq!(snapshot(&layout), before);

    // A new layout under a directory that cannot be written.
    let parent = dir.path().join("locked");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = unprivileged()
        .unwrap()
        .arg(&app)
        .args(["-t", "app:2", "--oci-layout"])
        .arg(parent.join("oci"))
        .output()
        .unwrap();
    assert_refused(&output, &["locked", "cannot be written"]);
    assert_eq!(snapshot(&parent), []);
}

/// zeroimage as an unprivileged user when we are root (root ignores file permissions).
fn unprivileged() -> Option<support::Zeroimage> {
    if !support::is_root() {
        return Some(zeroimage());
    }
    let setpriv = support::peer("setpriv")?;
    Some(support::zeroimage_via(
        setpriv,
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    ))
}
