//! Which crate cargo builds and how, as the caller asks: the selection (packages, binaries,
//! workspace), targets, profile and cargo's own flags, and the arguments `cargo build` gets from them.

use std::ffi::OsString;
use std::path::PathBuf;

use cargo_metadata::Package;

/// Which crate cargo builds, and how.
#[derive(Clone, Debug, Default)]
pub struct CargoOptions {
    /// `--package` specs; none: the package of the current directory (or `manifest_path`). Several
    /// make one image per binary built.
    pub packages: Vec<String>,
    /// `--workspace`: every member (but those `exclude` names), one image per binary.
    pub workspace: bool,
    /// `--exclude` specs, with `workspace`.
    pub exclude: Vec<String>,
    /// `--bin` names. None: the only binary built, else the package's `default-run`; several make
    /// one image per binary.
    pub bins: Vec<String>,
    /// `--bins`: every binary of the packages selected, one image each.
    pub all_bins: bool,
    /// Exactly these binaries, as (package, bin) names, one image each (what `resolve` asks for);
    /// replaces the selection above.
    pub only: Vec<(String, String)>,
    /// Target triples, one image per target; none: the `targets` or `target` setting, else cargo's
    /// `build.target`, else the musl target for the host's architecture.
    pub targets: Vec<String>,
    /// Cargo profile; `None`: release.
    pub profile: Option<String>,
    /// The Cargo.toml to use; `None`: cargo's search from the current directory.
    pub manifest_path: Option<PathBuf>,
    /// Cargo's `--target-dir`.
    pub target_dir: Option<PathBuf>,
    /// Cargo's `--config KEY=VALUE|PATH` values (a linker configured here is used for cross builds).
    pub config: Vec<String>,
    /// Cargo's `--locked` (for `cargo metadata` as for the build; so are the next two).
    pub locked: bool,
    /// Cargo's `--frozen`.
    pub frozen: bool,
    /// Cargo's `--offline`.
    pub offline: bool,
    /// Any other `cargo build` arguments (features, jobs, verbosity ...), passed on as they are, last.
    pub build_args: Vec<OsString>,
    /// Build musl targets with zig (through cargo-zigbuild): `Some(true)` always, `Some(false)` never;
    /// `None`: the `zig` setting, else when crates with C code need a C compiler that is missing.
    pub zig: Option<bool>,
    /// Build through `cargo auditable` (when installed); `None`: the `auditable` setting, else no.
    pub auditable: Option<bool>,
}

impl CargoOptions {
    /// True when the run makes one image per binary rather than choosing one.
    pub fn several(&self) -> bool {
        self.workspace
            || self.packages.len() > 1
            || self.bins.len() > 1
            || self.all_bins
            || !self.only.is_empty()
    }

    /// Flags that change how cargo reads the workspace (for `cargo metadata` too).
    pub(crate) fn resolution_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (on, flag) in [
            (self.locked, "--locked"),
            (self.frozen, "--frozen"),
            (self.offline, "--offline"),
        ] {
            if on {
                flags.push(flag.to_owned());
            }
        }
        for config in &self.config {
            flags.push("--config".to_owned());
            flags.push(config.clone());
        }
        flags
    }

    /// The feature flags among the arguments passed on to `cargo build`, for `cargo metadata` and the
    /// provenance.
    pub(crate) fn feature_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut args = self
            .build_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned());
        while let Some(arg) = args.next() {
            if arg == "--" {
                break;
            }
            if arg == "--all-features" || arg == "--no-default-features" {
                flags.push(arg);
            } else if arg == "--features" || arg == "-F" {
                if let Some(value) = args.next() {
                    flags.extend(["--features".to_owned(), value]);
                }
            } else if let Some(value) = arg
                .strip_prefix("--features=")
                .or_else(|| arg.strip_prefix("-F"))
            {
                flags.extend([
                    "--features".to_owned(),
                    value.trim_start_matches('=').to_owned(),
                ]);
            }
        }
        flags
    }

    /// What cargo builds: the user's selection flags, or with `group`, exactly those packages (and
    /// the binaries asked for among theirs).
    fn selection_args(&self, group: Option<&[&Package]>) -> Vec<String> {
        let mut args = Vec::new();
        let in_group = |name: &str| group.is_none_or(|g| g.iter().any(|p| p.name.as_str() == name));
        if !self.only.is_empty() {
            for (package, bin) in self.only.iter().filter(|(p, _)| in_group(p)) {
                if !args
                    .windows(2)
                    .any(|w: &[String]| w[0] == "--package" && &w[1] == package)
                {
                    args.extend(["--package".to_owned(), package.clone()]);
                }
                if !args
                    .windows(2)
                    .any(|w: &[String]| w[0] == "--bin" && &w[1] == bin)
                {
                    args.extend(["--bin".to_owned(), bin.clone()]);
                }
            }
            return args;
        }
        if let Some(group) = group {
            for package in group {
                args.extend(["--package".to_owned(), package.name.to_string()]);
            }
            let theirs: Vec<&str> = group
                .iter()
                .flat_map(|p| super::workspace::bins(p))
                .collect();
            for bin in self.bins.iter().filter(|b| theirs.contains(&b.as_str())) {
                args.extend(["--bin".to_owned(), bin.clone()]);
            }
        } else {
            if self.workspace {
                args.push("--workspace".to_owned());
            }
            for spec in &self.exclude {
                args.extend(["--exclude".to_owned(), spec.clone()]);
            }
            for spec in &self.packages {
                args.extend(["--package".to_owned(), spec.clone()]);
            }
            for bin in &self.bins {
                args.extend(["--bin".to_owned(), bin.clone()]);
            }
        }
        if self.all_bins {
            args.push("--bins".to_owned());
        }
        args
    }

    /// Arguments for `cargo build` (all but `--target`).
    pub(super) fn cargo_build_args(&self, group: Option<&[&Package]>) -> Vec<OsString> {
        let mut args: Vec<OsString> = self
            .selection_args(group)
            .into_iter()
            .map(OsString::from)
            .collect();
        let mut push = |a: &str| args.push(OsString::from(a));
        match &self.profile {
            Some(profile) => {
                push("--profile");
                push(profile);
            }
            None => push("--release"),
        }
        for flag in self.resolution_flags() {
            push(&flag);
        }
        if let Some(path) = &self.manifest_path {
            args.push("--manifest-path".into());
            args.push(path.clone().into_os_string());
        }
        if let Some(dir) = &self.target_dir {
            args.push("--target-dir".into());
            args.push(dir.clone().into_os_string());
        }
        args.extend(self.build_args.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_images_come_from_the_selection_flags() {
        let one = CargoOptions {
            packages: vec!["server".into()],
            bins: vec!["api".into()],
            ..CargoOptions::default()
        };
        assert!(!one.several());
        for several in [
            CargoOptions {
                workspace: true,
                ..CargoOptions::default()
            },
            CargoOptions {
                packages: vec!["a".into(), "b".into()],
                ..CargoOptions::default()
            },
            CargoOptions {
                all_bins: true,
                ..CargoOptions::default()
            },
            CargoOptions {
                bins: vec!["a".into(), "b".into()],
                ..CargoOptions::default()
            },
        ] {
            assert!(several.several(), "{several:?}");
        }
    }

    #[test]
    fn feature_flags_are_picked_from_build_arguments() {
        let flags = |args: &[&str]| {
            CargoOptions {
                build_args: args.iter().map(OsString::from).collect(),
                ..CargoOptions::default()
            }
            .feature_flags()
        };
        assert_eq!(
            flags(&[
                "--features",
                "a b",
                "-j",
                "2",
                "-Fc",
                "--features=d",
                "--all-features",
                "--no-default-features",
                "-F",
                "e",
                "-F=f",
                "--verbose",
                "--",
                "--features",
                "x",
            ]),
            [
                "--features",
                "a b",
                "--features",
                "c",
                "--features",
                "d",
                "--all-features",
                "--no-default-features",
                "--features",
                "e",
                "--features",
                "f"
            ]
        );
        assert!(flags(&["--release", "--timings"]).is_empty());
    }

    #[test]
    fn the_build_selects_what_was_asked_once() {
        let flags = CargoOptions {
            workspace: true,
            exclude: vec!["tools".into()],
            all_bins: true,
            ..CargoOptions::default()
        };
        assert_eq!(
            flags.selection_args(None),
            ["--workspace", "--exclude", "tools", "--bins"]
        );
        let exact = CargoOptions {
            only: vec![
                ("server".into(), "api".into()),
                ("server".into(), "worker".into()),
                ("tools".into(), "cli".into()),
                ("server".into(), "api".into()),
            ],
            ..CargoOptions::default()
        };
        assert_eq!(
            exact.selection_args(None),
            [
                "--package",
                "server",
                "--bin",
                "api",
                "--bin",
                "worker",
                "--package",
                "tools",
                "--bin",
                "cli"
            ]
        );
    }
}
