//! The Windows build of `zeroimage` (cross-built with mingw-w64, run under wine; see
//! `support::windows`): the same inputs give the same archive as the Linux build, byte for byte, so
//! nothing of the host (path separators, file modes, the order of a directory's entries) reaches the
//! image; it pulls a base into its blob cache and reads it from there; and it pushes to a registry.

use std::io::Read;
use std::path::Path;

use crate::support::registry::{Setup, TestRegistry};
use crate::support::tiny_elf::{self, Machine, Shape};
use crate::support::windows::{self, windows_path};
use crate::support::{self, file_digest, run_ok, zeroimage};

const CREATED: &str = "2024-05-06T07:08:09Z";

fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every entry of every layer of the (single) image in `archive`: its path and permission bits.
fn layer_modes(archive: &Path) -> Vec<(String, u32)> {
    let entries = support::read_tar(archive);
    let manifest = support::image_manifest(archive);
    let mut modes = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = &entries[&support::blob_name(&layer["digest"])];
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut bytes)
            .unwrap();
        for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            modes.push((path, entry.header().mode().unwrap()));
        }
    }
    modes
}

#[test]
fn the_windows_build_under_wine_writes_the_linux_archive_and_pushes_it() {
    let Some(exe) = windows::zeroimage_exe() else {
        return;
    };
    let Some(registry) = TestRegistry::start(Setup::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let program = tiny_elf::write(
        d,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hello from Windows\n"),
    );
    // What --include copies: a directory holding a script and a program (executable on Linux, and
    // starting with `#!` and ELF's magic number), a page and a subdirectory two levels deep (not
    // executable), written out of order; and a file named with `/` and a drive, without destination.
    let www = d.join("www");
    std::fs::create_dir_all(www.join("assets/img")).unwrap();
    write_file(&www.join("index.html"), b"<h1>hi</h1>\n", 0o644);
    write_file(&www.join("start.sh"), b"#!/bin/sh\nexec /app\n", 0o755);
    write_file(&www.join("assets/img/logo.svg"), b"<svg/>\n", 0o644);
    write_file(&www.join("assets/site.css"), b"h1 {}\n", 0o644);
    let helper = tiny_elf::build(Machine::X86_64, Shape::Static, "helper\n");
    write_file(&www.join("Helper"), &helper, 0o755);
    let notes = d.join("notes.txt");
    write_file(&notes, b"notes\n", 0o644);

    let cases = [
        ("program", vec![], vec![]),
        (
            "includes",
            vec![
                "--include".to_owned(),
                format!("{}:/srv/www", www.display()),
                "--include".to_owned(),
                notes.display().to_string(),
            ],
            vec![
                "--include".to_owned(),
                format!("{}:/srv/www", windows_path(&www)),
                "--include".to_owned(),
                windows_path(&notes).replace('\\', "/"),
            ],
        ),
    ];
    for (name, linux_args, windows_args) in &cases {
        let linux = d.join(format!("{name}-linux.tar"));
        run_ok(
            zeroimage()
                .arg(&program)
                .arg("-o")
                .arg(&linux)
                .args(["--created", CREATED])
                .args(linux_args),
        );
        let windows = d.join(format!("{name}-windows.tar"));
        run_ok(
            exe.command(&config)
                .arg(windows_path(&program))
                .arg("-o")
                .arg(windows_path(&windows))
                .args(["--created", CREATED])
                .args(windows_args),
        );
        support::validate::archive(&windows);
        assert_eq!(
            file_digest(&windows),
            file_digest(&linux),
            "{name}: the Windows build's archive differs from the Linux build's:\n{:?}\n{:?}",
            layer_modes(&windows),
            layer_modes(&linux)
        );
    }
    // What both wrote: the script and the program executable, the rest not; directories 0755.
    let modes = layer_modes(&d.join("includes-windows.tar"));
    let mode = |path: &str| {
        modes
            .iter()
            .find(|(p, _)| p.trim_end_matches('/') == path)
            .unwrap_or_else(|| panic!("{path} missing from {modes:?}"))
            .1
    };
    for (path, expected) in [
        ("app", 0o755),
        ("srv/www", 0o755),
        ("srv/www/Helper", 0o755),
        ("srv/www/start.sh", 0o755),
        ("srv/www/index.html", 0o644),
        ("srv/www/assets/img", 0o755),
        ("srv/www/assets/img/logo.svg", 0o644),
        ("srv/www/assets/site.css", 0o644),
        ("notes.txt", 0o644),
    ] {
        assert_eq!(mode(path), expected, "{path}: {modes:?}");
    }

    // A base from the registry, pulled under wine into a blob cache of the test's own: the archive is
    // the Linux build's, and the second build reads every blob from the cache.
    let base = format!("{}/windows/base:1", registry.host());
    run_ok(
        zeroimage()
            .arg(&program)
            .args(["--created", CREATED, "--push", &base])
            .args(&cases[1].1)
            .env("DOCKER_CONFIG", &config),
    );
    let on_base = |to: &Path| {
        [
            "--from".to_owned(),
            base.clone(),
            "--entrypoint-path".to_owned(),
            "/usr/bin/app".to_owned(),
            "--created".to_owned(),
            CREATED.to_owned(),
            "-o".to_owned(),
            windows_path(to),
        ]
    };
    let cache = d.join("windows-cache");
    let mut blob_gets = Vec::new();
    for _ in 0..2 {
        run_ok(
            exe.command(&config)
                .arg(windows_path(&program))
                .args(on_base(&d.join("base-windows.tar")))
                .env("ZEROIMAGE_CACHE_DIR", windows_path(&cache)),
        );
        blob_gets.push(registry.blob_gets());
    }
    assert!(blob_gets[0] > 0, "nothing was pulled");
    assert_eq!(
        blob_gets[0], blob_gets[1],
        "the second build on Windows fetched blobs again"
    );
    run_ok(
        zeroimage()
            .arg(&program)
            .args(["--from", &base, "--entrypoint-path", "/usr/bin/app"])
            .args(["--created", CREATED, "-o"])
            .arg(d.join("base-linux.tar"))
            .env("ZEROIMAGE_CACHE_DIR", d.join("linux-cache")),
    );
    support::validate::archive(&d.join("base-windows.tar"));
    assert_eq!(
        file_digest(&d.join("base-windows.tar")),
        file_digest(&d.join("base-linux.tar")),
        "on a base, the Windows build's archive differs from the Linux build's"
    );

    // A push from under wine lands the same image in the registry.
    let reference = format!("{}/windows/app:1", registry.host());
    run_ok(
        exe.command(&config)
            .arg(windows_path(&program))
            .args(["--created", CREATED])
            .args(&cases[1].2)
            .args(["--push", &reference]),
    );
    let mut response = ureq::get(&format!(
        "http://{}/v2/windows/app/manifests/1",
        registry.host()
    ))
    .header(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
    )
    .call()
    .unwrap();
    let pushed = response.body_mut().read_to_vec().unwrap();
    let archive = support::read_tar(&d.join("includes-linux.tar"));
    let index = support::json_entry(&archive, "index.json");
    assert_eq!(
        zeroimage::oci::Digest::of(&pushed).to_string(),
        index["manifests"][0]["digest"].as_str().unwrap(),
        "the manifest pushed from Windows is not the archive's"
    );
}
