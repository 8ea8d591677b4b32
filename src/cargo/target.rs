//! The Rust target: the default musl triple for this host, whether its standard library is installed,
//! its OCI platform, and whether it crosses architectures.

use std::ffi::OsString;
use std::path::Path;
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

/// True when building `target` on `host` crosses architectures.
pub fn is_cross(host: &str, target: &str) -> bool {
    host.split('-').next() != target.split('-').next()
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
    fn installed_host_target_passes_and_unknown_target_fails() {
        let host = host_triple().unwrap();
        ensure_installed(&host).unwrap();
        let err = ensure_installed("nonsense-target-triple")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nonsense-target-triple"), "{err}");
    }
}
