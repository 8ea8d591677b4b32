//! Signals, sent for real to runs caught mid-way: SIGTERM and SIGHUP (what CI cancellation,
//! `timeout`, systemd and `docker stop` send) end a run like Ctrl-C, and so does a SIGINT sent to the
//! process alone. Each run must end by that signal (as cargo does), leave no partial file (in the blob
//! cache, beside the archive, a `--no-cache` directory, a push spool) and no child process behind: a
//! `cargo build` and its build script, a credential helper and what it started.
//!
//! Every run is started in a process group of its own, as `timeout` and CI runners start it, so the
//! signal reaches it alone; each test waits until the run has reached the state it needs (a partial
//! file, a request at the registry, a build script running) before signalling, with bounded waits.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support;
use rustix::process::{Pid, Signal};
use support::http::{Reply, Request, TestServer};
use support::tiny_elf::{self, Machine, Shape};
use zeroimage::oci::Digest;

// ---------------------------------------------------------------------------------------------------
// Harness

/// zeroimage with its own empty docker config, in a process group of its own, stderr captured.
fn zi(config_dir: &Path) -> support::Zeroimage {
    let mut cmd = support::isolated_zeroimage(config_dir);
    cmd.own_process_group()
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Polls `ready` every 5 ms until it holds, failing after `limit` with `what` and the run's stderr.
fn wait_until(what: &str, limit: Duration, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before {what}: {}",
                stderr_of(child)
            );
        }
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(child: &Child, signal: Signal) {
    rustix::process::kill_process(Pid::from_child(child), signal).unwrap();
}

/// Waits (at most `limit`) for the run to end; its status and stderr.
fn ended(child: &mut Child, limit: Duration) -> (ExitStatus, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, stderr_of(child));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {limit:?} after the signal: {}",
                stderr_of(child)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the run wrote on stderr, read within 5 s: a process it left running may hold the pipe open.
fn stderr_of(child: &mut Child) -> String {
    let Some(mut stream) = child.stderr.take() else {
        return String::new();
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut text);
        let _ = sender.send(text);
    });
    receiver
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| "(stderr still open: a process the run started holds it)".to_owned())
}

/// Asserts that the run ended by `signal` (as cargo does: a shell shows 128 + its number) and said
/// it was interrupted.
fn assert_ended_by(status: ExitStatus, err: &str, signal: Signal) {
    assert_eq!(
        status.signal(),
        Some(signal.as_raw()),
        "{status}; stderr: {err}"
    );
    assert!(err.contains("interrupted"), "{err}");
}

/// Every file and directory under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

fn partial_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|p| p.contains(".partial"))
        .collect()
}

/// True while process `pid` runs; a zombie (ended, not yet reaped by its parent) does not.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(str::to_owned)
        })
        .is_some_and(|state| !matches!(state.as_str(), "Z" | "X" | "x"))
}

/// Waits up to 5 s for process `pid` to be gone: a killed process ends at its next scheduling.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Process ids read from a file that a child writes whole (by renaming); empty until it exists.
fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills, when the test ends however it ends, the process groups and processes a failing run may
/// have left behind, so a test run against broken code cleans up after itself.
struct Leftovers {
    groups: Vec<i32>,
    pid_files: Vec<PathBuf>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for group in &self.groups {
            if let Some(pid) = Pid::from_raw(*group) {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
        }
        for file in &self.pid_files {
            for pid in pids_in(file).into_iter().filter_map(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

fn static_program(dir: &Path) -> PathBuf {
    tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    )
}

// ---------------------------------------------------------------------------------------------------
// A slow registry serving a base image: its layer arrives one byte every 100 ms after the first
// 64 KiB, so a pull is always mid-way, with a partial file in the cache, when the test signals.

struct SlowBase {
    server: TestServer,
}

impl SlowBase {
    fn start() -> SlowBase {
        let layer: Vec<u8> = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let layer_digest = Digest::of(&layer).to_string();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.clone()]},
        })
        .to_string()
        .into_bytes();
        let config_digest = Digest::of(&config).to_string();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        let blobs = Arc::new([(config_digest, config), (layer_digest, layer)]);
        let server = TestServer::start(move |request: &Request| {
            let path = request.path();
            if path == "/v2/" {
                return Reply::status(200).body("{}");
            }
            if path.starts_with("/v2/slow/base/manifests/") {
                return Reply::status(200)
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .body(manifest.clone());
            }
            for (digest, bytes) in blobs.iter() {
                if path == format!("/v2/slow/base/blobs/{digest}") {
                    return Reply::status(200)
                        .body(bytes.clone())
                        .trickle_after(64 << 10);
                }
            }
            Reply::status(404)
        });
        SlowBase { server }
    }

    fn reference(&self) -> String {
        format!("{}/slow/base:1", self.server.host())
    }
}

// ---------------------------------------------------------------------------------------------------
// Tests

#[test]
fn sigterm_and_sighup_mid_write_remove_the_partial_archive_and_keep_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    // A valid static executable with 400 MB of noise appended: slow enough to interrupt.
    let big = tiny_elf::with_noise(Machine::X86_64, "big\n", 400 << 20);
    let program = tiny_elf::write(dir.path(), "big", &big);
    drop(big);
    let out = dir.path().join("big.tar");
    std::fs::write(&out, b"previous archive").unwrap();
    let home = tempfile::tempdir().unwrap();
    for signal in [Signal::TERM, Signal::HUP] {
        let mut child = zi(home.path())
            .arg(&program)
            .arg("-o")
            .arg(&out)
            .spawn()
            .unwrap();
        let _leftovers = Leftovers {
            groups: vec![child.id() as i32],
            pid_files: Vec::new(),
        };
        wait_until(
            "partial archive",
            Duration::from_secs(20),
            &mut child,
            || !partial_files(dir.path()).is_empty(),
        );
        send(&child, signal);
        let (status, err) = ended(&mut child, Duration::from_secs(10));
        assert_ended_by(status, &err, signal);
        assert_eq!(std::fs::read(&out).unwrap(), b"previous archive");
        assert_eq!(support::dir_listing(dir.path()), ["big", "big.tar"]);
    }
}

#[test]
fn sigterm_during_a_pull_leaves_no_partial_file_in_the_cache() {
    let base = SlowBase::start();
    let dir = tempfile::tempdir().unwrap();
    let program = static_program(dir.path());
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.tar");
    let mut child = zi(dir.path())
        .arg(&program)
        .args(["--from", &base.reference(), "-o"])
        .arg(&out)
        .env("ZEROIMAGE_CACHE_DIR", &cache)
        .spawn()
        .unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: Vec::new(),
    };
    wait_until(
        "partial file in the cache",
        Duration::from_secs(20),
        &mut child,
        || !partial_files(&cache).is_empty(),
    );
    send(&child, Signal::TERM);
    let (status, err) = ended(&mut child, Duration::from_secs(10));
    assert_ended_by(status, &err, Signal::TERM);
    assert_eq!(partial_files(dir.path()), Vec::<String>::new(), "{err}");
    assert!(!out.exists());
}

#[test]
fn sighup_during_a_pull_without_cache_removes_the_private_cache() {
    let base = SlowBase::start();
    let dir = tempfile::tempdir().unwrap();
    let program = static_program(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path().join("out.tar");
    let mut child = zi(dir.path())
        .arg(&program)
        .args(["--no-cache", "--from", &base.reference(), "-o"])
        .arg(&out)
        .env("TMPDIR", &tmp)
        .spawn()
        .unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: Vec::new(),
    };
    wait_until(
        "partial file in the private cache",
        Duration::from_secs(20),
        &mut child,
        || !partial_files(&tmp).is_empty(),
    );
    assert!(
        tree(&tmp).iter().any(|p| p.starts_with("zeroimage-cache-")),
        "{:?}",
        tree(&tmp)
    );
    send(&child, Signal::HUP);
    let (status, err) = ended(&mut child, Duration::from_secs(10));
    assert_ended_by(status, &err, Signal::HUP);
    assert_eq!(tree(&tmp), Vec::<String>::new(), "temporary files left");
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());
}

#[test]
fn sigterm_during_a_push_removes_the_spooled_layers() {
    // A registry that takes the upload request and then says nothing for a minute.
    let server = TestServer::start(|request: &Request| {
        let path = request.path();
        match request.method.as_str() {
            "GET" if path == "/v2/" => Reply::status(200).body("{}"),
            "HEAD" => Reply::status(404),
            "POST" => {
                std::thread::sleep(Duration::from_secs(60));
                Reply::status(500)
            }
            _ => Reply::status(404),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let program = static_program(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = zi(dir.path())
        .arg(&program)
        .arg("--push")
        .arg(format!("{}/team/app:1", server.host()))
        .env("TMPDIR", &tmp)
        .spawn()
        .unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: Vec::new(),
    };
    wait_until(
        "upload at the registry",
        Duration::from_secs(20),
        &mut child,
        || server.requests().iter().any(|r| r.method == "POST"),
    );
    assert!(!tree(&tmp).is_empty(), "the layers are spooled");
    send(&child, Signal::TERM);
    let (status, err) = ended(&mut child, Duration::from_secs(10));
    assert_ended_by(status, &err, Signal::TERM);
    assert_eq!(tree(&tmp), Vec::<String>::new(), "temporary files left");
}

#[test]
fn sigterm_while_a_credential_helper_runs_stops_it_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pids = dir.path().join("helper.pids");
    // The helper starts a child of its own, records both, and waits.
    let helper = bin.join("docker-credential-zisignals");
    std::fs::write(
        &helper,
        "#!/bin/sh\nsleep 300 &\necho \"$$ $!\" > \"$DOCKER_CONFIG/helper.pids.tmp\"\n\
         mv \"$DOCKER_CONFIG/helper.pids.tmp\" \"$DOCKER_CONFIG/helper.pids\"\nwait\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"credsStore": "zisignals"}"#,
    )
    .unwrap();
    let program = static_program(dir.path());
    let archive = dir.path().join("app.tar");
    support::package(&program, &archive, &["-q"]);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = zi(dir.path())
        .arg("push")
        .arg(&archive)
        .arg("127.0.0.1:9/team/app:1")
        .env("PATH", path)
        .spawn()
        .unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: vec![pids.clone()],
    };
    wait_until(
        "credential helper",
        Duration::from_secs(20),
        &mut child,
        || pids_in(&pids).len() == 2,
    );
    send(&child, Signal::TERM);
    let (status, err) = ended(&mut child, Duration::from_secs(10));
    assert_ended_by(status, &err, Signal::TERM);
    for pid in pids_in(&pids) {
        assert!(gone(pid), "process {pid} of the helper still runs");
    }
}

#[test]
fn an_ignored_sighup_stays_ignored_as_under_nohup() {
    let base = SlowBase::start();
    let dir = tempfile::tempdir().unwrap();
    let program = static_program(dir.path());
    let cache = dir.path().join("cache");
    let mut child = support::zeroimage_via("sh", &["-c", r#"trap '' HUP && exec "$0" "$@""#]);
    let mut child = child
        .env("DOCKER_CONFIG", dir.path())
        .env("HOME", dir.path())
        .env_remove("REGISTRY_AUTH_FILE")
        .env("ZEROIMAGE_CACHE_DIR", &cache)
        .own_process_group()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .arg(&program)
        .args(["--from", &base.reference(), "-o"])
        .arg(dir.path().join("out.tar"))
        .spawn()
        .unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: Vec::new(),
    };
    wait_until(
        "partial file in the cache",
        Duration::from_secs(20),
        &mut child,
        || !partial_files(&cache).is_empty(),
    );
    send(&child, Signal::HUP);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended on an ignored SIGHUP: {}",
        stderr_of(&mut child)
    );
    send(&child, Signal::TERM);
    let (status, err) = ended(&mut child, Duration::from_secs(10));
    assert_ended_by(status, &err, Signal::TERM);
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());
}

#[test]
fn sigint_to_cargo_zeroimage_alone_stops_cargo_and_its_build_script() {
    if !support::target_installed(support::X86_64_MUSL) {
        assert!(
            !support::peers_required(),
            "the {} target is required",
            support::X86_64_MUSL
        );
        eprintln!(
            "skipped: the {} target is not installed",
            support::X86_64_MUSL
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("slow-build");
    support::copy_fixture("slow-build", &krate);
    let target_dir = dir.path().join("target");
    let pids = dir.path().join("build-script.pids");
    let mut run = support::cargo_zeroimage();
    run.arg("--target")
        .arg(support::X86_64_MUSL)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("-o")
        .arg(dir.path().join("slow.tar"))
        .current_dir(&krate)
        .env("SLOW_BUILD_PIDS", &pids)
        .own_process_group()
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = run.spawn().unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: vec![pids.clone()],
    };
    // Compiling the build script takes a while on a busy machine.
    wait_until(
        "build script running",
        Duration::from_secs(300),
        &mut child,
        || pids_in(&pids).len() == 2,
    );
    send(&child, Signal::INT);
    let (status, err) = ended(&mut child, Duration::from_secs(10));
    assert_ended_by(status, &err, Signal::INT);
    let [script, cargo] = pids_in(&pids)[..] else {
        panic!("{:?}", pids_in(&pids))
    };
    assert!(gone(cargo), "cargo ({cargo}) still runs: {err}");
    assert!(
        gone(script),
        "the build script ({script}) still runs: {err}"
    );
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());

    // The target directory is free: the next build neither waits for a lock nor fails.
    let mut next = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--offline",
            "--target",
            support::X86_64_MUSL,
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(&krate)
        .env_remove("SLOW_BUILD_PIDS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = next.try_wait().unwrap() {
                break (status, stderr_of(&mut next));
            }
            if Instant::now() >= deadline {
                let _ = next.kill();
                let _ = next.wait();
                panic!(
                    "the next cargo build did not finish: {}",
                    stderr_of(&mut next)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(status.success(), "{err}");
    assert!(!err.contains("Blocking waiting for file lock"), "{err}");
}

#[test]
fn a_credential_helper_can_ask_on_the_terminal_when_the_run_is_its_foreground_job() {
    // `script` runs the command as the foreground job of a new terminal, as a user's shell does.
    let Some(script) = support::peer("script") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-zitty");
    std::fs::write(
        &helper,
        "#!/bin/sh\nprintf 'Password for the vault: ' > /dev/tty\nIFS= read -r answer < /dev/tty\n\
         echo \"$answer\" > \"$DOCKER_CONFIG/answer\"\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"credsStore": "zitty"}"#).unwrap();
    let program = static_program(dir.path());
    let archive = dir.path().join("app.tar");
    support::package(&program, &archive, &["-q"]);
    let command = format!(
        "'{}' push '{}' 127.0.0.1:9/team/app:1",
        support::bin_dir().join("zeroimage").display(),
        archive.display()
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let mut child = Command::new(script)
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("PATH", path)
        .env("DOCKER_CONFIG", dir.path())
        .env("HOME", dir.path())
        .env_remove("REGISTRY_AUTH_FILE")
        .env("ZEROIMAGE_CREDENTIAL_HELPER_TIMEOUT", "10")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _leftovers = Leftovers {
        groups: vec![child.id() as i32],
        pid_files: Vec::new(),
    };
    // Typed on the terminal; it waits in the terminal's input until the helper reads it.
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"s3cret\n").unwrap();
    let mut shown = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut shown).unwrap();
    let status = child.wait().unwrap();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "{shown}");
    assert!(shown.contains("Password for the vault"), "{shown}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("answer")).unwrap_or_default(),
        "s3cret\n",
        "the helper could not read the terminal: {shown}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}: {shown}");
}
