//! Shared test harness: fixture builds, synthetic ELF files, archive reading, and the peer-tool gate.
#![allow(dead_code)]

pub mod bases;
/// The binaries' own argument definitions, to know what a run will write.
#[path = "../../src/cli/mod.rs"]
#[allow(unused_imports)]
pub mod cli;
pub mod containerd;
pub mod crafted;
pub mod docker;
pub mod fake_registry;
pub mod http;
pub mod proxy;
pub mod registry;
pub mod sbom_tools;
pub mod sigstore;
pub mod tiny_elf;
pub mod token_server;
pub mod validate;
pub mod windows;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

pub const X86_64_MUSL: &str = "x86_64-unknown-linux-musl";
pub const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target dir shared by `cargo zeroimage` runs of the fixtures, for build caching. Runs that use
/// it take turns (see [`Zeroimage`]) and may not write their default archive there.
pub fn fixture_target_dir() -> PathBuf {
    root().join("target").join("fixtures")
}

/// Where [`fixture_binary`] builds: apart from [`fixture_target_dir`], so that no `cargo zeroimage`
/// run re-links a binary another test is reading.
fn fixture_binary_dir() -> PathBuf {
    root().join("target").join("fixture-binaries")
}

/// True when peers must be present (CI, the README's test command).
pub fn peers_required() -> bool {
    std::env::var("ZEROIMAGE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Finds an executable on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// The peer tool's path, or `None` after printing a visible skip message. With
/// ZEROIMAGE_REQUIRE_PEERS=1 a missing tool fails the test instead.
pub fn peer(tool: &str) -> Option<PathBuf> {
    peer_at(tool, which(tool))
}

/// Like [`peer`], for a tool at a fixed path.
pub fn peer_at(tool: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    match found {
        Some(path) => Some(path),
        None if peers_required() => {
            panic!(
                "{tool} is required (ZEROIMAGE_REQUIRE_PEERS=1) but was not found; run scripts/test"
            )
        }
        None => {
            eprintln!(
                "SKIPPED: {tool} is not installed; install it (scripts/test does) to run this test"
            );
            None
        }
    }
}

/// Skip (or fail, when peers are required) unless running as root: runc and podman need it here.
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    if peers_required() {
        panic!("{what} needs root (ZEROIMAGE_REQUIRE_PEERS=1)");
    }
    eprintln!("SKIPPED: {what} needs root");
    false
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether the Rust standard library for `target` is installed (its sysroot libdir exists).
pub fn target_installed(target: &str) -> bool {
    Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .is_ok_and(|o| {
            o.status.success() && Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir()
        })
}

/// Builds the `fixtures/hello` program for `target` (once per test process) and returns its path, or
/// `None` (with a skip message) when the target's standard library is missing.
pub fn hello_fixture(target: &str) -> Option<PathBuf> {
    fixture_binary("hello", target)
}

/// Builds the fixture crate `fixtures/NAME` (whose binary is also NAME) for `target`, once per test
/// process, in the shared fixture target dir.
pub fn fixture_binary(name: &str, target: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<BTreeMap<(String, String), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = (name.to_owned(), target.to_owned());
    if let Some(path) = built.get(&key) {
        return Some(path.clone());
    }
    if !target_installed(target) {
        if peers_required() {
            panic!("Rust target {target} is required; run `rustup target add {target}`");
        }
        eprintln!("SKIPPED: Rust target {target} is not installed (rustup target add {target})");
        return None;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--release",
        "--target",
        target,
        "--manifest-path",
    ])
    .arg(fixture_manifest(name))
    .arg("--target-dir")
    .arg(fixture_binary_dir());
    if target.contains("-linux-musl") && target != X86_64_MUSL {
        // Cross-link with the linker that ships with Rust: no C cross toolchain needed.
        let var = format!(
            "CARGO_TARGET_{}_LINKER",
            target.to_uppercase().replace('-', "_")
        );
        cmd.env(var, "rust-lld");
    }
    let status = cmd.status().expect("running cargo build for the fixture");
    assert!(
        status.success(),
        "building fixtures/{name} for {target} failed"
    );
    let path = fixture_binary_dir().join(target).join("release").join(name);
    assert!(path.is_file(), "{} missing after build", path.display());
    built.insert(key, path.clone());
    Some(path)
}

/// Parses the probe fixture's `key=value` lines.
pub fn probe_report(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// This test binary again, to run only the test `name` of the module `module` (its `module_path!()`)
/// in a child process: a test that needs the process environment changed (PATH, HOME) gives it to
/// the child instead, so that the tests running beside it in this process are not affected.
pub fn this_test_in_child(module: &str, name: &str) -> Command {
    // Test names leave out the crate: `pull::name` in the crate `registry`.
    let full = match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    };
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([&full, "--exact", "--nocapture", "--test-threads=1"]);
    cmd
}

/// Asserts that a run of [`this_test_in_child`] ran its one test and that it passed.
pub fn assert_child_passed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `zeroimage` binary under test, as a [`Zeroimage`] run that claims the archive it writes.
pub fn zeroimage() -> Zeroimage {
    Zeroimage::new(Tool::Zeroimage, None)
}

/// `zeroimage` with a docker config directory of the test's own (`DOCKER_CONFIG`, `HOME` and
/// `XDG_RUNTIME_DIR` there, no `REGISTRY_AUTH_FILE`): none of the machine's credentials are read, and
/// what `login` stores stays in the test's directory.
pub fn isolated_zeroimage(config_dir: &Path) -> Zeroimage {
    let mut run = zeroimage();
    run.env("DOCKER_CONFIG", config_dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("XDG_RUNTIME_DIR", config_dir.join("runtime"))
        .env("HOME", config_dir);
    run
}

/// `fixtures/NAME/Cargo.toml`.
pub fn fixture_manifest(name: &str) -> PathBuf {
    root().join("fixtures").join(name).join("Cargo.toml")
}

/// The `fixtures/probe` program (it prints its uid, gid, cwd, argv, environment and a file as
/// `key=value` lines), built for x86-64 musl; `None` (with a skip message) without that target.
pub fn probe_fixture() -> Option<PathBuf> {
    fixture_binary("probe", X86_64_MUSL)
}

/// `zeroimage` started through another program, e.g. `sh -c 'umask 077 && exec "$0" "$@"'` or
/// `setpriv ... --`: `program` and `args` come first, then the binary and its arguments.
pub fn zeroimage_via(program: impl AsRef<OsStr>, args: &[&str]) -> Zeroimage {
    let mut run = Zeroimage::new(Tool::Zeroimage, Some(program.as_ref()));
    run.cmd.args(args).arg(env!("CARGO_BIN_EXE_zeroimage"));
    run.skip = args.len() + 1;
    run
}

/// `cargo zeroimage` as cargo runs it (`cargo-zeroimage zeroimage ...`), with fixture builds in the
/// shared fixture target dir. A run that would write its default archive there is refused by the
/// claim check: give it `-o` in a tempdir, or its own `--target-dir`.
pub fn cargo_zeroimage() -> Zeroimage {
    let mut run = Zeroimage::new(Tool::Cargo, None);
    run.cmd
        .arg("zeroimage")
        .env("CARGO_TARGET_DIR", fixture_target_dir());
    run
}

/// The directory holding the binaries under test, for a PATH that finds them.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_zeroimage"))
        .parent()
        .expect("binary directory")
        .to_owned()
}

/// The signals tests send (SIGINT, SIGTERM, SIGHUP) at their default disposition in the run: a test
/// suite started from a script's background job inherits SIGINT ignored, and the tool keeps an
/// ignored signal ignored, as cargo does.
fn default_signals(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: between fork and exec only `signal`, which is async-signal-safe, is called.
        unsafe {
            cmd.pre_exec(|| {
                for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = cmd;
}

/// Which binary a [`Zeroimage`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Zeroimage,
    Cargo,
}

/// A run of `zeroimage` or `cargo zeroimage`. Only the `Command` methods tests need are offered, and
/// every way of starting it ([`output`](Self::output), [`status`](Self::status),
/// [`spawn`](Self::spawn), [`run_ok`]) first claims the archive path it will write, so two tests that
/// write the same file fail with both names instead of racing.
pub struct Zeroimage {
    cmd: Command,
    tool: Tool,
    /// Arguments before the tool's own: a wrapper program's, then the binary's path.
    skip: usize,
}

impl Zeroimage {
    fn new(tool: Tool, via: Option<&OsStr>) -> Zeroimage {
        let binary = match tool {
            Tool::Zeroimage => env!("CARGO_BIN_EXE_zeroimage"),
            Tool::Cargo => env!("CARGO_BIN_EXE_cargo-zeroimage"),
        };
        let mut cmd = Command::new(via.unwrap_or(OsStr::new(binary)));
        cmd.env_remove("SOURCE_DATE_EPOCH");
        default_signals(&mut cmd);
        Zeroimage { cmd, tool, skip: 0 }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Zeroimage {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Zeroimage
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Zeroimage {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Zeroimage {
        self.cmd.env_remove(key);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Zeroimage {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Zeroimage {
        self.cmd.stdin(cfg);
        self
    }

    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Zeroimage {
        self.cmd.stdout(cfg);
        self
    }

    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Zeroimage {
        self.cmd.stderr(cfg);
        self
    }

    /// Starts the run in a process group of its own, as `timeout`, CI runners and service managers
    /// do, and never as a terminal's foreground job (whatever terminal the tests run in).
    pub fn own_process_group(&mut self) -> &mut Zeroimage {
        std::os::unix::process::CommandExt::process_group(&mut self.cmd, 0);
        self
    }

    /// Runs to the end; after a success, every archive the run wrote passes [`validate::archive`]
    /// (with `-o -`, the archive it wrote to standard output).
    pub fn output(&mut self) -> std::io::Result<Output> {
        self.claim();
        let started = std::time::SystemTime::now();
        let output = {
            let _turn = self.shared_build_turn();
            self.cmd.output()?
        };
        if output.status.success() {
            self.validate_written(started, &output.stdout, &output.stderr);
        }
        Ok(output)
    }

    /// Like [`output`](Self::output), with the run's output streams inherited (so only the archive
    /// named by the arguments is validated).
    pub fn status(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.claim();
        let started = std::time::SystemTime::now();
        let status = {
            let _turn = self.shared_build_turn();
            self.cmd.status()?
        };
        if status.success() {
            self.validate_written(started, &[], &[]);
        }
        Ok(status)
    }

    /// Validates what a successful run wrote: the archive its arguments name (`-o`, else the
    /// default), each archive a `Written PATH (...)` status line names (the only way to know where
    /// `cargo zeroimage` wrote without `-o`: its target dir, `output` in Cargo.toml, one archive per
    /// binary), each `path` of a `--message-format json` summary (the same, with `-q`), and with
    /// `-o -` the archive on standard output when it was captured. When what the run writes is a
    /// target dir of the test's own (`cargo zeroimage` without `-o`, `resolve`), each `.tar` written
    /// there since `started` where cargo zeroimage puts its archives is checked too. Devices, FIFOs
    /// and links into /proc or /dev are skipped. The `--oci-layout` directory is checked as a layout
    /// (see [`validate::layout_dir`]). A run that wrote no archive (a push, `--load`, `--help`) is
    /// only logged (see [`validate::log`]).
    fn validate_written(&self, started: std::time::SystemTime, stdout: &[u8], stderr: &[u8]) {
        let cwd = self.cwd();
        let mut paths = std::collections::BTreeSet::new();
        if let Some(path) = self.archive_path() {
            if path.is_dir() {
                paths.extend(archives_in_target_dir(&path, started));
            } else {
                paths.insert(path);
            }
        }
        paths.extend(written_archives(stderr).into_iter().map(|p| cwd.join(p)));
        paths.extend(json_archives(stdout).into_iter().map(|p| cwd.join(p)));
        let mut checked = 0;
        for path in paths {
            let is_file =
                !through_proc_or_dev(&path) && std::fs::metadata(&path).is_ok_and(|m| m.is_file());
            if is_file {
                validate::archive(&path);
                checked += 1;
            }
        }
        if let Some(layout) = self.oci_layout().filter(|dir| dir.is_dir()) {
            validate::layout_dir(&layout);
            checked += 1;
        }
        let streamed = self.destination().is_some_and(|d| d.as_os_str() == "-");
        if streamed && !stdout.is_empty() {
            validate::archive_bytes(stdout);
            checked += 1;
        }
        if checked == 0 {
            let args: Vec<String> = self
                .own_args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            validate::log(&format!("no archive checked\t{}", args.join(" ")));
        }
    }

    /// Starts the run without waiting for it, so a `cargo zeroimage` build in the shared fixture
    /// target dir is not serialized (see [`shared_build_turn`](Self::shared_build_turn)): tests spawn
    /// only `zeroimage`.
    pub fn spawn(&mut self) -> std::io::Result<std::process::Child> {
        self.claim();
        assert!(
            self.cargo_target_dir().as_deref() != Some(&fixture_target_dir()),
            "spawn a cargo zeroimage run only with its own target dir"
        );
        self.cmd.spawn()
    }

    /// For a `cargo zeroimage` run in the shared fixture target dir, the turn to build and package
    /// alone. Cargo's lock covers only the build: on every build, fresh or not, cargo re-links
    /// `<profile>/<bin>` (removes it, then links it again), and crates of the same name (copies of a
    /// fixture) or other features give that file other contents. Holding the turn until the run has
    /// packaged the binary keeps another test's build from changing it underneath.
    fn shared_build_turn(&self) -> Option<std::sync::MutexGuard<'static, ()>> {
        static TURN: Mutex<()> = Mutex::new(());
        (self.cargo_target_dir().as_deref() == Some(&fixture_target_dir()))
            .then(|| TURN.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `cargo zeroimage`'s target dir: `--target-dir`, else `CARGO_TARGET_DIR` as the child sees it.
    fn cargo_target_dir(&self) -> Option<PathBuf> {
        use clap::Parser;
        use cli::cargo_zeroimage::CargoCli;
        if self.tool != Tool::Cargo {
            return None;
        }
        let args = std::iter::once("cargo".into()).chain(self.own_args());
        let CargoCli::Zeroimage(parsed) = CargoCli::try_parse_from(args).ok()?;
        let given = match parsed.command {
            Some(cli::cargo_zeroimage::CargoCommand::Resolve(resolve)) => resolve.cargo.target_dir,
            None => parsed.cargo.build.target_dir,
        };
        let dir = given.or_else(|| self.child_env("CARGO_TARGET_DIR").map(PathBuf::from))?;
        Some(self.cwd().join(dir))
    }

    fn own_args(&self) -> Vec<OsString> {
        self.cmd
            .get_args()
            .skip(self.skip)
            .map(OsStr::to_owned)
            .collect()
    }

    fn cwd(&self) -> PathBuf {
        let here = std::env::current_dir().expect("current directory");
        match self.cmd.get_current_dir() {
            Some(dir) => here.join(dir),
            None => here,
        }
    }

    /// The environment variable as the child will see it.
    fn child_env(&self, key: &str) -> Option<OsString> {
        match self.cmd.get_envs().find(|(k, _)| *k == OsStr::new(key)) {
            Some((_, value)) => value.map(OsStr::to_owned),
            None => std::env::var_os(key),
        }
    }

    fn claim(&self) {
        if let Some(path) = self.archive_path() {
            claim_output(&path);
        }
        if let Some(layout) = self.oci_layout() {
            claim_output(&layout);
        }
    }

    /// The OCI layout directory `--oci-layout` names (relative to the run's working directory).
    fn oci_layout(&self) -> Option<PathBuf> {
        use clap::Parser;
        use cli::cargo_zeroimage::CargoCli;
        use cli::zeroimage::ZeroimageArgs;
        let args = self.own_args();
        let layout = match self.tool {
            Tool::Zeroimage => {
                ZeroimageArgs::try_parse_from(std::iter::once("zeroimage".into()).chain(args))
                    .ok()?
                    .output
                    .oci_layout
            }
            Tool::Cargo => {
                let CargoCli::Zeroimage(parsed) =
                    CargoCli::try_parse_from(std::iter::once("cargo".into()).chain(args)).ok()?;
                parsed.output.oci_layout
            }
        };
        layout.map(|dir| self.cwd().join(dir))
    }

    /// What this run writes, parsed with the binaries' own argument definitions: `-o`, else the
    /// default. For `cargo zeroimage` the default lies somewhere in the target dir, which is then
    /// claimed whole. `None` when nothing is written (usage errors, `--help`, subcommands, `-o -`).
    fn archive_path(&self) -> Option<PathBuf> {
        let path = self.destination()?;
        if path.as_os_str() == "-" {
            return None;
        }
        let path = self.cwd().join(path);
        // Devices and FIFOs are not files two tests could clobber; nor is a link into /proc or /dev
        // (`/proc/self/fd/1` is the child's own stdout, whatever this process's stdout is).
        let special = through_proc_or_dev(&path)
            || std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_char_device() || m.file_type().is_fifo()
            });
        (!special).then_some(path)
    }

    /// Where this run writes, as its arguments say (`-` for standard output; relative to its working
    /// directory), or the target dir its default lies in; `None` when nothing is written.
    fn destination(&self) -> Option<PathBuf> {
        use clap::Parser;
        use cli::cargo_zeroimage::CargoCli;
        use cli::zeroimage::ZeroimageArgs;
        let args = self.own_args();
        let path = match self.tool {
            Tool::Zeroimage => {
                let parsed =
                    ZeroimageArgs::try_parse_from(std::iter::once("zeroimage".into()).chain(args))
                        .ok()?;
                if parsed.command.is_some() {
                    return None;
                }
                match (&parsed.output.output, &parsed.entrypoint) {
                    (Some(output), _) => output.clone(),
                    (None, _)
                        if !parsed.push.push.is_empty()
                            || !parsed.load.load.is_empty()
                            || parsed.output.oci_layout.is_some() =>
                    {
                        return None;
                    }
                    (None, Some(program)) => zeroimage::job::package::default_output(program),
                    (None, None) => {
                        let inputs: Vec<_> = parsed
                            .platform_binary
                            .iter()
                            .map(|(_, path)| zeroimage::job::package::Input {
                                path: path.clone(),
                                platform: Default::default(),
                            })
                            .collect();
                        let entrypoint = zeroimage::job::package::entrypoint_path(
                            &inputs,
                            &parsed.config.options(),
                        )
                        .ok()?;
                        PathBuf::from(format!("{}.tar", entrypoint.rsplit('/').next()?))
                    }
                }
            }
            Tool::Cargo => {
                let CargoCli::Zeroimage(parsed) =
                    CargoCli::try_parse_from(std::iter::once("cargo".into()).chain(args)).ok()?;
                if parsed.command.is_some() {
                    // `resolve` writes its archives in the target dir: claim that.
                    return self.cargo_target_dir().filter(|dir| {
                        assert!(
                            *dir != fixture_target_dir(),
                            "{}: resolve would write archives into the shared fixture target dir",
                            test_name()
                        );
                        true
                    });
                }
                match &parsed.output.output {
                    Some(output) => output.clone(),
                    // Only the layout is written (unless Cargo.toml says `output`).
                    None if parsed.output.oci_layout.is_some() => return None,
                    None => {
                        let target_dir = self.cargo_target_dir().unwrap_or_else(|| {
                            panic!(
                                "cargo zeroimage without -o, --target-dir or CARGO_TARGET_DIR: \
                                 the test cannot tell where it writes"
                            )
                        });
                        assert!(
                            target_dir != fixture_target_dir(),
                            "{}: cargo zeroimage would write its archive into the shared fixture \
                             target dir {}; give it -o in a tempdir, or its own --target-dir",
                            test_name(),
                            target_dir.display()
                        );
                        target_dir
                    }
                }
            }
        };
        Some(path)
    }
}

/// The paths of the `Written PATH (TAG, DIGEST, SIZE)` status lines of a run's stderr, as printed
/// (relative to the run's working directory, or absolute); never `standard output`.
pub fn written_archives(stderr: &[u8]) -> Vec<PathBuf> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("Written "))
        .filter_map(|rest| rest.rsplit_once(" (").map(|(path, _)| path))
        .filter(|path| *path != "standard output")
        .map(PathBuf::from)
        .collect()
}

/// Levels below a target dir where `cargo zeroimage` writes its archives: `<triple>/<profile>/`,
/// `zeroimage/<profile>/` (several targets) or `<profile>/`.
const TARGET_DIR_ARCHIVE_DEPTH: usize = 3;

/// The `.tar` files in a target dir where `cargo zeroimage` writes archives (cargo's own directories
/// left out), modified since `since` (less two seconds: the kernel stamps files with a clock that
/// lags the system time by up to a tick).
pub fn archives_in_target_dir(dir: &Path, since: std::time::SystemTime) -> Vec<PathBuf> {
    const CARGO_DIRS: [&str; 5] = ["build", "deps", "examples", "incremental", ".fingerprint"];
    let since = since - std::time::Duration::from_secs(2);
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_owned(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let name = entry.file_name();
            if meta.is_dir() {
                let cargo_own = CARGO_DIRS.iter().any(|d| name == OsStr::new(d));
                if depth < TARGET_DIR_ARCHIVE_DEPTH && !cargo_own {
                    pending.push((path, depth + 1));
                }
            } else if meta.is_file()
                && path.extension() == Some(OsStr::new("tar"))
                && meta.modified().is_ok_and(|m| m >= since)
            {
                found.push(path);
            }
        }
    }
    found
}

/// The `path` of each `--message-format json` summary line of a run's stdout (one object per image;
/// empty when only pushing or loading).
pub fn json_archives(stdout: &[u8]) -> Vec<PathBuf> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|summary| summary["path"].as_str().map(PathBuf::from))
        .filter(|path| !path.as_os_str().is_empty())
        .collect()
}

/// True when `path`, or a symbolic link on the way to its target, names something under /proc or /dev.
fn through_proc_or_dev(path: &Path) -> bool {
    let mut current = path.to_owned();
    for _ in 0..40 {
        if current.starts_with("/proc") || current.starts_with("/dev") {
            return true;
        }
        match std::fs::read_link(&current) {
            Ok(target) => {
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed thread>")
        .to_owned()
}

/// Records that the running test writes `path` (an archive, or a target dir it owns), and fails when
/// another test of this process already did: parallel tests must never share an output.
pub fn claim_output(path: &Path) {
    static CLAIMS: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
    let key = canonical(path);
    let me = test_name();
    let mut claims = CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
    match claims.get(&key) {
        Some(owner) if *owner != me => panic!(
            "tests `{owner}` and `{me}` both write {}: give each test its own output (a tempdir)",
            key.display()
        ),
        Some(_) => {}
        None => {
            claims.insert(key, me);
        }
    }
}

/// `path` with its directory resolved (the file itself may not exist yet).
fn canonical(path: &Path) -> PathBuf {
    if let Ok(path) = path.canonicalize() {
        return path;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => canonical(dir).join(name),
        _ => path.to_owned(),
    }
}

/// Something [`run_ok`] can run: a plain `Command`, or a [`Zeroimage`] run (which claims its output).
pub trait Run: std::fmt::Debug {
    fn run(&mut self) -> std::io::Result<Output>;
}

impl Run for Command {
    fn run(&mut self) -> std::io::Result<Output> {
        self.output()
    }
}

impl Run for Zeroimage {
    fn run(&mut self) -> std::io::Result<Output> {
        self.output()
    }
}

impl std::fmt::Debug for Zeroimage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cmd.fmt(f)
    }
}

/// Runs a program a test has just written (unpacked from an image) and returns its output, failing
/// the test when it fails. A child forked by another test thread while the program was being written
/// holds it open for writing until its exec: running it fails with ETXTBSY for that moment, so that
/// error is retried.
pub fn run_written_program(program: &Path, args: &[&str]) -> Output {
    let mut attempts = 0;
    let output = loop {
        match Command::new(program).args(args).output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => break result.unwrap_or_else(|e| panic!("{}: {e}", program.display())),
        }
    };
    assert!(
        output.status.success(),
        "{} failed with {}\nstdout:\n{}\nstderr:\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command and returns its output, failing the test with stdout/stderr when it fails.
pub fn run_ok(cmd: &mut impl Run) -> Output {
    let output = cmd
        .run()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A run's standard output as JSON (`--message-format json`), failing the test with the text when it
/// is not.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(output)))
}

/// Packages `input` into `output` with extra arguments, asserting success.
pub fn package(input: &Path, output: &Path, extra: &[&str]) -> Output {
    run_ok(zeroimage().arg(input).arg("-o").arg(output).args(extra))
}

/// Every regular entry of a tar file, by name.
pub fn read_tar(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(file);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("entry data");
        entries.insert(name, data);
    }
    entries
}

/// A JSON document from an archive.
pub fn json_entry(entries: &BTreeMap<String, Vec<u8>>, name: &str) -> serde_json::Value {
    let bytes = entries
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from archive"));
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `blobs/sha256/<hex>` for a `sha256:<hex>` digest value.
pub fn blob_name(digest: &serde_json::Value) -> String {
    let digest = digest.as_str().expect("digest string");
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// sha256 of a file, as `sha256:<hex>`.
pub fn file_digest(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    zeroimage::oci::Digest::of(&bytes).to_string()
}

/// sha256 of some bytes, as `sha256:<hex>`.
pub fn file_digest_of_bytes(text: &str) -> String {
    zeroimage::oci::Digest::of(text.as_bytes()).to_string()
}

/// Extracts the archive to a directory (an OCI image layout).
pub fn extract(archive: &Path, dir: &Path) {
    let file = std::fs::File::open(archive).expect("open archive");
    tar::Archive::new(file).unpack(dir).expect("unpack archive");
}

/// Files in `dir`, for checking that nothing partial was left behind.
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A unique short name for containers, images and daemons of this test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Unpacks the (single) image's layers from an archive into `dest`, as a container's root filesystem.
pub fn unpack_rootfs(archive: &Path, dest: &Path) {
    let entries = read_tar(archive);
    let index = json_entry(&entries, "index.json");
    let manifest = json_entry(&entries, &blob_name(&index["manifests"][0]["digest"]));
    for layer in manifest["layers"].as_array().expect("layers") {
        let blob = &entries[&blob_name(&layer["digest"])];
        let mut layer_tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        layer_tar.unpack(dest).expect("unpack layer");
    }
}

/// Unpacks the image `reference` (its ref.name) of an archive with umoci, as a runtime would; returns
/// the temporary directory and the root filesystem in it, or `None` when umoci is missing.
pub fn unpack_with_umoci(archive: &Path, reference: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let umoci = peer("umoci")?;
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = dir.path().join("layout");
    extract(archive, &layout);
    let bundle = dir.path().join("bundle");
    run_ok(
        Command::new(&umoci)
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle),
    );
    Some((dir, bundle.join("rootfs")))
}

/// The image config of the (single) image in an archive.
pub fn image_config(archive: &Path) -> serde_json::Value {
    let entries = read_tar(archive);
    let index = json_entry(&entries, "index.json");
    let manifest = json_entry(&entries, &blob_name(&index["manifests"][0]["digest"]));
    json_entry(&entries, &blob_name(&manifest["config"]["digest"]))
}

/// The image manifest of the (single) image in an archive.
pub fn image_manifest(archive: &Path) -> serde_json::Value {
    let entries = read_tar(archive);
    let index = json_entry(&entries, "index.json");
    json_entry(&entries, &blob_name(&index["manifests"][0]["digest"]))
}

/// Unpacks the image `reference` (its ref.name, i.e. the tag) with umoci and runs it with runc, with
/// `args` appended to the entrypoint and `env` added; returns stdout. `None` when the tools are missing.
pub fn run_in_runc(archive: &Path, reference: &str, args: &[&str], env: &[&str]) -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = dir.path().join("layout");
    extract(archive, &layout);
    run_layout_in_runc(&layout, reference, args, env)
}

/// Like [`run_in_runc`], for an OCI image layout directory.
pub fn run_layout_in_runc(
    layout: &Path,
    reference: &str,
    args: &[&str],
    env: &[&str],
) -> Option<String> {
    let umoci = peer("umoci")?;
    let runc = peer("runc")?;
    if !require_root("runc") {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = dir.path().join("bundle");
    run_ok(
        Command::new(&umoci)
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle),
    );
    let config_path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("config.json"))
            .expect("runtime spec");
    // umoci asks for a terminal; tests have none.
    spec["process"]["terminal"] = false.into();
    let process_args = spec["process"]["args"].as_array_mut().expect("args");
    process_args.extend(args.iter().map(|a| serde_json::Value::from(*a)));
    let process_env = spec["process"]["env"].as_array_mut().expect("env");
    process_env.extend(env.iter().map(|e| serde_json::Value::from(*e)));
    std::fs::write(&config_path, serde_json::to_vec(&spec).expect("spec"))
        .expect("write config.json");
    let output = run_ok(
        Command::new(&runc)
            .arg("--root")
            .arg(dir.path().join("runc-state"))
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(unique("zi-runc"))
            .stdin(std::process::Stdio::null()),
    );
    Some(stdout_of(&output))
}

/// Copies a fixture directory (without build output) to `dest`.
pub fn copy_fixture(name: &str, dest: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(root().join("fixtures").join(name))
        .arg(dest)
        .status()
        .expect("cp");
    assert!(status.success(), "copying fixture {name}");
}

/// A fresh self-signed certificate and its key, `dir/STEM.pem` and `dir/STEM.key`, made by openssl.
pub fn self_signed_certificate(dir: &Path, stem: &str, common_name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{stem}.key"));
    let cert = dir.join(format!("{stem}.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            ])
            .arg(format!("/CN={common_name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}
