//! What goes into the layers: conflicting destinations (includes, essentials, the program) are refused
//! before anything is written, legal overlaps merge, and paths and link targets longer than ustar holds
//! survive umoci and GNU tar.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::tiny_elf::{self, Machine, Shape};
use support::{run_ok, zeroimage};

fn program(dir: &Path) -> PathBuf {
    tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "layers\n"),
    )
}

/// Runs zeroimage on `program` with `args` and an archive in `dir`, expecting a refusal: exit 1, one
/// `error:` line, and `dir` exactly as it was (no archive, no `.partial`). Returns the error line.
fn refused(dir: &Path, program: &Path, args: &[&str]) -> String {
    let before = support::dir_listing(dir);
    let output = zeroimage()
        .arg(program)
        .arg("-o")
        .arg(dir.join("out.tar"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
    assert_eq!(
        support::dir_listing(dir),
        before,
        "{args:?}: nothing written"
    );
    lines[0].to_owned()
}

fn assert_names(error: &str, needles: &[&str]) {
    for needle in needles {
        assert!(error.contains(needle), "`{needle}` missing from: {error}");
    }
}

#[test]
fn a_file_and_a_directory_at_one_path_are_refused_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    std::fs::write(dir.path().join("fA"), "A").unwrap();
    std::fs::write(dir.path().join("fB"), "B").unwrap();
    let error = refused(
        dir.path(),
        &program,
        &["--include", "fB:/a/b", "--include", "fA:/a"],
    );
    assert_names(
        &error,
        &["--include fA:/a puts a file at `/a`", "--include fB:/a/b"],
    );
    let error = refused(
        dir.path(),
        &program,
        &["--include", "fA:/a", "--include", "fB:/a/b"],
    );
    assert_names(
        &error,
        &[
            "--include fB:/a/b needs a directory at `/a`",
            "--include fA:/a",
        ],
    );

    // An existing archive is left alone too.
    let out = dir.path().join("out.tar");
    std::fs::write(&out, "previous").unwrap();
    refused(
        dir.path(),
        &program,
        &["--include", "fB:/a/b", "--include", "fA:/a"],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
}

#[test]
fn includes_essentials_and_the_program_cannot_claim_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    std::fs::write(dir.path().join("tree/x"), "x").unwrap();
    std::fs::write(dir.path().join("file"), "f").unwrap();
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--include", "tree:/app"],
            &["the program puts a file at `/app`", "--include tree:/app"],
        ),
        (
            &["--include", "file:/app"],
            &["the program", "`/app`", "--include file:/app"],
        ),
        (
            &[
                "--include",
                "file:/usr/local/bin/app",
                "--entrypoint-path",
                "/usr/local/bin/app",
            ],
            &["the program", "--include file:/usr/local/bin/app"],
        ),
        (
            &["--nonroot", "--entrypoint-path", "/etc/passwd/x"],
            &[
                "the program needs a directory at `/etc/passwd`",
                "--nonroot",
            ],
        ),
        (
            &["--nonroot", "--include", "file:/etc/passwd"],
            &["--include file:/etc/passwd", "`/etc/passwd`", "--nonroot"],
        ),
        (
            &["--tmp", "--include", "tree:/tmp"],
            &["--include tree:/tmp", "`/tmp`", "--tmp", "1777"],
        ),
        (
            &["--include", "file:/srv/x", "--include", "tree:/srv"],
            &["--include tree:/srv", "`/srv/x`", "--include file:/srv/x"],
        ),
    ];
    for (args, needles) in cases {
        let error = refused(dir.path(), &program, args);
        assert_names(&error, needles);
    }
}

/// The layers of the (single) image in `archive`, each as path -> (mode, uid, gid, kind).
fn layer_entries(archive: &Path) -> Vec<BTreeMap<String, (u32, u64, u64, String)>> {
    let blobs = support::read_tar(archive);
    let manifest = support::image_manifest(archive);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let blob = &blobs[&support::blob_name(&layer["digest"])];
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
            tar.entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    (
                        e.path().unwrap().display().to_string(),
                        (
                            h.mode().unwrap(),
                            h.uid().unwrap(),
                            h.gid().unwrap(),
                            format!("{:?}", h.entry_type()),
                        ),
                    )
                })
                .collect()
        })
        .collect()
}

/// Unpacks the image tagged `tag` in `archive` with umoci, as a runtime would; returns the root
/// filesystem. `None` (skipped) without umoci.
fn umoci_rootfs(archive: &Path, tag: &str, dir: &Path) -> Option<PathBuf> {
    let umoci = support::peer("umoci")?;
    let layout = dir.join("layout");
    support::extract(archive, &layout);
    let bundle = dir.join("bundle");
    let mut unpack = Command::new(umoci);
    unpack.arg("unpack");
    if !support::is_root() {
        unpack.arg("--rootless");
    }
    run_ok(
        unpack
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    Some(bundle.join("rootfs"))
}

#[test]
fn overlapping_directories_merge_and_keep_the_mode_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    std::fs::write(dir.path().join("x.conf"), "x").unwrap();
    std::fs::write(dir.path().join("y.conf"), "y").unwrap();
    std::fs::write(dir.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
    let archive = dir.path().join("out.tar");
    let include = |src: &str, dest: &str| format!("{}:{dest}", dir.path().join(src).display());
    support::package(
        &program,
        &archive,
        &[
            "-t",
            "merge:test",
            "--nonroot",
            "--include",
            &include("x.conf", "/srv/conf/x.conf"),
            "--include",
            &include("y.conf", "/srv/conf/y.conf"),
            "--include",
            &include("hosts", "/etc/hosts"),
            "--include",
            &include("x.conf", "/home/nonroot/.config/x.conf"),
            "--entrypoint-path",
            "/home/nonroot/bin/app",
        ],
    );
    let layers = layer_entries(&archive);
    let [essentials, program_layer] = &layers[..] else {
        panic!("two layers: {layers:?}");
    };
    for path in [
        "srv/conf/x.conf",
        "srv/conf/y.conf",
        "etc/hosts",
        "etc/passwd",
        "etc/group",
        "home/nonroot/.config/x.conf",
    ] {
        assert_eq!(essentials[path].3, "Regular", "{path}");
    }
    let nonroot = (0o700, 65532, 65532, "Directory".to_owned());
    assert_eq!(
        essentials["home/nonroot"], nonroot,
        "--nonroot's home stays 0700 with an include below it"
    );
    assert_eq!(
        program_layer["home/nonroot"], nonroot,
        "the program's layer does not reset the directory it goes into"
    );
    assert_eq!(program_layer["home/nonroot/bin/app"].0, 0o755);

    let Some(rootfs) = umoci_rootfs(&archive, "test", dir.path()) else {
        return;
    };
    for (path, content) in [
        ("srv/conf/x.conf", "x"),
        ("srv/conf/y.conf", "y"),
        ("etc/hosts", "127.0.0.1 localhost\n"),
        ("home/nonroot/.config/x.conf", "x"),
    ] {
        assert_eq!(
            std::fs::read_to_string(rootfs.join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    assert!(
        std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains("nonroot:x:65532")
    );
    // Rootless unpacking adjusts modes and owners to the user's, so they are compared only as root.
    if support::is_root() {
        let home = std::fs::metadata(rootfs.join("home/nonroot")).unwrap();
        assert_eq!(
            (home.mode() & 0o7777, home.uid(), home.gid()),
            (0o700, 65532, 65532)
        );
    }
}

/// Directory names of 60 bytes, as deep as it takes to pass `len` bytes below `/srv/tree`.
fn deep_dir(len: usize) -> String {
    let mut path = String::new();
    let mut level = 0;
    while path.len() < len {
        path.push_str(&format!("{level:02}-{}/", "d".repeat(57)));
        level += 1;
    }
    path.trim_end_matches('/').to_owned()
}

#[test]
fn long_paths_and_link_targets_survive_umoci_and_gnu_tar() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    let tree = dir.path().join("tree");
    let deep = deep_dir(280);
    let file_name = format!("{}.txt", "ü".repeat(40));
    std::fs::create_dir_all(tree.join(&deep)).unwrap();
    std::fs::write(tree.join(&deep).join(&file_name), "deep content\n").unwrap();
    let target = format!("{deep}/{file_name}");
    assert!(target.len() > 255);
    std::os::unix::fs::symlink(&target, tree.join("link")).unwrap();
    let archive = dir.path().join("out.tar");
    let include = format!("{}:/srv/tree", tree.display());
    support::package(
        &program,
        &archive,
        &["-t", "long:test", "--include", &include],
    );

    let image_file = format!("srv/tree/{target}");
    let check = |root: &Path, how: &str| {
        assert_eq!(
            std::fs::read_to_string(root.join(&image_file)).unwrap(),
            "deep content\n",
            "{how}"
        );
        assert_eq!(
            std::fs::read_link(root.join("srv/tree/link")).unwrap(),
            Path::new(&target),
            "{how}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("srv/tree/link")).unwrap(),
            "deep content\n",
            "{how}: the link leads to the file"
        );
    };

    let layers = layer_entries(&archive);
    assert!(
        layers[0].contains_key(&image_file),
        "{:?}",
        layers[0].keys()
    );

    if let Some(gnu_tar) = support::peer("tar") {
        let manifest = support::image_manifest(&archive);
        let blob =
            &support::read_tar(&archive)[&support::blob_name(&manifest["layers"][0]["digest"])];
        let blob_path = dir.path().join("layer.tar.gz");
        std::fs::write(&blob_path, blob).unwrap();
        let out = dir.path().join("gnu");
        std::fs::create_dir(&out).unwrap();
        let output = run_ok(
            Command::new(gnu_tar)
                .arg("-xzf")
                .arg(&blob_path)
                .arg("-C")
                .arg(&out),
        );
        assert!(
            output.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        check(&out, "GNU tar");
        assert!(
            !out.join("PaxHeaders").exists(),
            "PAX headers are not files"
        );
    }

    let Some(rootfs) = umoci_rootfs(&archive, "test", dir.path()) else {
        return;
    };
    check(&rootfs, "umoci");
}
