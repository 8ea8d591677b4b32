//! The C compiler and linker each target builds with, chosen before anything is built.
//!
//! A musl target links pure Rust with what Rust ships (rustc's default for the host's architecture,
//! rust-lld across architectures). Crates whose build scripts compile C need a C compiler for the
//! target: musl-gcc for the host's architecture when installed, else zig through cargo-zigbuild, which
//! compiles and links C for every musl target from one install, else the `<arch>-linux-musl-gcc`
//! cc-rs finds by itself across architectures. A linker or C compiler the user configured always
//! wins. For the host's architecture with none of them, cargo builds as it would alone (some build
//! scripts do without C, e.g. blake3's), after one line saying so; only across architectures, where
//! no C compiler for the target exists at all, does the job stop before building and say what to
//! install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::c_code::{CCrate, list};
use super::config::{CargoConfig, linker_env_var};
use super::target::Target;
use super::zig::{Zig, ZigMissing, find_zig, which};
use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;

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
    /// A GCC for the target that cc-rs finds by itself compiles C: musl-gcc for the host's
    /// architecture, `<arch>-linux-musl-gcc` across architectures (linking with rust-lld).
    Gcc { path: PathBuf, rust_lld: bool },
    /// cargo-zigbuild: zig compiles C and links.
    Zig(Zig),
    /// C code for the host's architecture with neither zig nor musl-gcc: cargo builds as it would
    /// alone, its build scripts finding a C compiler or doing without; `ZigMissing` says what zig
    /// builds need.
    CargoAlone(ZigMissing),
}

/// What the choice for one target depends on.
#[derive(Clone, Debug, Default)]
pub(crate) struct TargetFacts {
    pub triple: String,
    /// A musl target (see [`Target::is_musl`]).
    pub musl: bool,
    /// Another architecture than the host's.
    pub cross: bool,
    /// The host's own triple: cc-rs then compiles with the host's `cc`.
    pub host: bool,
    pub linker: Option<(String, String)>,
    pub cc: Option<(String, String)>,
    /// Crates compiling C; `None` when the graph could not be read.
    pub c_crates: Option<Vec<CCrate>>,
    /// `--no-zig` or `zig = false`.
    pub zig_off: bool,
}

impl TargetFacts {
    fn c_crates(&self) -> &[CCrate] {
        self.c_crates.as_deref().unwrap_or_default()
    }
}

/// The toolchain for each target, all chosen before the first build so that a missing C compiler
/// stops the job before any long build. `c_crates` reads the crate graph for a target; zig and
/// musl-gcc are looked for once, only when needed, and a cross GCC per target.
pub(crate) fn plan(
    targets: &[Target],
    host: &str,
    config: &CargoConfig,
    choice: ZigChoice,
    c_crates: &dyn Fn(&str) -> Option<Vec<CCrate>>,
    cancel: &CancelToken,
) -> Result<Vec<(TargetFacts, Toolchain)>> {
    let mut zig = Lazy::new(|| find_zig(cancel));
    let mut musl_gcc = Lazy::new(|| find_musl_gcc(host));
    let mut plans = Vec::new();
    for target in targets {
        let triple = target.triple();
        let cross = target.crosses_from(host);
        let linker = config.linker(triple)?;
        let cc = config.c_compiler(triple, !cross);
        // The crates with C decide between toolchains, and name the culprit when a build script fails.
        let needs_graph = target.is_musl();
        let facts = TargetFacts {
            triple: triple.to_owned(),
            musl: target.is_musl(),
            cross,
            host: triple == host,
            linker,
            cc,
            c_crates: if needs_graph { c_crates(triple) } else { None },
            zig_off: choice == ZigChoice::Never,
        };
        let toolchain = decide(&facts, choice, &mut || zig.get().clone(), &mut || {
            if cross {
                cross_gcc(triple)
            } else {
                musl_gcc.get().clone()
            }
        })?;
        plans.push((facts, toolchain));
    }
    Ok(plans)
}

/// The choice for one target (see the module documentation). `gcc` finds the GCC for the target that
/// cc-rs would use by itself.
pub(crate) fn decide(
    facts: &TargetFacts,
    choice: ZigChoice,
    zig: &mut dyn FnMut() -> std::result::Result<Zig, ZigMissing>,
    gcc: &mut dyn FnMut() -> Option<PathBuf>,
) -> Result<Toolchain> {
    if facts.linker.is_some() || facts.cc.is_some() {
        return Ok(Toolchain::Configured {
            linker: facts.linker.clone(),
            cc: facts.cc.clone(),
            rust_lld: facts.musl && facts.cross && facts.linker.is_none(),
        });
    }
    if !facts.musl {
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
        ZigChoice::Never if has_c => Ok(gcc().map_or(plain, |path| Toolchain::Gcc {
            path,
            rust_lld: facts.cross,
        })),
        ZigChoice::Never => Ok(plain),
        ZigChoice::Auto if !has_c => Ok(plain),
        ZigChoice::Auto => {
            let with_gcc = |path| Toolchain::Gcc {
                path,
                rust_lld: facts.cross,
            };
            if !facts.cross
                && let Some(path) = gcc()
            {
                return Ok(with_gcc(path));
            }
            let missing = match zig() {
                Ok(zig) => return Ok(Toolchain::Zig(zig)),
                Err(missing) => missing,
            };
            if !facts.cross {
                // Cargo alone builds some of these: never refused before building.
                return Ok(Toolchain::CargoAlone(missing));
            }
            gcc()
                .map(with_gcc)
                .ok_or_else(|| no_c_compiler(facts, missing))
        }
    }
}

/// The GCC names cc-rs tries for a musl target it builds from another target (its
/// `prefix_for_target`, plus `musl-gcc` where it falls back to it).
fn cc_rs_gcc_names(triple: &str) -> Vec<String> {
    let mut parts = triple.split('-');
    let arch = parts.next().unwrap_or(triple);
    let env = parts.next_back().unwrap_or("musl");
    let prefix = match arch {
        a if a.starts_with("riscv64") => "riscv64",
        a if a.starts_with("riscv32") => "riscv32",
        a if a.starts_with("arm") || a.starts_with("thumb") => "arm",
        a => a,
    };
    let mut names = vec![format!("{prefix}-linux-{env}-gcc")];
    if matches!(arch, "x86_64" | "i586" | "i686") {
        names.push("musl-gcc".to_owned());
    }
    names
}

/// The GCC cc-rs finds by itself for a target of another architecture, when installed.
fn cross_gcc(triple: &str) -> Option<PathBuf> {
    cc_rs_gcc_names(triple)
        .iter()
        .filter(|name| name.as_str() != "musl-gcc")
        .find_map(|name| which(name))
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
            Toolchain::Default if facts.musl => {
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
            Toolchain::Gcc { path, rust_lld } => format!(
                "{triple}: C compiled with {} ({}){}{c}",
                path.file_name()
                    .unwrap_or(path.as_os_str())
                    .to_string_lossy(),
                path.display(),
                if *rust_lld {
                    ", linking with rust-lld"
                } else {
                    ""
                }
            ),
            Toolchain::Zig(zig) => format!(
                "{triple}: C compiled and linked with {} through cargo-zigbuild ({}){c}",
                zig.zig,
                zig.cargo_zigbuild.display()
            ),
            Toolchain::CargoAlone(_) => format!("{triple}: cargo's own toolchain{c}"),
        }
    }

    /// The line said before a build that cargo runs as it would alone although crates compile C: which
    /// C compiler their build scripts get.
    pub fn notice(&self, facts: &TargetFacts) -> Option<String> {
        let Toolchain::CargoAlone(missing) = self else {
            return None;
        };
        let compiler = if facts.host {
            "cc-rs uses the host's `cc`".to_owned()
        } else {
            format!(
                "cc-rs looks for {}, not installed: a build script does without C or fails",
                cc_rs_gcc_names(&facts.triple).join(" or ")
            )
        };
        Some(format!(
            "no zig or musl-gcc for {}: cargo builds the C code of {} as it would alone ({compiler}); \
             `{}` lets zig build it",
            facts.triple,
            list(facts.c_crates()),
            missing.pip()
        ))
    }

    /// What to add when the build script of a crate with C code failed.
    pub fn c_failure_hint(&self, facts: &TargetFacts) -> String {
        let with = |what: String| format!("it compiled with {what}; see its errors above");
        match self {
            Toolchain::Zig(zig) => with(format!("{} through cargo-zigbuild", zig.zig)),
            Toolchain::Gcc { path, .. } => with(path.display().to_string()),
            Toolchain::CargoAlone(missing) => format!(
                "no C compiler for {} is set up: {}",
                facts.triple,
                remedies(facts, missing.install())
            ),
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

    /// Environment the build needs (the linker for rust-lld builds, the zig for cargo-zigbuild).
    pub fn env(&self, triple: &str) -> Vec<(String, OsString)> {
        match self {
            Toolchain::RustLld
            | Toolchain::Configured { rust_lld: true, .. }
            | Toolchain::Gcc { rust_lld: true, .. } => {
                vec![(linker_env_var(triple), OsString::from("rust-lld"))]
            }
            Toolchain::Zig(zig) => zig.env(),
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

/// musl-gcc, or `<arch>-linux-musl-gcc`, which cc-rs uses for the host's musl target when installed.
fn find_musl_gcc(host: &str) -> Option<PathBuf> {
    let arch = host.split('-').next().unwrap_or(host);
    which("musl-gcc").or_else(|| which(&format!("{arch}-linux-musl-gcc")))
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
            musl: crate::cargo::target::is_musl(triple),
            cross,
            c_crates: Some(c.iter().map(|n| c_crate(n)).collect()),
            ..TargetFacts::default()
        }
    }

    fn zig() -> Zig {
        Zig {
            cargo_zigbuild: PathBuf::from("/bin/cargo-zigbuild"),
            command: PathBuf::from("/venv/ziglang/zig"),
            zig: "zig 0.14.1 (/venv/ziglang/zig, from python3's ziglang package)".to_owned(),
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
    fn on_a_mac_or_windows_host_pure_rust_links_with_rust_lld_whatever_the_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancelToken::new();
        for (host, expected) in [
            ("aarch64-apple-darwin", Toolchain::RustLld),
            ("x86_64-apple-darwin", Toolchain::RustLld),
            ("x86_64-pc-windows-msvc", Toolchain::RustLld),
            ("aarch64-unknown-linux-gnu", Toolchain::Default),
        ] {
            let config = crate::cargo::config::CargoConfig::load(dir.path(), &[], host).unwrap();
            let target = Target::new(ARM, &cancel).unwrap();
            let plans = plan(
                &[target],
                host,
                &config,
                ZigChoice::Auto,
                &|_| Some(Vec::new()),
                &cancel,
            )
            .unwrap();
            let (facts, toolchain) = &plans[0];
            assert_eq!(facts.cross, expected == Toolchain::RustLld, "{host}");
            assert_eq!(*toolchain, expected, "{host}");
        }
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
            Toolchain::Gcc {
                path: PathBuf::from("/usr/bin/musl-gcc"),
                rust_lld: false
            }
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
        // Without zig, the cross GCC cc-rs finds compiles, and rust-lld links.
        let gcc = decide_with(
            &cross,
            ZigChoice::Auto,
            None,
            Some("/usr/bin/aarch64-linux-musl-gcc"),
        )
        .unwrap();
        assert_eq!(
            gcc,
            Toolchain::Gcc {
                path: PathBuf::from("/usr/bin/aarch64-linux-musl-gcc"),
                rust_lld: true
            }
        );
        assert_eq!(
            gcc.env(ARM),
            [(linker_env_var(ARM), OsString::from("rust-lld"))]
        );
        assert!(gcc.notice(&cross).is_none());
        assert!(
            gcc.describe(&cross).starts_with(
                "aarch64-unknown-linux-musl: C compiled with aarch64-linux-musl-gcc \
                 (/usr/bin/aarch64-linux-musl-gcc), linking with rust-lld"
            ),
            "{}",
            gcc.describe(&cross)
        );
        let musl_gcc = Toolchain::Gcc {
            path: PathBuf::from("/usr/bin/musl-gcc"),
            rust_lld: false,
        };
        assert_eq!(
            musl_gcc.describe(&native),
            "x86_64-unknown-linux-musl: C compiled with musl-gcc (/usr/bin/musl-gcc) (C code in `ring`)"
        );
    }

    #[test]
    fn zig_builds_get_the_zig_that_was_checked() {
        let toolchain = Toolchain::Zig(zig());
        let env: Vec<(String, OsString)> = toolchain.env(ARM);
        assert!(env.contains(&(
            "CARGO_ZIGBUILD_ZIG_COMMAND".to_owned(),
            OsString::from("/venv/ziglang/zig")
        )));
        assert!(env.contains(&(
            "CARGO_ZIGBUILD_ZIG_PATH".to_owned(),
            OsString::from("/venv/ziglang/zig")
        )));
    }

    #[test]
    fn cc_rs_names_the_cross_gcc_after_the_target() {
        assert_eq!(cc_rs_gcc_names(X86), ["x86_64-linux-musl-gcc", "musl-gcc"]);
        assert_eq!(cc_rs_gcc_names(ARM), ["aarch64-linux-musl-gcc"]);
        assert_eq!(
            cc_rs_gcc_names("riscv64gc-unknown-linux-musl"),
            ["riscv64-linux-musl-gcc"]
        );
        assert_eq!(
            cc_rs_gcc_names("armv7-unknown-linux-musleabihf"),
            ["arm-linux-musleabihf-gcc"]
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
            [(linker_env_var(ARM), OsString::from("rust-lld"))]
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
    fn without_a_c_compiler_the_native_target_builds_as_cargo_would_and_says_so() {
        let native = facts(X86, false, &["ring", "zstd-sys"]);
        let toolchain = decide_with(&native, ZigChoice::Auto, None, None).unwrap();
        assert_eq!(toolchain, Toolchain::CargoAlone(NO_ZIG));
        assert!(toolchain.env(X86).is_empty());
        let notice = toolchain.notice(&native).unwrap();
        for needle in [
            "no zig or musl-gcc for x86_64-unknown-linux-musl",
            "cargo builds the C code of `ring` and `zstd-sys` as it would alone",
            "cc-rs looks for x86_64-linux-musl-gcc or musl-gcc, not installed",
            "`pip install ziglang cargo-zigbuild` lets zig build it",
        ] {
            assert!(notice.contains(needle), "{needle}: {notice}");
        }
        let hint = toolchain.c_failure_hint(&native);
        for needle in [
            "no C compiler for x86_64-unknown-linux-musl is set up",
            "pip install ziglang cargo-zigbuild",
            "cargo install --locked cargo-zigbuild",
            "apt-get install musl-tools",
            "CC_x86_64_unknown_linux_musl",
        ] {
            assert!(hint.contains(needle), "{needle}: {hint}");
        }
        // On a musl host, cc-rs compiles with the host's own `cc`.
        let host = TargetFacts {
            host: true,
            ..native.clone()
        };
        assert!(
            toolchain
                .notice(&host)
                .unwrap()
                .contains("cc-rs uses the host's `cc`")
        );
        // With --no-zig, nothing is said: that is what was asked.
        let no_zig = TargetFacts {
            zig_off: true,
            ..native
        };
        let toolchain = decide_with(&no_zig, ZigChoice::Never, None, None).unwrap();
        assert_eq!(toolchain, Toolchain::Default);
        assert!(toolchain.notice(&no_zig).is_none());
    }

    #[test]
    fn no_c_compiler_across_architectures_is_an_error_naming_the_crates_and_the_install_commands() {
        let cross = facts(ARM, true, &["ring", "zstd-sys"]);
        let err = decide_with(&cross, ZigChoice::Auto, None, None)
            .unwrap_err()
            .to_string();
        for needle in [
            "build scripts of `ring` and `zstd-sys` compile C code",
            "no C compiler for aarch64-unknown-linux-musl",
            "pip install ziglang cargo-zigbuild",
            "cargo install --locked cargo-zigbuild",
            "CC_aarch64_unknown_linux_musl",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(!err.contains("musl-tools"), "not for a cross target: {err}");
        let cross = facts(ARM, true, &["ring"]);
        let err = decide_with(&cross, ZigChoice::Auto, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("build script of `ring` compiles"), "{err}");
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
}
