//! zig and cargo-zigbuild, found without running code from the working directory.
//!
//! cargo-zigbuild finds zig as `python3 -m ziglang` first, which imports `ziglang` from the current
//! directory before the installed package: a `ziglang.py` or `ziglang/__main__.py` in the directory
//! a build runs from (ours, or a build script's: the crate's own directory) would run with the
//! user's rights. So zig is looked for only when cargo-zigbuild is installed; Python is asked where
//! the installed package is from a fresh empty directory, with `-I` (isolated: neither the working
//! directory nor the user's environment on its path), then without it (a `pip install --user`
//! package, as cargo-zigbuild would see it, still from the empty directory); the zig binary found
//! there is run and its version checked, and cargo-zigbuild is handed that binary, so that neither it
//! nor its wrappers run Python.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cargo_metadata::semver::Version;

use crate::util::cancel::CancelToken;
use crate::util::fsutil::{is_program, program_in};

/// How long one probe (Python locating `ziglang`, `zig version`) may take: a cold Python start on a
/// loaded machine takes about a second; one that hangs must not hold the build.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a probe may print: a path or a version takes far less.
const PROBE_OUTPUT_LIMIT: u64 = 4096;

/// The oldest zig cargo-zigbuild accepts.
const ZIG_MIN_VERSION: Version = Version::new(0, 9, 0);

/// Asks Python where the installed `ziglang` package is, without importing it: its directory, as
/// bytes, on one line.
const LOCATE_ZIGLANG: &str = "import importlib.util as u, os, sys\n\
s = u.find_spec('ziglang')\n\
if s is None or not s.submodule_search_locations: sys.exit(1)\n\
sys.stdout.buffer.write(os.fsencode(os.path.realpath(list(s.submodule_search_locations)[0])) + b'\\n')\n";

/// zig and cargo-zigbuild, both found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Zig {
    pub cargo_zigbuild: PathBuf,
    /// The zig binary, checked: cargo-zigbuild is told to run exactly this one.
    pub command: PathBuf,
    /// The version of zig and where it is, e.g. `zig 0.14.1 (/venv/.../ziglang/zig, from python3's
    /// ziglang package)`.
    pub zig: String,
}

impl Zig {
    /// The environment that makes cargo-zigbuild (and the `zig cc` wrappers it gives build scripts and
    /// rustc) run `command` rather than look for zig again, `python3 -m ziglang` first. Recent
    /// cargo-zigbuild releases (0.24.1 here) read the first two variables; older ones (0.22.3 does
    /// not know them) read the next two: a Python path that cannot exist (under the zig file) makes
    /// them skip Python for the zig path.
    pub fn env(&self) -> Vec<(String, OsString)> {
        let command = self.command.clone().into_os_string();
        let mut no_python = command.clone();
        no_python.push("/python3");
        vec![
            ("CARGO_ZIGBUILD_ZIG_COMMAND".to_owned(), command.clone()),
            (
                "CARGO_ZIGBUILD_ZIG_COMMAND_ARGS".to_owned(),
                OsString::new(),
            ),
            ("CARGO_ZIGBUILD_ZIG_PATH".to_owned(), command),
            ("CARGO_ZIGBUILD_PYTHON_PATH".to_owned(), no_python),
        ]
    }
}

/// What is missing for zig builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZigMissing {
    pub cargo_zigbuild: bool,
    pub zig: bool,
}

impl ZigMissing {
    /// The install commands for what is missing.
    pub fn install(self) -> &'static str {
        match (self.cargo_zigbuild, self.zig) {
            (false, true) => {
                "install zig (`pip install ziglang`, or zig on PATH; cargo-zigbuild is installed)"
            }
            (true, false) => {
                "install cargo-zigbuild (`pip install cargo-zigbuild` or `cargo install --locked \
                 cargo-zigbuild`; zig is installed)"
            }
            _ => {
                "install zig and cargo-zigbuild (`pip install ziglang cargo-zigbuild`, or `cargo install \
                 --locked cargo-zigbuild` and zig on PATH)"
            }
        }
    }
}

impl ZigMissing {
    /// The shortest command installing what is missing.
    pub fn pip(self) -> &'static str {
        match (self.cargo_zigbuild, self.zig) {
            (false, true) => "pip install ziglang",
            (true, false) => "pip install cargo-zigbuild",
            _ => "pip install ziglang cargo-zigbuild",
        }
    }
}

/// cargo-zigbuild and the zig it would use, from this process's environment; `cancel` stops the
/// probes.
pub(crate) fn find_zig(cancel: &CancelToken) -> Result<Zig, ZigMissing> {
    find_zig_with(&|name| std::env::var_os(name), cancel)
}

/// cargo-zigbuild (on PATH, or in cargo's bin directory) and, only when it is there, the zig it finds:
/// the `ziglang` package of `python3` (`$CARGO_ZIGBUILD_PYTHON_PATH`), else `zig` on PATH
/// (`$CARGO_ZIGBUILD_ZIG_PATH`). Without cargo-zigbuild nothing is run: zig only counts as installed
/// when it is on PATH. `env` reads the environment.
fn find_zig_with(
    env: &dyn Fn(&str) -> Option<OsString>,
    cancel: &CancelToken,
) -> Result<Zig, ZigMissing> {
    let path = env("PATH").unwrap_or_default();
    let cargo_zigbuild = which_in(OsStr::new("cargo-zigbuild"), &path).or_else(|| {
        let home = env("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        program_in(&home.join("bin"), OsStr::new("cargo-zigbuild"))
    });
    let Some(cargo_zigbuild) = cargo_zigbuild else {
        let zig = env("CARGO_ZIGBUILD_ZIG_PATH").unwrap_or_else(|| OsString::from("zig"));
        return Err(ZigMissing {
            cargo_zigbuild: true,
            zig: which_in(&zig, &path).is_none(),
        });
    };
    let Ok(neutral) = tempfile::Builder::new()
        .prefix("zeroimage-zig-probe")
        .tempdir()
    else {
        return Err(ZigMissing {
            cargo_zigbuild: false,
            zig: true,
        });
    };
    let found = find_zig_compiler(env, &path, neutral.path(), cancel);
    match found {
        Some((command, zig)) => Ok(Zig {
            cargo_zigbuild,
            command,
            zig,
        }),
        None => Err(ZigMissing {
            cargo_zigbuild: false,
            zig: true,
        }),
    }
}

/// The zig binary and its description, probing from `dir` (empty, ours).
fn find_zig_compiler(
    env: &dyn Fn(&str) -> Option<OsString>,
    path: &OsStr,
    dir: &Path,
    cancel: &CancelToken,
) -> Option<(PathBuf, String)> {
    let python = env("CARGO_ZIGBUILD_PYTHON_PATH").unwrap_or_else(|| OsString::from("python3"));
    if let Some(program) = which_in(&python, path) {
        // Isolated first; then as cargo-zigbuild would run it (user site-packages, PYTHONPATH),
        // still from the empty directory, so that a `pip install --user ziglang` counts too.
        let located = [&["-I", "-c"][..], &["-c"][..]].iter().find_map(|flags| {
            let out = probe(
                Command::new(&program).args(*flags).arg(LOCATE_ZIGLANG),
                dir,
                cancel,
            )?;
            let line = out.split(|&b| b == b'\n').next()?;
            Some(PathBuf::from(os_string(line)))
        });
        if let Some(package) = located.filter(|p| p.is_absolute()) {
            let zig = package.join(format!("zig{}", std::env::consts::EXE_SUFFIX));
            if let Some(version) = zig_version(&zig, dir, cancel) {
                let from = format!("{}'s ziglang package", python.to_string_lossy());
                return Some((
                    zig.clone(),
                    format!(
                        "zig {version} ({}, from {})",
                        zig.display(),
                        crate::util::sanitize::outside(&from, 120)
                    ),
                ));
            }
        }
    }
    let zig = env("CARGO_ZIGBUILD_ZIG_PATH").unwrap_or_else(|| OsString::from("zig"));
    let zig = which_in(&zig, path)?;
    let version = zig_version(&zig, dir, cancel)?;
    Some((zig.clone(), format!("zig {version} ({})", zig.display())))
}

/// The version `zig version` prints, when `zig` is a program that prints one cargo-zigbuild accepts.
fn zig_version(zig: &Path, dir: &Path, cancel: &CancelToken) -> Option<String> {
    if !is_program(zig) {
        return None;
    }
    let out = probe(Command::new(zig).arg("version"), dir, cancel)?;
    let text = std::str::from_utf8(&out).ok()?.trim();
    let version = Version::parse(text).ok()?;
    (version >= ZIG_MIN_VERSION).then(|| version.to_string())
}

/// Runs a probe in `dir` with nothing on its input, within [`PROBE_TIMEOUT`] and
/// [`PROBE_OUTPUT_LIMIT`]; its standard output when it succeeded. A probe that takes too long, prints
/// too much or is interrupted (`cancel`) is stopped (with its process group).
fn probe(cmd: &mut Command, dir: &Path, cancel: &CancelToken) -> Option<Vec<u8>> {
    let mut process = crate::util::child::spawn(
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        cancel,
    )
    .ok()?;
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = process.child().stdout.take() {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let read = stdout.take(PROBE_OUTPUT_LIMIT + 1).read_to_end(&mut bytes);
            let _ = sender.send(read.map(|_| bytes));
        });
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let output = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || cancel.is_cancelled() {
            process.stop();
            return None;
        }
        match receiver.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok(Ok(bytes)) if bytes.len() as u64 <= PROBE_OUTPUT_LIMIT => break bytes,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                process.stop();
                return None;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    // Its output has ended: it is exiting.
    loop {
        match process.try_wait() {
            Ok(Some(status)) => return status.success().then_some(output),
            Ok(None) if Instant::now() < deadline && !cancel.is_cancelled() => {
                std::thread::sleep(Duration::from_millis(2));
            }
            _ => {
                process.stop();
                return None;
            }
        }
    }
}

/// A program named like a shell would find it on PATH, except that relative PATH entries (`.`, an
/// empty entry) are skipped: they mean the working directory. A name with a slash is a path.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    which_in(
        OsStr::new(name),
        &std::env::var_os("PATH").unwrap_or_default(),
    )
}

fn which_in(name: &OsStr, path: &OsStr) -> Option<PathBuf> {
    let candidate = Path::new(name);
    if name.is_empty() {
        return None;
    }
    if candidate.components().count() > 1 {
        return is_program(candidate).then(|| candidate.to_owned());
    }
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .find_map(|dir| program_in(&dir, name))
}

/// A path a program printed: its bytes on Unix; on Windows, where paths are not bytes, its UTF-8.
fn os_string(bytes: &[u8]) -> OsString {
    #[cfg(unix)]
    {
        std::os::unix::ffi::OsStringExt::from_vec(bytes.to_vec())
    }
    #[cfg(windows)]
    {
        OsString::from(String::from_utf8_lossy(bytes).trim_end_matches('\r'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    fn script(path: &Path, body: &str) {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A PATH holding `bin` only (with cargo-zigbuild when asked), and a fake `python3` there that
    /// leaves `marker` and prints `package` as the ziglang directory.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new(cargo_zigbuild: bool) -> Fake {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            let package = dir.path().join("site-packages/ziglang");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::create_dir_all(&package).unwrap();
            if cargo_zigbuild {
                script(&bin.join("cargo-zigbuild"), "exit 0");
            }
            script(
                &bin.join("python3"),
                &format!(
                    "echo \"$PWD\" >> '{}'\necho '{}'",
                    dir.path().join("python-ran").display(),
                    package.display()
                ),
            );
            Fake { dir }
        }

        fn zig(&self, prints: &str) {
            let zig = self.dir.path().join("site-packages/ziglang/zig");
            script(&zig, &format!("echo '{prints}'"));
        }

        fn find(&self, extra: &[(&str, &str)]) -> Result<Zig, ZigMissing> {
            let mut vars: HashMap<String, OsString> = HashMap::new();
            vars.insert("PATH".into(), self.dir.path().join("bin").into());
            vars.insert("HOME".into(), self.dir.path().into());
            for (k, v) in extra {
                vars.insert((*k).to_owned(), (*v).into());
            }
            find_zig_with(&|name| vars.get(name).cloned(), &CancelToken::new())
        }

        fn python_ran_in(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("python-ran"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    #[test]
    fn zig_from_the_python_package_is_checked_and_handed_to_cargo_zigbuild() {
        let fake = Fake::new(true);
        fake.zig("0.14.1");
        let zig = fake.find(&[]).unwrap();
        let binary = fake.dir.path().join("site-packages/ziglang/zig");
        assert_eq!(zig.command, binary);
        assert!(zig.zig.starts_with("zig 0.14.1 ("), "{}", zig.zig);
        let env: HashMap<String, OsString> = zig.env().into_iter().collect();
        assert_eq!(env["CARGO_ZIGBUILD_ZIG_COMMAND"], binary.as_os_str());
        assert_eq!(env["CARGO_ZIGBUILD_ZIG_PATH"], binary.as_os_str());
        assert!(!Path::new(&env["CARGO_ZIGBUILD_PYTHON_PATH"]).exists());
        // Python ran from an empty directory of ours, never from the working directory.
        let cwd = std::env::current_dir().unwrap();
        for dir in fake.python_ran_in() {
            assert_ne!(Path::new(&dir), cwd);
            assert!(dir.contains("zeroimage-zig-probe"), "{dir}");
        }
    }

    #[test]
    fn what_a_module_prints_is_not_taken_for_zig() {
        let fake = Fake::new(true);
        // No zig binary in the directory Python names.
        assert_eq!(
            fake.find(&[]),
            Err(ZigMissing {
                cargo_zigbuild: false,
                zig: true
            })
        );
        // A zig that prints no version, or one too old for cargo-zigbuild.
        for prints in ["hello", "0.14.1 and more", "0.8.1", ""] {
            fake.zig(prints);
            assert!(fake.find(&[]).is_err(), "{prints:?}");
        }
        fake.zig("0.15.0-dev.1+abc");
        assert!(fake.find(&[]).is_ok());
    }

    #[test]
    fn without_cargo_zigbuild_python_is_never_run() {
        let fake = Fake::new(false);
        fake.zig("0.14.1");
        assert_eq!(
            fake.find(&[]),
            Err(ZigMissing {
                cargo_zigbuild: true,
                zig: true
            })
        );
        assert!(
            fake.python_ran_in().is_empty(),
            "{:?}",
            fake.python_ran_in()
        );
    }

    #[test]
    fn relative_path_entries_are_not_searched() {
        let dir = tempfile::tempdir().unwrap();
        script(&dir.path().join("zeroimage-probe"), "exit 0");
        // The same directory, relative to the working directory.
        let cwd = std::env::current_dir().unwrap();
        let mut relative = PathBuf::new();
        for _ in cwd.components().skip(1) {
            relative.push("..");
        }
        relative.push(dir.path().strip_prefix("/").unwrap());
        let name = OsStr::new("zeroimage-probe");
        assert_eq!(which_in(name, relative.as_os_str()), None);
        assert!(which_in(name, dir.path().as_os_str()).is_some());
        assert!(which("sh").is_some());
        assert!(which("/bin/sh").is_some());
        assert!(which("no-such-program-zeroimage").is_none());
        assert!(which("").is_none());
    }

    #[test]
    fn a_probe_that_floods_or_fails_gives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let flood = probe(
            Command::new("sh").args(["-c", "yes zeroimage | head -c 100000"]),
            dir.path(),
            &CancelToken::new(),
        );
        assert_eq!(flood, None);
        let ok = probe(
            Command::new("sh").args(["-c", "pwd"]),
            dir.path(),
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(
            Path::new(String::from_utf8_lossy(&ok).trim())
                .canonicalize()
                .unwrap(),
            dir.path().canonicalize().unwrap()
        );
        assert_eq!(
            probe(&mut Command::new("false"), dir.path(), &CancelToken::new()),
            None
        );
    }
}
