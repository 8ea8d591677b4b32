//! `cargo zeroimage` on crates with C code: `fixtures/with-c` (a build script compiling a C file with
//! the `cc` crate) and `fixtures/with-zlib` (zlib from crates.io, through libz-sys) built for x86_64 and
//! aarch64 musl in one call with zig, the images run in runc and under qemu; without zig, the native
//! target built as cargo would (`fixtures/with-blake3` builds and runs, `with-c` fails with the hint
//! naming its build script), a cross GCC used, and the error before building only across
//! architectures with no C compiler at all; what --zig, --no-zig, the `zig` setting and a configured C
//! compiler change; a hostile `ziglang` module in the working or crate directory never runs.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;
use support::{AARCH64_MUSL, X86_64_MUSL, cargo_zeroimage, run_ok, stderr_of, stdout_of};

const LINKER_VARS: [&str; 2] = [
    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER",
    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
];
const CC_VARS: [&str; 4] = [
    "CC_x86_64_unknown_linux_musl",
    "CC_aarch64_unknown_linux_musl",
    "TARGET_CC",
    "CC",
];

/// `cargo zeroimage --manifest-path fixtures/NAME/Cargo.toml --locked`, with no C compiler or linker
/// from the test's environment.
fn for_fixture(name: &str) -> support::Zeroimage {
    let mut cmd = cargo_zeroimage();
    cmd.arg("--manifest-path")
        .arg(support::fixture_manifest(name))
        .arg("--locked");
    for var in LINKER_VARS.iter().chain(&CC_VARS) {
        cmd.env_remove(var);
    }
    cmd
}

fn both_targets() -> bool {
    let installed =
        support::target_installed(X86_64_MUSL) && support::target_installed(AARCH64_MUSL);
    if !installed {
        assert!(!support::peers_required(), "both musl targets are required");
        eprintln!("SKIPPED: x86_64 and aarch64 musl targets needed");
    }
    installed
}

/// True when zig and cargo-zigbuild are installed (scripts/test installs them); else skips, or fails
/// when peers are required.
fn zig_installed() -> bool {
    if support::peer("cargo-zigbuild").is_none() {
        return false;
    }
    let runs = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let zig = runs(Command::new("python3").args(["-m", "ziglang", "version"]))
        || runs(Command::new("zig").arg("version"));
    support::peer_at("zig (pip install ziglang)", zig.then(PathBuf::new)).is_some()
}

/// musl-gcc, which cc-rs would use for the native musl target instead of zig.
fn musl_gcc() -> Option<PathBuf> {
    support::which("musl-gcc").or_else(|| support::which("x86_64-linux-musl-gcc"))
}

/// PATH without the directories holding zig or cargo-zigbuild.
fn path_without_zig() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| {
            !["zig", "cargo-zigbuild", "python-zig"]
                .iter()
                .any(|tool| dir.join(tool).exists())
        })
        .collect();
    std::env::join_paths(kept).unwrap()
}

/// Unpacks the layers of the `arch` image of a multi-platform archive into `dest`.
fn unpack_platform(archive: &Path, arch: &str, dest: &Path) {
    let entries = support::read_tar(archive);
    let index = support::json_entry(&entries, "index.json");
    let list = support::json_entry(
        &entries,
        &support::blob_name(&index["manifests"][0]["digest"]),
    );
    let descriptor = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} image in {list}"));
    let manifest = support::json_entry(&entries, &support::blob_name(&descriptor["digest"]));
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = &entries[&support::blob_name(&layer["digest"])];
        tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]))
            .unpack(dest)
            .unwrap();
    }
}

/// Runs the `program` of the arm64 image under qemu-aarch64-static with `args`; `None` without qemu.
fn run_arm64(archive: &Path, program: &str, args: &[&str]) -> Option<String> {
    let qemu = support::peer("qemu-aarch64-static")?;
    let rootfs = tempfile::tempdir().unwrap();
    unpack_platform(archive, "arm64", rootfs.path());
    let output = run_ok(
        Command::new(qemu)
            .arg(rootfs.path().join(program))
            .args(args),
    );
    Some(stdout_of(&output))
}

/// Builds a fixture with C code for both musl targets in one call with `-v`; returns the archive and
/// stderr, after checking which toolchain built each target.
fn build_both(fixture: &str, dir: &Path) -> (PathBuf, String) {
    let archive = dir.join(format!("{fixture}.tar"));
    let output = run_ok(
        for_fixture(fixture)
            .args(["--target", X86_64_MUSL, "--target", AARCH64_MUSL])
            .args(["-v", "--message-format", "json", "-o"])
            .arg(&archive),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["targets"],
        serde_json::json!([X86_64_MUSL, AARCH64_MUSL])
    );
    let err = stderr_of(&output);
    let zig = |triple: &str| {
        err.lines().any(|l| {
            l.contains(&format!("{triple}: C compiled and linked with zig "))
                && l.contains("through cargo-zigbuild")
        })
    };
    assert!(zig(AARCH64_MUSL), "aarch64 built with zig: {err}");
    match musl_gcc() {
        None => assert!(zig(X86_64_MUSL), "x86_64 built with zig: {err}"),
        Some(_) => assert!(
            err.contains("x86_64-unknown-linux-musl: C compiled with musl-gcc"),
            "{err}"
        ),
    }
    (archive, err)
}

#[test]
fn c_code_builds_for_amd64_and_arm64_in_one_call_and_runs_in_runc_and_qemu() {
    if !both_targets() || !zig_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (archive, err) = build_both("with-c", dir.path());
    assert!(err.contains("(C code in `with-c`)"), "{err}");
    let expected = |arch: &str| format!("fletcher32(abc)=024a0126\nc-arch={arch}\n");
    if let Some(stdout) = run_arm64(&archive, "with-c", &["abc"]) {
        assert_eq!(stdout, expected("aarch64"));
    }
    // The amd64 image, chosen by platform as a runtime would, runs in runc.
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let layout = dir.path().join("amd64");
    run_ok(Command::new(skopeo).args([
        "copy",
        "-q",
        "--override-arch",
        "amd64",
        &format!("oci-archive:{}", archive.display()),
        &format!("oci:{}:amd64", layout.display()),
    ]));
    if let Some(stdout) = support::run_layout_in_runc(&layout, "amd64", &["abc"], &[]) {
        assert_eq!(stdout, expected("x86_64"));
    }
}

#[test]
fn a_crates_io_crate_with_c_builds_for_both_targets() {
    if !both_targets() || !zig_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (archive, err) = build_both("with-zlib", dir.path());
    assert!(err.contains("(C code in `libz-sys`)"), "{err}");
    let check = |stdout: String| {
        // zlib's CRC-32 of "abc", as Python's zlib.crc32 gives it.
        assert!(
            stdout.starts_with("crc32(abc)=352441c2\nzlib=1."),
            "{stdout}"
        );
    };
    if let Some(stdout) = run_arm64(&archive, "with-zlib", &["abc"]) {
        check(stdout);
    }
    let rootfs = tempfile::tempdir().unwrap();
    unpack_platform(&archive, "amd64", rootfs.path());
    check(stdout_of(&support::run_written_program(
        &rootfs.path().join("with-zlib"),
        &["abc"],
    )));
}

/// True when cc-rs would find a GCC for the aarch64 musl target on PATH (then nothing is refused).
fn aarch64_gcc_installed() -> bool {
    let found = support::which("aarch64-linux-musl-gcc").is_some();
    if found {
        eprintln!("SKIPPED: aarch64-linux-musl-gcc is installed, so the C build would not fail");
    }
    found
}

#[test]
fn without_zig_only_the_cross_target_is_refused_before_building_naming_the_crates_and_the_commands()
{
    if !both_targets() || aarch64_gcc_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("with-c")
        .env("PATH", path_without_zig())
        .env("CARGO_ZIGBUILD_PYTHON_PATH", "/nonexistent/python3")
        .env("CARGO_ZIGBUILD_ZIG_PATH", "/nonexistent/zig")
        .args(["--target", X86_64_MUSL, "--target", AARCH64_MUSL, "-o"])
        .arg(dir.path().join("with-c.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    // The native target would be left to cargo (with one line saying so); the cross one has no C
    // compiler at all, and every toolchain is chosen before the first build.
    let error = err.lines().last().unwrap_or_default();
    for needle in [
        "error: the build script of `with-c` compiles C code".to_owned(),
        format!("there is no C compiler for {AARCH64_MUSL}"),
        "pip install ziglang".to_owned(),
        "cargo install --locked cargo-zigbuild".to_owned(),
        format!("CC_{}", AARCH64_MUSL.replace('-', "_")),
        "nothing was built".to_owned(),
    ] {
        assert!(error.contains(&needle), "{needle}: {err}");
    }
    assert!(
        !err.contains("musl-tools"),
        "no musl-gcc across architectures: {err}"
    );
    assert!(!err.contains("Building"), "before building: {err}");
    assert!(output.stdout.is_empty());
    assert!(support::dir_listing(dir.path()).is_empty());
}

/// `cargo zeroimage` for the native x86_64 musl target, with neither zig nor musl-gcc on PATH.
fn native_without_zig(fixture: &str, archive: &Path) -> Output {
    for_fixture(fixture)
        .env("PATH", path_without_zig())
        .args(["--target", X86_64_MUSL, "-o"])
        .arg(archive)
        .output()
        .unwrap()
}

/// True when the native target has no musl-gcc, so that cargo alone decides (CI: always).
fn native_has_no_c_compiler() -> bool {
    if let Some(path) = musl_gcc() {
        assert!(
            !support::peers_required(),
            "{} is installed",
            path.display()
        );
        eprintln!("SKIPPED: {} compiles the native target's C", path.display());
        return false;
    }
    support::target_installed(X86_64_MUSL)
}

#[test]
fn without_zig_a_native_crate_that_cargo_builds_is_built_and_its_image_runs() {
    if !native_has_no_c_compiler() {
        return;
    }
    // blake3's build script compiles C where cc-rs finds a C compiler and uses its Rust code where it
    // does not: `cargo build --target x86_64-unknown-linux-musl` builds it here.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("with-blake3.tar");
    let output = native_without_zig("with-blake3", &archive);
    let err = stderr_of(&output);
    assert!(output.status.success(), "{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("no zig or musl-gcc"))
        .collect();
    assert_eq!(
        said.len(),
        1,
        "one line says how cargo builds the C code: {err}"
    );
    for needle in [
        "warning: no zig or musl-gcc for x86_64-unknown-linux-musl",
        "cargo builds the C code of `blake3` as it would alone",
        "cc-rs looks for x86_64-linux-musl-gcc",
        "`pip install ziglang cargo-zigbuild` lets zig build it",
    ] {
        assert!(said[0].contains(needle), "{needle}: {}", said[0]);
    }
    // BLAKE3 of "abc", the test vector of the BLAKE3 paper's reference implementation.
    let expected = "blake3(abc)=6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85\n";
    let rootfs = dir.path().join("rootfs");
    support::unpack_rootfs(&archive, &rootfs);
    let ran = support::run_written_program(&rootfs.join("with-blake3"), &["abc"]);
    assert_eq!(stdout_of(&ran), expected);
    if let Some(stdout) = support::run_in_runc(&archive, "0.1.0", &["abc"], &[]) {
        assert_eq!(stdout, expected);
    }
}

#[test]
fn without_zig_a_native_c_build_that_fails_names_its_build_script_and_zig() {
    if !native_has_no_c_compiler() {
        return;
    }
    // with-c's build script needs a C compiler for the target: cc-rs asks for x86_64-linux-musl-gcc,
    // as it does for ring.
    let dir = tempfile::tempdir().unwrap();
    let output = native_without_zig("with-c", &dir.path().join("with-c.tar"));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("failed to run custom build command for `with-c"),
        "cargo ran the build: {err}"
    );
    assert!(
        err.contains("no zig or musl-gcc for x86_64-unknown-linux-musl"),
        "{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    for needle in [
        "error: `cargo build --target x86_64-unknown-linux-musl` failed; see cargo's errors above",
        "the build script of `with-c` compiles C code and did not finish",
        "no C compiler for x86_64-unknown-linux-musl is set up",
        "pip install ziglang cargo-zigbuild",
        "apt-get install musl-tools",
        "CC_x86_64_unknown_linux_musl",
    ] {
        assert!(last.contains(needle), "{needle}: {last}");
    }
    assert!(support::dir_listing(dir.path()).is_empty());
}

#[test]
fn without_zig_a_cross_gcc_on_path_compiles_the_c_code_and_rust_lld_links() {
    if !support::target_installed(AARCH64_MUSL) || !zig_installed() {
        assert!(!support::peers_required(), "aarch64 musl target required");
        return;
    }
    if aarch64_gcc_installed() {
        return;
    }
    let zig = zig_binary().expect("zig_installed() found it");
    // An aarch64-linux-musl-gcc as a cross toolchain package would install it, made of zig.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let gcc = bin.join("aarch64-linux-musl-gcc");
    std::fs::write(
        &gcc,
        format!(
            "#!/bin/sh\nfor a; do shift; case \"$a\" in --target=*) ;; *) set -- \"$@\" \"$a\";; esac; \
             done\nexec '{}' cc -target aarch64-linux-musl \"$@\"\n",
            zig.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = vec![bin.clone()];
    path.extend(std::env::split_paths(&path_without_zig()));
    let archive = dir.path().join("with-c.tar");
    let output = run_ok(
        for_fixture("with-c")
            .env("PATH", std::env::join_paths(path).unwrap())
            .args(["--target", AARCH64_MUSL, "-v", "-o"])
            .arg(&archive),
    );
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!(
            "aarch64-unknown-linux-musl: C compiled with aarch64-linux-musl-gcc ({}), linking with \
             rust-lld",
            gcc.display()
        )),
        "{err}"
    );
    if let Some(stdout) = run_arm64_single(&archive, "with-c", &["abc"]) {
        assert_eq!(stdout, "fletcher32(abc)=024a0126\nc-arch=aarch64\n");
    }
}

/// Runs `program` of a single-platform arm64 archive under qemu-aarch64-static; `None` without qemu.
fn run_arm64_single(archive: &Path, program: &str, args: &[&str]) -> Option<String> {
    let qemu = support::peer("qemu-aarch64-static")?;
    let rootfs = tempfile::tempdir().unwrap();
    support::unpack_rootfs(archive, rootfs.path());
    let output = run_ok(
        Command::new(qemu)
            .arg(rootfs.path().join(program))
            .args(args),
    );
    Some(stdout_of(&output))
}

/// Python code that leaves `marker` (with where it ran) and poses as zig.
fn hostile_ziglang(marker: &Path) -> String {
    format!(
        "import os\nwith open({:?}, 'a') as f: f.write(os.getcwd() + '\\n')\nprint('0.14.1')\n",
        marker.display().to_string()
    )
}

/// Plants `ziglang.py` (module) or `ziglang/__main__.py` (package) in `dir`.
fn plant_ziglang(dir: &Path, marker: &Path, package: bool) {
    if package {
        let package = dir.join("ziglang");
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("__init__.py"), "").unwrap();
        std::fs::write(package.join("__main__.py"), hostile_ziglang(marker)).unwrap();
    } else {
        std::fs::write(dir.join("ziglang.py"), hostile_ziglang(marker)).unwrap();
    }
}

#[test]
fn a_ziglang_module_in_the_working_or_crate_directory_never_runs_with_cargo_zigbuild() {
    if !support::target_installed(AARCH64_MUSL) || !zig_installed() {
        assert!(!support::peers_required(), "aarch64 musl target required");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hostile-code-ran");
    support::copy_fixture("with-c", dir.path());
    let crate_dir = dir.path().join("with-c");
    let cwd = dir.path().join("elsewhere");
    std::fs::create_dir(&cwd).unwrap();
    plant_ziglang(&cwd, &marker, false);
    plant_ziglang(&crate_dir, &marker, true);
    // The hostile code is what `python3 -m ziglang` runs from either directory.
    for dir in [&cwd, &crate_dir] {
        let python = Command::new("python3")
            .args(["-m", "ziglang", "version"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert_eq!(stdout_of(&python), "0.14.1\n");
        std::fs::remove_file(&marker).unwrap();
    }

    let archive = dir.path().join("with-c.tar");
    let mut cmd = cargo_zeroimage();
    for var in LINKER_VARS.iter().chain(&CC_VARS) {
        cmd.env_remove(var);
    }
    let output = cmd
        .current_dir(&cwd)
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .args(["--locked", "--target", AARCH64_MUSL, "-v", "-o"])
        .arg(&archive)
        .output()
        .unwrap();
    let err = stderr_of(&output);
    assert!(
        !marker.exists(),
        "hostile code ran in {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
    assert!(output.status.success(), "{err}");
    assert!(err.contains("C compiled and linked with zig "), "{err}");
    assert!(err.contains("ziglang package"), "{err}");
    if let Some(stdout) = run_arm64_single(&archive, "with-c", &["abc"]) {
        assert_eq!(stdout, "fletcher32(abc)=024a0126\nc-arch=aarch64\n");
    }
}

#[test]
fn a_ziglang_module_in_the_working_or_crate_directory_never_runs_without_cargo_zigbuild() {
    if !both_targets() || aarch64_gcc_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hostile-code-ran");
    support::copy_fixture("with-c", dir.path());
    let crate_dir = dir.path().join("with-c");
    let cwd = dir.path().join("elsewhere");
    std::fs::create_dir(&cwd).unwrap();
    plant_ziglang(&cwd, &marker, true);
    plant_ziglang(&crate_dir, &marker, false);
    let path = path_without_zig();
    let mut cmd = cargo_zeroimage();
    for var in LINKER_VARS.iter().chain(&CC_VARS) {
        cmd.env_remove(var);
    }
    let output = cmd
        .current_dir(&cwd)
        .env("PATH", &path)
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .args(["--locked", "--target", AARCH64_MUSL, "-o"])
        .arg(dir.path().join("with-c.tar"))
        .output()
        .unwrap();
    assert!(
        !marker.exists(),
        "hostile code ran in {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
    // No cargo-zigbuild, so no zig: the cross target is refused before building.
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("install zig and cargo-zigbuild"),
        "nothing taken for zig: {err}"
    );
}

#[test]
fn no_zig_builds_as_cargo_would_and_a_failed_c_build_says_what_is_missing() {
    if !both_targets() || aarch64_gcc_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("with-c")
        .args(["--target", AARCH64_MUSL, "--no-zig", "-v", "-o"])
        .arg(dir.path().join("with-c.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("no linker configured for aarch64-unknown-linux-musl: linking with rust-lld"),
        "--no-zig keeps rust-lld: {err}"
    );
    let last = err.lines().last().unwrap_or_default();
    for needle in [
        "error: `cargo build --target aarch64-unknown-linux-musl` failed; see cargo's errors above",
        "the build script of `with-c` compiles C code and did not finish",
        "zig is off (--no-zig",
        "CC_aarch64_unknown_linux_musl",
    ] {
        assert!(last.contains(needle), "{needle}: {last}");
    }
    assert!(support::dir_listing(dir.path()).is_empty());
}

#[test]
fn a_configured_c_compiler_wins_over_zig_and_is_named_when_it_fails() {
    if !both_targets() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("with-c")
        .env("CC_aarch64_unknown_linux_musl", "/nonexistent/aarch64-cc")
        .args(["--target", AARCH64_MUSL, "--zig", "-v", "-o"])
        .arg(dir.path().join("with-c.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains(
            "aarch64-unknown-linux-musl: C compiler `/nonexistent/aarch64-cc` from \
             CC_aarch64_unknown_linux_musl, linking with rust-lld"
        ),
        "{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "compiles C code and did not finish: it compiled with `/nonexistent/aarch64-cc`"
        ),
        "{last}"
    );
    assert!(!err.contains("cargo-zigbuild"), "{err}");
}

#[test]
fn the_zig_setting_builds_pure_rust_with_zig_and_no_zig_wins_over_it() {
    if !support::target_installed(AARCH64_MUSL) || !zig_installed() {
        assert!(!support::peers_required(), "aarch64 musl target required");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.zeroimage]\nzig = true\n");
    std::fs::write(&manifest, text).unwrap();
    let run = |extra: &[&str], name: &str| {
        let mut cmd = cargo_zeroimage();
        for var in LINKER_VARS {
            cmd.env_remove(var);
        }
        let archive = dir.path().join(name);
        let output = run_ok(
            cmd.arg("--manifest-path")
                .arg(&manifest)
                .args(["--target", AARCH64_MUSL, "-v", "-o"])
                .arg(&archive)
                .args(extra),
        );
        (archive, stderr_of(&output))
    };
    let (archive, err) = run(&[], "zig.tar");
    assert!(
        err.contains("aarch64-unknown-linux-musl: C compiled and linked with zig "),
        "zig = true: {err}"
    );
    if let Some(qemu) = support::peer("qemu-aarch64-static") {
        let rootfs = dir.path().join("rootfs");
        support::unpack_rootfs(&archive, &rootfs);
        let output = run_ok(Command::new(qemu).arg(rootfs.join("hello")));
        assert!(
            stdout_of(&output).starts_with("hello from the zeroimage fixture"),
            "{}",
            stdout_of(&output)
        );
    }
    let (_, err) = run(&["--no-zig"], "lld.tar");
    assert!(
        err.contains("linking with rust-lld"),
        "--no-zig wins: {err}"
    );
    assert!(!err.contains("cargo-zigbuild"), "{err}");
}

/// The zig binary: on PATH, or the one inside the `ziglang` wheel that `python3 -m ziglang` runs.
fn zig_binary() -> Option<PathBuf> {
    if let Some(zig) = support::which("zig") {
        return Some(zig);
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, ziglang; print(os.path.dirname(ziglang.__file__))",
        ])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Some(dir.join("zig")).filter(|z| output.status.success() && z.is_file())
}

#[test]
fn a_zig_on_path_works_as_well_as_the_python_package() {
    if !support::target_installed(AARCH64_MUSL) || !zig_installed() {
        assert!(!support::peers_required(), "aarch64 musl target required");
        return;
    }
    let (Some(zig), Some(zigbuild)) = (zig_binary(), support::which("cargo-zigbuild")) else {
        panic!("zig_installed() found them");
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(&zig, bin.join("zig")).unwrap();
    std::os::unix::fs::symlink(&zigbuild, bin.join("cargo-zigbuild")).unwrap();
    let mut path = vec![bin.clone()];
    path.extend(std::env::split_paths(&path_without_zig()));
    let archive = dir.path().join("with-c.tar");
    let output = run_ok(
        for_fixture("with-c")
            .env("PATH", std::env::join_paths(path).unwrap())
            // No `python3 -m ziglang`: cargo-zigbuild must take the zig on PATH.
            .env("CARGO_ZIGBUILD_PYTHON_PATH", "/nonexistent/python3")
            .args(["--target", AARCH64_MUSL, "-v", "-o"])
            .arg(&archive),
    );
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!("({})", bin.join("zig").display()))
            && err.contains("C compiled and linked with zig "),
        "{err}"
    );
    if let Some(qemu) = support::peer("qemu-aarch64-static") {
        let rootfs = dir.path().join("rootfs");
        support::unpack_rootfs(&archive, &rootfs);
        let output = run_ok(Command::new(qemu).arg(rootfs.join("with-c")).arg("abc"));
        assert_eq!(
            stdout_of(&output),
            "fletcher32(abc)=024a0126\nc-arch=aarch64\n"
        );
    }
}

#[test]
fn musl_gcc_is_absent_where_peers_are_required() {
    // The zig path for the native musl target is only taken without musl-gcc: CI must not have it,
    // or the tests above would prove musl-gcc instead (scripts/test does not install musl-tools).
    match musl_gcc() {
        Some(path) if support::peers_required() => panic!(
            "{} is installed: the native musl target would not exercise zig; remove musl-tools",
            path.display()
        ),
        Some(path) => eprintln!(
            "NOTE: {} is installed here, so the native target's C goes through it, not zig",
            path.display()
        ),
        None => {}
    }
}
