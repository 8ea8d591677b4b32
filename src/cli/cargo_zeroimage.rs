//! `cargo zeroimage`: build a crate for a musl target with cargo, then package the executable.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use super::registry::print_pushed;
use super::{
    BaseArgs, ConfigArgs, EssentialsArgs, ImageArgs, LoadArgs, MessageFormat, OutputArgs, PushArgs,
    RegistryArgs, ReportArgs, Shell, SigningArgs, exit_with, job_options,
};
use ::zeroimage::cargo::settings::Settings;
use ::zeroimage::cargo::{CargoJob, CargoOptions};
use ::zeroimage::error::{Error, Result};
use ::zeroimage::job::JobOptions;
use ::zeroimage::job::naming::Repository;
use ::zeroimage::job::package::PackageSummary;
use ::zeroimage::job::refs::ImageRefs;
use ::zeroimage::resolve::{ResolveJob, YamlSource};

/// The `--help` text after the options, up to the list of Cargo.toml settings.
const EXAMPLES_BEFORE_SETTINGS: &str = "\
Examples:
  cargo zeroimage                                    host-arch musl target, release profile
  cargo zeroimage --target x86_64-unknown-linux-musl
  cargo zeroimage --target aarch64-unknown-linux-musl -p server --bin api
  cargo zeroimage -t registry.example.com/api:1.4 -- --timings
  cargo zeroimage --workspace                        one image per binary, from one cargo build
  cargo zeroimage --workspace --oci-layout oci       each image into one OCI layout directory
  cargo zeroimage --load docker                      then: docker run --rm BIN:VERSION

The archive goes beside the binary (target/TRIPLE/PROFILE/BIN.tar) unless -o says otherwise.
Several --target flags make one multi-platform archive, in target/zeroimage/PROFILE/BIN.tar.
Settings can live in Cargo.toml under [package.metadata.zeroimage] or [workspace.metadata.zeroimage]
";

/// The `--help` text after the list of Cargo.toml settings.
const EXAMPLES_AFTER_SETTINGS: &str = "\
Command-line flags win.
{bin} in --tag, --push, -o, tag,
push and output is each image's binary. Without --target or a target setting, cargo's build.target
decides. C code of dependencies is compiled with musl-gcc or zig (pip install ziglang cargo-zigbuild).

  cargo zeroimage --push registry.example.com/team/app:1.4.0    build, write the archive, push it
  cargo zeroimage --workspace --repository ghcr.io/me           push each image as ghcr.io/me/BIN:VERSION
  cargo zeroimage resolve -f k8s/ | kubectl apply -f -          zeroimage://PACKAGE[/BIN] -> pushed, pinned";

/// How wide the settings list of the help text may be, as the rest of the text (clap wraps longer
/// lines to the terminal, at most `max_term_width`).
const SETTINGS_LIST_WIDTH: usize = 100;

/// The `--help` text after the options: examples, and the Cargo.toml settings, listed from
/// [`Settings::KEYS`] so that none is missing.
fn examples() -> String {
    let mut text = String::from(EXAMPLES_BEFORE_SETTINGS);
    let mut line = String::new();
    for word in format!("({}).", Settings::KEYS.join(", ")).split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > SETTINGS_LIST_WIDTH {
            text.push_str(&line);
            text.push('\n');
            line.clear();
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    text.push_str(&line);
    text.push('\n');
    text.push_str(EXAMPLES_AFTER_SETTINGS);
    text
}

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
#[allow(clippy::doc_link_with_quotes)] // this text is the --help text, not rustdoc
#[derive(Args, Debug)]
#[command(version, after_help = examples(), max_term_width = 100,
          args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CargoZeroimageArgs {
    #[command(subcommand)]
    pub command: Option<CargoCommand>,

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

    /// Also push each image to REPOSITORY/BIN:VERSION, e.g. ghcr.io/me (replaces the `push` settings)
    #[arg(long, value_name = "REGISTRY/PATH", value_parser = parse_repository,
          help_heading = "Registry options")]
    pub repository: Option<Repository>,

    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Arguments passed on to `cargo build` as they are
    #[arg(last = true, value_name = "CARGO_BUILD_ARGS")]
    pub cargo_args: Vec<OsString>,
}

/// `cargo zeroimage` subcommands.
#[derive(Subcommand, Debug)]
pub enum CargoCommand {
    Resolve(ResolveArgs),
}

/// Build and push every image a YAML file names as zeroimage://PACKAGE[/BIN], and print the YAML with
/// each reference replaced by REPOSITORY/BIN@sha256:DIGEST (all else kept byte for byte).
#[derive(Args, Debug)]
#[command(after_help = RESOLVE_EXAMPLES, max_term_width = 100)]
pub struct ResolveArgs {
    /// YAML file, directory (read recursively: *.yaml, *.yml) or `-` for standard input (repeatable)
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub filenames: Vec<PathBuf>,

    /// Push each image to REPOSITORY/BIN [default: $ZEROIMAGE_REPOSITORY, else `repository` in
    /// [workspace.metadata.zeroimage]]
    #[arg(long, value_name = "REGISTRY/PATH", value_parser = parse_repository)]
    pub repository: Option<Repository>,

    /// Write the resolved YAML to FILE, only once every image is pushed [default: standard output]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// After a successful run, write each image pushed, pinned by digest, then each document attached
    /// to it, one per line, to FILE
    #[arg(long, value_name = "FILE")]
    pub image_refs: Option<PathBuf>,

    #[command(flatten)]
    pub cargo: CargoBuildArgs,

    #[command(flatten)]
    pub base: BaseArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub signing: SigningArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// Arguments passed on to `cargo build` as they are
    #[arg(last = true, value_name = "CARGO_BUILD_ARGS")]
    pub cargo_args: Vec<OsString>,
}

const RESOLVE_EXAMPLES: &str = "\
Examples:
  cargo zeroimage resolve -f deploy.yaml --repository ghcr.io/me | kubectl apply -f -
  cat k8s/*.yaml | cargo zeroimage resolve -f - > resolved.yaml

In the YAML:  image: zeroimage://server/api   (package server, binary api)
              image: zeroimage://tools        (package tools: its only binary or default-run)";

fn parse_repository(s: &str) -> std::result::Result<Repository, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}

/// The `cargo build` options we forward: what to build, and how.
#[derive(Args, Debug, Default)]
pub struct CargoArgs {
    /// Package to build (see `cargo help pkgid`)
    #[arg(short, long, value_name = "SPEC", help_heading = "Package Selection")]
    pub package: Vec<String>,

    /// Build every member of the workspace: one image per binary
    #[arg(long, visible_alias = "all", help_heading = "Package Selection")]
    pub workspace: bool,

    /// Leave this package out of --workspace
    #[arg(
        long,
        value_name = "SPEC",
        requires = "workspace",
        help_heading = "Package Selection"
    )]
    pub exclude: Vec<String>,

    /// Binary to package [default: the only one, or the package's `default-run`]; several: one image each
    #[arg(long, value_name = "NAME", help_heading = "Target Selection")]
    pub bin: Vec<String>,

    /// Package every binary of the packages selected, one image each
    #[arg(long, help_heading = "Target Selection")]
    pub bins: bool,

    #[command(flatten)]
    pub build: CargoBuildArgs,
}

/// How cargo builds (the options `resolve` takes too: there, the YAML says what to build).
#[derive(Args, Debug, Default)]
pub struct CargoBuildArgs {
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

    /// Build for the target triple; repeat for a multi-platform image; `all`: every platform of the base
    /// image with an installed musl target [default: the musl target for this host's architecture]
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

    /// Compile C and link musl targets with zig, through cargo-zigbuild [default: when crates with C code need it]
    #[arg(long, help_heading = "Compilation Options", conflicts_with = "no_zig")]
    pub zig: bool,

    /// Never use zig: build with cargo's own toolchain (and rust-lld across architectures)
    #[arg(long, help_heading = "Compilation Options")]
    pub no_zig: bool,

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
        CargoOptions {
            packages: self.package.clone(),
            workspace: self.workspace,
            exclude: self.exclude.clone(),
            bins: self.bin.clone(),
            all_bins: self.bins,
            ..self.build.options(report, extra)
        }
    }
}

impl CargoBuildArgs {
    /// The build options without a selection: cargo's default package, or what the caller sets.
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
            targets: self.target.clone(),
            profile: self.profile.clone(),
            manifest_path: self.manifest_path.clone(),
            target_dir: self.target_dir.clone(),
            config: self.config.clone(),
            locked: self.locked,
            frozen: self.frozen,
            offline: self.offline,
            build_args,
            zig: match (self.zig, self.no_zig) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            auditable: self.auditable.then_some(true),
            ..CargoOptions::default()
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
    targets: Vec<&'a str>,
}

/// Runs `cargo zeroimage` with the process arguments.
pub fn main() -> ExitCode {
    let CargoCli::Zeroimage(args) = CargoCli::parse();
    super::install_interrupt_handler();
    let (shell, result) = match &args.command {
        Some(CargoCommand::Resolve(resolve)) => {
            let shell = Shell::from_report(&resolve.report);
            let result = run_resolve(resolve, &shell);
            (shell, result)
        }
        None => {
            let shell = Shell::new(&args.output);
            let result = run(&args, &shell);
            (shell, result)
        }
    };
    match result {
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
            &args.load,
            &args.registry,
            &args.output,
        )?,
        repository: args.repository.clone(),
        deploy: false,
    };
    let cx = super::context(shell);
    let refs_file = super::text_output(
        args.output.image_refs.as_deref(),
        "--image-refs",
        args.output.output.as_deref(),
        &cx,
    )?;
    let outcome = job.run(&cx)?;
    if let Some(file) = refs_file {
        let mut refs = ImageRefs::new();
        for image in &outcome.images {
            refs.add(&image.image);
        }
        file.write(&refs.text(), cx.cancel())?;
    }
    let format = args.output.report.message_format;
    for image in &outcome.images {
        // With the archive on stdout, the `Pushed` status lines on stderr are all there is.
        if format == MessageFormat::Human && !image.image.archive_on_stdout() {
            print_pushed(&image.image.pushed);
        }
        if format == MessageFormat::Json {
            let targets: Vec<&str> = image
                .targets
                .iter()
                .map(::zeroimage::cargo::Target::triple)
                .collect();
            let line = CargoSummary {
                image: &image.image.summary,
                bin: &image.bin,
                package: &image.package,
                version: &image.version,
                target: match targets.as_slice() {
                    [one] => Some(one),
                    _ => None,
                },
                targets,
            };
            println!("{}", serde_json::to_string(&line).unwrap_or_default());
        }
    }
    Ok(())
}

fn run_resolve(args: &ResolveArgs, shell: &Shell) -> Result<()> {
    let cargo = &args.cargo;
    let inputs = args
        .filenames
        .iter()
        .map(|f| {
            if f.as_os_str() == "-" {
                YamlSource::Stdin
            } else {
                YamlSource::Path(f.clone())
            }
        })
        .collect();
    let (pull_options, push_options) = args.registry.pull_and_push(&args.base)?;
    let job = ResolveJob {
        inputs,
        cargo: cargo.options(&args.report, &args.cargo_args),
        options: JobOptions {
            base: args.base.base_ref()?,
            pull_options,
            push_options,
            signing: args.signing.options(),
            ..JobOptions::default()
        },
        repository: args.repository.clone(),
    };
    let cx = super::context(shell);
    let json = args.report.message_format == MessageFormat::Json;
    if json && args.output.is_none() {
        return Err(Error::Invalid(
            "resolve --message-format json prints its summary on standard output, where the YAML \
             goes too; write the YAML to a file with -o FILE"
                .to_owned(),
        ));
    }
    let yaml_file = super::text_output(args.output.as_deref(), "-o/--output", None, &cx)?;
    let refs_file = super::text_output(args.image_refs.as_deref(), "--image-refs", None, &cx)?;
    if let (Some(refs), Some(output)) = (&refs_file, &args.output) {
        refs.ensure_not(output, "the YAML output (-o)")?;
    }
    if let Some(yaml) = &yaml_file {
        // Replacing a YAML file read would lose the references it held.
        for input in args.filenames.iter().filter(|f| f.is_file()) {
            yaml.ensure_not(input, "a YAML input (-f)")?;
        }
    }
    let resolved = job.run(&mut std::io::stdin().lock(), &cx)?;
    if let Some(file) = refs_file {
        let mut refs = ImageRefs::new();
        for image in &resolved.images {
            refs.add(&image.image);
        }
        file.write(&refs.text(), cx.cancel())?;
    }
    let Some(file) = yaml_file else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(resolved.yaml.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| Error::Invalid(format!("writing the YAML to standard output: {e}")));
    };
    file.write(&resolved.yaml, cx.cancel())?;
    if json {
        let summary = ResolveSummary {
            output: args.output.as_deref(),
            replaced: &resolved.replaced,
            images: resolved
                .images
                .iter()
                .map(|image| ResolvedImage {
                    package: &image.package,
                    bin: &image.bin,
                    version: &image.version,
                    digest: image.image.summary.digest.to_string(),
                    pushed: &image.image.summary.pushed,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    }
    Ok(())
}

/// `resolve --message-format json`: where the YAML went, each reference replaced, each image pushed.
#[derive(Serialize)]
struct ResolveSummary<'a> {
    output: Option<&'a std::path::Path>,
    replaced: &'a [::zeroimage::resolve::Replaced],
    images: Vec<ResolvedImage<'a>>,
}

/// One image `resolve` built and pushed.
#[derive(Serialize)]
struct ResolvedImage<'a> {
    package: &'a str,
    bin: &'a str,
    version: &'a str,
    digest: String,
    /// `REF@DIGEST` for each reference pushed.
    pushed: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::CargoCli;
    use ::zeroimage::cargo::settings::Settings;
    use clap::CommandFactory;

    #[test]
    fn the_help_lists_every_cargo_toml_setting() {
        let mut cargo = CargoCli::command();
        let help = cargo
            .find_subcommand_mut("zeroimage")
            .map(|command| command.render_long_help().to_string())
            .unwrap_or_default()
            .replace('\n', " ");
        let listed: Vec<&str> = help
            .split("[workspace.metadata.zeroimage] (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(listed, Settings::KEYS, "{help}");
    }
}
