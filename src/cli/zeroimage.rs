//! The standalone `zeroimage` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::{ImageArgs, MessageFormat, OutputArgs, PlatformArgs, Shell, exit_with, human_size};
use crate::error::Result;
use crate::package::{PackageOptions, PackageSummary, default_output, package_executable};
use crate::report::Listener;

const EXAMPLES: &str = "\
Examples:
  zeroimage ./app                          writes app.tar: FROM scratch, COPY app /app, ENTRYPOINT [\"/app\"]
  zeroimage -t registry.example.com/app:1.0 -o app.tar target/x86_64-unknown-linux-musl/release/app
  zeroimage --platform linux/arm64 ./app-arm64
  zeroimage --message-format json ./app | jq -r .manifest_digest

Then:
  skopeo copy oci-archive:app.tar docker://registry.example.com/app:1.0
  docker load -i app.tar    podman load -i app.tar";

/// Package a statically linked Linux executable as an OCI container image, without Docker.
///
/// The archive holds exactly what `FROM scratch`, `COPY PROGRAM /PROGRAM`, `ENTRYPOINT ["/PROGRAM"]`
/// would build, as an OCI image layout with Docker's manifest.json, so skopeo, podman, containerd and
/// `docker load` all accept it. The same input always gives the same bytes.
#[derive(Parser, Debug)]
#[command(name = "zeroimage", version, after_help = EXAMPLES, max_term_width = 100,
          styles = clap_cargo::style::CLAP_STYLING)]
pub struct ZeroimageArgs {
    /// The statically linked executable; it becomes /NAME in the image and its entrypoint
    #[arg(value_name = "ENTRYPOINT")]
    pub entrypoint: PathBuf,

    #[command(flatten)]
    pub image: ImageArgs,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `zeroimage` with the process arguments.
pub fn main() -> ExitCode {
    let args = ZeroimageArgs::parse();
    super::install_interrupt_handler();
    let shell = Shell::new(&args.output);
    match run(&args, &shell) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => exit_with(&shell, &error),
    }
}

fn run(args: &ZeroimageArgs, shell: &Shell) -> Result<()> {
    let options = PackageOptions {
        output: args
            .output
            .output
            .clone()
            .unwrap_or_else(|| default_output(&args.entrypoint)),
        tag: args.image.tag.clone(),
        platform: args.platform.platform_override(),
        created: args.image.created(None)?,
        allow_dynamic: args.image.allow_dynamic,
        annotations: Default::default(),
        labels: Default::default(),
    };
    let summary = package_executable(&args.entrypoint, &options, shell)?;
    report(&summary, args.output.message_format, shell);
    Ok(())
}

/// The closing status line, and the JSON object when asked for.
pub fn report(summary: &PackageSummary, format: MessageFormat, shell: &Shell) {
    shell.status(
        "Written",
        &format!(
            "{} ({}, {}, {})",
            summary.path.display(),
            summary.tag,
            summary.manifest_digest,
            human_size(summary.size)
        ),
    );
    if format == MessageFormat::Json {
        // Only strings and integers: this cannot fail.
        let line = serde_json::to_string(summary).unwrap_or_default();
        println!("{line}");
    }
}
