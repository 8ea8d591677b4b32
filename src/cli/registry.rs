//! `zeroimage push`, `zeroimage login` and `zeroimage logout`.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use super::{MessageFormat, RegistryArgs, ReportArgs, Shell, SigningArgs};
use ::zeroimage::error::{Error, Result};
use ::zeroimage::image::reference::Reference;
use ::zeroimage::layout;
use ::zeroimage::registry::login::{login, logout};
use ::zeroimage::registry::push::{PushOptions, PushOutcome, Pushed, push};

/// Push an image archive built earlier; every blob's digest is checked as it is read.
#[derive(Args, Debug)]
pub struct PushCommand {
    /// The image archive (from zeroimage, cargo zeroimage, or any single-image OCI archive)
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,

    /// Where to push, e.g. registry.example.com/team/app:1.0 (several for several tags)
    #[arg(value_name = "REF", required = true, value_parser = parse_reference)]
    pub references: Vec<Reference>,

    /// Fail when a registry refuses a document attached in the archive (no tag is set then);
    /// without it, that is a warning and the image is pushed without the document
    #[arg(long)]
    pub require_attachments: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub signing: SigningArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// Log in to a registry: check the credentials, then store them as `docker login` does.
#[derive(Args, Debug)]
pub struct LoginCommand {
    /// Registry host, e.g. registry.example.com or localhost:5000 (docker.io for Docker Hub)
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// User name
    #[arg(short, long, value_name = "USER")]
    pub username: String,

    /// Read the password (or token) from standard input
    #[arg(long, required = true)]
    pub password_stdin: bool,

    /// Credentials file to write [default: $REGISTRY_AUTH_FILE, else docker's config.json]
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,

    #[command(flatten)]
    pub registry_options: RegistryArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// Remove the stored credentials for a registry.
#[derive(Args, Debug)]
pub struct LogoutCommand {
    /// Registry host
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// Credentials file [default: $REGISTRY_AUTH_FILE, else docker's config.json]
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,

    #[command(flatten)]
    pub report: ReportArgs,
}

fn parse_reference(s: &str) -> std::result::Result<Reference, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}

/// Pushes `archive` to `references`; prints `REF@DIGEST` per reference on stdout (human format), or
/// one JSON object with `pushed` and, when some were not, `attachments_not_pushed`.
pub fn run_push(command: &PushCommand, shell: &Shell) -> Result<()> {
    let cx = super::context(shell);
    let signer = command.signing.options().signer(&[], None)?;
    let image = layout::open(&command.archive, None, cx.cancel())?;
    let outcome = push(
        &image,
        &command.references,
        &PushOptions {
            require_attachments: command.require_attachments,
            signer,
            ..command.registry.push_options()
        },
        &cx,
    )?;
    match command.report.message_format {
        MessageFormat::Human => print_pushed(&outcome.pushed),
        MessageFormat::Json => print_push_summary(&outcome),
    }
    Ok(())
}

/// `zeroimage push`'s JSON object.
pub fn print_push_summary(outcome: &PushOutcome) {
    let refs: Vec<String> = outcome.pushed.iter().map(ToString::to_string).collect();
    let mut summary = serde_json::json!({ "pushed": refs });
    if !outcome.not_attached.is_empty() {
        summary["attachments_not_pushed"] = serde_json::json!(outcome.not_attached);
    }
    if !outcome.signatures.is_empty() {
        summary["signatures"] = serde_json::json!(outcome.signatures);
    }
    println!("{summary}");
}

/// Prints `REF@DIGEST` for each reference pushed, one a line.
pub fn print_pushed(pushed: &[Pushed]) {
    for p in pushed {
        println!("{p}");
    }
}

/// Reads the password from standard input, then checks the credentials and stores them.
pub fn run_login(command: &LoginCommand, shell: &Shell) -> Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| Error::Invalid(format!("reading the password from standard input: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Error::Invalid(
            "the password read from standard input is empty".to_owned(),
        ));
    }
    login(
        &command.registry,
        &command.username,
        password,
        command.authfile.as_deref(),
        &command.registry_options.client_options(),
        &super::context(shell),
    )
}

/// Removes stored credentials.
pub fn run_logout(command: &LogoutCommand, shell: &Shell) -> Result<()> {
    logout(
        &command.registry,
        command.authfile.as_deref(),
        &super::context(shell),
    )
}
