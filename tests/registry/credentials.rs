//! Credential helpers are programs on PATH. The first test calls the library directly, in a child
//! process (this test binary again) given a PATH of its own; the others run the `zeroimage` binary with
//! a PATH of their own: this process's environment never changes, so nothing races.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support;
use support::tiny_elf::{self, Machine, Shape};
use zeroimage::Context;
use zeroimage::registry::credentials::{Credential, lookup_in};
use zeroimage::report::Silent;

/// Set in the child process [`credential_helpers_are_asked_and_not_found_means_anonymous`] runs
/// itself in: the config file the library reads.
const CHILD_CONFIG: &str = "ZI_CREDENTIALS_CHILD_CONFIG";

#[test]
fn credential_helpers_are_asked_and_not_found_means_anonymous() {
    if let Some(file) = std::env::var_os(CHILD_CONFIG) {
        // In the child, whose PATH finds the helper.
        let file = PathBuf::from(file);
        assert_eq!(
            lookup_in(&file, "helped.example.com", &Context::new(&Silent)).unwrap(),
            Some(Credential::Basic {
                username: "bob".into(),
                password: "pw".into()
            }),
            "credHelpers entry"
        );
        assert_eq!(
            lookup_in(&file, "token.example.com", &Context::new(&Silent)).unwrap(),
            Some(Credential::IdentityToken("refresh".into())),
            "credsStore, identity token"
        );
        assert_eq!(
            lookup_in(&file, "unknown.example.com", &Context::new(&Silent)).unwrap(),
            None,
            "the store says not found"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-zitest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nif [ \"$server\" = helped.example.com ]; then\n\
         echo '{\"ServerURL\":\"helped.example.com\",\"Username\":\"bob\",\"Secret\":\"pw\"}'\n\
         elif [ \"$server\" = token.example.com ]; then\n\
         echo '{\"ServerURL\":\"token.example.com\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\n\
         else echo 'credentials not found in native keychain'; exit 1; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(
        &file,
        r#"{"credHelpers": {"helped.example.com": "zitest"}, "credsStore": "zitest"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = support::this_test_in_child(
        module_path!(),
        "credential_helpers_are_asked_and_not_found_means_anonymous",
    )
    .env("PATH", path)
    .env(CHILD_CONFIG, &file)
    .output()
    .unwrap();
    support::assert_child_passed(&output);
}

/// A directory holding `docker-credential-zitest` with the given shell script body, and a docker config
/// that uses it as the credentials store.
fn helper_setup(script: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-zitest");
    std::fs::write(&helper, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"credsStore": "zitest"}"#,
    )
    .unwrap();
    (dir, bin)
}

/// `zeroimage push` of a small archive to a port nobody listens on: the credential lookup comes first.
fn push_with_helper(dir: &Path, bin: &Path, limit: Option<&str>) -> (Output, Duration) {
    let program = tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    let archive = dir.join("app.tar");
    support::package(&program, &archive, &["-q"]);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let limit = limit.map(|l| format!("--as={l}"));
    let mut cmd = match &limit {
        Some(limit) => support::zeroimage_via("prlimit", &[limit]),
        None => support::zeroimage(),
    };
    // Not a terminal's foreground job (where helpers share our process group), whatever terminal the
    // tests run in.
    cmd.own_process_group();
    cmd.arg("push")
        .arg(&archive)
        .arg("127.0.0.1:9/team/app:1")
        .env("PATH", path)
        .env("DOCKER_CONFIG", dir)
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("ZEROIMAGE_CREDENTIAL_HELPER_TIMEOUT", "2");
    let started = Instant::now();
    let output = cmd.output().unwrap();
    (output, started.elapsed())
}

fn one_error_line(output: &Output) -> String {
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn a_helper_that_hangs_is_stopped_after_the_time_limit() {
    let (dir, bin) = helper_setup("echo $$ > \"$DOCKER_CONFIG/helper.pid\"\nexec sleep 300");
    let pidfile = dir.path().join("helper.pid");
    let (output, took) = push_with_helper(dir.path(), &bin, None);
    let err = one_error_line(&output);
    assert!(err.contains("did not finish within 2 s"), "{err}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the helper was left running"
    );
}

#[test]
fn a_helper_stopped_after_the_time_limit_takes_its_own_children_with_it() {
    let (dir, bin) =
        helper_setup("sleep 300 &\necho \"$$ $!\" > \"$DOCKER_CONFIG/helper.pids\"\nwait");
    let pids = || -> Vec<i32> {
        std::fs::read_to_string(dir.path().join("helper.pids"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let (output, took) = push_with_helper(dir.path(), &bin, None);
    let running: Vec<i32> = pids().into_iter().filter(|pid| running(*pid)).collect();
    // Whatever happened, nothing of the helper outlives the test.
    for pid in &running {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let err = one_error_line(&output);
    assert!(err.contains("did not finish within 2 s"), "{err}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(pids().len(), 2, "the helper ran");
    assert_eq!(
        running,
        Vec::<i32>::new(),
        "left running: the helper's own child"
    );
}

/// True while process `pid` runs (within a short wait for a killed one to end); a zombie does not.
fn running(pid: i32) -> bool {
    let state = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().next().map(str::to_owned)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match state() {
            Some(state) if !matches!(state.as_str(), "Z" | "X" | "x") => {}
            _ => return false,
        }
        if Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_helper_that_floods_its_output_is_stopped_and_memory_stays_small() {
    if support::peer("prlimit").is_none() {
        return;
    }
    let (dir, bin) = helper_setup("head -c 300000000 /dev/zero | tr '\\0' 'x'");
    let (output, _) = push_with_helper(dir.path(), &bin, Some(&(256u64 << 20).to_string()));
    let err = one_error_line(&output);
    assert!(err.contains("printed more than"), "{err}");
    assert!(err.len() < 500, "{} bytes", err.len());
}

#[test]
fn a_helpers_error_text_is_escaped_and_never_carries_its_secrets() {
    let (dir, bin) = helper_setup(
        "printf 'refresh failed for token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\\033[2J\\r\\n' >&2\nexit 3",
    );
    let (output, _) = push_with_helper(dir.path(), &bin, None);
    let err = one_error_line(&output);
    assert!(err.contains("docker-credential-zitest failed"), "{err}");
    assert!(!err.contains("eyJhbGciOiJSUzI1NiJ9"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}
