//! `zeroimage generate-key-pair`: a signing key pair in cosign's format.

use std::path::PathBuf;

use clap::Args;

use super::{ReportArgs, Shell};
use ::zeroimage::error::Result;
use ::zeroimage::report::Listener as _;
use ::zeroimage::sign;

/// Make a key pair to sign images with, as `cosign generate-key-pair` does: PREFIX.key (ECDSA P-256,
/// encrypted with a password from $COSIGN_PASSWORD or asked twice on the terminal) and PREFIX.pub.
/// Existing files are never replaced.
#[derive(Args, Debug)]
pub struct GenerateKeyPairCommand {
    /// Where the keys go: PREFIX.key and PREFIX.pub
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: PathBuf,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// Asks for the password, then writes the two files and says where they are.
pub fn run_generate_key_pair(command: &GenerateKeyPairCommand, shell: &Shell) -> Result<()> {
    // Refused before the password is asked; checked again when the files are written.
    let (private, _) = sign::check_key_pair_paths(&command.output_key_prefix)?;
    let password = sign::password_from_env_or_terminal(&private.to_string_lossy(), true)?;
    let cx = super::context(shell);
    let (private, public) =
        sign::write_key_pair(&command.output_key_prefix, &password, cx.cancel())?;
    shell.status(
        "Generated",
        &format!(
            "private key {} (encrypted) and public key {}",
            private.display(),
            public.display()
        ),
    );
    if command.report.message_format == super::MessageFormat::Json {
        println!(
            "{}",
            serde_json::json!({
                "private_key": private.to_string_lossy(),
                "public_key": public.to_string_lossy(),
            })
        );
    }
    Ok(())
}
