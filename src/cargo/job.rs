//! `cargo zeroimage`'s job: build the crate with cargo for each target, choose the executable, settle
//! every option (flags over the package's Cargo.toml settings over the workspace's), package, push.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::build::{BuildRequest, Executable, Unit, build};
use super::select::{choose, default_tag, describe_selection, merge_essentials, targets};
use super::supply::{self, TargetBuild};
use super::target;
use super::workspace::{Workspace, annotations, git_revision};
use crate::destination::{is_dash, parent_dir};
use crate::error::{Error, Result};
use crate::job::{JobOptions, JobOutcome, Staging, ensure_stdout_free, open_base, report_written};
use crate::options::ImageOptions;
use crate::package::{Input, PackageOptions, default_output, package as package_images};
use crate::platform::{Platform, PlatformOverride};
use crate::report::Listener;
use crate::timestamp::Timestamp;

/// Which crate cargo builds, and how.
#[derive(Clone, Debug, Default)]
pub struct CargoOptions {
    /// `--package` specs; none: the package of the current directory (or `manifest_path`).
    pub packages: Vec<String>,
    /// The binary to package; `None`: the only one built, else the package's `default-run`.
    pub bin: Option<String>,
    /// Target triples, one image per target; none: the `targets` or `target` setting, else the musl
    /// target for the host's architecture.
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
    /// Build through `cargo auditable` (when installed); `None`: the `auditable` setting, else no.
    pub auditable: Option<bool>,
}

impl CargoOptions {
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

    /// Arguments for `cargo build` (all but `--target`).
    fn cargo_build_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(OsString::from(a));
        for p in &self.packages {
            push("--package");
            push(p);
        }
        if let Some(bin) = &self.bin {
            push("--bin");
            push(bin);
        }
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

/// Everything `cargo zeroimage` decides: how to build, and the image options, which win over the
/// crate's `[package.metadata.zeroimage]` and `[workspace.metadata.zeroimage]` settings.
#[derive(Clone, Debug, Default)]
pub struct CargoJob {
    /// What cargo builds.
    pub cargo: CargoOptions,
    /// The image, its base, the archive and the push.
    pub options: JobOptions,
}

/// What the cargo job made.
#[derive(Clone, Debug)]
pub struct CargoOutcome {
    /// The archive (always written) and what was pushed.
    pub image: JobOutcome,
    /// The binary packaged.
    pub bin: String,
    /// The package it belongs to.
    pub package: String,
    /// That package's version.
    pub version: String,
    /// The targets built, one platform each.
    pub targets: Vec<String>,
}

impl CargoJob {
    /// Builds, packages and pushes; progress goes to `listener`, cargo's own output to the terminal.
    pub fn run(&self, listener: &dyn Listener) -> Result<CargoOutcome> {
        let cargo = &self.cargo;
        let options = &self.options;
        let started = "now".parse::<Timestamp>().ok();
        let workspace = Workspace::load(cargo.manifest_path.as_deref(), &cargo.resolution_flags())?;
        workspace.check_settings()?;
        let selected = workspace.selected_package(&cargo.packages, cargo.manifest_path.as_deref());
        let settings = workspace.settings(selected)?;
        ensure_stdout_free(
            options.output.as_deref().or(settings.output.as_deref()),
            options.stdout_reserved,
        )?;

        let host = target::host_triple()?;
        let triples = targets(&cargo.targets, &settings, &host)?;
        let mut platforms = Vec::new();
        for triple in &triples {
            platforms.push(target::platform_for(triple)?);
        }
        for triple in &triples {
            target::ensure_installed(triple)?;
        }
        let cwd = std::env::current_dir().map_err(Error::io("reading", "the current directory"))?;

        let build = Build {
            cargo,
            workspace: &workspace,
            selected,
            host: &host,
            cwd: &cwd,
            auditable: supply::use_auditable(
                cargo.auditable.or(settings.auditable).unwrap_or(false),
                listener,
            ),
        };
        let mut built: Vec<Executable> = Vec::new();
        let mut units: Vec<Vec<Unit>> = Vec::new();
        for (triple, platform) in triples.iter().zip(&platforms) {
            let (executable, compiled) = build.one(triple, platform, listener)?;
            units.push(compiled);
            if let Some(first) = built.first() {
                if first.name != executable.name || first.package_id != executable.package_id {
                    return Err(Error::Invalid(format!(
                        "the targets chose different binaries (`{}` and `{}`); pick one with --bin",
                        first.name, executable.name
                    )));
                }
            }
            built.push(executable);
        }
        let executable = &built[0];
        let package = workspace.package(&executable.package_id).ok_or_else(|| {
            Error::Invalid(format!(
                "cargo built `{}` for a package not in this workspace",
                executable.name
            ))
        })?;
        // Settings of the package that owns the binary, when it was not the one selected up front.
        let settings = if selected.map(|p| &p.id) == Some(&package.id) {
            settings
        } else {
            workspace.settings(Some(package))?
        };

        let created = match options.created {
            Some(created) => created,
            None => Timestamp::resolve(settings.created.as_deref())?,
        };
        let tag = match (&options.tag, settings.tag_reference()?) {
            (Some(tag), _) => tag.clone(),
            (None, Some(tag)) => tag,
            (None, None) => default_tag(&executable.name, &package.version.to_string())?,
        };
        let output = match (&options.output, &settings.output) {
            (Some(output), _) | (None, Some(output)) => output.clone(),
            (None, None) if built.len() == 1 => default_output(&executable.path),
            (None, None) => multi_platform_output(cargo, &workspace, executable)?,
        };
        let revision = git_revision(workspace.root());
        let from_package = annotations(package, &executable.name, revision.as_deref(), created);
        let config = ImageOptions {
            labels: from_package.clone(),
            annotations: from_package,
            ..ImageOptions::default()
        }
        .overlay(settings.image_options()?)
        .overlay(options.config.clone());
        let essentials = merge_essentials(settings.essentials()?, options.essentials.clone());
        let inputs: Vec<Input> = built
            .iter()
            .zip(&platforms)
            .map(|(e, platform)| Input {
                path: e.path.clone(),
                platform: PlatformOverride::from_platform(platform),
            })
            .collect();
        let push_to = if options.push.is_empty() {
            settings.push_references()?
        } else {
            options.push.clone()
        };
        create_output_dir(&output)?;
        let staging = Staging::new(Some(&output), !push_to.is_empty())?;
        let created_now = options.created_now
            || (options.created.is_none() && settings.created.as_deref() == Some("now"));
        let target_builds: Vec<TargetBuild> = triples
            .iter()
            .zip(&built)
            .zip(&units)
            .map(|((triple, executable), units)| TargetBuild {
                triple,
                executable,
                units,
            })
            .collect();
        let attach = supply::attach_options(
            self,
            &workspace,
            match options.sbom {
                Some(formats) => formats,
                None => settings.sbom_formats()?.unwrap_or_default(),
            },
            options.provenance.or(settings.provenance).unwrap_or(false),
            &target_builds,
            &tag,
            started.filter(|_| created_now),
            build.auditable,
            listener,
        )?;
        let package_options = PackageOptions {
            output: Some(staging.build_path().unwrap_or_else(|| output.clone())),
            tag: Some(tag),
            created,
            allow_dynamic: options.allow_dynamic || settings.allow_dynamic.unwrap_or(false),
            config,
            essentials,
            attach,
        };
        let base_ref = match &options.base {
            Some(base) => Some(base.clone()),
            None => settings.base_ref()?,
        };
        let base = open_base(base_ref.as_ref(), &options.pull_options, listener)?;
        let mut packaged = package_images(&inputs, &package_options, base.as_ref(), listener)?;
        staging.deliver(&mut packaged.summary)?;
        report_written(&packaged.summary, listener);
        let pushed = if push_to.is_empty() {
            Vec::new()
        } else {
            packaged.push(&push_to, &options.push_options, listener)?
        };
        Ok(CargoOutcome {
            image: JobOutcome {
                summary: packaged.summary,
                pushed,
            },
            bin: executable.name.clone(),
            package: package.name.to_string(),
            version: package.version.to_string(),
            targets: triples,
        })
    }
}

/// What every target's build shares.
struct Build<'a> {
    cargo: &'a CargoOptions,
    workspace: &'a Workspace,
    selected: Option<&'a cargo_metadata::Package>,
    host: &'a str,
    cwd: &'a Path,
    /// Build through `cargo auditable`.
    auditable: bool,
}

impl Build<'_> {
    /// Builds for one target and returns the executable to package. A cross build for a musl target
    /// with no linker configured links with rust-lld, which needs no C toolchain.
    fn one(
        &self,
        triple: &str,
        platform: &Platform,
        listener: &dyn Listener,
    ) -> Result<(Executable, Vec<Unit>)> {
        let cargo = self.cargo;
        let mut request = BuildRequest {
            target: triple.to_owned(),
            args: cargo.cargo_build_args(),
            env: Vec::new(),
            auditable: self.auditable,
        };
        let cross_lld = target::is_cross(self.host, triple)
            && triple.contains("-linux-musl")
            && !target::linker_configured(triple, &cargo.config, self.cwd);
        if cross_lld {
            listener.detail(&format!(
                "no linker configured for {triple}: linking with rust-lld"
            ));
            request
                .env
                .push((target::linker_env_var(triple), "rust-lld".to_owned()));
        }
        listener.status(
            "Building",
            &format!(
                "{} for {triple} ({platform})",
                describe_selection(cargo.bin.as_deref(), self.selected)
            ),
        );
        let built = build(&request).map_err(|e| match e {
            Error::Build(message) if cross_lld => Error::Build(format!(
                "{message}. This cross build links with rust-lld, which needs no C toolchain; if a crate \
                 with C code failed, install a C cross compiler and set CC_{} (and {}), or use \
                 cargo-zigbuild",
                triple.replace('-', "_"),
                target::linker_env_var(triple)
            )),
            other => other,
        })?;
        let executable = choose(&built.executables, self.workspace, cargo.bin.as_deref())?.clone();
        Ok((executable, built.units))
    }
}

/// `<target-dir>/zeroimage/<profile>/<bin>.tar` for an image of several targets; the profile directory is
/// the one cargo built into.
fn multi_platform_output(
    cargo: &CargoOptions,
    workspace: &Workspace,
    executable: &Executable,
) -> Result<PathBuf> {
    let target_dir = cargo
        .target_dir
        .clone()
        .unwrap_or_else(|| workspace.target_dir());
    let profile = executable
        .path
        .parent()
        .and_then(|p| p.file_name())
        .ok_or_else(|| Error::input(&executable.path, "is not inside a profile directory"))?;
    let dir = target_dir.join("zeroimage").join(profile);
    std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
    Ok(dir.join(format!("{}.tar", executable.name)))
}

/// Creates the archive's directory when missing, as cargo does for its own outputs (a CI's
/// `CARGO_TARGET_DIR` leaves no `target/` beside the crate for `-o target/app.tar`).
fn create_output_dir(output: &Path) -> Result<()> {
    if is_dash(output) || std::fs::symlink_metadata(output).is_ok() {
        return Ok(());
    }
    let dir = parent_dir(output);
    std::fs::create_dir_all(&dir).map_err(Error::io("creating the output directory", &dir))
}
