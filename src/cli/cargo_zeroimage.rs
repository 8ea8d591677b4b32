//! `cargo zeroimage`: build a crate for a musl target with cargo, then package the executable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser};
use serde::Serialize;

use super::output::{Staging, archive_on_stdout, ensure_stdout_free};
use super::registry::print_pushed;
use super::{
    ConfigArgs, EssentialsArgs, ImageArgs, MessageFormat, OutputArgs, PushArgs, RegistryArgs,
    Shell, exit_with,
};
use crate::cargo::build::{BuildRequest, Executable, build};
use crate::cargo::settings::Settings;
use crate::cargo::target;
use crate::cargo::workspace::{Workspace, annotations, git_revision};
use crate::destination::{is_dash, parent_dir};
use crate::error::{Error, Result};
use crate::essentials::Essentials;
use crate::options::ImageOptions;
use crate::package::{
    Input, PackageOptions, PackageSummary, default_output, package as package_images,
};
use crate::platform::PlatformOverride;
use crate::reference::Reference;
use crate::report::Listener;

const EXAMPLES: &str = "\
Examples:
  cargo zeroimage                                    host-arch musl target, release profile
  cargo zeroimage --target x86_64-unknown-linux-musl
  cargo zeroimage --target aarch64-unknown-linux-musl -p server --bin api
  cargo zeroimage -t registry.example.com/api:1.4 -- --timings

The archive goes beside the binary (target/TRIPLE/PROFILE/BIN.tar) unless -o says otherwise.
Several --target flags make one multi-platform archive, in target/zeroimage/PROFILE/BIN.tar.
Settings can live in Cargo.toml under [package.metadata.zeroimage] or [workspace.metadata.zeroimage]
(tag, target, targets, output, created, allow-dynamic, env, labels, annotations, user, workdir, expose,
stop-signal, args, entrypoint-path, ca-certs, nonroot, tmp, tzdata, include, push, compression,
compression-level). Command-line flags win.

  cargo zeroimage --push registry.example.com/team/app:1.4.0    build, write the archive, push it";

/// Cargo passes the subcommand name as the first argument.
#[derive(Parser, Debug)]
#[command(name = "cargo", bin_name = "cargo", styles = clap_cargo::style::CLAP_STYLING)]
pub enum CargoCli {
    Zeroimage(CargoZeroimageArgs),
}

/// Build a crate for a static Linux target and package its executable as an OCI container image.
///
/// Runs `cargo build --release --target <musl triple>`, finds the executable in cargo's own build
/// messages, checks it, and writes an OCI image archive that skopeo, podman, containerd and
/// `docker load` accept: FROM scratch, the binary at /BIN, ENTRYPOINT ["/BIN"].
#[derive(Args, Debug)]
#[command(version, after_help = EXAMPLES, max_term_width = 100)]
pub struct CargoZeroimageArgs {
    #[command(flatten)]
    pub cargo: CargoArgs,

    #[command(flatten)]
    pub image: ImageArgs,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub essentials: EssentialsArgs,

    #[command(flatten)]
    pub push: PushArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Arguments passed on to `cargo build` as they are
    #[arg(last = true, value_name = "CARGO_BUILD_ARGS")]
    pub cargo_args: Vec<OsString>,
}

/// The `cargo build` options we forward.
#[derive(Args, Debug, Default)]
pub struct CargoArgs {
    /// Package to build (see `cargo help pkgid`)
    #[arg(short, long, value_name = "SPEC", help_heading = "Package Selection")]
    pub package: Vec<String>,

    /// Binary to package [default: the only one, or the package's `default-run`]
    #[arg(long, value_name = "NAME", help_heading = "Target Selection")]
    pub bin: Option<String>,

    /// Space or comma separated list of features to activate
    #[arg(
        short = 'F',
        long,
        value_name = "FEATURES",
        help_heading = "Feature Selection"
    )]
    pub features: Vec<String>,

    /// Activate all available features
    #[arg(long, help_heading = "Feature Selection")]
    pub all_features: bool,

    /// Do not activate the `default` feature
    #[arg(long, help_heading = "Feature Selection")]
    pub no_default_features: bool,

    /// Build for the target triple; repeat for a multi-platform image [default: the musl target for this host's architecture]
    #[arg(long, value_name = "TRIPLE", help_heading = "Compilation Options")]
    pub target: Vec<String>,

    /// Build with the release profile (the default)
    #[arg(
        short,
        long,
        help_heading = "Compilation Options",
        conflicts_with = "profile"
    )]
    pub release: bool,

    /// Build with the given profile
    #[arg(
        long,
        value_name = "PROFILE-NAME",
        help_heading = "Compilation Options"
    )]
    pub profile: Option<String>,

    /// Directory for all generated artifacts
    #[arg(long, value_name = "DIRECTORY", help_heading = "Compilation Options")]
    pub target_dir: Option<PathBuf>,

    /// Number of parallel jobs
    #[arg(short, long, value_name = "N", help_heading = "Compilation Options")]
    pub jobs: Option<String>,

    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH", help_heading = "Manifest Options")]
    pub manifest_path: Option<PathBuf>,

    /// Assert that `Cargo.lock` will remain unchanged
    #[arg(long, help_heading = "Manifest Options")]
    pub locked: bool,

    /// Equivalent to specifying both --locked and --offline
    #[arg(long, help_heading = "Manifest Options")]
    pub frozen: bool,

    /// Run without accessing the network
    #[arg(long, help_heading = "Manifest Options")]
    pub offline: bool,

    /// Override a configuration value
    #[arg(long, value_name = "KEY=VALUE|PATH")]
    pub config: Vec<String>,
}

impl CargoArgs {
    /// Flags that change how cargo reads the workspace (for `cargo metadata` too).
    fn resolution_flags(&self) -> Vec<String> {
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
    fn build_args(&self, output: &OutputArgs, extra: &[OsString]) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(OsString::from(a));
        for p in &self.package {
            push("--package");
            push(p);
        }
        if let Some(bin) = &self.bin {
            push("--bin");
            push(bin);
        }
        for f in &self.features {
            push("--features");
            push(f);
        }
        if self.all_features {
            push("--all-features");
        }
        if self.no_default_features {
            push("--no-default-features");
        }
        match &self.profile {
            Some(profile) => {
                push("--profile");
                push(profile);
            }
            None => push("--release"),
        }
        if let Some(jobs) = &self.jobs {
            push("--jobs");
            push(jobs);
        }
        for flag in self.resolution_flags() {
            push(&flag);
        }
        if output.report.quiet {
            push("--quiet");
        }
        for _ in 0..output.report.verbose {
            push("--verbose");
        }
        if let Some(path) = &self.manifest_path {
            args.push("--manifest-path".into());
            args.push(path.clone().into_os_string());
        }
        if let Some(dir) = &self.target_dir {
            args.push("--target-dir".into());
            args.push(dir.clone().into_os_string());
        }
        args.extend(extra.iter().cloned());
        args
    }
}

/// One JSON object per image for `--message-format json`.
#[derive(Serialize)]
struct CargoSummary<'a> {
    #[serde(flatten)]
    image: &'a PackageSummary,
    bin: &'a str,
    package: &'a str,
    version: String,
    /// The target, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    targets: &'a [String],
}

/// Runs `cargo zeroimage` with the process arguments.
pub fn main() -> ExitCode {
    let CargoCli::Zeroimage(args) = CargoCli::parse();
    super::install_interrupt_handler();
    let shell = Shell::new(&args.output);
    match run(&args, &shell) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => exit_with(&shell, &error),
    }
}

/// The targets to build: `--target` flags, else `targets` or `target` from Cargo.toml, else the host's
/// musl target.
fn targets(cargo: &CargoArgs, settings: &Settings, host: &str) -> Result<Vec<String>> {
    let targets = if !cargo.target.is_empty() {
        cargo.target.clone()
    } else if let Some(targets) = settings.targets.clone().filter(|t| !t.is_empty()) {
        targets
    } else if let Some(target) = &settings.target {
        vec![target.clone()]
    } else {
        vec![target::default_target(host)]
    };
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            return Err(Error::Invalid(format!("target `{t}` is given twice")));
        }
    }
    Ok(targets)
}

fn run(args: &CargoZeroimageArgs, shell: &Shell) -> Result<()> {
    let cargo = &args.cargo;
    let workspace = Workspace::load(cargo.manifest_path.as_deref(), &cargo.resolution_flags())?;
    workspace.check_settings()?;
    let selected = workspace.selected_package(&cargo.package, cargo.manifest_path.as_deref());
    let settings = workspace.settings(selected)?;
    let format = args.output.report.message_format;
    ensure_stdout_free(
        args.output.output.as_deref().or(settings.output.as_deref()),
        format,
    )?;

    let mut rustc = target::Rustc::new(Some(&workspace.target_dir().join("zeroimage")));
    let host = rustc.host_triple()?;
    let triples = targets(cargo, &settings, &host)?;
    let mut platforms = Vec::new();
    for triple in &triples {
        platforms.push(target::platform_for(triple)?);
    }
    for triple in &triples {
        rustc.ensure_installed(triple)?;
    }
    rustc.save();
    let cwd = std::env::current_dir().map_err(Error::io("reading", "the current directory"))?;

    let mut built: Vec<Executable> = Vec::new();
    for (triple, platform) in triples.iter().zip(&platforms) {
        let executable = build_one(
            args, &workspace, selected, &host, triple, platform, &cwd, shell,
        )?;
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

    let created = args.image.created(settings.created.as_deref())?;
    let tag = match (&args.image.tag, settings.tag_reference()?) {
        (Some(tag), _) => tag.clone(),
        (None, Some(tag)) => tag,
        (None, None) => default_tag(&executable.name, &package.version.to_string())?,
    };
    let output = match (&args.output.output, &settings.output) {
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
    .overlay(args.config.options());
    let essentials = merge_essentials(settings.essentials()?, args.essentials.essentials());
    let inputs: Vec<Input> = built
        .iter()
        .zip(&platforms)
        .map(|(e, platform)| Input {
            path: e.path.clone(),
            platform: PlatformOverride::from_platform(platform),
        })
        .collect();
    let push_to = if args.push.push.is_empty() {
        settings.push_references()?
    } else {
        args.push.push.clone()
    };
    create_output_dir(&output)?;
    let staging = Staging::new(Some(&output), !push_to.is_empty())?;
    let options = PackageOptions {
        output: Some(staging.build_path().unwrap_or_else(|| output.clone())),
        tag: Some(tag),
        created,
        allow_dynamic: args.image.allow_dynamic || settings.allow_dynamic.unwrap_or(false),
        config,
        essentials,
        compression: args.image.compression(settings.compression()?)?,
    };
    let mut packaged = package_images(&inputs, &options, shell)?;
    staging.deliver(&mut packaged.summary)?;
    super::zeroimage::report(&packaged.summary, MessageFormat::Human, shell);
    if !push_to.is_empty() {
        let pushed = packaged.push(&push_to, &args.registry.push_options(), shell)?;
        // With the archive on stdout, the `Pushed` status lines on stderr are all there is.
        if format == MessageFormat::Human && !archive_on_stdout(Some(&output)) {
            print_pushed(&pushed, MessageFormat::Human);
        }
    }
    let summary = packaged.summary;
    if format == MessageFormat::Json {
        let line = CargoSummary {
            image: &summary,
            bin: &executable.name,
            package: package.name.as_str(),
            version: package.version.to_string(),
            target: (triples.len() == 1).then(|| triples[0].as_str()),
            targets: &triples,
        };
        println!("{}", serde_json::to_string(&line).unwrap_or_default());
    }
    Ok(())
}

/// Builds for one target and returns the executable to package.
#[allow(clippy::too_many_arguments)]
fn build_one(
    args: &CargoZeroimageArgs,
    workspace: &Workspace,
    selected: Option<&cargo_metadata::Package>,
    host: &str,
    triple: &str,
    platform: &crate::platform::Platform,
    cwd: &Path,
    shell: &Shell,
) -> Result<Executable> {
    let cargo = &args.cargo;
    let mut request = BuildRequest {
        target: triple.to_owned(),
        args: cargo.build_args(&args.output, &args.cargo_args),
        env: Vec::new(),
    };
    let cross_lld = target::is_cross(host, triple)
        && triple.contains("-linux-musl")
        && !target::linker_configured(triple, &cargo.config, cwd);
    if cross_lld {
        shell.detail(&format!(
            "no linker configured for {triple}: linking with rust-lld"
        ));
        request
            .env
            .push((target::linker_env_var(triple), "rust-lld".to_owned()));
    }
    shell.status(
        "Building",
        &format!(
            "{} for {triple} ({platform})",
            describe_selection(cargo, selected)
        ),
    );
    let executables = build(&request).map_err(|e| match e {
        Error::Build(message) if cross_lld => Error::Build(format!(
            "{message}. This cross build links with rust-lld, which needs no C toolchain; if a crate with \
             C code failed, install a C cross compiler and set CC_{} (and {}), or use cargo-zigbuild",
            triple.replace('-', "_"),
            target::linker_env_var(triple)
        )),
        other => other,
    })?;
    choose(&executables, workspace, cargo).cloned()
}

/// `<target-dir>/zeroimage/<profile>/<bin>.tar` for an image of several targets; the profile directory is
/// the one cargo built into.
fn multi_platform_output(
    cargo: &CargoArgs,
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

/// Cargo.toml essentials with the command line's on top: a flag turns a piece on, a path replaces the
/// file's, includes add up.
fn merge_essentials(file: Essentials, cli: Essentials) -> Essentials {
    let mut include = file.include;
    include.extend(cli.include);
    Essentials {
        ca_certs: cli.ca_certs.or(file.ca_certs),
        nonroot: cli.nonroot || file.nonroot,
        tmp: cli.tmp || file.tmp,
        tzdata: cli.tzdata.or(file.tzdata),
        include,
    }
}

fn describe_selection(cargo: &CargoArgs, selected: Option<&cargo_metadata::Package>) -> String {
    match (&cargo.bin, selected) {
        (Some(bin), _) => format!("bin `{bin}`"),
        (None, Some(package)) => format!("package `{}`", package.name),
        (None, None) => "workspace".to_owned(),
    }
}

/// The executable to package: the only one built, else the `default-run` of the package they all come
/// from; otherwise an error listing the candidates.
fn choose<'a>(
    executables: &'a [Executable],
    workspace: &Workspace,
    cargo: &CargoArgs,
) -> Result<&'a Executable> {
    match executables {
        [] => Err(Error::Invalid(match &cargo.bin {
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
                        .map(|p| p.name.as_str())
                        .unwrap_or("?");
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
fn default_tag(bin: &str, version: &str) -> Result<Reference> {
    let repository = crate::package::default_tag(bin)?;
    let tag: String = version
        .chars()
        .map(|c| if c == '+' { '_' } else { c })
        .collect();
    Reference::with_tag(
        &format!("{}/{}", repository.domain(), repository.path()),
        &tag,
    )
}
