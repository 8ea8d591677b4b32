//! `--load`: images loaded into real runtimes started by the tests (a dockerd, a containerd, a
//! podman with its own storage) and run there; multi-platform images give the runtime the machine's
//! platform; a runtime that cannot be reached is a one-line error naming its socket and the fix.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support;
use support::containerd::Containerd;
use support::docker::{Dockerd, Podman};
use support::{AARCH64_MUSL, X86_64_MUSL, run_ok, stderr_of, stdout_json, stdout_of, zeroimage};

const GREETING_LINE: &str = "hello from the zeroimage fixture";

/// The run failed with exit 1 and exactly one `error:` line holding every piece of `expected`.
fn assert_one_line_error(output: &Output, expected: &[&str]) {
    let err = stderr_of(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        !err.lines()
            .any(|l| !l.starts_with("error:") && l.contains("error")),
        "{err}"
    );
    for piece in expected {
        assert!(errors[0].contains(piece), "`{piece}` missing from: {err}");
    }
}

/// The probe fixture for aarch64 and x86-64, or `None` (skipped) when a target is missing.
fn probe_binaries() -> Option<(PathBuf, PathBuf)> {
    let arm = support::fixture_binary("probe", AARCH64_MUSL)?;
    let x86 = support::fixture_binary("probe", X86_64_MUSL)?;
    Some((arm, x86))
}

/// `zeroimage` for a two-platform probe image whose FIRST platform is arm64.
fn arm_first(arm: &Path, x86: &Path, tag: &str) -> support::Zeroimage {
    let mut cmd = zeroimage();
    cmd.arg("--platform-binary")
        .arg(format!("linux/arm64={}", arm.display()))
        .arg("--platform-binary")
        .arg(format!("linux/amd64={}", x86.display()))
        .args(["-t", tag]);
    cmd
}

fn machine() -> &'static str {
    std::env::consts::ARCH
}

#[test]
fn docker_gets_the_machines_platform_through_its_api_and_its_cli() {
    if machine() != "x86_64" {
        eprintln!(
            "SKIPPED: the two-platform images here are amd64 and arm64, built for an x86-64 host"
        );
        return;
    }
    let Some(dockerd) = Dockerd::start() else {
        return;
    };
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let docker_run = |image: &str| {
        let output = run_ok(
            dockerd
                .client()
                .args(["run", "--rm", "--network", "none", image]),
        );
        stdout_of(&output)
    };

    // One image, no -o: nothing is written, the image is in docker under its tag.
    let work = dir.path().join("single");
    std::fs::create_dir(&work).unwrap();
    let output = run_ok(
        zeroimage()
            .arg(&hello)
            .args(["-t", "zi-load/hello:1", "--load", "docker"])
            .env("DOCKER_HOST", dockerd.host())
            .current_dir(&work),
    );
    let err = stderr_of(&output);
    assert!(
        err.contains("     Loading zi-load/hello:1 into docker (linux/amd64)"),
        "{err}"
    );
    assert!(
        err.contains("      Loaded zi-load/hello:1 into docker (image sha256:"),
        "{err}"
    );
    assert!(
        support::dir_listing(&work).is_empty(),
        "no archive without -o"
    );
    assert!(docker_run("zi-load/hello:1").starts_with(GREETING_LINE));

    // cargo zeroimage, two targets, aarch64 FIRST: docker gets the machine's platform.
    if !support::target_installed(AARCH64_MUSL) {
        assert!(!support::peers_required(), "aarch64 musl target required");
        eprintln!("SKIPPED: {AARCH64_MUSL} not installed");
        return;
    }
    let archive = dir.path().join("probe.tar");
    let output = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(support::root().join("fixtures/probe/Cargo.toml"))
            .args(["--target", AARCH64_MUSL, "--target", X86_64_MUSL])
            .args(["--load", "docker", "--message-format", "json", "-o"])
            .arg(&archive)
            .env("DOCKER_HOST", dockerd.host()),
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["platform"], "linux/arm64,linux/amd64");
    let loaded = &summary["loaded"][0];
    assert_eq!(loaded["runtime"], "docker");
    assert_eq!(loaded["name"], "probe:0.2.0");
    assert_eq!(loaded["platform"], "linux/amd64");
    assert_eq!(loaded["id"], summary["platforms"][1]["config_digest"]);
    let report = support::probe_report(&docker_run("probe:0.2.0"));
    assert_eq!(report["arch"], machine(), "{report:?}");
    assert!(archive.is_file(), "the archive is written as well");

    // `load = [...]` in Cargo.toml does the same as the flag.
    support::copy_fixture("hello", dir.path());
    let manifest = dir.path().join("hello/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[package.metadata.zeroimage]\nload = [\"docker\"]\ntag = \"zi-load/from-toml:1\"\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let output = run_ok(
        support::cargo_zeroimage()
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("-o")
            .arg(dir.path().join("from-toml.tar"))
            .env("DOCKER_HOST", dockerd.host()),
    );
    assert!(
        stderr_of(&output).contains("Loaded zi-load/from-toml:1 into docker"),
        "{}",
        stderr_of(&output)
    );
    assert!(docker_run("zi-load/from-toml:1").starts_with(GREETING_LINE));

    // A docker context whose endpoint is a unix socket (Docker Desktop's `desktop-linux`, read
    // from the context's metadata) is reached through its API directly.
    run_ok(dockerd.client().args([
        "context",
        "create",
        "zi-context",
        "--docker",
        &format!("host={}", dockerd.host()),
    ]));
    let socket = dockerd.host().trim_start_matches("unix://").to_owned();
    let output = run_ok(
        zeroimage()
            .arg(&hello)
            .args(["-t", "zi-load/context:1", "--load", "docker", "-v"])
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONTEXT", "zi-context")
            .env("DOCKER_CONFIG", dockerd.config_dir())
            .env("PATH", "/nonexistent")
            .current_dir(dir.path()),
    );
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!(
            "docker's Engine API at {socket} (docker context `zi-context`)"
        )),
        "{err}"
    );
    assert!(docker_run("zi-load/context:1").starts_with(GREETING_LINE));

    // With no /var/run/docker.sock, Docker Desktop's ~/.docker/run/docker.sock is used.
    if Path::new("/var/run/docker.sock").exists() {
        assert!(
            !support::peers_required(),
            "/var/run/docker.sock exists, so the fallback cannot be tested"
        );
        eprintln!("SKIPPED: /var/run/docker.sock exists");
    } else {
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".docker/run")).unwrap();
        std::os::unix::fs::symlink(&socket, home.join(".docker/run/docker.sock")).unwrap();
        let output = run_ok(
            zeroimage()
                .arg(&hello)
                .args(["-t", "zi-load/desktop:1", "--load", "docker", "-v"])
                .env_remove("DOCKER_HOST")
                .env_remove("DOCKER_CONTEXT")
                .env_remove("DOCKER_CONFIG")
                .env_remove("XDG_RUNTIME_DIR")
                .env("HOME", &home)
                .current_dir(dir.path()),
        );
        let err = stderr_of(&output);
        assert!(
            err.contains(&format!(
                "docker's Engine API at {} (found for want of /var/run/docker.sock",
                home.join(".docker/run/docker.sock").display()
            )),
            "{err}"
        );
        assert!(docker_run("zi-load/desktop:1").starts_with(GREETING_LINE));
    }

    // A tcp:// (or ssh://) daemon goes through the docker CLI on PATH: here a TCP port the test
    // forwards to the daemon's socket.
    let forward = forward_tcp_to_unix(PathBuf::from(&socket));
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/docker", bin.join("docker")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = run_ok(
        arm_first(
            &support::fixture_binary("probe", AARCH64_MUSL).unwrap(),
            &support::fixture_binary("probe", X86_64_MUSL).unwrap(),
            "zi-load/cli:1",
        )
        .args(["--load", "docker", "-v"])
        .env("DOCKER_HOST", format!("tcp://{forward}"))
        .env("DOCKER_CONFIG", dockerd.config_dir())
        .env("PATH", path)
        .current_dir(dir.path()),
    );
    let err = stderr_of(&output);
    assert!(
        err.contains(&format!(
            "DOCKER_HOST=tcp://{forward}: loading with `docker load`"
        )),
        "{err}"
    );
    assert!(
        err.contains("Loaded zi-load/cli:1 into docker (image sha256:"),
        "{err}"
    );
    let report = support::probe_report(&docker_run("zi-load/cli:1"));
    assert_eq!(report["arch"], machine(), "{report:?}");

    // A platform the image lacks, and `all` (docker keeps one per name): one line, the archive kept.
    for (platform, expected) in [
        ("linux/s390x", "zi-load/x:1 has no linux/s390x image"),
        ("all", "docker keeps one platform per image name"),
    ] {
        let kept = dir
            .path()
            .join(format!("kept-{}.tar", platform.replace('/', "-")));
        let output = zeroimage()
            .arg(&hello)
            .args(["-t", "zi-load/x:1", "--load", "docker", "--load-platform"])
            .arg(platform)
            .arg("-o")
            .arg(&kept)
            .env("DOCKER_HOST", dockerd.host())
            .output()
            .unwrap();
        if platform == "all" {
            // A single-platform image is all there is: it loads.
            assert!(output.status.success(), "{}", stderr_of(&output));
        } else {
            assert_one_line_error(&output, &[expected, "--load-platform"]);
        }
        assert!(
            kept.is_file(),
            "the archive is kept: {}",
            stderr_of(&output)
        );
    }
    let Some((arm, x86)) = probe_binaries() else {
        return;
    };
    let kept = dir.path().join("kept-all.tar");
    let output = arm_first(&arm, &x86, "zi-load/all:1")
        .args(["--load", "docker", "--load-platform", "all", "-o"])
        .arg(&kept)
        .env("DOCKER_HOST", dockerd.host())
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        &[
            "docker keeps one platform per image name",
            "podman or containerd",
        ],
    );
    assert!(kept.is_file());

    // Docker 20.10 (API 1.41) cannot read zstd layers: said before sending anything.
    let Some((umoci, skopeo)) = support::bases::tools() else {
        return;
    };
    let layout = support::bases::busybox_layout(&umoci, dir.path(), None);
    let zstd_base = dir.path().join("zstd-base.tar");
    support::bases::copy(
        &skopeo,
        &layout,
        "latest",
        &format!("oci-archive:{}", zstd_base.display()),
        &["--dest-compress-format", "zstd"],
    );
    let version = run_ok(
        dockerd
            .client()
            .args(["version", "--format", "{{.Server.APIVersion}}"]),
    );
    let api = stdout_of(&version);
    let minor: u32 = api
        .trim()
        .strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("docker API version `{api}`"));
    let output = zeroimage()
        .arg(&hello)
        .args(["-t", "zi-load/zstd:1", "--load", "docker", "--from-archive"])
        .arg(&zstd_base)
        .env("DOCKER_HOST", dockerd.host())
        .current_dir(dir.path())
        .output()
        .unwrap();
    // Our own zstd layers, the same.
    let own = zeroimage()
        .arg(&hello)
        .args(["-t", "zi-load/own-zstd:1", "--compression", "zstd"])
        .args(["--load", "docker"])
        .env("DOCKER_HOST", dockerd.host())
        .current_dir(dir.path())
        .output()
        .unwrap();
    for output in [output, own] {
        if minor < 42 {
            assert_one_line_error(
                &output,
                &["cannot load zstd-compressed layers", "Docker 23 and later"],
            );
        } else {
            assert!(output.status.success(), "{}", stderr_of(&output));
        }
    }
}

#[test]
fn a_socket_path_that_is_no_socket_is_said_to_be_what_it_is() {
    use support::tiny_elf::{self, Machine, Shape};
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    let archive = dir.path().join("app.tar");
    std::fs::write(&archive, b"previous archive").unwrap();
    let attempt = |runtime: &str, key: &str, value: String| {
        let output = zeroimage()
            .arg(&program)
            .args(["--load", runtime, "-o"])
            .arg(&archive)
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(std::fs::read(&archive).unwrap(), b"previous archive");
        output
    };
    let a_dir = dir.path().join("run");
    std::fs::create_dir(&a_dir).unwrap();
    for (path, what) in [
        (a_dir.clone(), "a directory"),
        (PathBuf::from("/dev/null"), "a character device"),
        (archive.clone(), "a regular file"),
    ] {
        let output = attempt(
            "docker",
            "DOCKER_HOST",
            format!("unix://{}", path.display()),
        );
        assert_one_line_error(
            &output,
            &[&format!(
                "error: {} (DOCKER_HOST) is {what}, not docker's socket; point DOCKER_HOST at the \
                 socket docker listens on",
                path.display()
            )],
        );
        assert!(!stderr_of(&output).contains("nothing listens"));
    }
    let output = attempt(
        "containerd",
        "CONTAINERD_ADDRESS",
        a_dir.display().to_string(),
    );
    assert_one_line_error(
        &output,
        &[&format!(
            "error: {} (CONTAINERD_ADDRESS) is a directory, not containerd's socket; point \
             CONTAINERD_ADDRESS at the socket containerd listens on",
            a_dir.display()
        )],
    );
}

#[test]
fn unreachable_runtimes_are_one_line_errors_naming_the_socket_and_the_fix() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    std::fs::write(&archive, b"previous archive").unwrap();
    let attempt = |runtime: &str, env: &[(&str, String)]| {
        let mut cmd = zeroimage();
        cmd.arg(&hello)
            .args(["--load", runtime, "-o"])
            .arg(&archive);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let output = cmd.output().unwrap();
        assert_eq!(
            std::fs::read(&archive).unwrap(),
            b"previous archive",
            "the existing archive is untouched"
        );
        output
    };

    let missing = dir.path().join("missing.sock");
    let output = attempt(
        "docker",
        &[("DOCKER_HOST", format!("unix://{}", missing.display()))],
    );
    assert_one_line_error(
        &output,
        &[
            "docker is not running here: no socket at",
            "missing.sock (DOCKER_HOST)",
            "systemctl start docker",
        ],
    );

    // A socket file nobody listens on: the daemon stopped without removing it.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let output = attempt(
        "docker",
        &[("DOCKER_HOST", format!("unix://{}", dead.display()))],
    );
    assert_one_line_error(
        &output,
        &["docker is not running: nothing listens on", "dead.sock"],
    );

    let output = attempt(
        "containerd",
        &[("CONTAINERD_ADDRESS", missing.display().to_string())],
    );
    assert_one_line_error(
        &output,
        &[
            "containerd is not running here: no socket at",
            "(CONTAINERD_ADDRESS)",
            "systemctl start containerd",
        ],
    );

    let empty_path = dir.path().join("empty-path");
    std::fs::create_dir(&empty_path).unwrap();
    let output = attempt("podman", &[("PATH", empty_path.display().to_string())]);
    assert_one_line_error(
        &output,
        &["podman is not installed", "apt-get install podman"],
    );

    // A live socket that only root may use, tried as an unprivileged user.
    if !support::is_root() {
        return;
    }
    let Some(setpriv) = support::peer("setpriv") else {
        return;
    };
    let private = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = private.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    let output = support::zeroimage_via(
        setpriv,
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    .arg(&hello)
    .args(["--load", "docker"])
    .env("DOCKER_HOST", format!("unix://{}", socket.display()))
    .current_dir(private.path())
    .output()
    .unwrap();
    assert_one_line_error(
        &output,
        &[
            "permission denied on docker's socket",
            "docker.sock",
            "usermod -aG docker",
        ],
    );
}

#[test]
fn containerd_imports_the_machines_platform_or_all_unpacked_and_runnable() {
    if machine() != "x86_64" {
        eprintln!(
            "SKIPPED: the two-platform images here are amd64 and arm64, built for an x86-64 host"
        );
        return;
    }
    let Some((arm, x86)) = probe_binaries() else {
        return;
    };
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let load = |tag: &str, extra: &[&str]| {
        stdout_json(&run_ok(
            arm_first(&arm, &x86, tag)
                .args(["--load", "containerd", "--message-format", "json"])
                .args(extra)
                .env("CONTAINERD_ADDRESS", containerd.socket())
                // The native snapshotter works where overlayfs may not (nested containers).
                .env("CONTAINERD_SNAPSHOTTER", "native")
                .current_dir(dir.path()),
        ))
    };
    let images =
        |namespace: &str| stdout_of(&run_ok(containerd.ctr(namespace).args(["images", "ls"])));

    // The machine's platform, into the namespace k3s and kind use.
    let summary = load("zi-load/probe:1", &["--containerd-namespace", "k8s.io"]);
    let loaded = &summary["loaded"][0];
    assert_eq!(loaded["runtime"], "containerd");
    assert_eq!(loaded["name"], "docker.io/zi-load/probe:1");
    assert_eq!(loaded["platform"], "linux/amd64");
    assert_eq!(loaded["id"], summary["platforms"][1]["manifest_digest"]);
    let listed = images("k8s.io");
    let line = listed
        .lines()
        .find(|l| l.starts_with("docker.io/zi-load/probe:1 "))
        .unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert!(line.contains(loaded["id"].as_str().unwrap()), "{line}");
    assert!(!images("default").contains("zi-load/probe:1"));
    let output = run_ok(&mut containerd.run("k8s.io", "docker.io/zi-load/probe:1", &[]));
    assert_eq!(
        support::probe_report(&stdout_of(&output))["arch"],
        machine()
    );

    // The whole index, every platform's content with it.
    let summary = load("zi-load/probe:all", &["--load-platform", "all"]);
    assert_eq!(summary["loaded"][0]["id"], summary["digest"]);
    assert_eq!(summary["loaded"][0]["platform"], "linux/arm64,linux/amd64");
    let listed = images("default");
    let line = listed
        .lines()
        .find(|l| l.starts_with("docker.io/zi-load/probe:all "))
        .unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert!(
        line.contains("application/vnd.oci.image.index.v1+json"),
        "{line}"
    );
    assert!(line.contains("linux/amd64,linux/arm64"), "{line}");
    for platform in ["linux/amd64", "linux/arm64"] {
        let manifest = summary["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] == platform)
            .unwrap();
        let config = manifest["config_digest"].as_str().unwrap();
        let content = stdout_of(&run_ok(
            containerd.ctr("default").args(["content", "ls", "-q"]),
        ));
        assert!(content.contains(config), "{platform} content imported");
    }
    let output = run_ok(&mut containerd.run("default", "docker.io/zi-load/probe:all", &[]));
    assert_eq!(
        support::probe_report(&stdout_of(&output))["arch"],
        machine()
    );
}

#[test]
fn podman_loads_the_machines_platform_or_all_as_a_manifest_list() {
    if machine() != "x86_64" {
        eprintln!(
            "SKIPPED: the two-platform images here are amd64 and arm64, built for an x86-64 host"
        );
        return;
    }
    let Some((arm, x86)) = probe_binaries() else {
        return;
    };
    let Some(podman) = Podman::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let load = |tag: &str, extra: &[&str]| {
        let mut cmd = arm_first(&arm, &x86, tag);
        cmd.args(["--load", "podman", "--message-format", "json"])
            .args(extra)
            .current_dir(dir.path());
        for (key, value) in podman.envs() {
            cmd.env(key, value);
        }
        stdout_json(&run_ok(&mut cmd))
    };
    let run = |image: &str| {
        let output = run_ok(podman.run().arg(image));
        support::probe_report(&stdout_of(&output))
    };

    let summary = load("zi-load/probe:1", &[]);
    let loaded = &summary["loaded"][0];
    assert_eq!(loaded["runtime"], "podman");
    assert_eq!(loaded["name"], "docker.io/zi-load/probe:1");
    assert_eq!(loaded["platform"], "linux/amd64");
    let config = summary["platforms"][1]["config_digest"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", loaded["id"].as_str().unwrap()),
        config,
        "podman's image ID is the amd64 config's digest"
    );
    assert_eq!(run("docker.io/zi-load/probe:1")["arch"], machine());

    let summary = load("zi-load/probe:all", &["--load-platform", "all"]);
    assert_eq!(summary["loaded"][0]["platform"], "linux/arm64,linux/amd64");
    let list =
        run_ok(
            podman
                .command()
                .args(["manifest", "inspect", "docker.io/zi-load/probe:all"]),
        );
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let mut digests: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    digests.sort();
    let mut ours: Vec<&str> = summary["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["manifest_digest"].as_str().unwrap())
        .collect();
    ours.sort();
    assert_eq!(digests, ours, "the list holds both platforms' manifests");
    assert_eq!(run("docker.io/zi-load/probe:all")["arch"], machine());
}

/// A TCP port on 127.0.0.1 whose connections are passed on to the unix socket `to`, for as long as
/// the test runs; its `HOST:PORT`.
fn forward_tcp_to_unix(to: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(daemon) = std::os::unix::net::UnixStream::connect(&to) else {
                continue;
            };
            let (mut client_in, mut daemon_out) =
                (client.try_clone().unwrap(), daemon.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut daemon_out);
                let _ = daemon_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut daemon_in, mut client_out) = (daemon, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut daemon_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    address
}
