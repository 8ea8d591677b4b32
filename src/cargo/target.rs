//! The Rust target: the default musl triple for this host, whether its standard library is installed,
//! its OCI platform, and whether it needs `rust-lld` to cross-link.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::platform::Platform;

/// The `rustc` cargo would use.
fn rustc() -> Command {
    Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc")))
}

fn rustc_output(args: &[&str], what: &str) -> Result<String> {
    let output = rustc()
        .args(args)
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run rustc to {what}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(Error::Invalid(format!("rustc could not {what}: {first}")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The host triple, from `rustc -vV`.
pub fn host_triple() -> Result<String> {
    let text = rustc_output(&["-vV"], "report the host target")?;
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .ok_or_else(|| Error::Invalid("`rustc -vV` printed no host line".to_owned()))
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

/// Fails with the `rustup target add` command when the target's standard library is missing.
pub fn ensure_installed(triple: &str) -> Result<()> {
    if triple.ends_with(".json") {
        // A custom target spec brings its own standard library (build-std); nothing to check.
        return Ok(());
    }
    let libdir = rustc_output(
        &["--print", "target-libdir", "--target", triple],
        &format!("find the standard library for `{triple}`"),
    )?;
    if Path::new(libdir.trim()).is_dir() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the Rust standard library for `{triple}` is not installed; run `rustup target add {triple}`"
        )))
    }
}

/// The OCI platform of a target triple: target-lexicon, or `rustc --print cfg` for what it cannot parse
/// (custom targets, `powerpc-unknown-linux-muslspe`).
pub fn platform_for(triple: &str) -> Result<Platform> {
    match Platform::from_target_triple(triple) {
        Ok(platform) => Ok(platform),
        Err(err) if err.to_string().contains("cannot parse") => platform_from_cfg(triple),
        Err(err) => Err(err),
    }
}

fn platform_from_cfg(triple: &str) -> Result<Platform> {
    let cfg = rustc_output(
        &["--print", "cfg", "--target", triple],
        &format!("describe target `{triple}`"),
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

/// The environment variable cargo reads for a target's linker.
pub fn linker_env_var(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

/// True when building `target` on `host` crosses architectures.
pub fn is_cross(host: &str, target: &str) -> bool {
    host.split('-').next() != target.split('-').next()
}

/// True when the user configured a linker for `triple`: the environment, a `--config` argument, or a
/// cargo config file that cargo would read from `cwd` (its ancestors' `.cargo/config.toml`, then
/// `$CARGO_HOME/config.toml`). `target.'cfg(..)'.linker` counts too, conservatively.
pub fn linker_configured(triple: &str, config_args: &[String], cwd: &Path) -> bool {
    if std::env::var_os(linker_env_var(triple)).is_some() {
        return true;
    }
    if config_args.iter().any(|c| c.contains("linker")) {
        return true;
    }
    config_files(cwd)
        .iter()
        .any(|file| config_sets_linker(file, triple))
}

fn config_files(cwd: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in cwd.ancestors() {
        for name in ["config.toml", "config"] {
            let path = dir.join(".cargo").join(name);
            if path.is_file() {
                files.push(path);
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        for name in ["config.toml", "config"] {
            let path = home.join(name);
            if path.is_file() && !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

fn config_sets_linker(file: &Path, triple: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return false;
    };
    let Some(targets) = doc.get("target").and_then(|t| t.as_table()) else {
        return false;
    };
    targets.iter().any(|(key, table)| {
        (key == triple || key.starts_with("cfg(")) && table.get("linker").is_some()
    })
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
    fn linker_env_var_follows_cargo() {
        assert_eq!(
            linker_env_var("aarch64-unknown-linux-musl"),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
        );
    }

    #[test]
    fn config_files_with_a_linker_for_the_target_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(nested.join(".cargo")).unwrap();
        std::fs::create_dir_all(dir.path().join(".cargo")).unwrap();
        std::fs::write(
            dir.path().join(".cargo/config.toml"),
            "[target.aarch64-unknown-linux-musl]\nlinker = \"aarch64-linux-musl-gcc\"\n",
        )
        .unwrap();
        std::fs::write(nested.join(".cargo/config.toml"), "[build]\njobs = 1\n").unwrap();
        let files = config_files(&nested);
        assert!(
            files
                .iter()
                .any(|f| config_sets_linker(f, "aarch64-unknown-linux-musl"))
        );
        assert!(
            !files
                .iter()
                .any(|f| config_sets_linker(f, "riscv64gc-unknown-linux-musl"))
        );
    }

    #[test]
    fn installed_host_target_passes_and_unknown_target_fails() {
        let host = host_triple().unwrap();
        ensure_installed(&host).unwrap();
        let err = ensure_installed("nonsense-target-triple")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nonsense-target-triple"), "{err}");
    }
}
