//! The cargo job's choices: which targets to build, which executable to package, the default image
//! name, and how Cargo.toml essentials combine with the caller's.

use cargo_metadata::Package;

use super::build::Executable;
use super::settings::{ALL_TARGETS, Settings};
use super::target;
use super::workspace::Workspace;
use crate::error::{Error, Result};
use crate::image::reference::Reference;
use crate::oci::platform::Platform;

/// The targets to build and where they came from (for `-v`): `given` (the `--target` flags), else
/// `targets` or `target` from Cargo.toml, else cargo's `build.target` (`configured`, as cargo itself
/// would build), else the host's musl target.
pub(crate) fn targets(
    given: &[String],
    settings: &Settings,
    configured: Option<(Vec<String>, String)>,
    host: &str,
) -> Result<(Vec<String>, String)> {
    let in_manifest = |key: &str| match &settings.manifest {
        Some(path) => format!("the `{key}` setting in {}", path.display()),
        None => format!("the `{key}` setting"),
    };
    let (targets, origin) = if !given.is_empty() {
        (given.to_vec(), "--target".to_owned())
    } else if let Some(targets) = settings.targets.clone().filter(|t| !t.is_empty()) {
        (targets, in_manifest("targets"))
    } else if let Some(target) = &settings.target {
        (vec![target.clone()], in_manifest("target"))
    } else if let Some((targets, origin)) = configured.filter(|(t, _)| !t.is_empty()) {
        (targets, origin)
    } else {
        (
            vec![target::default_target(host)],
            "the default for this machine's architecture".to_owned(),
        )
    };
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            return Err(Error::Invalid(format!(
                "target `{t}` is given twice (in {origin})"
            )));
        }
    }
    Ok((targets, origin))
}

/// True when `triples` asks for every platform of the base; `all` beside other targets is refused.
pub(crate) fn wants_all(triples: &[String], origin: &str) -> Result<bool> {
    match triples {
        [one] if one == ALL_TARGETS => Ok(true),
        several if several.iter().any(|t| t == ALL_TARGETS) => Err(Error::Invalid(format!(
            "target `all` (in {origin}) stands for every platform of the base image, so it is given \
             alone"
        ))),
        _ => Ok(false),
    }
}

/// The musl target Rust builds static programs for `platform` with, when there is one.
pub(crate) fn musl_triple(platform: &Platform) -> Option<&'static str> {
    if platform.os != "linux" {
        return None;
    }
    Some(
        match (
            platform.architecture.as_str(),
            platform.variant.as_deref().unwrap_or(""),
        ) {
            ("amd64", _) => "x86_64-unknown-linux-musl",
            ("arm64", "" | "v8") => "aarch64-unknown-linux-musl",
            ("arm", "v7" | "") => "armv7-unknown-linux-musleabihf",
            ("arm", "v6") => "arm-unknown-linux-musleabihf",
            ("arm", "v5") => "armv5te-unknown-linux-musleabi",
            ("386", _) => "i686-unknown-linux-musl",
            ("ppc64le", _) => "powerpc64le-unknown-linux-musl",
            ("s390x", _) => "s390x-unknown-linux-musl",
            ("riscv64", _) => "riscv64gc-unknown-linux-musl",
            ("loong64", _) => "loongarch64-unknown-linux-musl",
            ("mips64le", _) => "mips64el-unknown-linux-muslabi64",
            _ => return None,
        },
    )
}

/// What `all` becomes for a base offering `platforms`: the musl target of each Linux platform whose
/// standard library `installed` finds, in the base's order; and each platform left out, with why.
/// Entries that are not platforms (attestation manifests, `unknown/unknown`) are passed over.
pub(crate) fn every_platform(
    platforms: &[Platform],
    mut installed: impl FnMut(&str) -> bool,
) -> (Vec<String>, Vec<(Platform, String)>) {
    let mut chosen: Vec<String> = Vec::new();
    let mut skipped = Vec::new();
    for platform in platforms {
        if platform.os == "unknown" {
            continue;
        }
        if platform.os != "linux" {
            skipped.push((platform.clone(), "not a Linux platform".to_owned()));
            continue;
        }
        let Some(triple) = musl_triple(platform) else {
            skipped.push((
                platform.clone(),
                "Rust has no musl target for it".to_owned(),
            ));
            continue;
        };
        if chosen.iter().any(|t| t == triple) {
            continue;
        }
        if installed(triple) {
            chosen.push(triple.to_owned());
        } else {
            skipped.push((
                platform.clone(),
                format!("{triple} is not installed (rustup target add {triple})"),
            ));
        }
    }
    (chosen, skipped)
}

/// What the `Building` line names: the bin, else the selected package, else the workspace.
pub(crate) fn describe_selection(bin: Option<&str>, selected: Option<&Package>) -> String {
    match (bin, selected) {
        (Some(bin), _) => format!("bin `{bin}`"),
        (None, Some(package)) => format!("package `{}`", package.name),
        (None, None) => "workspace".to_owned(),
    }
}

/// The executable to package: the only one built, else the `default-run` of the package they all come
/// from; otherwise an error listing the candidates.
pub(crate) fn choose<'a>(
    executables: &'a [Executable],
    workspace: &Workspace,
    bin: Option<&str>,
) -> Result<&'a Executable> {
    match executables {
        [] => Err(Error::Invalid(match bin {
            Some(bin) => format!("cargo built no executable named `{bin}`"),
            None => "cargo built no executable: the selected package has no binary target \
                     (a [[bin]] or src/main.rs); select one with -p PACKAGE"
                .to_owned(),
        })),
        [one] => Ok(one),
        several => {
            let first = &several[0].package_id;
            if several.iter().all(|e| &e.package_id == first) {
                let default_run = workspace
                    .package(first)
                    .and_then(|p| p.default_run.as_deref());
                if let Some(found) = default_run.and_then(|d| several.iter().find(|e| e.name == d))
                {
                    return Ok(found);
                }
            }
            let names: Vec<String> = several
                .iter()
                .map(|e| {
                    let package = workspace
                        .package(&e.package_id)
                        .map_or("?", |p| p.name.as_str());
                    format!("`{}` (package {package})", e.name)
                })
                .collect();
            Err(Error::Invalid(format!(
                "several binaries were built: {}; choose one with --bin NAME (and -p PACKAGE), or set \
                 `default-run` in the package",
                names.join(", ")
            )))
        }
    }
}

/// `<bin>:<version>`, with the bin name made a valid repository name and `+build` metadata made a
/// valid tag.
pub(crate) fn default_tag(bin: &str, version: &str) -> Result<Reference> {
    let repository = crate::job::package::default_tag(bin)?;
    let tag: String = version
        .chars()
        .map(|c| if c == '+' { '_' } else { c })
        .collect();
    Reference::with_tag(
        &format!("{}/{}", repository.domain(), repository.path()),
        &tag,
    )
}

#[cfg(test)]
mod tests {

    use super::*;

    fn with_targets(target: Option<&str>, targets: Option<&[&str]>) -> Settings {
        Settings {
            target: target.map(str::to_owned),
            targets: targets.map(|t| t.iter().map(std::string::ToString::to_string).collect()),
            ..Settings::default()
        }
    }

    #[test]
    fn every_platform_of_a_base_maps_to_its_musl_target_and_the_rest_are_said() {
        let platforms: Vec<Platform> = [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/s390x",
            "linux/mips",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .chain(
            [("windows", "amd64"), ("unknown", "unknown")].map(|(os, arch)| Platform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: None,
                os_version: None,
                os_features: Vec::new(),
            }),
        )
        .collect();
        let installed = [
            "x86_64-unknown-linux-musl",
            "aarch64-unknown-linux-musl",
            "armv7-unknown-linux-musleabihf",
        ];
        let (chosen, skipped) = every_platform(&platforms, |t| installed.contains(&t));
        assert_eq!(chosen, installed);
        let skipped: Vec<String> = skipped
            .iter()
            .map(|(p, why)| format!("{p}: {why}"))
            .collect();
        assert_eq!(
            skipped,
            [
                "linux/arm/v6: arm-unknown-linux-musleabihf is not installed (rustup target add arm-unknown-linux-musleabihf)",
                "linux/s390x: s390x-unknown-linux-musl is not installed (rustup target add s390x-unknown-linux-musl)",
                "linux/mips: Rust has no musl target for it",
                "windows/amd64: not a Linux platform",
            ]
        );
    }

    #[test]
    fn each_musl_target_labels_images_with_the_platform_it_was_chosen_for() {
        for platform in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/386",
            "linux/ppc64le",
            "linux/s390x",
            "linux/riscv64",
        ] {
            let platform: Platform = platform.parse().unwrap();
            let triple = musl_triple(&platform).unwrap();
            let target =
                crate::cargo::target::Target::new(triple, &crate::util::cancel::CancelToken::new())
                    .unwrap();
            assert!(
                platform.matches(target.platform()) && target.platform().matches(&platform),
                "{platform} -> {triple} -> {}",
                target.platform()
            );
        }
    }

    #[test]
    fn all_stands_alone() {
        let all = vec!["all".to_owned()];
        assert!(wants_all(&all, "--target").unwrap());
        assert!(!wants_all(&["x86_64-unknown-linux-musl".to_owned()], "--target").unwrap());
        let mixed = vec!["all".to_owned(), "x86_64-unknown-linux-musl".to_owned()];
        assert!(wants_all(&mixed, "--target").is_err());
    }

    #[test]
    fn flags_win_over_settings_over_cargo_config_over_the_host() {
        let host = "x86_64-unknown-linux-gnu";
        let both = with_targets(Some("a"), Some(&["b", "c"]));
        let config = || {
            Some((
                vec!["k".to_owned(), "l".to_owned()],
                "CARGO_BUILD_TARGET".to_owned(),
            ))
        };
        let chosen = |given: &[String], settings: &Settings, configured| {
            targets(given, settings, configured, host).unwrap()
        };
        assert_eq!(chosen(&["f".into()], &both, config()).0, ["f"]);
        assert_eq!(chosen(&[], &both, config()).0, ["b", "c"]);
        let empty_list = with_targets(Some("a"), Some(&[]));
        assert_eq!(chosen(&[], &empty_list, config()).0, ["a"]);
        assert_eq!(
            chosen(&[], &Settings::default(), config()),
            (
                vec!["k".to_owned(), "l".to_owned()],
                "CARGO_BUILD_TARGET".to_owned()
            )
        );
        let (default, origin) = chosen(&[], &Settings::default(), None);
        assert_eq!(default, ["x86_64-unknown-linux-musl"]);
        assert!(origin.contains("default"), "{origin}");
        let twice = targets(&["t".into(), "t".into()], &both, None, host).unwrap_err();
        assert_eq!(twice.to_string(), "target `t` is given twice (in --target)");
    }

    #[test]
    fn default_tag_is_bin_and_version_with_build_metadata_made_a_tag() {
        assert_eq!(
            default_tag("My_App", "1.2.0").unwrap().familiar(),
            "my-app:1.2.0"
        );
        assert_eq!(
            default_tag("app", "1.0.0+git.abc").unwrap().familiar(),
            "app:1.0.0_git.abc"
        );
    }
}
