//! The Rust target: the default musl triple for this host, whether its standard library is installed,
//! and [`Target`], a triple read once into its OCI platform and what the build decides from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::oci::platform::Platform;
use crate::util::cancel::CancelToken;

/// The `rustc` cargo would use: `$RUSTC`, else `rustc` from PATH, except that a rustup proxy there is
/// skipped for the toolchain's own `rustc` beside the `$CARGO` running us, as cargo itself does: the
/// proxy costs about 10 ms a call.
fn rustc_program() -> PathBuf {
    if let Some(rustc) = std::env::var_os("RUSTC") {
        return PathBuf::from(rustc);
    }
    let toolchain_rustc = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| cargo.parent().map(|dir| dir.join("rustc")))
        .filter(|rustc| rustc.is_file() && !is_rustup_proxy(rustc));
    match (toolchain_rustc, find_on_path("rustc")) {
        (Some(own), Some(on_path)) if is_rustup_proxy(&on_path) => own,
        (_, Some(on_path)) => on_path,
        _ => PathBuf::from("rustc"),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A rustup proxy is the `rustup` binary under another name: the same file, or one of the same size.
fn is_rustup_proxy(program: &Path) -> bool {
    let rustup = program
        .parent()
        .map(|dir| dir.join("rustup"))
        .filter(|p| p.is_file())
        .or_else(|| find_on_path("rustup"));
    match (rustup, std::fs::metadata(program)) {
        (Some(rustup), Ok(program)) => {
            std::fs::metadata(rustup).is_ok_and(|rustup| rustup.len() == program.len())
        }
        _ => false,
    }
}

fn rustc_output(program: &Path, args: &[&str], what: &str, cancel: &CancelToken) -> Result<String> {
    let output = crate::util::child::output(Command::new(program).args(args), cancel)
        .map_err(|e| Error::Invalid(format!("cannot run rustc to {what}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(Error::Invalid(format!("rustc could not {what}: {first}")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What `rustc -vV` and `rustc --print target-libdir` said, remembered for one rustc binary (its path,
/// size and modification time) in a file of the target directory: each of these calls costs 15 to 30
/// ms on every run, for answers that change only with the toolchain. An installed target's library
/// directory is checked again on every use, so a target removed since is noticed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Remembered {
    rustc: PathBuf,
    len: u64,
    modified_nanos: u128,
    /// All of `rustc -vV`: the host, and the toolchain an SBOM names.
    verbose_version: Option<String>,
    libdirs: BTreeMap<String, PathBuf>,
}

/// The rustc that builds, asked about the host and installed targets, with its answers cached.
pub struct Rustc {
    program: PathBuf,
    /// Where the answers are kept, and what they were when read; `None` when not cacheable (a
    /// rustc that is a proxy or a wrapper whose toolchain can change under the same file).
    cache: Option<(PathBuf, Remembered)>,
    changed: bool,
    /// Stops rustc.
    cancel: CancelToken,
}

/// The cache file in `dir` (the target directory's `zeroimage` folder).
const CACHE_FILE: &str = "rustc-info.json";

impl Rustc {
    /// The rustc cargo would use; answers are cached in `cache_dir` when given and safe to cache.
    /// `cancel` stops it.
    pub fn new(cache_dir: Option<&Path>, cancel: &CancelToken) -> Rustc {
        Rustc::with_program(rustc_program(), cache_dir, cancel)
    }

    fn with_program(program: PathBuf, cache_dir: Option<&Path>, cancel: &CancelToken) -> Rustc {
        let cache = cache_dir.and_then(|dir| {
            let key = Rustc::key(&program)?;
            let path = dir.join(CACHE_FILE);
            let stored = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Remembered>(&bytes).ok())
                .filter(|r| {
                    (&r.rustc, r.len, r.modified_nanos) == (&key.rustc, key.len, key.modified_nanos)
                });
            Some((path, stored.unwrap_or(key)))
        });
        Rustc {
            program,
            cache,
            changed: false,
            cancel: cancel.clone(),
        }
    }

    /// The identity of a rustc binary, when its answers may be cached: an absolute path to a real
    /// rustc, not a rustup proxy (whose toolchain changes without the proxy changing).
    fn key(program: &Path) -> Option<Remembered> {
        if !program.is_absolute() || is_rustup_proxy(program) {
            return None;
        }
        let meta = std::fs::metadata(program).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(Remembered {
            rustc: program.to_owned(),
            len: meta.len(),
            modified_nanos: modified.as_nanos(),
            ..Remembered::default()
        })
    }

    /// What `rustc -vV` prints: release, commit, host, LLVM version.
    pub fn verbose_version(&mut self) -> Result<String> {
        if let Some(text) = self
            .cache
            .as_ref()
            .and_then(|(_, r)| r.verbose_version.clone())
        {
            return Ok(text);
        }
        let text = rustc_output(&self.program, &["-vV"], "report its version", &self.cancel)?;
        if let Some((_, remembered)) = &mut self.cache {
            remembered.verbose_version = Some(text.clone());
            self.changed = true;
        }
        Ok(text)
    }

    /// The host triple, from `rustc -vV`.
    pub fn host_triple(&mut self) -> Result<String> {
        self.verbose_version()?
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(|h| h.trim().to_owned())
            .ok_or_else(|| Error::Invalid("`rustc -vV` printed no host line".to_owned()))
    }

    /// Fails with the `rustup target add` command when the target's standard library is missing.
    pub fn ensure_installed(&mut self, triple: &str) -> Result<()> {
        if Path::new(triple)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            // A custom target spec brings its own standard library (build-std); nothing to check.
            return Ok(());
        }
        let cached = self
            .cache
            .as_ref()
            .and_then(|(_, r)| r.libdirs.get(triple))
            .filter(|dir| dir.is_dir());
        if cached.is_some() {
            return Ok(());
        }
        let libdir = rustc_output(
            &self.program,
            &["--print", "target-libdir", "--target", triple],
            &format!("find the standard library for `{triple}`"),
            &self.cancel,
        )?;
        let libdir = PathBuf::from(libdir.trim());
        if !libdir.is_dir() {
            return Err(Error::Invalid(format!(
                "the Rust standard library for `{triple}` is not installed; run `rustup target add {triple}`"
            )));
        }
        if let Some((_, remembered)) = &mut self.cache {
            remembered.libdirs.insert(triple.to_owned(), libdir);
            self.changed = true;
        }
        Ok(())
    }

    /// Keeps new answers for the next run. Best effort: a cache that cannot be written only costs
    /// the probes again next time.
    pub fn save(&mut self) {
        let Some((path, remembered)) = &self.cache else {
            return;
        };
        if !self.changed {
            return;
        }
        let Some(dir) = path.parent() else { return };
        let written = std::fs::create_dir_all(dir).is_ok()
            && tempfile::NamedTempFile::new_in(dir)
                .ok()
                .and_then(|mut temp| {
                    use std::io::Write;
                    temp.write_all(&serde_json::to_vec(remembered).ok()?).ok()?;
                    temp.persist(path).ok()
                })
                .is_some();
        self.changed = !written;
    }
}

fn rustc_output_default(args: &[&str], what: &str, cancel: &CancelToken) -> Result<String> {
    rustc_output(&rustc_program(), args, what, cancel)
}

/// The musl target for the host's architecture: what a static Linux executable is built for by default.
pub fn default_target(host: &str) -> String {
    let arch = host.split('-').next().unwrap_or(host);
    match arch {
        "armv7" => "armv7-unknown-linux-musleabihf".to_owned(),
        "arm" => "arm-unknown-linux-musleabihf".to_owned(),
        other => format!("{other}-unknown-linux-musl"),
    }
}

/// A Rust target triple, read once: the triple as cargo gets it, its OCI platform, and what the
/// build decides from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    triple: String,
    platform: Platform,
    musl: bool,
}

impl Target {
    /// The target `triple` names, its platform from target-lexicon, or from `rustc --print cfg` for
    /// what target-lexicon cannot parse (custom targets, `powerpc-unknown-linux-muslspe`). Fails for
    /// a target that is not Linux or whose architecture has no OCI name.
    pub fn new(triple: &str, cancel: &CancelToken) -> Result<Target> {
        let platform = match triple.parse::<target_lexicon::Triple>() {
            Ok(parsed) => Platform::from_parsed_triple(triple, &parsed)?,
            Err(_) => platform_from_cfg(triple, cancel)?,
        };
        Ok(Target {
            triple: triple.to_owned(),
            platform,
            musl: is_musl(triple),
        })
    }

    /// The triple, as given: what `--target` gets.
    pub fn triple(&self) -> &str {
        &self.triple
    }

    /// The OCI platform its images are labelled with.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// A musl Linux target: static executables, which the toolchain decision builds for.
    pub fn is_musl(&self) -> bool {
        self.musl
    }

    /// True when building it on `host` (a triple) is a cross build: another architecture, or a host
    /// that is not Linux.
    pub fn crosses_from(&self, host: &str) -> bool {
        is_cross(host, &self.triple)
    }
}

/// The triple.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.triple)
    }
}

/// True for a musl Linux triple (`x86_64-unknown-linux-musl`, `armv7-unknown-linux-musleabihf`).
pub(crate) fn is_musl(triple: &str) -> bool {
    triple.contains("-linux-musl")
}

fn platform_from_cfg(triple: &str, cancel: &CancelToken) -> Result<Platform> {
    let cfg = rustc_output_default(
        &["--print", "cfg", "--target", triple],
        &format!("describe target `{triple}`"),
        cancel,
    )?;
    let value = |key: &str| {
        cfg.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix("=\""))
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_owned)
        })
    };
    let has_feature = |f: &str| cfg.lines().any(|l| l == format!("target_feature=\"{f}\""));
    let os = value("target_os").unwrap_or_default();
    if os != "linux" {
        return Err(Error::Platform(format!(
            "target `{triple}` is not a Linux target (target_os = \"{os}\"); container images need a Linux executable"
        )));
    }
    let arch = value("target_arch").unwrap_or_default();
    let little = value("target_endian").as_deref() == Some("little");
    let (oci_arch, variant) = match arch.as_str() {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", None),
        "arm" if has_feature("v7") => ("arm", Some("v7")),
        "arm" if has_feature("v6") => ("arm", Some("v6")),
        "arm" => ("arm", Some("v5")),
        "powerpc64" if little => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "loongarch64" => ("loong64", None),
        "mips64" if little => ("mips64le", None),
        "mips64" => ("mips64", None),
        "mips" if little => ("mipsle", None),
        "mips" => ("mips", None),
        other => {
            return Err(Error::Platform(format!(
                "target `{triple}` has an architecture (`{other}`) with no OCI equivalent"
            )));
        }
    };
    Platform::linux(oci_arch, variant)
}

/// True when building `target` on `host` is a cross build: their architectures (first parts) differ,
/// or the host is not Linux. A Mac's or a Windows machine's own linker and C compiler cannot link a
/// Linux program (Apple's ld64 refuses `--as-needed`), even for the same architecture.
fn is_cross(host: &str, target: &str) -> bool {
    let linux_host = host.split('-').any(|part| part == "linux");
    !linux_host || host.split('-').next() != target.split('-').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_target_is_musl_for_the_host_arch() {
        assert_eq!(
            default_target("x86_64-unknown-linux-gnu"),
            "x86_64-unknown-linux-musl"
        );
        assert_eq!(
            default_target("aarch64-unknown-linux-gnu"),
            "aarch64-unknown-linux-musl"
        );
        assert_eq!(
            default_target("aarch64-apple-darwin"),
            "aarch64-unknown-linux-musl"
        );
        assert_eq!(
            default_target("armv7-unknown-linux-gnueabihf"),
            "armv7-unknown-linux-musleabihf"
        );
    }

    #[test]
    fn a_target_is_read_once_into_its_platform_and_kind() {
        let arm = Target::new("armv7-unknown-linux-musleabihf", &CancelToken::new()).unwrap();
        assert_eq!(arm.triple(), "armv7-unknown-linux-musleabihf");
        assert_eq!(arm.to_string(), "armv7-unknown-linux-musleabihf");
        assert_eq!(arm.platform().to_string(), "linux/arm/v7");
        assert!(arm.is_musl());
        assert!(arm.crosses_from("x86_64-unknown-linux-gnu"));
        let gnu = Target::new("x86_64-unknown-linux-gnu", &CancelToken::new()).unwrap();
        assert_eq!(gnu.platform().to_string(), "linux/amd64");
        assert!(!gnu.is_musl());
        assert!(!gnu.crosses_from("x86_64-unknown-linux-musl"));
    }

    #[test]
    fn a_parsed_triple_that_is_not_linux_is_refused_without_asking_rustc() {
        // target-lexicon reads it: its own error, not rustc's `target_os = ...` one.
        let err = Target::new("x86_64-apple-darwin", &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "target `x86_64-apple-darwin` is not a Linux target; container images need a Linux \
             executable (for example `x86_64-unknown-linux-musl`)"
        );
    }

    #[test]
    fn a_triple_target_lexicon_cannot_read_is_described_by_rustc() {
        assert!(
            "powerpc-unknown-linux-muslspe"
                .parse::<target_lexicon::Triple>()
                .is_err()
        );
        // rustc knows it: Linux, on an architecture with no OCI name (rustc's words, in backquotes).
        let err = Target::new("powerpc-unknown-linux-muslspe", &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has an architecture (`powerpc`) with no OCI equivalent"),
            "{err}"
        );
        // An unknown name is rustc's error, naming it.
        let err = Target::new("nonsense-target-triple", &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rustc could not describe target `nonsense-target-triple`"),
            "{err}"
        );
    }

    #[test]
    fn a_host_that_is_not_linux_crosses_to_every_linux_target() {
        for host in [
            "aarch64-apple-darwin",
            "x86_64-apple-darwin",
            "x86_64-pc-windows-msvc",
            "x86_64-pc-windows-gnu",
        ] {
            let arch = host.split('-').next().unwrap();
            let target =
                Target::new(&format!("{arch}-unknown-linux-musl"), &CancelToken::new()).unwrap();
            assert!(target.crosses_from(host), "{host}");
        }
        assert!(!is_cross(
            "aarch64-linux-android",
            "aarch64-unknown-linux-musl"
        ));
        assert!(!is_cross(
            "x86_64-unknown-linux-musl",
            "x86_64-unknown-linux-musl"
        ));
    }

    #[test]
    fn cross_means_another_architecture() {
        assert!(!is_cross(
            "x86_64-unknown-linux-gnu",
            "x86_64-unknown-linux-musl"
        ));
        assert!(is_cross(
            "x86_64-unknown-linux-gnu",
            "aarch64-unknown-linux-musl"
        ));
    }

    #[test]
    fn rustc_answers_are_kept_until_the_rustc_binary_or_the_target_changes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let libdir = dir.path().join("lib");
        std::fs::create_dir(&libdir).unwrap();
        let calls = dir.path().join("calls");
        let rustc = dir.path().join("fake-rustc");
        let script = |extra: &str| {
            format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\ncase \"$1\" in -vV) echo 'host: x86_64-unknown-linux-gnu';; \
                 *) echo '{}';; esac\n{extra}",
                calls.display(),
                libdir.display()
            )
        };
        std::fs::write(&rustc, script("")).unwrap();
        std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = dir.path().join("cache");
        let calls_made = || {
            std::fs::read_to_string(&calls)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let run = || {
            let mut probe = Rustc::with_program(rustc.clone(), Some(&cache), &CancelToken::new());
            let host = probe.host_triple().unwrap();
            let installed = probe.ensure_installed("x86_64-unknown-linux-musl");
            probe.save();
            (host, installed.map_err(|e| e.to_string()))
        };
        assert_eq!(run(), ("x86_64-unknown-linux-gnu".to_owned(), Ok(())));
        assert_eq!(calls_made(), 2);
        assert_eq!(run().1, Ok(()));
        assert_eq!(calls_made(), 2, "answered from the cache");

        // Another rustc binary at the same path (an updated toolchain) is asked again.
        std::fs::write(&rustc, script("# updated")).unwrap();
        assert_eq!(run().1, Ok(()));
        assert_eq!(calls_made(), 4);
        // A target removed since is noticed.
        std::fs::remove_dir(&libdir).unwrap();
        let err = run().1.unwrap_err();
        assert!(
            err.contains("rustup target add x86_64-unknown-linux-musl"),
            "{err}"
        );
        assert_eq!(calls_made(), 5, "the library directory was probed again");
        // Without a cache directory, every call asks rustc.
        let mut uncached = Rustc::with_program(rustc.clone(), None, &CancelToken::new());
        uncached.host_triple().unwrap();
        uncached.save();
        uncached.host_triple().unwrap();
        assert_eq!(calls_made(), 7);
    }

    #[test]
    fn installed_host_target_passes_and_unknown_target_fails() {
        let mut rustc = Rustc::new(None, &CancelToken::new());
        let host = rustc.host_triple().unwrap();
        rustc.ensure_installed(&host).unwrap();
        let err = rustc
            .ensure_installed("nonsense-target-triple")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nonsense-target-triple"), "{err}");
    }
}
