//! `cargo zeroimage`: build a crate for a musl target with cargo, then package the executable.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};
use serde::Serialize;

use super::registry::print_pushed;
use super::{
    BaseArgs, ConfigArgs, EssentialsArgs, ImageArgs, MessageFormat, OutputArgs, PushArgs,
    RegistryArgs, ReportArgs, Shell, exit_with, job_options,
};
use crate::cargo::{CargoJob, CargoOptions};
use crate::error::Result;
use crate::package::PackageSummary;

const EXAMPLES: &str = "\
Examples:
  cargo zeroimage                                    host-arch musl target, release profile
  cargo zeroimage --target x86_64-unknown-linux-musl
  cargo zeroimage --target aarch64-unknown-linux-musl -p server --bin api
  cargo zeroimage -t registry.example.com/api:1.4 -- --timings

The archive goes beside the binary (target/TRIPLE/PROFILE/BIN.tar) unless -o says otherwise.
Several --target flags make one multi-platform archive, in target/zeroimage/PROFILE/BIN.tar.
Settings can live in Cargo.toml under [package.metadata.zeroimage] or [workspace.metadata.zeroimage]
(tag, target, targets, output, created, allow-dynamic, from, from-archive, env, labels, annotations, user,
workdir, expose, stop-signal, args, entrypoint-path, ca-certs, nonroot, tmp, tzdata, include, push,
sbom, provenance, auditable).
Command-line flags win.

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
    pub base: BaseArgs,

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

    /// Build through `cargo auditable` (when installed), embedding the dependency list in the binary
    #[arg(long, help_heading = "Supply chain")]
    pub auditable: bool,
}

impl CargoArgs {
    /// The build options as the library takes them; `report` sets cargo's verbosity, `extra` is what
    /// followed `--`.
    pub fn options(&self, report: &ReportArgs, extra: &[OsString]) -> CargoOptions {
        let mut build_args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| build_args.push(OsString::from(a));
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
        if let Some(jobs) = &self.jobs {
            push("--jobs");
            push(jobs);
        }
        if report.quiet {
            push("--quiet");
        }
        for _ in 0..report.verbose {
            push("--verbose");
        }
        build_args.extend(extra.iter().cloned());
        CargoOptions {
            packages: self.package.clone(),
            bin: self.bin.clone(),
            targets: self.target.clone(),
            profile: self.profile.clone(),
            manifest_path: self.manifest_path.clone(),
            target_dir: self.target_dir.clone(),
            config: self.config.clone(),
            locked: self.locked,
            frozen: self.frozen,
            offline: self.offline,
            build_args,
            auditable: self.auditable.then_some(true),
        }
    }
}

/// One JSON object per image for `--message-format json`.
#[derive(Serialize)]
struct CargoSummary<'a> {
    #[serde(flatten)]
    image: &'a PackageSummary,
    bin: &'a str,
    package: &'a str,
    version: &'a str,
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

fn run(args: &CargoZeroimageArgs, shell: &Shell) -> Result<()> {
    let job = CargoJob {
        cargo: args.cargo.options(&args.output.report, &args.cargo_args),
        options: job_options(
            &args.image,
            &args.config,
            &args.essentials,
            &args.base,
            &args.push,
            &args.registry,
            &args.output,
        )?,
    };
    let outcome = job.run(shell)?;
    let format = args.output.report.message_format;
    // With the archive on stdout, the `Pushed` status lines on stderr are all there is.
    if format == MessageFormat::Human && !outcome.image.archive_on_stdout() {
        print_pushed(&outcome.image.pushed, MessageFormat::Human);
    }
    if format == MessageFormat::Json {
        let targets = &outcome.targets;
        let line = CargoSummary {
            image: &outcome.image.summary,
            bin: &outcome.bin,
            package: &outcome.package,
            version: &outcome.version,
            target: match targets.as_slice() {
                [one] => Some(one.as_str()),
                _ => None,
            },
            targets,
        };
        println!("{}", serde_json::to_string(&line).unwrap_or_default());
    }
    Ok(())
}
