//! Signing with a key, compatible with cosign, offline: key files (cosign's encrypted format, openssl's
//! PEM keys), the password, and the documents signatures travel in: cosign's simple-signing
//! [`payload`], [`dsse`] envelopes for in-toto attestations, and Sigstore [`bundle`]s.
//!
//! Keys are ECDSA P-256 and signatures are ASN.1 DER over SHA-256, cosign's default. Keyless signing
//! (Fulcio certificates, Rekor) needs the network and is not here: a [`MessageSigner`] is a
//! [`SigningKey`] today; another kind of signer would implement the trait beside it, and every
//! document here takes its signer only to sign and to name its public key.

pub mod bundle;
pub mod dsse;
mod encrypted;
mod files;
mod key;
mod password;
pub mod payload;
mod pem;

pub use files::{check_key_pair_paths, key_pair_paths, write_key_pair};
pub use key::{MAX_KEY_FILE, PublicKey, SigningKey};
pub use password::{PASSWORD_VARIABLE, password_from_env_or_terminal};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// What makes signatures: a key file's [`SigningKey`] today, a keyless signer (a short-lived
/// certificate for an OIDC identity) another day.
pub trait MessageSigner: Send + Sync {
    /// Signs `message` (SHA-256 inside), returning the ASN.1 DER signature.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    /// The public key that verifies the signatures.
    fn public_key(&self) -> PublicKey;
}

impl MessageSigner for SigningKey {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        SigningKey::sign(self, message)
    }

    fn public_key(&self) -> PublicKey {
        SigningKey::public_key(self)
    }
}

/// A new key pair, as `cosign generate-key-pair` writes it: the private key encrypted under `password`
/// (scrypt N=65536 r=8 p=1, a 32-byte salt, nacl/secretbox, PEM `ENCRYPTED SIGSTORE PRIVATE KEY`) and
/// the public key as a PKIX `PUBLIC KEY` PEM.
pub fn generate_key_pair(password: &str) -> Result<(Zeroizing<String>, String)> {
    let key = SigningKey::generate()?;
    let der = key.to_pkcs8_der()?;
    let json = encrypted::encrypt(&der, password)?;
    let private = Zeroizing::new(pem::encode(key::SIGSTORE_LABEL, &json));
    Ok((private, key.public_key().to_pem()))
}

/// Fills `bytes` from the system's random source.
fn random(bytes: &mut [u8]) -> Result<()> {
    getrandom::fill(bytes).map_err(|error| {
        Error::Invalid(format!(
            "the system's random source failed ({error}); no key or signature was made"
        ))
    })
}

/// Bounded base64 and JSON for the documents: the largest payload, envelope or bundle read (1 MiB;
/// an SBOM of a large image is a few hundred KiB).
pub const MAX_DOCUMENT: usize = 1 << 20;

/// Refuses a document over [`MAX_DOCUMENT`].
fn bounded(what: &'static str, bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_DOCUMENT {
        return Err(Error::signature(
            crate::error::signing::SignatureProblem::TooLarge {
                what,
                limit: MAX_DOCUMENT,
            },
        ));
    }
    Ok(())
}

/// A malformed-document error, the outside text escaped.
fn malformed(what: &str) -> Error {
    Error::signature(crate::error::signing::SignatureProblem::Malformed(
        crate::util::sanitize::outside(what, crate::util::sanitize::EXCERPT),
    ))
}

/// A JSON string as Go's `encoding/json` writes it (`<`, `>`, `&`, U+2028 and U+2029 escaped), so
/// that documents we write are byte for byte those cosign writes.
fn go_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
