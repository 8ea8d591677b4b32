//! Cargo's configuration as `cargo build` sees it from the current directory: `build.target`, the
//! linker and C compiler set for a target, and where each came from (for `-v`).
//!
//! cargo-config2 reads the config files (every `.cargo/config.toml` from the current directory up,
//! then `$CARGO_HOME`) and the environment with cargo's precedence. It does not take cargo's `--config`
//! arguments, which win over both, so those are read here with its own types and consulted first.

use std::path::Path;

use cargo_config2::de::{self, Definition, StringOrArray};

use crate::error::{Error, Result};

/// The configuration cargo reads for a build started in `cwd` with `--config` arguments.
pub(crate) struct CargoConfig {
    config: cargo_config2::Config,
    /// The same files without the environment, for telling which file set a value.
    files: de::Config,
    /// `--config` arguments, last first (a later one wins, as in cargo).
    cli: Vec<(String, de::Config)>,
}

impl CargoConfig {
    /// Reads the configuration for a build started in `cwd` on `host`.
    pub fn load(cwd: &Path, config_args: &[String], host: &str) -> Result<CargoConfig> {
        let fail = |e: cargo_config2::Error| {
            Error::Invalid(format!(
                "reading cargo's configuration (.cargo/config.toml files, CARGO_* variables) from {}: {}; fix it, `cargo build` reads it too",
                cwd.display(),
                one_line(&e)
            ))
        };
        let options = cargo_config2::ResolveOptions::default().host_triple(host);
        let config = cargo_config2::Config::load_with_options(cwd, options).map_err(fail)?;
        let files = de::Config::load_with_cwd(cwd).map_err(fail)?;
        let mut cli = Vec::new();
        for arg in config_args.iter().rev() {
            cli.push((arg.clone(), parse_config_arg(arg, cwd)?));
        }
        Ok(CargoConfig { config, files, cli })
    }

    /// `build.target` (one target or a list) and where it was set, when set.
    pub fn build_targets(&self) -> Result<Option<(Vec<String>, String)>> {
        for (arg, config) in &self.cli {
            if let Some(targets) = &config.build.target {
                let list = match targets {
                    StringOrArray::String(one) => vec![one.val.clone()],
                    StringOrArray::Array(many) => many.iter().map(|v| v.val.clone()).collect(),
                };
                return Ok(Some((list, format!("`--config {arg}`"))));
            }
        }
        let targets = self
            .config
            .build_target_for_cli(std::iter::empty::<&str>())
            .map_err(|e| Error::Invalid(format!("cargo's build.target: {}", one_line(&e))))?;
        if targets.is_empty() {
            return Ok(None);
        }
        let origin = if std::env::var_os("CARGO_BUILD_TARGET").is_some() {
            "CARGO_BUILD_TARGET".to_owned()
        } else {
            // A list merges the lists of several files.
            let values = match &self.files.build.target {
                Some(StringOrArray::String(one)) => std::slice::from_ref(one),
                Some(StringOrArray::Array(many)) => many.as_slice(),
                None => &[],
            };
            let mut files: Vec<String> = Vec::new();
            for value in values {
                let file = describe(value.definition.as_ref());
                if !files.contains(&file) {
                    files.push(file);
                }
            }
            if files.is_empty() {
                files.push(describe(None));
            }
            format!("build.target in {}", files.join(" and "))
        };
        Ok(Some((targets, origin)))
    }

    /// The linker configured for `triple` (`target.<triple>.linker` or a matching
    /// `target.<cfg>.linker`, `CARGO_TARGET_<TRIPLE>_LINKER`, `--config`) and where it was set.
    pub fn linker(&self, triple: &str) -> Result<Option<(String, String)>> {
        for (arg, config) in &self.cli {
            // A `cfg(...)` table given on the command line counts whatever it matches: the user is
            // choosing linkers by hand.
            let found = config.target.iter().find(|(key, table)| {
                (*key == triple || key.starts_with("cfg(")) && table.linker.is_some()
            });
            if let Some((_, table)) = found {
                let linker = table
                    .linker
                    .as_ref()
                    .map(|l| l.val.clone())
                    .unwrap_or_default();
                return Ok(Some((linker, format!("`--config {arg}`"))));
            }
        }
        let linker = self.config.linker(triple).map_err(|e| {
            Error::Invalid(format!(
                "cargo's linker setting for {triple}: {}",
                one_line(&e)
            ))
        })?;
        let Some(linker) = linker else {
            return Ok(None);
        };
        let var = linker_env_var(triple);
        let origin = if std::env::var_os(&var).is_some() {
            var
        } else {
            let definition = self
                .files
                .target
                .get(triple)
                .and_then(|t| t.linker.as_ref())
                .or_else(|| {
                    self.files
                        .target
                        .iter()
                        .filter(|(key, _)| key.starts_with("cfg("))
                        .find_map(|(_, t)| t.linker.as_ref())
                })
                .and_then(|l| l.definition.as_ref());
            format!("target.{triple}.linker in {}", describe(definition))
        };
        Ok(Some((linker.display().to_string(), origin)))
    }

    /// The C compiler set for `triple` the way cc-rs reads it: `CC_<triple>`, `CC_<triple_with_underscores>`
    /// or `TARGET_CC` (and plain `CC` for a target of the host's architecture, as cross builds would
    /// give the host's compiler), in the environment or cargo's `[env]` table; with where it was set.
    pub fn c_compiler(&self, triple: &str, native: bool) -> Option<(String, String)> {
        let mut names = vec![
            format!("CC_{triple}"),
            format!("CC_{}", triple.replace(['-', '.'], "_")),
            "TARGET_CC".to_owned(),
        ];
        if native {
            names.push("CC".to_owned());
        }
        for name in &names {
            if let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) {
                return Some((value.to_string_lossy().into_owned(), name.clone()));
            }
        }
        for (arg, config) in &self.cli {
            for name in &names {
                if let Some(value) = config.env.get(name).and_then(env_value) {
                    return Some((value.val.clone(), format!("`--config {arg}`")));
                }
            }
        }
        for name in &names {
            if let Some(value) = self.config.env.get(name) {
                let file = (self.files.env.get(name).and_then(env_value))
                    .and_then(|v| v.definition.as_ref());
                return Some((
                    value.value.to_string_lossy().into_owned(),
                    format!("[env] {name} in {}", describe(file)),
                ));
            }
        }
        None
    }
}

/// The environment variable cargo reads for a target's linker.
pub(crate) fn linker_env_var(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

/// One `--config` value as cargo reads it: the path of a file when one exists there, else a
/// `KEY=VALUE` TOML line.
fn parse_config_arg(arg: &str, cwd: &Path) -> Result<de::Config> {
    let path = cwd.join(arg);
    if !arg.is_empty() && path.is_file() {
        return de::Config::load_file(&path).map_err(|e| {
            Error::input(
                &path,
                format!("given with --config: {}; fix the file", one_line(&e)),
            )
        });
    }
    toml::from_str::<de::Config>(arg).map_err(|e| {
        Error::Invalid(format!(
            "--config `{arg}` is neither a file nor a valid KEY=VALUE setting: {}",
            one_line(&e)
        ))
    })
}

fn env_value(value: &de::EnvConfigValue) -> Option<&de::Value<String>> {
    match value {
        de::EnvConfigValue::Value(v) => Some(v),
        de::EnvConfigValue::Table { value, .. } => Some(value),
        _ => None,
    }
}

fn describe(definition: Option<&Definition>) -> String {
    match definition {
        Some(Definition::Path(path)) => path.display().to_string(),
        Some(Definition::Environment(var)) => var.to_string(),
        Some(Definition::Cli(Some(path))) => format!("--config {}", path.display()),
        Some(Definition::Cli(None)) => "--config".to_owned(),
        _ => "cargo's configuration".to_owned(),
    }
}

/// An error with its causes, on one line (the library's can span lines, e.g. a TOML excerpt).
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn linker_env_var_follows_cargo() {
        assert_eq!(
            linker_env_var("aarch64-unknown-linux-musl"),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
        );
    }

    #[test]
    fn nearer_config_files_win_and_say_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        write(
            &dir.path().join(".cargo/config.toml"),
            "[build]\ntarget = [\"x86_64-unknown-linux-musl\"]\n\
             [target.aarch64-unknown-linux-musl]\nlinker = \"aarch64-linux-musl-gcc\"\n",
        );
        write(
            &nested.join(".cargo/config.toml"),
            "[build]\ntarget = [\"aarch64-unknown-linux-musl\"]\n\
             [env]\nCC_aarch64_unknown_linux_musl = \"my-cc\"\n",
        );
        let config = CargoConfig::load(&nested, &[], "x86_64-unknown-linux-gnu").unwrap();
        if std::env::var_os("CARGO_BUILD_TARGET").is_none() {
            let (targets, origin) = config.build_targets().unwrap().unwrap();
            // Lists add up, the nearer file's last, as cargo merges them.
            assert_eq!(
                targets,
                ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
            );
            let parent = dir.path().join(".cargo/config.toml");
            let nearer = nested.join(".cargo/config.toml");
            assert_eq!(
                origin,
                format!(
                    "build.target in {} and {}",
                    parent.display(),
                    nearer.display()
                )
            );
        }
        if std::env::var_os(linker_env_var("aarch64-unknown-linux-musl")).is_none() {
            let (linker, origin) = config
                .linker("aarch64-unknown-linux-musl")
                .unwrap()
                .unwrap();
            assert_eq!(linker, "aarch64-linux-musl-gcc");
            assert!(
                origin.contains(&dir.path().join(".cargo/config.toml").display().to_string()),
                "{origin}"
            );
        }
        assert!(
            config
                .linker("riscv64gc-unknown-linux-musl")
                .unwrap()
                .is_none()
        );
        let (cc, origin) = config
            .c_compiler("aarch64-unknown-linux-musl", false)
            .unwrap();
        assert_eq!(cc, "my-cc");
        assert!(
            origin.starts_with("[env] CC_aarch64_unknown_linux_musl in "),
            "{origin}"
        );
    }

    #[test]
    fn config_arguments_win_over_files() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join(".cargo/config.toml"),
            "[build]\ntarget = \"x86_64-unknown-linux-musl\"\n",
        );
        write(
            &dir.path().join("extra.toml"),
            "[target.aarch64-unknown-linux-musl]\nlinker = \"from-file\"\n",
        );
        let args = [
            "build.target=\"riscv64gc-unknown-linux-musl\"".to_owned(),
            "extra.toml".to_owned(),
            "build.target=[\"aarch64-unknown-linux-musl\"]".to_owned(),
        ];
        let config = CargoConfig::load(dir.path(), &args, "x86_64-unknown-linux-gnu").unwrap();
        let (targets, origin) = config.build_targets().unwrap().unwrap();
        assert_eq!(targets, ["aarch64-unknown-linux-musl"], "the last one wins");
        assert!(
            origin.contains("--config build.target=[\"aarch64"),
            "{origin}"
        );
        let (linker, origin) = config
            .linker("aarch64-unknown-linux-musl")
            .unwrap()
            .unwrap();
        assert_eq!(linker, "from-file");
        assert_eq!(origin, "`--config extra.toml`");
    }

    #[test]
    fn a_bad_config_argument_is_one_line_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = CargoConfig::load(
            dir.path(),
            &["build.target=".to_owned()],
            "x86_64-unknown-linux-gnu",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("--config `build.target=`"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // A string and a list cannot merge (cargo refuses them too): the error says why.
        write(
            &dir.path().join(".cargo/config.toml"),
            "[build]\ntarget = \"x\"\n",
        );
        write(
            &dir.path().join("a/.cargo/config.toml"),
            "[build]\ntarget = [\"y\"]\n",
        );
        let err = CargoConfig::load(&dir.path().join("a"), &[], "x86_64-unknown-linux-gnu")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("failed to merge config") && err.contains("expected array"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
