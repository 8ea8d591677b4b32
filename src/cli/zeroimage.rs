//! The standalone `zeroimage` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::keys::{GenerateKeyPairCommand, run_generate_key_pair};
use super::registry::{
    LoginCommand, LogoutCommand, PushCommand, print_pushed, run_login, run_logout, run_push,
};
use super::signing::{SignCommand, VerifyCommand, run_sign, run_verify};
use super::{
    BaseArgs, ConfigArgs, EssentialsArgs, ImageArgs, LoadArgs, MessageFormat, OutputArgs,
    PlatformArgs, PushArgs, RegistryArgs, Shell, exit_with, job_options,
};
use ::zeroimage::error::Result;
use ::zeroimage::job::Job;
use ::zeroimage::job::package::Input;
use ::zeroimage::job::refs::ImageRefs;
use ::zeroimage::oci::platform::{Platform, PlatformOverride};

const EXAMPLES: &str = "\
Examples:
  zeroimage ./app                          writes app.tar: FROM scratch, COPY app /app, ENTRYPOINT [\"/app\"]
  zeroimage -t registry.example.com/app:1.0 -o app.tar target/x86_64-unknown-linux-musl/release/app
  zeroimage --platform linux/arm64 ./app-arm64
  zeroimage --ca-certs --nonroot --tmp -e RUST_LOG=info --expose 8080 ./app
  zeroimage --platform-binary linux/amd64=amd64/app --platform-binary linux/arm64=arm64/app -o app.tar
  zeroimage --message-format json ./app | jq -r .digest
  zeroimage ./app --push registry.example.com/app:1.0      (no archive kept unless -o is given)
  zeroimage ./app --load docker                            (likewise; then: docker run --rm app:latest)
  zeroimage ./app -t app:1.0 --oci-layout oci              (likewise; then: skopeo inspect oci:oci:app:1.0)
  zeroimage push app.tar registry.example.com/app:1.0 registry.example.com/app:latest
  echo \"$TOKEN\" | zeroimage login registry.example.com -u ci --password-stdin
  COSIGN_PASSWORD=... zeroimage generate-key-pair          writes cosign.key and cosign.pub

Then:
  skopeo copy oci-archive:app.tar docker://registry.example.com/app:1.0   (--all for several platforms)
  docker load -i app.tar    podman load -i app.tar";

/// Package a statically linked Linux executable as an OCI container image, without Docker.
///
/// The archive holds exactly what `FROM scratch`, `COPY PROGRAM /PROGRAM`, `ENTRYPOINT ["/PROGRAM"]`
/// would build, as an OCI image layout with Docker's manifest.json, so skopeo, podman, containerd and
/// `docker load` all accept it. The same input always gives the same bytes.
#[derive(Parser, Debug)]
#[command(name = "zeroimage", version, after_help = EXAMPLES, max_term_width = 100,
          styles = clap_cargo::style::CLAP_STYLING, args_conflicts_with_subcommands = true,
          subcommand_negates_reqs = true)]
pub struct ZeroimageArgs {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The statically linked executable; it becomes /NAME in the image and its entrypoint
    #[arg(value_name = "ENTRYPOINT", required_unless_present = "platform_binary")]
    pub entrypoint: Option<PathBuf>,

    /// One executable per platform, for a multi-platform image (repeatable)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]=PATH", value_parser = platform_binary,
          conflicts_with_all = ["entrypoint", "platform", "os", "arch", "variant"])]
    pub platform_binary: Vec<(Platform, PathBuf)>,

    #[command(flatten)]
    pub image: ImageArgs,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub essentials: EssentialsArgs,

    #[command(flatten)]
    pub base: BaseArgs,

    #[command(flatten)]
    pub push: PushArgs,

    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Registry and key commands (a program named like one of them can be given as ./push).
#[derive(Subcommand, Debug)]
pub enum Command {
    Push(PushCommand),
    Login(LoginCommand),
    Logout(LogoutCommand),
    Sign(SignCommand),
    Verify(VerifyCommand),
    GenerateKeyPair(GenerateKeyPairCommand),
}

fn platform_binary(s: &str) -> std::result::Result<(Platform, PathBuf), String> {
    let (platform, path) = s
        .split_once('=')
        .filter(|(_, path)| !path.is_empty())
        .ok_or_else(|| format!("`{s}` is not OS/ARCH[/VARIANT]=PATH, e.g. linux/arm64=./app"))?;
    let platform: Platform = platform
        .parse()
        .map_err(|e: ::zeroimage::Error| e.to_string())?;
    Ok((platform, PathBuf::from(path)))
}

/// Runs `zeroimage` with the process arguments.
pub fn main() -> ExitCode {
    let args = ZeroimageArgs::parse();
    super::install_interrupt_handler();
    let (shell, result) = match &args.command {
        Some(Command::Push(push)) => {
            let shell = Shell::from_report(&push.report);
            let result = run_push(push, &shell);
            (shell, result)
        }
        Some(Command::Login(login)) => {
            let shell = Shell::from_report(&login.report);
            let result = run_login(login, &shell);
            (shell, result)
        }
        Some(Command::Sign(sign)) => {
            let shell = Shell::from_report(&sign.report);
            let result = run_sign(sign, &shell);
            (shell, result)
        }
        Some(Command::Verify(verify)) => {
            let shell = Shell::from_report(&verify.report);
            let result = run_verify(verify, &shell);
            (shell, result)
        }
        Some(Command::GenerateKeyPair(generate)) => {
            let shell = Shell::from_report(&generate.report);
            let result = run_generate_key_pair(generate, &shell);
            (shell, result)
        }
        Some(Command::Logout(logout)) => {
            let shell = Shell::from_report(&logout.report);
            let result = run_logout(logout, &shell);
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

fn run(args: &ZeroimageArgs, shell: &Shell) -> Result<()> {
    let inputs: Vec<Input> = match &args.entrypoint {
        Some(path) => vec![Input {
            path: path.clone(),
            platform: args.platform.platform_override(),
        }],
        None => args
            .platform_binary
            .iter()
            .map(|(platform, path)| Input {
                path: path.clone(),
                platform: PlatformOverride::from_platform(platform),
            })
            .collect(),
    };
    let job = Job {
        inputs,
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
        refs.add(&outcome);
        file.write(&refs.text(), cx.cancel())?;
    }
    let format = args.output.report.message_format;
    // With the archive on stdout, the `Pushed` status lines on stderr are all there is.
    if format == MessageFormat::Human && !outcome.archive_on_stdout() {
        print_pushed(&outcome.pushed);
    }
    if format == MessageFormat::Json {
        // Only strings and integers: this cannot fail.
        println!(
            "{}",
            serde_json::to_string(&outcome.summary).unwrap_or_default()
        );
    }
    Ok(())
}
