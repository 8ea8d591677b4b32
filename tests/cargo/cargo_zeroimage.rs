//! `cargo zeroimage` end to end: real cargo builds of the fixtures, the binary selection rules, the
//! settings in Cargo.toml, and the images run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::{
    X86_64_MUSL, Zeroimage, cargo_zeroimage, fixture_manifest, run_ok, stderr_of, stdout_json,
    stdout_of,
};

/// `cargo zeroimage --manifest-path fixtures/NAME/Cargo.toml`.
fn for_fixture(name: &str) -> Zeroimage {
    let mut cmd = cargo_zeroimage();
    cmd.arg("--manifest-path").arg(fixture_manifest(name));
    cmd
}

/// Runs the program at `name` inside the image's root filesystem on this machine (x86-64 images).
fn run_packaged(archive: &Path, name: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    support::unpack_rootfs(archive, dir.path());
    let output = support::run_written_program(&dir.path().join(name), args);
    stdout_of(&output)
}

/// Where the archive goes by default, in the test's own target dir.
fn expected_archive(target_dir: &Path, triple: &str, profile: &str, bin: &str) -> PathBuf {
    target_dir
        .join(triple)
        .join(profile)
        .join(format!("{bin}.tar"))
}

#[test]
fn single_binary_crate_is_built_packaged_and_runs_in_runc() {
    if !support::target_installed(X86_64_MUSL) && !support::peers_required() {
        eprintln!("SKIPPED: {X86_64_MUSL} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("hello")
            .args(["--target", X86_64_MUSL, "--message-format", "json"])
            .arg("--target-dir")
            .arg(dir.path()),
    );
    let summary = stdout_json(&output);
    let archive = expected_archive(dir.path(), X86_64_MUSL, "release", "hello");
    assert_eq!(
        summary["path"],
        archive.display().to_string(),
        "beside the binary"
    );
    assert_eq!(summary["tag"], "hello:0.1.0");
    assert_eq!(summary["bin"], "hello");
    assert_eq!(summary["package"], "hello");
    assert_eq!(summary["version"], "0.1.0");
    assert_eq!(summary["platform"], "linux/amd64");
    assert_eq!(summary["target"], X86_64_MUSL);
    let err = stderr_of(&output);
    assert!(
        err.contains("    Building package `hello` for x86_64-unknown-linux-musl"),
        "{err}"
    );
    assert!(err.contains("   Packaging hello (linux/amd64)"), "{err}");
    assert!(err.contains("     Written "), "{err}");

    let Some(stdout) =
        support::run_in_runc(&archive, "0.1.0", &["one", "two"], &["GREETING=cargo"])
    else {
        return;
    };
    assert!(
        stdout
            .starts_with("hello from the zeroimage fixture\nargv=/hello one two\nGREETING=cargo\n"),
        "{stdout}"
    );
}

#[test]
fn default_target_is_the_hosts_musl_target() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("hello")
            .arg("-q")
            .arg("--target-dir")
            .arg(dir.path()),
    );
    assert!(output.stderr.is_empty(), "quiet: {}", stderr_of(&output));
    let archive = expected_archive(
        dir.path(),
        &format!("{}-unknown-linux-musl", std::env::consts::ARCH),
        "release",
        "hello",
    );
    assert!(archive.is_file(), "{} missing", archive.display());
}

#[test]
fn aarch64_target_cross_links_with_rust_lld_and_runs_under_qemu() {
    let Some(qemu) = support::peer("qemu-aarch64-static") else {
        return;
    };
    if !support::target_installed(support::AARCH64_MUSL) {
        assert!(!support::peers_required(), "aarch64 musl target required");
        eprintln!("SKIPPED: aarch64-unknown-linux-musl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        cargo_zeroimage()
            .env_remove("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER")
            .env("CARGO_TARGET_DIR", dir.path())
            .arg("--manifest-path")
            .arg(fixture_manifest("hello"))
            .args([
                "--target",
                support::AARCH64_MUSL,
                "--message-format",
                "json",
                "-v",
            ]),
    );
    assert!(
        stderr_of(&output).contains("linking with rust-lld"),
        "{}",
        stderr_of(&output)
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["platform"], "linux/arm64");
    let archive = PathBuf::from(summary["path"].as_str().unwrap());
    assert_eq!(
        archive,
        expected_archive(dir.path(), support::AARCH64_MUSL, "release", "hello")
    );
    let index = support::json_entry(&support::read_tar(&archive), "index.json");
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
    assert_eq!(support::image_config(&archive)["architecture"], "arm64");
    let rootfs = dir.path().join("rootfs");
    support::unpack_rootfs(&archive, &rootfs);
    let output = run_ok(Command::new(qemu).arg(rootfs.join("hello")).arg("arm"));
    assert!(
        stdout_of(&output).contains("argv=") && stdout_of(&output).contains(" arm"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn default_run_picks_the_binary_and_metadata_becomes_annotations_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("workspace")
            .args(["-p", "server", "--message-format", "json", "-o"])
            .arg(dir.path().join("api.tar")),
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["bin"], "api", "default-run");
    assert_eq!(summary["tag"], "api:1.4.0");
    let archive = PathBuf::from(summary["path"].as_str().unwrap());
    assert_eq!(archive.file_name().unwrap(), "api.tar");
    assert_eq!(
        run_packaged(&archive, "api", &[]).lines().next(),
        Some("api server")
    );

    let manifest = support::image_manifest(&archive);
    let annotations = &manifest["annotations"];
    let expected = [
        ("title", "api"),
        ("version", "1.4.0"),
        ("description", "Fixture server with two binaries"),
        ("licenses", "MIT OR Apache-2.0"),
        ("source", "https://example.com/zeroimage/server"),
        ("url", "https://example.com/server"),
        ("documentation", "https://docs.example.com/server"),
        (
            "authors",
            "Ada <ada@example.com>, Grace <grace@example.com>",
        ),
        // From [workspace.metadata.zeroimage] created = "@86400".
        ("created", "1970-01-02T00:00:00Z"),
    ];
    for (key, value) in expected {
        assert_eq!(
            annotations[format!("org.opencontainers.image.{key}")],
            value,
            "{key}"
        );
    }
    let config = support::image_config(&archive);
    assert_eq!(
        config["config"]["Labels"], *annotations,
        "labels mirror annotations"
    );
    assert_eq!(config["created"], "1970-01-02T00:00:00Z");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/api"]));
}

#[test]
fn bin_selects_another_binary() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("workspace")
            .args([
                "-p",
                "server",
                "--bin",
                "worker",
                "--message-format",
                "json",
                "-o",
            ])
            .arg(dir.path().join("worker.tar")),
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["bin"], "worker");
    assert_eq!(
        run_packaged(Path::new(summary["path"].as_str().unwrap()), "worker", &[]),
        "worker\n"
    );
}

#[test]
fn features_are_forwarded_to_cargo() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loud.tar");
    run_ok(
        for_fixture("workspace")
            .args(["-p", "server", "--features", "loud", "-q", "-o"])
            .arg(&out),
    );
    assert_eq!(
        run_packaged(&out, "api", &[]).lines().next(),
        Some("API SERVER (LOUD)")
    );
    // Arguments after `--` reach cargo build as they are.
    let after_dashes = |extra: &[&str]| {
        run_ok(
            for_fixture("workspace")
                .args(["-p", "server", "-q", "-o"])
                .arg(&out)
                .arg("--")
                .args(extra),
        );
        run_packaged(&out, "api", &[])
            .lines()
            .next()
            .map(str::to_owned)
    };
    assert_eq!(after_dashes(&[]).as_deref(), Some("api server"));
    assert_eq!(
        after_dashes(&["--features", "server/loud"]).as_deref(),
        Some("API SERVER (LOUD)")
    );
}

#[test]
fn profile_and_target_dir_decide_where_the_archive_goes() {
    let dir = tempfile::tempdir().unwrap();
    let target_dir = dir.path().join("my target");
    let output = run_ok(
        for_fixture("workspace")
            .args([
                "-p",
                "server",
                "--profile",
                "container",
                "--message-format",
                "json",
                "--target-dir",
            ])
            .arg(&target_dir),
    );
    let expected = target_dir
        .join(support::X86_64_MUSL)
        .join("container")
        .join("api.tar");
    assert_eq!(stdout_json(&output)["path"], expected.display().to_string());
    assert!(expected.is_file());

    let env_dir = dir.path().join("env target");
    let output = run_ok(
        cargo_zeroimage()
            .env("CARGO_TARGET_DIR", &env_dir)
            .arg("--manifest-path")
            .arg(fixture_manifest("workspace"))
            .args(["-p", "server", "--message-format", "json"]),
    );
    let expected = env_dir
        .join(support::X86_64_MUSL)
        .join("release")
        .join("api.tar");
    assert_eq!(stdout_json(&output)["path"], expected.display().to_string());
}

#[test]
fn several_binaries_without_a_choice_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("workspace")
        .arg("-o")
        .arg(dir.path().join("any.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: several binaries were built"),
        "{err}"
    );
    for needle in [
        "`api` (package server)",
        "`worker` (package server)",
        "`cli` (package tools)",
        "--bin NAME",
    ] {
        assert!(last.contains(needle), "missing {needle}: {last}");
    }
    assert!(!err.contains("Packaging"), "{err}");
    assert!(support::dir_listing(dir.path()).is_empty());
}

#[test]
fn package_settings_set_the_tag_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("workspace")
            .args(["-p", "tools", "--message-format", "json", "-o"])
            .arg(dir.path().join("cli.tar")),
    );
    let summary = stdout_json(&output);
    assert_eq!(
        summary["tag"], "example.com/tools/cli:stable",
        "[package.metadata.zeroimage] tag"
    );
    assert_eq!(summary["bin"], "cli");
    // The crates.io dependency was really built in.
    assert_eq!(
        run_packaged(
            Path::new(summary["path"].as_str().unwrap()),
            "cli",
            &["a", "b"]
        ),
        "cli counts 3\n"
    );

    let output = run_ok(
        for_fixture("workspace")
            .args([
                "-p",
                "tools",
                "--message-format",
                "json",
                "--tag",
                "mine:2",
                "--created",
                "@0",
                "-o",
            ])
            .arg(dir.path().join("mine.tar")),
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["tag"], "mine:2");
    let config = support::image_config(Path::new(summary["path"].as_str().unwrap()));
    assert_eq!(
        config["created"], "1970-01-01T00:00:00Z",
        "--created wins over the workspace setting"
    );
}

/// Copies the workspace fixture, puts `replacement` where tools' `tag = ` setting starts, and runs
/// cargo zeroimage on it, which must fail with exit 1; returns the copy, the manifest and stderr.
fn refused_tools_setting(replacement: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("workspace", dir.path());
    let manifest = dir.path().join("workspace/tools/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("tag = ", replacement);
    std::fs::write(&manifest, text).unwrap();
    let output = cargo_zeroimage()
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("-o")
        .arg(dir.path().join("tools.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    (dir, manifest, stderr_of(&output))
}

#[test]
fn unknown_setting_is_an_error_naming_key_and_file() {
    let (_dir, manifest, err) = refused_tools_setting("tagg = ");
    assert!(err.contains("unknown field `tagg`"), "{err}");
    assert!(err.contains(&manifest.display().to_string()), "{err}");
    assert!(!err.contains("Compiling"), "refused before building: {err}");
}

#[test]
fn invalid_setting_value_is_an_error_naming_the_file() {
    let (_dir, manifest, err) = refused_tools_setting("expose = [\"http\"]\ntag = ");
    assert!(
        err.contains(&manifest.display().to_string()) && err.contains("--expose `http`"),
        "{err}"
    );
    assert!(!err.contains("Compiling"), "refused before building: {err}");
}

#[test]
fn bad_push_references_and_env_names_are_refused_before_building() {
    for (setting, needle) in [
        ("push = [\"Not A/Ref\"]\ntag = ", "push"),
        ("tag = \"x:\"\n# ", "tag"),
        ("env = { \"A=B\" = \"1\" }\ntag = ", "`A=B`"),
    ] {
        let (_dir, manifest, err) = refused_tools_setting(setting);
        assert!(
            err.contains(&manifest.display().to_string()) && err.contains(needle),
            "{setting}: {err}"
        );
        assert!(!err.contains("Compiling"), "refused before building: {err}");
        assert!(
            !err.contains("Building"),
            "refused before cargo build started: {err}"
        );
    }
}

#[test]
fn works_from_a_subdirectory_and_with_spaces_in_paths() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my project");
    std::fs::create_dir(&project).unwrap();
    support::copy_fixture("workspace", &project);
    let target_dir = dir.path().join("build output");
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(project.join("workspace/server/src/bin"))
            .args(["--message-format", "json", "--target-dir"])
            .arg(&target_dir),
    );
    let summary = stdout_json(&output);
    assert_eq!(
        summary["bin"], "api",
        "the package of the current directory, its default-run"
    );
    assert!(Path::new(summary["path"].as_str().unwrap()).starts_with(&target_dir));

    let out = dir.path().join("out dir");
    std::fs::create_dir(&out).unwrap();
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(dir.path())
            .arg("--manifest-path")
            .arg(project.join("workspace/tools/Cargo.toml"))
            .args(["--message-format", "json", "-o"])
            .arg(out.join("cli image.tar"))
            .arg("--target-dir")
            .arg(&target_dir),
    );
    assert!(out.join("cli image.tar").is_file());
    let summary = stdout_json(&output);
    assert_eq!(
        summary["tag"], "example.com/tools/cli:stable",
        "settings of the --manifest-path package"
    );
    assert!(
        stderr_of(&output).contains("Building package `tools`"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn revision_is_recorded_only_for_a_clean_git_checkout() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let repo = dir.path().join("hello");
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@example.com",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "fixture"]);
    let head = stdout_of(&git(&["rev-parse", "HEAD"])).trim().to_owned();
    let package = || {
        let output = run_ok(
            cargo_zeroimage()
                .arg("--manifest-path")
                .arg(repo.join("Cargo.toml"))
                .args(["--message-format", "json", "-o"])
                .arg(dir.path().join("hello.tar")),
        );
        let summary = stdout_json(&output);
        support::image_manifest(Path::new(summary["path"].as_str().unwrap()))
    };
    let manifest = package();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.revision"],
        head.as_str()
    );
    std::fs::write(repo.join("notes.txt"), "uncommitted").unwrap();
    let manifest = package();
    assert!(
        manifest["annotations"]
            .get("org.opencontainers.image.revision")
            .is_none(),
        "dirty checkout"
    );
}

#[test]
fn compile_error_shows_cargos_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("broken.tar");
    let output = for_fixture("broken").arg("-o").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("error[E0308]: mismatched types"),
        "cargo's own diagnostic: {err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: `cargo build --target"),
        "{err}"
    );
    assert!(
        !err.contains("C code"),
        "no C toolchain hint for a Rust error: {err}"
    );
    assert!(output.stdout.is_empty());
    assert!(support::dir_listing(dir.path()).is_empty());
}

#[test]
fn missing_target_names_the_rustup_command() {
    let triple = "riscv64gc-unknown-linux-musl";
    if support::target_installed(triple) {
        eprintln!("SKIPPED: {triple} is installed here, so it cannot stand for a missing target");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("hello")
        .args(["--target", triple, "-o"])
        .arg(dir.path().join("hello.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!("run `rustup target add {triple}`")),
        "{err}"
    );
    assert!(!err.contains("Compiling"), "{err}");
}

#[test]
fn non_linux_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for triple in [
        "x86_64-pc-windows-gnu",
        "wasm32-unknown-unknown",
        "aarch64-apple-darwin",
    ] {
        let output = for_fixture("hello")
            .args(["--target", triple, "-o"])
            .arg(dir.path().join("hello.tar"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{triple}");
        assert!(
            stderr_of(&output).contains("is not a Linux target"),
            "{triple}: {}",
            stderr_of(&output)
        );
    }
}

#[test]
fn gnu_target_builds_but_the_dynamic_binary_is_refused_with_the_fix() {
    let host_gnu = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("hello")
        .args(["--target", &host_gnu, "-o"])
        .arg(dir.path().join("hello.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("is dynamically linked"), "{err}");
    assert!(
        last.contains("+crt-static") && last.contains("musl"),
        "{err}"
    );
}

#[test]
fn runs_as_a_cargo_subcommand_with_cargo_style_help() {
    let path = std::env::join_paths(std::iter::once(support::bin_dir()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = run_ok(
        Command::new(cargo)
            .env("PATH", path)
            .args(["zeroimage", "--help"]),
    );
    let help = stdout_of(&output);
    for needle in [
        "Usage: cargo zeroimage",
        "Package Selection",
        "--bin <NAME>",
        "--target <TRIPLE>",
        "--profile",
        "--manifest-path",
        "Examples:",
        "[package.metadata.zeroimage]",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
}

#[test]
fn configuration_and_essentials_come_from_cargo_toml_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[package.metadata.zeroimage]\nenv = { GREETING = \"from toml\", MODE = \"toml\" }\n\
         labels = { \"org.opencontainers.image.version\" = \"custom\" }\nargs = [\"from-toml\"]\n\
         nonroot = true\ntmp = true\nexpose = [\"8080\"]\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let output = run_ok(
        cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .args([
                "--message-format",
                "json",
                "-q",
                "--env",
                "MODE=cli",
                "--expose",
                "9090/udp",
                "-o",
            ])
            .arg(dir.path().join("hello.tar")),
    );
    let archive = PathBuf::from(stdout_json(&output)["path"].as_str().unwrap());
    let config = support::image_config(&archive);
    let c = &config["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"GREETING=from toml") && env.contains(&"MODE=cli"),
        "{env:?}"
    );
    assert!(!env.contains(&"MODE=toml"), "the flag wins: {env:?}");
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"], "custom",
        "overrides the package's"
    );
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(c["Cmd"], serde_json::json!(["from-toml"]));
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "9090/udp": {}})
    );
    assert_eq!(
        support::image_manifest(&archive)["layers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let Some(stdout) = support::run_in_runc(&archive, "0.1.0", &[], &[]) else {
        return;
    };
    assert!(
        stdout.contains("argv=/hello from-toml\nGREETING=from toml\n"),
        "{stdout}"
    );
}

#[test]
fn missing_output_directories_are_created_and_dash_streams_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // As in CI with CARGO_TARGET_DIR set: no target/ beside the crate for `-o target/image.tar`.
    let out = dir.path().join("target/images/hello.tar");
    let output = run_ok(for_fixture("hello").arg("-q").arg("-o").arg(&out));
    assert!(output.stdout.is_empty(), "{}", stdout_of(&output));
    let written = std::fs::read(&out).unwrap();
    let streamed = run_ok(
        for_fixture("hello")
            .current_dir(dir.path())
            .args(["-q", "-o", "-"]),
    );
    assert!(
        streamed.stdout == written,
        "-o - gave other bytes than -o FILE"
    );
}

#[test]
fn json_with_the_archive_on_stdout_is_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let output = for_fixture("hello")
        .current_dir(dir.path())
        .args(["--message-format", "json", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: -o - writes the archive to standard output")
            && err.contains("--message-format json"),
        "{err}"
    );
    assert!(output.stdout.is_empty());
    assert!(support::dir_listing(dir.path()).is_empty());
}

/// A copy of `fixtures/hello` in a tempdir whose `.cargo/config.toml` holds `config`; returns the
/// tempdir and the crate's directory (run from there: cargo reads configuration from the current
/// directory).
fn hello_with_cargo_config(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let krate = dir.path().join("hello");
    std::fs::create_dir_all(krate.join(".cargo")).unwrap();
    std::fs::write(krate.join(".cargo/config.toml"), config).unwrap();
    (dir, krate)
}

/// The platforms of an archive's images, in order.
fn archive_platforms(archive: &Path) -> Vec<String> {
    let entries = support::read_tar(archive);
    let index = support::json_entry(&entries, "index.json");
    let top = &index["manifests"][0];
    let manifests = if top["mediaType"] == "application/vnd.oci.image.index.v1+json" {
        support::json_entry(&entries, &support::blob_name(&top["digest"]))["manifests"].clone()
    } else {
        index["manifests"].clone()
    };
    manifests
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let digest = support::blob_name(&m["digest"]);
            let config = &support::json_entry(&entries, &digest)["config"]["digest"];
            let config = support::json_entry(&entries, &support::blob_name(config));
            format!(
                "{}/{}",
                config["os"].as_str().unwrap(),
                config["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

fn both_musl_targets_installed() -> bool {
    let installed =
        support::target_installed(X86_64_MUSL) && support::target_installed(support::AARCH64_MUSL);
    if !installed {
        assert!(!support::peers_required(), "both musl targets are required");
        eprintln!("SKIPPED: x86_64 and aarch64 musl targets needed");
    }
    installed
}

#[test]
fn build_target_in_a_cargo_config_file_decides_the_target() {
    if !both_musl_targets_installed() {
        return;
    }
    let (dir, krate) =
        hello_with_cargo_config("[build]\ntarget = \"aarch64-unknown-linux-musl\"\n");
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(&krate)
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER")
            .args(["--message-format", "json", "-v", "-o"])
            .arg(dir.path().join("hello.tar")),
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["platform"], "linux/arm64");
    assert_eq!(summary["target"], support::AARCH64_MUSL);
    let config = krate.join(".cargo/config.toml");
    assert!(
        stderr_of(&output).contains(&format!(
            "target aarch64-unknown-linux-musl from build.target in {}",
            config.display()
        )),
        "-v says where the target came from: {}",
        stderr_of(&output)
    );
    assert_eq!(
        archive_platforms(&dir.path().join("hello.tar")),
        ["linux/arm64"]
    );
}

#[test]
fn cargo_build_target_in_the_environment_decides_the_target() {
    if !both_musl_targets_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("hello")
            .env("CARGO_BUILD_TARGET", support::AARCH64_MUSL)
            .env_remove("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER")
            .args(["--message-format", "json", "-v", "-o"])
            .arg(dir.path().join("hello.tar")),
    );
    assert_eq!(stdout_json(&output)["platform"], "linux/arm64");
    assert!(
        stderr_of(&output).contains("target aarch64-unknown-linux-musl from CARGO_BUILD_TARGET"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn a_list_of_two_targets_in_cargo_config_makes_one_multi_platform_image() {
    if !both_musl_targets_installed() {
        return;
    }
    let (dir, krate) = hello_with_cargo_config(
        "[build]\ntarget = [\"x86_64-unknown-linux-musl\", \"aarch64-unknown-linux-musl\"]\n",
    );
    let archive = dir.path().join("hello.tar");
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(&krate)
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER")
            .args(["--message-format", "json", "-q", "-o"])
            .arg(&archive),
    );
    let summary = stdout_json(&output);
    assert_eq!(
        summary["targets"],
        serde_json::json!([X86_64_MUSL, support::AARCH64_MUSL])
    );
    assert_eq!(archive_platforms(&archive), ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        run_packaged_platform(&archive, "amd64"),
        "hello from the zeroimage fixture"
    );
}

/// The first line the `hello` program of the `arch` image prints, run natively (amd64 only).
fn run_packaged_platform(archive: &Path, arch: &str) -> String {
    let entries = support::read_tar(archive);
    let index = support::json_entry(&entries, "index.json");
    let list = support::json_entry(
        &entries,
        &support::blob_name(&index["manifests"][0]["digest"]),
    );
    let manifest = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap();
    let manifest = support::json_entry(&entries, &support::blob_name(&manifest["digest"]));
    let dir = tempfile::tempdir().unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = &entries[&support::blob_name(&layer["digest"])];
        tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]))
            .unpack(dir.path())
            .unwrap();
    }
    let output = support::run_written_program(&dir.path().join("hello"), &[]);
    stdout_of(&output)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn target_flag_wins_over_cargo_config_and_config_arguments_over_the_environment() {
    if !both_musl_targets_installed() {
        return;
    }
    let (dir, krate) =
        hello_with_cargo_config("[build]\ntarget = \"aarch64-unknown-linux-musl\"\n");
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(&krate)
            .env("CARGO_BUILD_TARGET", support::AARCH64_MUSL)
            .args([
                "--target",
                X86_64_MUSL,
                "--message-format",
                "json",
                "-v",
                "-o",
            ])
            .arg(dir.path().join("flag.tar")),
    );
    assert_eq!(stdout_json(&output)["platform"], "linux/amd64");
    assert!(
        stderr_of(&output).contains("target x86_64-unknown-linux-musl from --target"),
        "{}",
        stderr_of(&output)
    );
    // cargo's --config wins over the environment, which wins over files.
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(&krate)
            .env("CARGO_BUILD_TARGET", support::AARCH64_MUSL)
            .args(["--config", "build.target=\"x86_64-unknown-linux-musl\""])
            .args(["--message-format", "json", "-v", "-o"])
            .arg(dir.path().join("config.tar")),
    );
    assert_eq!(stdout_json(&output)["platform"], "linux/amd64");
    assert!(
        stderr_of(&output).contains("from `--config build.target="),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn a_linker_in_cargo_config_wins_and_is_named() {
    if !both_musl_targets_installed() {
        return;
    }
    let (dir, krate) =
        hello_with_cargo_config("[target.aarch64-unknown-linux-musl]\nlinker = \"rust-lld\"\n");
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(&krate)
            .env_remove("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER")
            .args(["--target", support::AARCH64_MUSL, "--zig", "-v", "-o"])
            .arg(dir.path().join("hello.tar")),
    );
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!(
            "aarch64-unknown-linux-musl: linker `rust-lld` from target.aarch64-unknown-linux-musl.linker in {}",
            krate.join(".cargo/config.toml").display()
        )),
        "the configured linker wins, --zig too: {err}"
    );
    assert!(!err.contains("cargo-zigbuild"), "{err}");
}

#[test]
fn workspace_makes_one_image_per_binary_from_one_cargo_build() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("workspace")
            .args(["--workspace", "--message-format", "json", "-o"])
            .arg(dir.path().join("{bin}.tar")),
    );
    let err = stderr_of(&output);
    assert_eq!(
        err.matches("    Building ").count(),
        1,
        "one cargo build for the target: {err}"
    );
    assert!(
        err.contains("    Building packages `server`, `tools` for x86_64-unknown-linux-musl"),
        "{err}"
    );
    assert_eq!(err.matches("    Finished ").count(), 1, "{err}");
    let images: Vec<serde_json::Value> = stdout_of(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut found: Vec<(String, String, String)> = images
        .iter()
        .map(|i| {
            (
                i["bin"].as_str().unwrap().to_owned(),
                i["package"].as_str().unwrap().to_owned(),
                i["tag"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("api".into(), "server".into(), "api:1.4.0".into()),
            // tools' own `tag` setting applies to its image.
            (
                "cli".into(),
                "tools".into(),
                "example.com/tools/cli:stable".into()
            ),
            ("worker".into(), "server".into(), "worker:1.4.0".into()),
        ]
    );
    for (bin, reference, prints) in [
        ("api", "1.4.0", "api server\n"),
        ("worker", "1.4.0", "worker\n"),
        ("cli", "stable", "cli counts 1\n"),
    ] {
        let archive = dir.path().join(format!("{bin}.tar"));
        let image = images.iter().find(|i| i["bin"] == bin).unwrap();
        assert_eq!(image["path"], archive.display().to_string());
        let Some(stdout) = support::run_in_runc(&archive, reference, &[], &[]) else {
            return;
        };
        assert!(stdout.starts_with(prints), "{bin}: {stdout}");
    }
}

#[test]
fn bins_and_several_packages_select_images_and_shared_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_ok(
        for_fixture("workspace")
            .args([
                "-p",
                "server",
                "--bins",
                "-q",
                "--message-format",
                "json",
                "-o",
            ])
            .arg(dir.path().join("bins-{bin}.tar")),
    );
    let bins: Vec<String> = stdout_of(&output)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["bin"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(bins.len(), 2, "{bins:?}");
    assert!(bins.contains(&"api".to_owned()) && bins.contains(&"worker".to_owned()));

    // One -o for several images: refused before anything is packaged.
    let same = dir.path().join("same.tar");
    let output = for_fixture("workspace")
        .args(["-p", "server", "-p", "tools", "-o"])
        .arg(&same)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.contains("would both be written to") && err.contains("put {bin} in -o"),
        "{err}"
    );
    assert!(!same.exists());
    let output = for_fixture("workspace")
        .args(["--workspace", "--tag", "one:1", "-o"])
        .arg(dir.path().join("tag-{bin}.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("would both be named one:1"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn resolve_names_the_file_and_line_of_an_unknown_package_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yaml");
    std::fs::write(
        &file,
        "kind: Pod\nspec:\n  containers:\n  - image: zeroimage://nope\n",
    )
    .unwrap();
    let resolve = |file: &Path, extra: &[&str]| {
        cargo_zeroimage()
            .arg("resolve")
            .arg("-f")
            .arg(file)
            .arg("--manifest-path")
            .arg(fixture_manifest("workspace"))
            .arg("--target-dir")
            .arg(dir.path().join("target"))
            .args(extra)
            .output()
            .unwrap()
    };
    let output = resolve(&file, &["--repository", "127.0.0.1:9/never"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(
        err.starts_with(&format!(
            "error: {}:4: zeroimage://nope: no package `nope` in the workspace",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("(its members: server, tools)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(output.stdout.is_empty());
    assert!(!dir.path().join("target").exists(), "nothing was built");

    std::fs::write(&file, "image: zeroimage://server/nope\n").unwrap();
    let output = resolve(&file, &["--repository", "127.0.0.1:9/never"]);
    let err = stderr_of(&output);
    assert!(
        err.contains(
            ":1: zeroimage://server: package `server` has no binary `nope` (it has `api`, `worker`)"
        ),
        "{err}"
    );

    std::fs::write(&file, "image: zeroimage://tools\n").unwrap();
    let output = resolve(&file, &[]);
    let err = stderr_of(&output);
    assert!(
        err.contains(":1: no repository to push `cli` to: give --repository REGISTRY/PATH"),
        "{err}"
    );
}

#[test]
fn resolve_refuses_a_reference_split_over_lines_or_alone_in_a_block_scalar_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yaml");
    let resolve = |text: &str| {
        std::fs::write(&file, text).unwrap();
        cargo_zeroimage()
            .arg("resolve")
            .arg("-f")
            .arg(&file)
            .arg("--manifest-path")
            .arg(fixture_manifest("workspace"))
            .arg("--target-dir")
            .arg(dir.path().join("target"))
            .args(["--repository", "127.0.0.1:9/never"])
            .output()
            .unwrap()
    };
    for (text, line, needle) in [
        (
            "kind: Pod\nspec:\n  containers:\n  - image: zeroimage://server\n      /api\n",
            4,
            "the value continues on line 5, and only its first line would be replaced; put the \
             whole reference on one line",
        ),
        (
            "kind: Pod\nspec:\n  containers:\n  - image: |-\n      zeroimage://server/api\n",
            5,
            "`zeroimage://server/api` is a block scalar (`|` or `>`), which is text and not \
             resolved; put the reference on the line of its key",
        ),
    ] {
        let output = resolve(text);
        let err = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(&format!("error: {}:{line}: {needle}", file.display())),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(output.stdout.is_empty(), "nothing goes to kubectl");
        assert!(!dir.path().join("target").exists(), "nothing was built");
    }
}

#[test]
fn resolve_skips_a_fifo_found_in_a_directory_with_a_warning_instead_of_hanging() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let k8s = dir.path().join("k8s");
    std::fs::create_dir(&k8s).unwrap();
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n";
    std::fs::write(k8s.join("b.yaml"), text).unwrap();
    let fifo = k8s.join("a.yaml");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let mut child = cargo_zeroimage()
        .arg("resolve")
        .arg("-f")
        .arg(&k8s)
        .arg("--target-dir")
        .arg(dir.path().join("target"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("resolve blocked on the FIFO {}", fifo.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let err = stderr_of(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "warning: {}: skipped, a FIFO and not a regular file; give it with -f PATH to read it",
            fifo.display()
        )),
        "{err}"
    );
    assert_eq!(
        stdout_of(&output),
        text,
        "the regular file is read as it is"
    );

    // Given itself, a FIFO is read, as `-f <(kustomize build)` needs.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, "kind: Namespace\n").unwrap())
    };
    let output = run_ok(
        cargo_zeroimage()
            .arg("resolve")
            .arg("-f")
            .arg(&fifo)
            .arg("--target-dir")
            .arg(dir.path().join("target")),
    );
    writer.join().unwrap();
    assert_eq!(stdout_of(&output), "kind: Namespace\n");
}

#[test]
fn compression_comes_from_cargo_toml_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.zeroimage]\ncompression = \"zstd\"\n");
    std::fs::write(&manifest, text).unwrap();
    let layer = |extra: &[&str], name: &str| {
        let archive = dir.path().join(name);
        run_ok(
            cargo_zeroimage()
                .arg("--manifest-path")
                .arg(&manifest)
                .args(["-q", "-o"])
                .arg(&archive)
                .args(extra),
        );
        let entries = support::read_tar(&archive);
        let layers = support::image_manifest(&archive)["layers"].clone();
        (
            layers[0]["mediaType"].as_str().unwrap().to_owned(),
            layers[0]["digest"].clone(),
            entries.contains_key("manifest.json"),
        )
    };
    let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    let (kind, default_level, docker) = layer(&[], "toml.tar");
    assert_eq!(
        (kind.as_str(), docker),
        (zstd, false),
        "compression = \"zstd\""
    );
    let (kind, level_5, _) = layer(&["--compression-level", "5"], "level.tar");
    assert_eq!(kind, zstd, "a level alone keeps the setting's format");
    assert_ne!(level_5, default_level, "zstd level 5 gives other bytes");
    let (kind, _, docker) = layer(&["--compression", "gzip"], "gzip.tar");
    assert_eq!(
        (kind.as_str(), docker),
        ("application/vnd.oci.image.layer.v1.tar+gzip", true),
        "the flag wins"
    );
}

#[test]
fn lambda_in_cargo_toml_refuses_what_lambda_cannot_run_and_the_flags_can_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.zeroimage]\nlambda = true\ncompression = \"zstd\"\n");
    std::fs::write(&manifest, text).unwrap();
    let archive = dir.path().join("fn.tar");
    let output = cargo_zeroimage()
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("-o")
        .arg(&archive)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "error: AWS Lambda cannot run this image (--lambda): layer 1 of 1 is zstd-compressed"
        ),
        "{stderr}"
    );
    assert!(!archive.exists(), "nothing is written");
    run_ok(
        cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["-q", "--compression", "gzip", "-o"])
            .arg(&archive),
    );
    assert!(archive.is_file());
}

#[test]
fn workspace_images_go_into_one_oci_layout_and_no_archive_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    let started = std::time::SystemTime::now();
    let output = run_ok(
        for_fixture("workspace")
            .args(["--workspace", "--message-format", "json", "--oci-layout"])
            .arg(&layout),
    );
    let images: Vec<serde_json::Value> = stdout_of(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(images.len(), 3);
    for image in &images {
        assert_eq!(image["path"], "", "no archive: {image}");
        assert_eq!(image["oci_layout"]["ref_name"], image["tag"]);
        let default = support::fixture_target_dir()
            .join(X86_64_MUSL)
            .join("release")
            .join(format!("{}.tar", image["bin"].as_str().unwrap()));
        assert!(
            !std::fs::metadata(&default)
                .and_then(|m| m.modified())
                .is_ok_and(|written| written >= started),
            "{} was written",
            default.display()
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["api:1.4.0", "example.com/tools/cli:stable", "worker:1.4.0"]
    );
    for (name, prints) in [
        ("api:1.4.0", "api server\n"),
        ("example.com/tools/cli:stable", "cli counts 1\n"),
    ] {
        let Some(stdout) = support::run_layout_in_runc(&layout, name, &[], &[]) else {
            return;
        };
        assert!(stdout.starts_with(prints), "{name}: {stdout}");
    }
}

#[test]
fn the_oci_layout_setting_is_relative_to_its_cargo_toml() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("hello");
    support::copy_fixture("hello", &project);
    let manifest = project.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.zeroimage]\noci-layout = \"dist/oci\"\n");
    std::fs::write(&manifest, text).unwrap();
    let target_dir = dir.path().join("target");
    let output = run_ok(
        cargo_zeroimage()
            .current_dir(dir.path())
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--message-format", "json", "--target-dir"])
            .arg(&target_dir),
    );
    let summary = stdout_json(&output);
    let layout = project.join("dist/oci");
    assert_eq!(summary["path"], "", "the layout instead of an archive");
    assert_eq!(summary["oci_layout"]["path"], layout.display().to_string());
    assert!(!dir.path().join("dist").exists(), "not relative to the cwd");
    assert!(!expected_archive(&target_dir, X86_64_MUSL, "release", "hello").exists());
    support::validate::layout_dir(&layout);
    let Some(stdout) = support::run_layout_in_runc(&layout, "hello:0.1.0", &[], &[]) else {
        return;
    };
    assert!(
        stdout.starts_with("hello from the zeroimage fixture"),
        "{stdout}"
    );
}
