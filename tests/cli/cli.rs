//! The `zeroimage` command line: success paths, output, and every kind of bad input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;
use support::tiny_elf::{self, Machine, Shape};
use support::{dir_listing, read_tar, stderr_of, zeroimage};

fn tiny(dir: &Path, name: &str) -> PathBuf {
    tiny_elf::write(
        dir,
        name,
        &tiny_elf::build(Machine::X86_64, Shape::Static, "tiny\n"),
    )
}

/// Asserts a clean failure: exit 1, one `error:` line mentioning `needles`, nothing on stdout.
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

#[test]
fn default_output_is_program_tar_beside_it_with_status_lines() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let output = zeroimage().arg(&program).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let err = stderr_of(&output);
    assert!(err.contains("   Packaging app (linux/amd64)"), "{err}");
    assert!(err.contains("     Written "), "{err}");
    assert!(err.contains("app:latest, sha256:"), "{err}");
    assert!(output.stdout.is_empty(), "nothing on stdout unless asked");
    // The SBOM (on by default) is also written beside the archive.
    assert_eq!(dir_listing(dir.path()), ["app", "app.spdx.json", "app.tar"]);
    let entries = read_tar(&dir.path().join("app.tar"));
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert!(
        names.contains(&"oci-layout")
            && names.contains(&"index.json")
            && names.contains(&"manifest.json")
    );
}

#[test]
fn json_message_format_describes_the_image_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let out = dir.path().join("img.tar");
    let output = support::run_ok(
        zeroimage()
            .arg(&program)
            .args([
                "--message-format",
                "json",
                "-q",
                "-t",
                "example.com/team/app:1.2",
                "-o",
            ])
            .arg(&out),
    );
    assert!(output.stderr.is_empty(), "quiet: {}", stderr_of(&output));
    let stdout = support::stdout_of(&output);
    assert_eq!(stdout.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["path"], out.display().to_string());
    assert_eq!(v["platform"], "linux/amd64");
    assert_eq!(v["tag"], "example.com/team/app:1.2");
    assert_eq!(v["size"], std::fs::metadata(&out).unwrap().len());
    let entries = read_tar(&out);
    let index = support::json_entry(&entries, "index.json");
    assert_eq!(v["manifest_digest"], index["manifests"][0]["digest"]);
    let manifest = support::json_entry(&entries, &support::blob_name(&v["manifest_digest"]));
    assert_eq!(v["config_digest"], manifest["config"]["digest"]);
    assert_eq!(v["layer_digest"], manifest["layers"][0]["digest"]);
}

#[test]
fn help_has_examples_and_version_matches_the_package() {
    let help = support::run_ok(zeroimage().arg("--help"));
    let text = support::stdout_of(&help);
    for needle in [
        "Examples:",
        "--platform",
        "--tag",
        "--output",
        "--message-format",
        "--allow-dynamic",
        "--created",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
    let version = support::stdout_of(&support::run_ok(zeroimage().arg("--version")));
    assert_eq!(
        version.trim(),
        format!("zeroimage {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let output = zeroimage().output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = zeroimage()
        .args(["x", "--platform", "linux/amd64", "--arch", "arm64"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = zeroimage()
        .args(["x", "--tag", "Bad Name"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("invalid image name"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn compression_flags_are_checked_as_parsed_and_a_level_given_twice_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let output = zeroimage()
        .arg(&program)
        .args(["--compression", "lz4"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("compression `lz4` is not gzip[:LEVEL] or zstd[:LEVEL]"),
        "{}",
        stderr_of(&output)
    );
    let output = zeroimage()
        .arg(&program)
        .args(["--compression", "zstd:5", "--compression-level", "7"])
        .output()
        .unwrap();
    assert_refused(
        &output,
        &["compression `zstd:5` and compression level 7 disagree; give the level once"],
    );
    assert_eq!(dir_listing(dir.path()), ["app"], "nothing written");
    // A format without a level takes the level given apart.
    let out = dir.path().join("zstd.tar");
    support::run_ok(
        zeroimage()
            .arg(&program)
            .args([
                "-q",
                "--compression",
                "zstd",
                "--compression-level",
                "7",
                "-o",
            ])
            .arg(&out),
    );
    let layers = support::image_manifest(&out)["layers"].clone();
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

#[test]
fn missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = zeroimage().arg(dir.path().join("nope")).output().unwrap();
    assert_refused(&output, &["nope", "no such file"]);
    assert!(dir_listing(dir.path()).is_empty());
}

#[test]
fn directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let output = zeroimage().arg(&sub).output().unwrap();
    assert_refused(&output, &["sub", "is a directory"]);
    assert_eq!(dir_listing(dir.path()), ["sub"]);
}

#[test]
fn empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let output = zeroimage().arg(&empty).output().unwrap();
    assert_refused(&output, &["empty", "is empty"]);
    assert_eq!(dir_listing(dir.path()), ["empty"]);
}

#[test]
fn text_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello\n").unwrap();
    let output = zeroimage().arg(&text).output().unwrap();
    assert_refused(&output, &["notes.txt", "not a Linux ELF executable"]);
    assert_eq!(dir_listing(dir.path()), ["notes.txt"]);
}

#[test]
fn dynamic_executable_is_refused_with_the_fix_and_allowed_on_request() {
    let ls = Path::new("/bin/ls");
    assert!(ls.exists(), "/bin/ls is part of every Debian system");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ls.tar");
    let output = zeroimage().arg(ls).arg("-o").arg(&out).output().unwrap();
    assert_refused(
        &output,
        &[
            "/bin/ls",
            "dynamically linked",
            "interpreter /lib64/ld-linux-x86-64.so.2",
            "libc.so.6",
            "musl",
            "+crt-static",
            "--allow-dynamic",
        ],
    );
    assert!(dir_listing(dir.path()).is_empty());

    let output = zeroimage()
        .arg(ls)
        .arg("-o")
        .arg(&out)
        .arg("--allow-dynamic")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("warning: /bin/ls is dynamically linked"),
        "{}",
        stderr_of(&output)
    );
    assert!(out.is_file());
}

#[test]
fn foreign_arch_with_contradicting_arch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let arm = tiny_elf::write(
        dir.path(),
        "armapp",
        &tiny_elf::build(Machine::Aarch64, Shape::Static, "x"),
    );
    let output = zeroimage()
        .arg(&arm)
        .args(["--arch", "amd64"])
        .output()
        .unwrap();
    assert_refused(&output, &["armapp", "arm64 executable", "linux/amd64"]);
    let output = zeroimage()
        .arg(&arm)
        .args(["--platform", "linux/amd64"])
        .output()
        .unwrap();
    assert_refused(&output, &["arm64 executable"]);
    assert_eq!(dir_listing(dir.path()), ["armapp"]);
}

#[test]
fn arm64_executable_on_this_machine_is_labelled_arm64() {
    let dir = tempfile::tempdir().unwrap();
    let arm = tiny_elf::write(
        dir.path(),
        "armapp",
        &tiny_elf::build(Machine::Aarch64, Shape::Static, "x"),
    );
    let out = dir.path().join("a.tar");
    support::package(&arm, &out, &[]);
    let entries = read_tar(&out);
    let index = support::json_entry(&entries, "index.json");
    assert_eq!(
        index["manifests"][0]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    // A matching explicit variant is recorded.
    support::package(&arm, &out, &["--platform", "linux/arm64/v8"]);
    let index = support::json_entry(&read_tar(&out), "index.json");
    assert_eq!(index["manifests"][0]["platform"]["variant"], "v8");
}

#[test]
fn non_linux_os_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let output = zeroimage()
        .arg(&program)
        .args(["--os", "windows"])
        .output()
        .unwrap();
    assert_refused(&output, &["unsupported OS `windows`", "only `linux`"]);
    assert_eq!(dir_listing(dir.path()), ["app"]);
}

#[test]
fn missing_output_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let output = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(dir.path().join("no/such/dir/app.tar"))
        .output()
        .unwrap();
    assert_refused(&output, &["no/such/dir", "does not exist"]);
    assert_eq!(dir_listing(dir.path()), ["app"]);
}

#[test]
fn output_equal_to_input_is_refused_and_input_survives() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let before = std::fs::read(&program).unwrap();
    let output = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(&program)
        .output()
        .unwrap();
    assert_refused(&output, &["is the input executable itself"]);
    // The same file by another path is caught too.
    let other_path = dir.path().join(".").join("app");
    let output = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(&other_path)
        .output()
        .unwrap();
    assert_refused(&output, &["is the input executable itself"]);
    assert_eq!(std::fs::read(&program).unwrap(), before);
    assert_eq!(dir_listing(dir.path()), ["app"]);
}

#[test]
fn no_output_replaces_an_input_by_any_path_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let elf = std::fs::read(&program).unwrap();
    let data = dir.path().join("data.txt");
    std::fs::write(&data, "data\n").unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, "not checked here\n").unwrap();
    let base = dir.path().join("base.tar");
    support::package(&program, &base, &["--sbom", "none"]);
    let base_bytes = std::fs::read(&base).unwrap();
    let listing = dir_listing(dir.path());
    let unchanged = || {
        assert_eq!(std::fs::read(&program).unwrap(), elf);
        assert_eq!(std::fs::read(&data).unwrap(), b"data\n");
        assert_eq!(std::fs::read(&bundle).unwrap(), b"not checked here\n");
        assert_eq!(std::fs::read(&base).unwrap(), base_bytes);
    };
    let run = |program: &Path, output: &Path, extra: &[&str]| {
        let result = zeroimage()
            .arg(program)
            .arg("-o")
            .arg(output)
            .args(extra)
            .output()
            .unwrap();
        unchanged();
        result
    };

    // The archive over an --include file, the CA bundle, the base archive.
    let output = run(
        &program,
        &data,
        &["--include", &format!("{}:/data.txt", data.display())],
    );
    assert_refused(
        &output,
        &[
            "data.txt: is a file of --include",
            "itself",
            "choose another -o/--output",
        ],
    );
    let output = run(
        &program,
        &bundle,
        &[&format!("--ca-certs={}", bundle.display())],
    );
    assert_refused(&output, &["ca.pem: is a file of --ca-certs itself"]);
    let output = run(
        &program,
        &base,
        &["-q", "--from-archive", base.to_str().unwrap()],
    );
    assert_refused(
        &output,
        &["base.tar: is the base image archive (--from-archive) itself"],
    );
    // Through a symbolic link to the program.
    let link = dir.path().join("link.tar");
    std::os::unix::fs::symlink("app", &link).unwrap();
    let output = run(&program, &link, &[]);
    assert_refused(&output, &["link.tar: is the input executable itself"]);
    std::fs::remove_file(&link).unwrap();
    assert_eq!(dir_listing(dir.path()), listing, "nothing was written");

    // The SBOM beside the archive over the program itself (a program named app.spdx.json), or
    // through a link to it.
    let sbom_named = dir.path().join("app.spdx.json");
    std::fs::copy(&program, &sbom_named).unwrap();
    let output = run(&sbom_named, &dir.path().join("app.tar"), &[]);
    assert_refused(
        &output,
        &[
            "app.spdx.json: the SPDX SBOM written beside the archive would replace the input \
             executable (",
            "or pass --sbom none",
        ],
    );
    assert_eq!(std::fs::read(&sbom_named).unwrap(), elf);
    std::fs::remove_file(&sbom_named).unwrap();
    std::os::unix::fs::symlink("app", &sbom_named).unwrap();
    let output = run(&program, &dir.path().join("app.tar"), &[]);
    assert_refused(
        &output,
        &[
            "app.spdx.json: the SPDX SBOM",
            "replace the input executable",
        ],
    );
    let output = run(
        &program,
        &dir.path().join("app.tar"),
        &["--sbom", "none", "--provenance"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(dir.path().join("app.provenance.json").is_file());

    // An OCI layout directory as the base: its files are inputs too.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    for (name, bytes) in read_tar(&base) {
        let path = layout.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let index = std::fs::read(layout.join("index.json")).unwrap();
    let output = run(
        &program,
        &layout.join("index.json"),
        &["-q", "--from-archive", layout.to_str().unwrap()],
    );
    assert_refused(
        &output,
        &["index.json: is a file of the base image layout (--from-archive) itself"],
    );
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index);
}

#[test]
fn a_document_that_cannot_be_written_beside_the_archive_leaves_the_old_archive() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let out = dir.path().join("app.tar");
    std::fs::write(&out, b"previous archive").unwrap();
    // A directory where the SBOM goes: refused before anything is written.
    std::fs::create_dir(dir.path().join("app.spdx.json")).unwrap();
    std::fs::write(dir.path().join("app.spdx.json/x"), b"").unwrap();
    let output = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_refused(
        &output,
        &["app.spdx.json: is not a regular file", "remove it"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous archive");
    assert_eq!(dir_listing(dir.path()), ["app", "app.spdx.json", "app.tar"]);
}

#[test]
fn a_full_disk_is_one_line_naming_the_archive_once_and_the_old_archive_stays() {
    if !support::require_root("mounting a small tmpfs") {
        return;
    }
    let Some(_) = support::peer("unshare") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB that does not compress, for a 256 KiB filesystem.
    let program = tiny_elf::write(
        dir.path(),
        "big",
        &tiny_elf::with_noise(Machine::X86_64, "big\n", 1 << 20),
    );
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    // The tmpfs lives in a private mount namespace, gone with the process; what is left on it is
    // listed before it goes.
    let script = r#"mount -t tmpfs -o size=256k tmpfs "$MNT" &&
        printf 'previous archive' > "$MNT/app.tar" &&
        { "$0" "$@"; status=$?; ls -A "$MNT"; cat "$MNT/app.tar"; exit $status; }"#;
    let out = mount.join("app.tar");
    let output = support::zeroimage_via(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", script],
    )
    .env("MNT", &mount)
    .arg(&program)
    .args(["-q", "-o"])
    .arg(&out)
    .output()
    .unwrap();
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: writing `{}`: No space left on device (os error 28); free some space on that \
             filesystem, or write elsewhere",
            out.display()
        )
    );
    assert_eq!(
        support::stdout_of(&output),
        "app.tar\nprevious archive",
        "no partial file left, the old archive kept"
    );
}

#[test]
fn output_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let output = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_refused(&output, &["is a directory"]);
}

/// Runs zeroimage as an unprivileged user when we are root (root ignores file permissions).
fn zeroimage_unprivileged() -> Option<support::Zeroimage> {
    if !support::is_root() {
        return Some(zeroimage());
    }
    let setpriv = support::peer("setpriv")?;
    Some(support::zeroimage_via(
        setpriv,
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    ))
}

#[test]
fn unwritable_output_directory_keeps_the_existing_archive() {
    let Some(mut cmd) = zeroimage_unprivileged() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = tiny(dir.path(), "app");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let archive = out_dir.join("app.tar");
    std::fs::write(&archive, b"previous archive").unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = cmd.arg(&program).arg("-o").arg(&archive).output().unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_refused(
        &output,
        &["out", "cannot write the archive", "writable -o/--output"],
    );
    assert_eq!(std::fs::read(&archive).unwrap(), b"previous archive");
    assert_eq!(dir_listing(&out_dir), ["app.tar"]);
}

#[test]
fn fifo_input_is_refused_and_the_old_archive_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.tar");
    std::fs::write(&out, b"previous archive").unwrap();
    let program = tiny(dir.path(), "app");
    // A FIFO is not a regular file: refused before anything is written.
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let output = zeroimage().arg(&fifo).arg("-o").arg(&out).output().unwrap();
    assert_refused(&output, &["fifo", "not a regular file"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous archive");
    assert_eq!(dir_listing(dir.path()), ["app", "app.tar", "fifo"]);
    drop(program);
}

#[test]
fn output_mode_follows_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let out = dir.path().join(format!("app-{umask}.tar"));
        let script = format!("umask {umask} && exec \"$0\" \"$@\"");
        support::run_ok(
            support::zeroimage_via("sh", &["-c", &script])
                .arg(&program)
                .arg("-o")
                .arg(&out),
        );
        let actual = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(actual, mode, "umask {umask}");
    }
}

#[test]
fn ctrl_c_removes_the_partial_file_and_keeps_the_old_archive() {
    let dir = tempfile::tempdir().unwrap();
    // A valid static executable with 400 MB of incompressible-ish data appended: slow enough to interrupt.
    let big = tiny_elf::with_noise(Machine::X86_64, "big\n", 400 << 20);
    let program = tiny_elf::write(dir.path(), "big", &big);
    drop(big);
    let out = dir.path().join("big.tar");
    std::fs::write(&out, b"previous archive").unwrap();
    let child = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the partial file exists, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dir_listing(dir.path())
        .iter()
        .any(|n| n.ends_with(".partial"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no partial file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    // Ended by the signal, as cargo is: a shell shows 130.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&output.status),
        Some(libc::SIGINT),
        "{}",
        stderr_of(&output)
    );
    assert!(
        stderr_of(&output).contains("interrupted"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous archive");
    assert_eq!(dir_listing(dir.path()), ["big", "big.tar"]);
}

/// `mknod PATH KIND MAJOR MINOR`, asserting success; `false` (skipped) when not root.
fn mknod(path: &Path, kind: &str, major: u32, minor: u32) -> bool {
    if !support::require_root("mknod") {
        return false;
    }
    support::run_ok(
        Command::new("mknod")
            .arg(path)
            .arg(kind)
            .arg(major.to_string())
            .arg(minor.to_string()),
    );
    true
}

/// `makedev(3)` as glibc encodes Linux device numbers.
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

fn file_kind(path: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

/// The archive of `program` written to a regular file, to compare streamed ones with.
fn reference_archive(program: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("reference.tar");
    support::package(program, &out, &[]);
    std::fs::read(out).unwrap()
}

#[test]
fn character_device_output_is_written_through_and_stays_a_device() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let node = dir.path().join("nulldev");
    if !mknod(&node, "c", 1, 3) {
        return;
    }
    let link = dir.path().join("link-to-nulldev");
    std::os::unix::fs::symlink(&node, &link).unwrap();
    for output in [&node, &link] {
        let run = zeroimage()
            .arg(&program)
            .arg("-o")
            .arg(output)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr_of(&run));
        assert!(
            stderr_of(&run).contains("     Written "),
            "{}",
            stderr_of(&run)
        );
        assert!(
            file_kind(&node).is_char_device(),
            "{} was replaced",
            node.display()
        );
        assert_eq!(std::fs::metadata(&node).unwrap().rdev(), makedev(1, 3));
        assert!(file_kind(&link).is_symlink(), "the link was replaced");
    }
    assert_eq!(
        dir_listing(dir.path()),
        ["app", "link-to-nulldev", "nulldev"]
    );
}

/// Two runs of the library in one process, each with a context of its own, both writing to a FIFO:
/// cancelling one token ends that run with `Interrupted` (its temporary archive removed) while the
/// other, whose FIFO then gets a reader, delivers its whole archive.
#[test]
fn two_runs_in_one_process_are_cancelled_separately() {
    use zeroimage::job::package::Input;
    use zeroimage::job::{Job, JobOptions};
    use zeroimage::report::Silent;
    use zeroimage::util::cancel::CancelToken;
    use zeroimage::{Context, Error};

    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let job = |output: &Path| Job {
        inputs: vec![Input {
            path: program.clone(),
            platform: Default::default(),
        }],
        options: JobOptions {
            output: Some(output.to_owned()),
            ..Default::default()
        },
    };
    let (cancelled_fifo, delivered_fifo) =
        (dir.path().join("cancelled"), dir.path().join("delivered"));
    for fifo in [&cancelled_fifo, &delivered_fifo] {
        support::run_ok(Command::new("mkfifo").arg(fifo));
    }
    let (cancelled, delivered) = (CancelToken::new(), CancelToken::new());
    let (cancelled_job, delivered_job) = (job(&cancelled_fifo), job(&delivered_fifo));
    std::thread::scope(|scope| {
        let cancelled_run = scope
            .spawn(|| cancelled_job.run(&Context::new(&Silent).with_cancel(cancelled.clone())));
        let delivered_run = scope
            .spawn(|| delivered_job.run(&Context::new(&Silent).with_cancel(delivered.clone())));
        // Each run writes its archive to a temporary file, then waits for a reader of its FIFO: the
        // first never gets one. Cancelled once a temporary archive shows (another test's may show
        // first: the run is then cancelled earlier, which must end it the same way).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !cancelled_run.is_finished() && !temporary_archive_exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no run started writing"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !cancelled_run.is_finished(),
            "the run ended before it was cancelled"
        );
        cancelled.cancel();
        let error = cancelled_run.join().unwrap().unwrap_err();
        assert!(matches!(error, Error::Interrupted), "{error}");
        assert!(!delivered.is_cancelled());
        let reader = std::thread::spawn({
            let fifo = delivered_fifo.clone();
            move || std::fs::read(fifo).unwrap()
        });
        let outcome = delivered_run.join().unwrap().unwrap();
        let bytes = reader.join().unwrap();
        assert_eq!(bytes.len() as u64, outcome.summary.size);
        let archive = dir.path().join("delivered.tar");
        std::fs::write(&archive, &bytes).unwrap();
        assert!(read_tar(&archive).contains_key("index.json"));
    });
}

/// True when the temporary archive of a run writing to a stream (`.zeroimage.XXXXXX.partial`) is in
/// the system's temporary directory.
fn temporary_archive_exists() -> bool {
    std::fs::read_dir(std::env::temp_dir()).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(".zeroimage.") && name.ends_with(".partial")
        })
    })
}

#[test]
fn fifo_output_gets_the_same_archive_as_a_file() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let expected = reference_archive(&program, dir.path());
    let fifo = dir.path().join("pipe");
    support::run_ok(Command::new("mkfifo").arg(&fifo));
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(&fifo)
        .output()
        .unwrap();
    let still_fifo = file_kind(&fifo).is_fifo();
    if !still_fifo || !run.status.success() {
        // Nothing will ever write to the pipe cat is waiting on.
        reader.kill().unwrap();
    }
    let received = reader.wait_with_output().unwrap().stdout;
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert!(still_fifo, "the FIFO was replaced by a regular file");
    assert!(received == expected, "the FIFO carried another archive");
    let entries = tar::Archive::new(&received[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect::<Vec<_>>();
    assert!(entries.contains(&"index.json".to_owned()), "{entries:?}");
}

#[test]
fn dash_writes_the_archive_to_stdout_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let expected = reference_archive(&program, dir.path());
    let run = support::run_ok(
        zeroimage()
            .current_dir(dir.path())
            .arg(&program)
            .args(["-o", "-"]),
    );
    assert!(run.stdout == expected, "stdout is not the archive");
    assert!(
        stderr_of(&run).contains("     Written standard output (app:latest"),
        "{}",
        stderr_of(&run)
    );
    // Only what the reference run wrote: nothing goes beside a stream.
    assert_eq!(
        dir_listing(dir.path()),
        ["app", "reference.spdx.json", "reference.tar"]
    );
}

#[test]
fn json_is_refused_while_the_archive_goes_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    for output in ["-", "/dev/stdout"] {
        let run = zeroimage()
            .current_dir(dir.path())
            .arg(&program)
            .args(["--message-format", "json", "-o", output])
            .output()
            .unwrap();
        assert_refused(&run, &["standard output", "--message-format json"]);
    }
    assert_eq!(dir_listing(dir.path()), ["app"]);
}

#[test]
fn block_device_and_socket_outputs_are_refused_and_left_alone() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let socket = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let run = zeroimage()
        .arg(&program)
        .arg("-o")
        .arg(&socket)
        .output()
        .unwrap();
    assert_refused(&run, &["sock: is a socket", "choose another -o/--output"]);
    assert!(file_kind(&socket).is_socket());
    let block = dir.path().join("blockdev");
    if !mknod(&block, "b", 7, 200) {
        return;
    }
    let link = dir.path().join("link-to-block");
    std::os::unix::fs::symlink("blockdev", &link).unwrap();
    for output in [&block, &link] {
        let run = zeroimage()
            .arg(&program)
            .arg("-o")
            .arg(output)
            .output()
            .unwrap();
        assert_refused(&run, &["is a block device", "choose another -o/--output"]);
        assert!(file_kind(&block).is_block_device());
        assert!(file_kind(&link).is_symlink());
    }
    assert_eq!(
        dir_listing(dir.path()),
        ["app", "blockdev", "link-to-block", "sock"]
    );
}

#[test]
fn symlink_to_a_file_is_kept_and_its_target_replaced() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let expected = reference_archive(&program, dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let target = store.join("app.tar");
    std::fs::write(&target, b"previous archive").unwrap();
    let inode_before = std::fs::metadata(&target).unwrap().ino();
    let link = dir.path().join("current.tar");
    std::os::unix::fs::symlink("store/app.tar", &link).unwrap();
    support::package(&program, &link, &[]);
    assert!(file_kind(&link).is_symlink(), "the link was replaced");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("store/app.tar")
    );
    assert_eq!(std::fs::read(&target).unwrap(), expected);
    assert_ne!(
        std::fs::metadata(&target).unwrap().ino(),
        inode_before,
        "a new file was renamed into place, not the old one rewritten"
    );
    assert_eq!(dir_listing(&store), ["app.tar"], "no partial file left");

    // A dangling link: the file it names is created.
    let dangling = dir.path().join("next.tar");
    std::os::unix::fs::symlink("store/next.tar", &dangling).unwrap();
    support::package(&program, &dangling, &[]);
    assert!(file_kind(&dangling).is_symlink());
    assert_eq!(std::fs::read(store.join("next.tar")).unwrap(), expected);
}

#[test]
fn symlink_to_proc_self_stdout_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let program = tiny(dir.path(), "app");
    let expected = reference_archive(&program, dir.path());
    let link = dir.path().join("stdout-link");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let run = support::run_ok(zeroimage().arg(&program).arg("-o").arg(&link));
    assert!(file_kind(&link).is_symlink(), "the link was replaced");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/proc/self/fd/1")
    );
    assert!(run.stdout == expected, "the archive went through to stdout");
}

#[test]
fn two_tests_writing_the_same_archive_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.tar");
    let claimed = shared.clone();
    std::thread::Builder::new()
        .name("some_other_test".to_owned())
        .spawn(move || support::claim_output(&claimed))
        .unwrap()
        .join()
        .unwrap();
    // The same test may write its own archive again; another test may not.
    let again = shared.clone();
    std::thread::Builder::new()
        .name("some_other_test".to_owned())
        .spawn(move || support::claim_output(&again))
        .unwrap()
        .join()
        .unwrap();
    let panic = std::panic::catch_unwind(|| {
        support::claim_output(&dir.path().join(".").join("shared.tar"))
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("some_other_test") && message.contains("two_tests_writing_the_same"),
        "{message}"
    );
    // Runs through the helpers claim too: -o, and the default beside the program.
    let program = tiny(dir.path(), "app");
    std::thread::Builder::new()
        .name("a_test_writing_app_tar".to_owned())
        .spawn(move || support::package(&program, &program.with_extension("tar"), &[]))
        .unwrap()
        .join()
        .unwrap();
    let panic = std::panic::catch_unwind(|| {
        let _ = zeroimage().arg(dir.path().join("app")).output();
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("a_test_writing_app_tar"), "{message}");
}

#[test]
fn tests_run_the_binaries_only_through_the_claiming_helpers() {
    let needle = concat!("CARGO_BIN", "_EXE_");
    let tests = support::root().join("tests");
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(needle),
                "{} names a binary under test directly; use support::zeroimage(), \
                 zeroimage_via(), cargo_zeroimage() or bin_dir() so its output is claimed",
                path.display()
            );
        }
    }
}
