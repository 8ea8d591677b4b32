//! `zeroimage sign` and `zeroimage verify`: signing an image already in a registry, and checking
//! that a key signed one.

use std::path::PathBuf;

use clap::Args;

use super::{MessageFormat, RegistryArgs, ReportArgs, Shell};
use ::zeroimage::error::{Error, Result};
use ::zeroimage::image::reference::Reference;
use ::zeroimage::image::signatures::SignatureFormat;
use ::zeroimage::job::base::BaseRef;
use ::zeroimage::job::signing::SigningOptions;
use ::zeroimage::registry::pull::PullOptions;
use ::zeroimage::registry::push::sign_pushed;
use ::zeroimage::registry::verify::verify;
use ::zeroimage::sign::PublicKey;

/// Sign an image already in a registry with a key (cosign-compatible; no tag moves).
#[derive(Args, Debug)]
pub struct SignCommand {
    /// The image, by tag or digest, e.g. registry.example.com/team/app:1.0
    #[arg(value_name = "REF", value_parser = parse_reference)]
    pub reference: Reference,

    /// The private key: cosign's encrypted format or a PKCS#8 PEM (the password from
    /// $COSIGN_PASSWORD, else the terminal)
    #[arg(
        long,
        value_name = "KEY",
        required = true,
        env = "ZEROIMAGE_SIGNING_KEY"
    )]
    pub key: Vec<PathBuf>,

    /// How signatures are stored: cosign (the .sig tag), bundle (a Sigstore bundle as an OCI 1.1
    /// referrer) or both [default: cosign]
    #[arg(long, value_name = "FORMAT", value_parser = signature_format)]
    pub signature_format: Option<SignatureFormat>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// Check that a key signed an image, in a registry or an archive: exit 0 with a line per signature
/// verified, 1 with the check that failed.
#[derive(Args, Debug)]
pub struct VerifyCommand {
    /// The image: a registry reference (by tag or digest), or an archive or OCI layout directory
    /// (`PATH[:TAG]`) whose image is named after a registry repository
    #[arg(value_name = "REF|ARCHIVE")]
    pub target: String,

    /// The public key (PEM, as `zeroimage generate-key-pair` or cosign writes it)
    #[arg(long, value_name = "PUB")]
    pub key: PathBuf,

    /// Also require signed attestations (the SBOM, provenance) naming the image's digest
    #[arg(long)]
    pub attestations: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

fn parse_reference(s: &str) -> std::result::Result<Reference, String> {
    Reference::parse_pinnable(s).map_err(|e| e.to_string())
}

fn signature_format(s: &str) -> std::result::Result<SignatureFormat, String> {
    SignatureFormat::parse(s).ok_or_else(|| format!("`{s}` is not cosign, bundle or both"))
}

/// Signs the image and prints it, pinned by digest.
pub fn run_sign(command: &SignCommand, shell: &Shell) -> Result<()> {
    let cx = super::context(shell);
    let signing = SigningOptions {
        keys: command.key.clone(),
        format: command.signature_format,
        ..SigningOptions::default()
    };
    let signer = signing
        .signer(&[], None)?
        .ok_or_else(|| Error::Invalid("zeroimage sign needs --key KEY".to_owned()))?;
    let signed = sign_pushed(
        &command.reference,
        &signer,
        &command.registry.push_options(),
        &cx,
    )?;
    match command.report.message_format {
        MessageFormat::Human => super::registry::print_pushed(&signed.pushed),
        MessageFormat::Json => super::registry::print_push_summary(&signed),
    }
    Ok(())
}

/// Verifies the image's signatures; prints a line for each one verified.
pub fn run_verify(command: &VerifyCommand, shell: &Shell) -> Result<()> {
    let cx = super::context(shell);
    let key = PublicKey::load(&command.key)?;
    let pull = PullOptions {
        client: command.registry.client_options(),
        ..PullOptions::default()
    };
    let verified = match BaseRef::archive(&command.target)? {
        BaseRef::Archive { path, tag } if path.exists() => {
            verify_archive(&path, tag.as_deref(), &key, command.attestations, &cx)?
        }
        _ => {
            let reference = Reference::parse_pinnable(&command.target)?;
            verify(&reference, &key, command.attestations, &pull, &cx)?
        }
    };
    match command.report.message_format {
        MessageFormat::Human => {
            for line in verified.signatures.iter().chain(&verified.attestations) {
                println!("Verified {line}");
            }
        }
        MessageFormat::Json => println!("{}", serde_json::to_string(&verified).unwrap_or_default()),
    }
    Ok(())
}

/// Verifies the signatures an archive (or layout directory) carries, for the repository its image
/// is named after.
fn verify_archive(
    path: &std::path::Path,
    tag: Option<&str>,
    key: &PublicKey,
    attestations: bool,
    cx: &::zeroimage::Context,
) -> Result<::zeroimage::image::signatures::Verification> {
    let (image, names) = ::zeroimage::layout::open_named(path, tag, cx.cancel())?;
    let repository =
        ::zeroimage::image::signatures::registry_repository(&names).ok_or_else(|| {
            Error::input(
                path,
                "its image is not named after a registry repository, so no signature in it can \
                 name one; build with -t REGISTRY/REPOSITORY:TAG and --sign KEY",
            )
        })?;
    ::zeroimage::image::signatures::verify(&image, &image.tree, &repository, key, attestations)
}
