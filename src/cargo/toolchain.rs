//! The C compiler and linker each target builds with, chosen before anything is built.
//!
//! A musl target links pure Rust with what Rust ships (rustc's default for the host's architecture,
//! rust-lld across architectures). Crates whose build scripts compile C need a C compiler for the
//! target: musl-gcc for the host's architecture when installed, else zig through cargo-zigbuild, which
//! compiles and links C for every musl target from one install. A linker or C compiler the user
//! configured always wins. With no C compiler to be had, the job stops before building and says what
//! to install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::c_code::{CCrate, list};
use super::config::{CargoConfig, linker_env_var};
use crate::error::{Error, Result};

/// How the `--zig`/`--no-zig` flags and the `zig` setting leave the choice of zig.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ZigChoice {
    /// zig when a musl target has C code and no other C compiler.
    #[default]
    Auto,
    /// zig for every musl target without a configured linker or C compiler.
    Always,
    /// Never zig: cargo's own toolchain (and rust-lld across architectures), C code or not.
    Never,
}

impl ZigChoice {
    /// `Some(true)`: `--zig`; `Some(false)`: `--no-zig`; `None`: automatic.
    pub fn from_flag(zig: Option<bool>) -> ZigChoice {
        match zig {
            Some(true) => ZigChoice::Always,
            Some(false) => ZigChoice::Never,
            None => ZigChoice::Auto,
        }
    }
}

/// zig and cargo-zigbuild, both found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Zig {
    pub cargo_zigbuild: PathBuf,
    /// The version of zig and how cargo-zigbuild reaches it, e.g. `zig 0.14.1 (python3 -m ziglang)`.
    pub zig: String,
}

/// What is missing for zig builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZigMissing {
    pub cargo_zigbuild: bool,
    pub zig: bool,
}

impl ZigMissing {
    /// The install commands for what is missing.
    fn install(&self) -> &'static str {
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

/// The ways to get a C compiler for `facts.triple`, after `install`.
fn remedies(facts: &TargetFacts, install: &str) -> String {
    format!(
        "{install}{}, or set {} and {}",
        if facts.cross {
            ""
        } else {
            ", or musl-gcc (`apt-get install musl-tools`)"
        },
        cc_var(&facts.triple),
        linker_env_var(&facts.triple),
    )
}

/// What builds one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Toolchain {
    /// Cargo's own choice: rustc's default linker, cc-rs's default C compiler.
    Default,
    /// rust-lld links a cross build of pure Rust.
    RustLld,
    /// What the user configured, with where; rust-lld links when only a C compiler was configured
    /// for a cross build.
    Configured {
        linker: Option<(String, String)>,
        cc: Option<(String, String)>,
        rust_lld: bool,
    },
    /// musl-gcc (found by cc-rs itself) compiles C for the host's architecture.
    MuslGcc(PathBuf),
    /// cargo-zigbuild: zig compiles C and links.
    Zig(Zig),
}

/// What the choice for one target depends on.
#[derive(Clone, Debug, Default)]
pub(crate) struct TargetFacts {
    pub triple: String,
    /// Another architecture than the host's.
    pub cross: bool,
    pub linker: Option<(String, String)>,
    pub cc: Option<(String, String)>,
    /// Crates compiling C; `None` when the graph could not be read.
    pub c_crates: Option<Vec<CCrate>>,
    /// `--no-zig` or `zig = false`.
    pub zig_off: bool,
}

impl TargetFacts {
    fn musl(&self) -> bool {
        self.triple.contains("-linux-musl")
    }

    fn c_crates(&self) -> &[CCrate] {
        self.c_crates.as_deref().unwrap_or_default()
    }
}

/// The toolchain for each target, all chosen before the first build so that a missing C compiler
/// stops the job before any long build. `c_crates` reads the crate graph for a target; zig and
/// musl-gcc are looked for once, only when needed.
pub(crate) fn plan(
    triples: &[String],
    host: &str,
    config: &CargoConfig,
    choice: ZigChoice,
    c_crates: &dyn Fn(&str) -> Option<Vec<CCrate>>,
) -> Result<Vec<(TargetFacts, Toolchain)>> {
    let mut zig = Lazy::new(find_zig);
    let mut musl_gcc = Lazy::new(|| find_musl_gcc(host));
    let mut plans = Vec::new();
    for triple in triples {
        let cross = super::target::is_cross(host, triple);
        let linker = config.linker(triple)?;
        let cc = config.c_compiler(triple, !cross);
        // The crates with C decide between toolchains, and name the culprit when a build script fails.
        let needs_graph = triple.contains("-linux-musl");
        let facts = TargetFacts {
            triple: triple.clone(),
            cross,
            linker,
            cc,
            c_crates: if needs_graph { c_crates(triple) } else { None },
            zig_off: choice == ZigChoice::Never,
        };
        let toolchain = decide(&facts, choice, &mut || zig.get().clone(), &mut || {
            musl_gcc.get().clone()
        })?;
        plans.push((facts, toolchain));
    }
    Ok(plans)
}

/// The choice for one target (see the module documentation).
pub(crate) fn decide(
    facts: &TargetFacts,
    choice: ZigChoice,
    zig: &mut dyn FnMut() -> std::result::Result<Zig, ZigMissing>,
    musl_gcc: &mut dyn FnMut() -> Option<PathBuf>,
) -> Result<Toolchain> {
    if facts.linker.is_some() || facts.cc.is_some() {
        return Ok(Toolchain::Configured {
            linker: facts.linker.clone(),
            cc: facts.cc.clone(),
            rust_lld: facts.musl() && facts.cross && facts.linker.is_none(),
        });
    }
    if !facts.musl() {
        return Ok(Toolchain::Default);
    }
    let plain = if facts.cross {
        Toolchain::RustLld
    } else {
        Toolchain::Default
    };
    let has_c = !facts.c_crates().is_empty();
    match choice {
        ZigChoice::Always => zig().map(Toolchain::Zig).map_err(|missing| {
            Error::Invalid(format!(
                "--zig (or `zig = true` in Cargo.toml) builds {} with zig, which is missing: {}",
                facts.triple,
                missing.install()
            ))
        }),
        ZigChoice::Never if has_c && !facts.cross => {
            Ok(musl_gcc().map_or(plain, Toolchain::MuslGcc))
        }
        ZigChoice::Never => Ok(plain),
        ZigChoice::Auto if !has_c => Ok(plain),
        ZigChoice::Auto => {
            if !facts.cross {
                if let Some(gcc) = musl_gcc() {
                    return Ok(Toolchain::MuslGcc(gcc));
                }
            }
            zig()
                .map(Toolchain::Zig)
                .map_err(|missing| no_c_compiler(facts, missing))
        }
    }
}

/// The error before building when C code meets no C compiler.
fn no_c_compiler(facts: &TargetFacts, missing: ZigMissing) -> Error {
    let crates = facts.c_crates();
    let (script, compile) = if crates.len() == 1 {
        ("build script", "compiles")
    } else {
        ("build scripts", "compile")
    };
    Error::Build(format!(
        "the {script} of {} {compile} C code, and there is no C compiler for {}: {}; nothing was built",
        list(crates),
        facts.triple,
        remedies(facts, missing.install()),
    ))
}

fn cc_var(triple: &str) -> String {
    format!("CC_{}", triple.replace(['-', '.'], "_"))
}

impl Toolchain {
    /// What `-v` says about the target's toolchain.
    pub fn describe(&self, facts: &TargetFacts) -> String {
        let triple = &facts.triple;
        let c = match facts.c_crates() {
            [] => String::new(),
            crates => format!(" (C code in {})", list(crates)),
        };
        match self {
            Toolchain::Default if facts.musl() => {
                format!("{triple}: rustc's default linker{c}")
            }
            Toolchain::Default => format!("{triple}: cargo's own toolchain for this target"),
            Toolchain::RustLld => {
                format!("no linker configured for {triple}: linking with rust-lld{c}")
            }
            Toolchain::Configured {
                linker,
                cc,
                rust_lld,
            } => {
                let mut parts = Vec::new();
                if let Some((linker, origin)) = linker {
                    parts.push(format!("linker `{linker}` from {origin}"));
                }
                if let Some((cc, origin)) = cc {
                    parts.push(format!("C compiler `{cc}` from {origin}"));
                }
                if *rust_lld {
                    parts.push("linking with rust-lld".to_owned());
                }
                format!("{triple}: {}", parts.join(", "))
            }
            Toolchain::MuslGcc(path) => {
                format!("{triple}: C compiled with musl-gcc ({}){c}", path.display())
            }
            Toolchain::Zig(zig) => format!(
                "{triple}: C compiled and linked with {} through cargo-zigbuild ({}){c}",
                zig.zig,
                zig.cargo_zigbuild.display()
            ),
        }
    }

    /// What to add when the build script of a crate with C code failed.
    pub fn c_failure_hint(&self, facts: &TargetFacts) -> String {
        let with = |what: String| format!("it compiled with {what}; see its errors above");
        match self {
            Toolchain::Zig(zig) => with(format!("{} through cargo-zigbuild", zig.zig)),
            Toolchain::MuslGcc(path) => with(path.display().to_string()),
            Toolchain::Configured {
                cc: Some((cc, origin)),
                ..
            } => with(format!("`{cc}` from {origin}")),
            Toolchain::Configured {
                linker: Some((linker, origin)),
                ..
            } => with(format!("the toolchain of linker `{linker}` from {origin}")),
            _ => {
                let missing = ZigMissing {
                    cargo_zigbuild: true,
                    zig: true,
                };
                let install = if facts.zig_off {
                    "zig is off (--no-zig or `zig = false`)"
                } else {
                    missing.install()
                };
                format!(
                    "no C compiler for {} is set up: {}",
                    facts.triple,
                    remedies(facts, install)
                )
            }
        }
    }

    /// cargo-zigbuild, when it runs the build instead of cargo.
    pub fn zigbuild(&self) -> Option<&Path> {
        match self {
            Toolchain::Zig(zig) => Some(&zig.cargo_zigbuild),
            _ => None,
        }
    }

    /// Environment the build needs (the linker for rust-lld builds).
    pub fn env(&self, triple: &str) -> Vec<(String, String)> {
        match self {
            Toolchain::RustLld | Toolchain::Configured { rust_lld: true, .. } => {
                vec![(linker_env_var(triple), "rust-lld".to_owned())]
            }
            _ => Vec::new(),
        }
    }
}

/// A value computed on first use.
struct Lazy<T, F: FnMut() -> T> {
    value: Option<T>,
    make: F,
}

impl<T, F: FnMut() -> T> Lazy<T, F> {
    fn new(make: F) -> Self {
        Lazy { value: None, make }
    }

    fn get(&mut self) -> &T {
        let make = &mut self.make;
        self.value.get_or_insert_with(make)
    }
}

/// cargo-zigbuild (on PATH, or in cargo's bin directory) and the zig it will use, found the way it
/// finds it: `python3 -m ziglang` (`$CARGO_ZIGBUILD_PYTHON_PATH`), then `zig` on PATH
/// (`$CARGO_ZIGBUILD_ZIG_PATH`).
pub(crate) fn find_zig() -> std::result::Result<Zig, ZigMissing> {
    let cargo_zigbuild = which("cargo-zigbuild").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin").join("cargo-zigbuild")).filter(|p| p.is_file())
    });
    let zig = find_zig_compiler();
    match (cargo_zigbuild, zig) {
        (Some(cargo_zigbuild), Some(zig)) => Ok(Zig {
            cargo_zigbuild,
            zig,
        }),
        (cargo_zigbuild, zig) => Err(ZigMissing {
            cargo_zigbuild: cargo_zigbuild.is_none(),
            zig: zig.is_none(),
        }),
    }
}

fn find_zig_compiler() -> Option<String> {
    let python =
        std::env::var_os("CARGO_ZIGBUILD_PYTHON_PATH").unwrap_or_else(|| OsString::from("python3"));
    if let Some(path) = which_os(&python) {
        if let Some(version) = version_of(Command::new(&path).args(["-m", "ziglang", "version"])) {
            return Some(format!(
                "zig {version} ({} -m ziglang)",
                python.to_string_lossy()
            ));
        }
    }
    let zig = std::env::var_os("CARGO_ZIGBUILD_ZIG_PATH").unwrap_or_else(|| OsString::from("zig"));
    let path = which_os(&zig)?;
    let version = version_of(Command::new(&path).arg("version"))?;
    Some(format!("zig {version} ({})", path.display()))
}

/// The first line of a successful `version` command.
fn version_of(cmd: &mut Command) -> Option<String> {
    let output = crate::child::output(cmd).ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?.trim();
    (output.status.success() && !line.is_empty() && line.len() < 64)
        .then(|| crate::sanitize::outside(line, 64))
}

/// musl-gcc, or `<arch>-linux-musl-gcc`, which cc-rs uses for the host's musl target when installed.
fn find_musl_gcc(host: &str) -> Option<PathBuf> {
    let arch = host.split('-').next().unwrap_or(host);
    which("musl-gcc").or_else(|| which(&format!("{arch}-linux-musl-gcc")))
}

fn which(name: &str) -> Option<PathBuf> {
    which_os(OsString::from(name).as_os_str())
}

/// A program named like a shell would find it (a name with a slash is a path).
fn which_os(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let candidate = Path::new(name);
    if candidate.components().count() > 1 {
        return candidate.is_file().then(|| candidate.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cargo_metadata::PackageId;

    fn c_crate(name: &str) -> CCrate {
        CCrate {
            name: name.to_owned(),
            id: PackageId {
                repr: name.to_owned(),
            },
        }
    }

    fn facts(triple: &str, cross: bool, c: &[&str]) -> TargetFacts {
        TargetFacts {
            triple: triple.to_owned(),
            cross,
            c_crates: Some(c.iter().map(|n| c_crate(n)).collect()),
            ..TargetFacts::default()
        }
    }

    fn zig() -> Zig {
        Zig {
            cargo_zigbuild: PathBuf::from("/bin/cargo-zigbuild"),
            zig: "zig 0.14.1 (python3 -m ziglang)".to_owned(),
        }
    }

    const NO_ZIG: ZigMissing = ZigMissing {
        cargo_zigbuild: true,
        zig: true,
    };

    fn decide_with(
        facts: &TargetFacts,
        choice: ZigChoice,
        zig_found: Option<Zig>,
        gcc: Option<&str>,
    ) -> Result<Toolchain> {
        decide(
            facts,
            choice,
            &mut || zig_found.clone().ok_or(NO_ZIG),
            &mut || gcc.map(PathBuf::from),
        )
    }

    const X86: &str = "x86_64-unknown-linux-musl";
    const ARM: &str = "aarch64-unknown-linux-musl";

    #[test]
    fn pure_rust_keeps_rusts_own_linkers_unless_zig_is_forced() {
        let native = facts(X86, false, &[]);
        let cross = facts(ARM, true, &[]);
        for choice in [ZigChoice::Auto, ZigChoice::Never] {
            assert_eq!(
                decide_with(&native, choice, Some(zig()), None).unwrap(),
                Toolchain::Default
            );
            assert_eq!(
                decide_with(&cross, choice, Some(zig()), None).unwrap(),
                Toolchain::RustLld
            );
        }
        assert_eq!(
            decide_with(&cross, ZigChoice::Always, Some(zig()), None).unwrap(),
            Toolchain::Zig(zig())
        );
    }

    #[test]
    fn c_code_uses_musl_gcc_natively_and_zig_across_architectures() {
        let native = facts(X86, false, &["ring"]);
        let cross = facts(ARM, true, &["ring"]);
        assert_eq!(
            decide_with(
                &native,
                ZigChoice::Auto,
                Some(zig()),
                Some("/usr/bin/musl-gcc")
            )
            .unwrap(),
            Toolchain::MuslGcc(PathBuf::from("/usr/bin/musl-gcc"))
        );
        assert_eq!(
            decide_with(&native, ZigChoice::Auto, Some(zig()), None).unwrap(),
            Toolchain::Zig(zig())
        );
        assert_eq!(
            decide_with(
                &cross,
                ZigChoice::Auto,
                Some(zig()),
                Some("/usr/bin/musl-gcc")
            )
            .unwrap(),
            Toolchain::Zig(zig())
        );
        assert_eq!(
            decide_with(
                &native,
                ZigChoice::Always,
                Some(zig()),
                Some("/usr/bin/musl-gcc")
            )
            .unwrap(),
            Toolchain::Zig(zig())
        );
        assert_eq!(
            decide_with(&cross, ZigChoice::Never, Some(zig()), None).unwrap(),
            Toolchain::RustLld,
            "--no-zig builds as cargo would"
        );
    }

    #[test]
    fn configured_linker_or_compiler_wins_over_zig() {
        let mut cross = facts(ARM, true, &["ring"]);
        cross.cc = Some(("my-cc".into(), "CC_aarch64_unknown_linux_musl".into()));
        let toolchain = decide_with(&cross, ZigChoice::Always, Some(zig()), None).unwrap();
        assert_eq!(
            toolchain,
            Toolchain::Configured {
                linker: None,
                cc: cross.cc.clone(),
                rust_lld: true
            }
        );
        assert_eq!(
            toolchain.env(ARM),
            [(linker_env_var(ARM), "rust-lld".to_owned())]
        );
        cross.linker = Some(("ld-of-mine".into(), "x".into()));
        let toolchain = decide_with(&cross, ZigChoice::Auto, None, None).unwrap();
        assert!(toolchain.env(ARM).is_empty());
        assert!(
            toolchain
                .describe(&cross)
                .contains("linker `ld-of-mine` from x, C compiler `my-cc`")
        );
    }

    #[test]
    fn no_c_compiler_is_an_error_naming_the_crates_and_the_install_commands() {
        let native = facts(X86, false, &["ring", "zstd-sys"]);
        let err = decide_with(&native, ZigChoice::Auto, None, None)
            .unwrap_err()
            .to_string();
        for needle in [
            "build scripts of `ring` and `zstd-sys` compile C code",
            "no C compiler for x86_64-unknown-linux-musl",
            "pip install ziglang cargo-zigbuild",
            "cargo install --locked cargo-zigbuild",
            "apt-get install musl-tools",
            "CC_x86_64_unknown_linux_musl",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let cross = facts(ARM, true, &["ring"]);
        let err = decide_with(&cross, ZigChoice::Auto, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("build script of `ring` compiles"), "{err}");
        assert!(!err.contains("musl-tools"), "not for a cross target: {err}");
        let err = decide_with(&facts(ARM, true, &[]), ZigChoice::Always, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--zig"), "{err}");
    }

    #[test]
    fn other_targets_keep_cargos_toolchain() {
        let gnu = facts("aarch64-unknown-linux-gnu", true, &["ring"]);
        assert_eq!(
            decide_with(&gnu, ZigChoice::Always, Some(zig()), None).unwrap(),
            Toolchain::Default
        );
    }

    #[test]
    fn which_finds_programs_on_path_and_by_path() {
        assert!(which("sh").is_some());
        assert!(which_os(std::ffi::OsStr::new("/bin/sh")).is_some());
        assert!(which("no-such-program-zeroimage").is_none());
    }
}
