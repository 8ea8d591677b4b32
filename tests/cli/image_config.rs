//! Image configuration options and the scratch essentials, read back by skopeo and seen by the program
//! running in runc.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::{probe_report, run_ok, stdout_of, zeroimage};

/// Packages the probe with `extra` options as `probe:test` and runs it in runc.
fn run_probe(dir: &Path, extra: &[&str]) -> Option<(PathBuf, BTreeMap<String, String>)> {
    let probe = support::probe_fixture()?;
    let archive = dir.join("probe.tar");
    run_ok(
        zeroimage()
            .arg(&probe)
            .arg("-o")
            .arg(&archive)
            .args(["-t", "probe:test"])
            .args(extra),
    );
    let stdout = support::run_in_runc(&archive, "test", &[], &[])?;
    Some((archive, probe_report(&stdout)))
}

/// Entries of the layer that is not the program's (the essentials layer): path -> (mode, uid, gid, kind, link).
fn essentials_entries(archive: &Path) -> BTreeMap<String, (u32, u64, u64, String, String)> {
    let entries = support::read_tar(archive);
    let manifest = support::image_manifest(archive);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "essentials layer, then the program's");
    let blob = &entries[&support::blob_name(&layers[0]["digest"])];
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    tar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            let link = h
                .link_name()
                .unwrap()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            (
                e.path().unwrap().display().to_string(),
                (
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    format!("{:?}", h.entry_type()),
                    link,
                ),
            )
        })
        .collect()
}

#[test]
fn every_configuration_flag_reaches_the_config_and_the_running_program() {
    let Some(skopeo) = support::peer("skopeo") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--env",
        "MODE=first",
        "--env",
        "GREETING=hi there",
        "--env",
        "MODE=last",
        "--label",
        "team=core",
        "--annotation",
        "com.example.note=yes",
        "--user",
        "1234:5678",
        "--workdir",
        "/srv/work",
        "--expose",
        "8080",
        "--expose",
        "53/udp",
        "--stop-signal",
        "int",
        "--arg",
        "one",
        "--arg",
        "--two",
        "--entrypoint-path",
        "/usr/local/bin/probe",
    ];
    let Some((archive, report)) = run_probe(dir.path(), &extra) else {
        return;
    };

    let source = format!("oci-archive:{}", archive.display());
    let config: serde_json::Value = serde_json::from_slice(
        &run_ok(Command::new(&skopeo).args(["inspect", "--config", &source])).stdout,
    )
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/probe"]));
    assert_eq!(c["Cmd"], serde_json::json!(["one", "--two"]));
    assert_eq!(
        c["Env"],
        serde_json::json!([
            zeroimage::assemble::DEFAULT_PATH_ENV,
            "MODE=last",
            "GREETING=hi there"
        ]),
        "duplicate keys: last wins, in the first one's place"
    );
    assert_eq!(c["Labels"], serde_json::json!({"team": "core"}));
    assert_eq!(c["User"], "1234:5678");
    assert_eq!(c["WorkingDir"], "/srv/work");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "8080/tcp": {}})
    );
    assert_eq!(c["StopSignal"], "SIGINT");
    let raw: serde_json::Value = serde_json::from_slice(
        &run_ok(Command::new(&skopeo).args(["inspect", "--raw", &source])).stdout,
    )
    .unwrap();
    assert_eq!(raw["annotations"]["com.example.note"], "yes");

    assert_eq!(report["uid"], "1234");
    assert_eq!(report["gid"], "5678");
    assert_eq!(report["cwd"], "/srv/work");
    assert_eq!(report["argv"], "/usr/local/bin/probe one --two");
    assert_eq!(report["env.MODE"], "last");
    assert_eq!(report["env.GREETING"], "hi there");
    assert_eq!(report["user"], "<no /etc/passwd>");
}

#[test]
fn invalid_configuration_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let program = support::tiny_elf::write(
        dir.path(),
        "app",
        &support::tiny_elf::build(
            support::tiny_elf::Machine::X86_64,
            support::tiny_elf::Shape::Static,
            "x",
        ),
    );
    let cases: [(&[&str], &str); 9] = [
        (&["--env", "NOEQUALS"], "is not KEY=VALUE"),
        (&["--env", "1BAD=x"], "not a valid variable name"),
        (&["--label", "=v"], "is not KEY=VALUE"),
        (&["--expose", "99999"], "from 1 to 65535"),
        (&["--expose", "80/icmp"], "tcp or udp"),
        (&["--workdir", "relative/dir"], "must be an absolute path"),
        (
            &["--entrypoint-path", "bin/app"],
            "must be an absolute path",
        ),
        (&["--stop-signal", "SIGNOPE"], "is not a signal"),
        (&["--user", "a b"], "is not UID[:GID]"),
    ];
    for (args, needle) in cases {
        let output = zeroimage().arg(&program).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(support::dir_listing(dir.path()), ["app"]);
}

#[test]
fn nonroot_runs_as_65532_known_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, report)) = run_probe(dir.path(), &["--nonroot"]) else {
        return;
    };
    assert_eq!(report["uid"], "65532");
    assert_eq!(report["gid"], "65532");
    assert_eq!(
        report["user"], "nonroot",
        "resolved through the image's /etc/passwd"
    );
    assert_eq!(
        support::image_config(&archive)["config"]["User"],
        "65532:65532"
    );
    let entries = essentials_entries(&archive);
    assert_eq!(entries["home/nonroot"].0, 0o700);
    assert_eq!(
        (entries["home/nonroot"].1, entries["home/nonroot"].2),
        (65532, 65532)
    );
    assert_eq!(entries["etc/passwd"].0, 0o644);
    // An explicit --user wins over --nonroot's.
    let Some((_, report)) = run_probe(dir.path(), &["--nonroot", "--user", "0:0"]) else {
        return;
    };
    assert_eq!(report["user"], "root");
}

#[test]
fn ca_certs_from_a_file_from_the_host_and_absent() {
    if support::peer("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A bundle of two freshly generated certificates.
    let mut bundle = String::new();
    for name in ["one", "two"] {
        let (cert, _) =
            support::self_signed_certificate(dir.path(), name, &format!("zeroimage test {name}"));
        bundle.push_str(&std::fs::read_to_string(&cert).unwrap());
    }
    let bundle_path = dir.path().join("bundle.pem");
    std::fs::write(&bundle_path, &bundle).unwrap();

    let Some((_, without)) = run_probe(dir.path(), &[]) else {
        return;
    };
    assert_eq!(without["env.SSL_CERT_FILE"], "<unset>");
    assert_eq!(without["certificates"], "<unset>");

    let option = format!("--ca-certs={}", bundle_path.display());
    let Some((archive, with_file)) = run_probe(dir.path(), &[&option]) else {
        return;
    };
    assert_eq!(
        with_file["env.SSL_CERT_FILE"],
        "/etc/ssl/certs/ca-certificates.crt"
    );
    assert_eq!(with_file["certificates"], "2");
    assert_eq!(
        essentials_entries(&archive)["etc/ssl/certs/ca-certificates.crt"].0,
        0o644
    );

    let host = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        host.is_file() || !support::peers_required(),
        "ca-certificates is installed by scripts/test"
    );
    if host.is_file() {
        let expected = std::fs::read_to_string(host)
            .unwrap()
            .matches("-----BEGIN CERTIFICATE-----")
            .count();
        let Some((_, with_host)) = run_probe(dir.path(), &["--ca-certs"]) else {
            return;
        };
        assert_eq!(with_host["certificates"], expected.to_string());
    }

    let output = zeroimage()
        .arg(support::probe_fixture().unwrap())
        .arg("--ca-certs=/nonexistent/ca.pem")
        .arg("-o")
        .arg(dir.path().join("x.tar"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/ca.pem"));
}

#[test]
fn tmp_is_sticky_and_writable_by_the_nonroot_user() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_, without)) = run_probe(dir.path(), &["--nonroot"]) else {
        return;
    };
    assert!(without["tmp_writable"].starts_with("no"), "{without:?}");
    let Some((archive, report)) = run_probe(dir.path(), &["--nonroot", "--tmp"]) else {
        return;
    };
    assert_eq!(report["tmp_writable"], "yes");
    assert_eq!(essentials_entries(&archive)["tmp"].0, 0o1777);
}

#[test]
fn tzdata_from_the_host_keeps_its_links() {
    let host = Path::new("/usr/share/zoneinfo");
    if !host.join("Europe/Paris").exists() {
        assert!(
            !support::peers_required(),
            "tzdata is installed by scripts/test"
        );
        eprintln!("SKIPPED: no zoneinfo on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((archive, report)) = run_probe(dir.path(), &["--tzdata"]) else {
        return;
    };
    assert_eq!(report["zoneinfo"], "TZif");
    let entries = essentials_entries(&archive);
    let links: Vec<_> = entries.iter().filter(|(_, e)| e.3 == "Symlink").collect();
    let host_links = Command::new("find")
        .arg(host)
        .args(["-type", "l"])
        .output()
        .unwrap();
    assert_eq!(
        links.len(),
        stdout_of(&host_links).lines().count(),
        "symbolic links stay links"
    );
}

#[test]
fn tzdata_through_a_link_to_the_database_as_on_macos_is_the_database_itself() {
    let host = Path::new("/usr/share/zoneinfo");
    if !host.join("UTC").exists() {
        assert!(
            !support::peers_required(),
            "tzdata is installed by scripts/test"
        );
        eprintln!("SKIPPED: no zoneinfo on this machine");
        return;
    }
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // macOS: /usr/share/zoneinfo -> /private/var/db/timezone/zoneinfo.
    let link = dir.path().join("zoneinfo");
    std::os::unix::fs::symlink(host, &link).unwrap();
    let digest = |tzdata: &Path, name: &str| {
        let archive = dir.path().join(name);
        run_ok(
            zeroimage()
                .arg(&probe)
                .arg("-o")
                .arg(&archive)
                .arg(format!("--tzdata={}", tzdata.display())),
        );
        support::image_manifest(&archive)["layers"][0]["digest"].clone()
    };
    assert_eq!(digest(&link, "link.tar"), digest(host, "dir.tar"));
}

#[test]
fn include_copies_trees_with_normalized_metadata_and_keeps_links_inside() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("static");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("index.html"), "hello include\n").unwrap();
    std::fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        src.join("index.html"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink("../../outside-secret", src.join("sub/escape")).unwrap();
    std::fs::write(dir.path().join("outside-secret"), "must not be copied").unwrap();
    let single = dir.path().join("app.conf");
    std::fs::write(&single, "conf=1\n").unwrap();

    let include_dir = format!("{}:/srv/static", src.display());
    let include_file = single.display().to_string();
    let Some(probe) = support::probe_fixture() else {
        return;
    };
    let archive = dir.path().join("probe.tar");
    run_ok(zeroimage().arg(&probe).arg("-o").arg(&archive).args([
        "-t",
        "probe:test",
        "--include",
        &include_dir,
        "--include",
        &include_file,
    ]));
    let entries = essentials_entries(&archive);
    let summary: Vec<String> = entries
        .iter()
        .map(|(path, (mode, uid, gid, kind, link))| {
            format!("{path} {mode:o} {uid}:{gid} {kind} {link}")
        })
        .collect();
    assert_eq!(
        summary,
        [
            "app.conf 644 0:0 Regular ",
            "srv 755 0:0 Directory ",
            "srv/static 755 0:0 Directory ",
            "srv/static/index.html 644 0:0 Regular ",
            "srv/static/sub 755 0:0 Directory ",
            "srv/static/sub/escape 777 0:0 Symlink ../../outside-secret",
            "srv/static/sub/run.sh 755 0:0 Regular ",
        ]
    );
    let Some(stdout) = support::run_in_runc(
        &archive,
        "test",
        &[],
        &["PROBE_FILE=/srv/static/index.html"],
    ) else {
        return;
    };
    assert_eq!(probe_report(&stdout)["file"], "hello include");

    let output = zeroimage()
        .arg(&probe)
        .arg("--include")
        .arg(dir.path().join("nope"))
        .arg("-o")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope: no such file or directory"));
}

/// Deliberately pinned, like the single-layer golden digest in image_format.rs.
const GOLDEN_ALL_OPTIONS: &str =
    "sha256:e961544ab17a36e34e16978cb2fcfe7abd97d4cca9c0deff28f11b9c95770d2c";

#[test]
fn every_option_stays_reproducible_and_pinned() {
    // Fixed inputs only: a hand-built program, a CA file, a small zoneinfo tree and an include tree,
    // created with different mtimes, modes and umasks in two places.
    let build = |root: &Path, umask: &str, mtime: &str| {
        let program = support::tiny_elf::write(
            root,
            "app",
            &support::tiny_elf::build(
                support::tiny_elf::Machine::X86_64,
                support::tiny_elf::Shape::Static,
                "all\n",
            ),
        );
        std::fs::create_dir_all(root.join("zone/Europe")).unwrap();
        std::fs::write(root.join("zone/UTC"), "TZif2 utc").unwrap();
        std::fs::write(root.join("zone/Europe/Paris"), "TZif2 paris").unwrap();
        std::fs::write(
            root.join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::write(root.join("www/index.html"), "hi").unwrap();
        run_ok(
            Command::new("touch")
                .args(["-d", mtime])
                .arg(root.join("www/index.html"))
                .arg(root.join("ca.pem"))
                .arg(&program),
        );
        let out = root.join("out.tar");
        let script = format!("umask {umask} && exec \"$0\" \"$@\"");
        let output = run_ok(
            support::zeroimage_via("sh", &["-c", &script])
                .arg("app")
                .args(["-o", "out.tar", "--message-format", "json", "-t", "all:1"])
                .arg(format!("--ca-certs={}", root.join("ca.pem").display()))
                .arg(format!("--tzdata={}", root.join("zone").display()))
                .args(["--include", "www:/srv/www"])
                .args([
                    "--nonroot",
                    "--tmp",
                    "-e",
                    "A=1",
                    "--label",
                    "l=1",
                    "--annotation",
                    "a=1",
                ])
                .args([
                    "--user",
                    "1:1",
                    "--workdir",
                    "/srv",
                    "--expose",
                    "80",
                    "--stop-signal",
                    "TERM",
                    "--arg",
                    "x",
                ])
                .args(["--entrypoint-path", "/usr/bin/app"])
                .current_dir(root)
                .env_remove("SOURCE_DATE_EPOCH"),
        );
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (
            summary["digest"].as_str().unwrap().to_owned(),
            support::file_digest(&out),
        )
    };
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let first = build(one.path(), "022", "2001-01-01");
    let second = build(two.path(), "077", "2031-07-07");
    assert_eq!(first, second, "same inputs, different surroundings");
    assert_eq!(
        first.0, GOLDEN_ALL_OPTIONS,
        "image format with every option changed"
    );
}
