//! Sigstore bundles (v0.3), cosign v3's signature format: the signature with what verifies it, here a
//! public key named by its hint (base64 of the SHA-256 of its PKIX DER, as sigstore-go writes it; a
//! verifier is given the key, and the hint only helps it choose). Offline and key-based: no transparency log entry and no certificate,
//! which a verifier must be told to accept (`@sigstore/verify` with its thresholds at zero).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::dsse::{self, Envelope};
use super::{MessageSigner, PublicKey};
use crate::error::signing::SignatureProblem;
use crate::error::{Error, Result};
use crate::oci::{Algorithm, Digest};

/// The bundle's media type, in the document and as an OCI artifact type.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The same version in the older spelling some clients write.
const MEDIA_TYPE_PARAMETER: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";

/// What a bundle was verified to sign.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verified {
    /// A message signature over the artifact of this digest.
    MessageSignature {
        /// The artifact's digest.
        digest: Digest,
    },
    /// A DSSE envelope whose in-toto statement names the artifact.
    Dsse {
        /// The payload type.
        payload_type: String,
        /// The payload (the in-toto statement).
        payload: Vec<u8>,
    },
}

/// A bundle holding `key`'s signature over `artifact` (e.g. an image manifest's bytes): a message
/// signature with its SHA-256.
pub fn message_signature(key: &dyn MessageSigner, artifact: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(artifact);
    let signature = key.sign(artifact);
    format!(
        r#"{{"mediaType":"{MEDIA_TYPE}","verificationMaterial":{},"messageSignature":{{"messageDigest":{{"algorithm":"SHA2_256","digest":"{}"}},"signature":"{}"}}}}"#,
        verification_material(key),
        BASE64.encode(digest),
        BASE64.encode(signature)
    )
    .into_bytes()
}

/// A bundle holding a DSSE envelope of `payload` signed by `key`.
pub fn dsse(key: &dyn MessageSigner, payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let signature = key.sign(&dsse::pae(payload_type, payload));
    format!(
        r#"{{"mediaType":"{MEDIA_TYPE}","verificationMaterial":{},"dsseEnvelope":{{"payload":"{}","payloadType":{},"signatures":[{{"sig":"{}","keyid":""}}]}}}}"#,
        verification_material(key),
        BASE64.encode(payload),
        super::go_json_string(payload_type),
        BASE64.encode(signature)
    )
    .into_bytes()
}

fn verification_material(key: &dyn MessageSigner) -> String {
    format!(
        r#"{{"publicKey":{{"hint":"{}"}},"tlogEntries":[]}}"#,
        key.public_key().bundle_hint()
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    message_signature: Option<MessageSignature>,
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: Option<MessageDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

/// Verifies a bundle of either form against `key` and the digest of the artifact it must cover: a
/// message signature over exactly that artifact, or a DSSE envelope whose in-toto statement names it.
pub fn verify(key: &PublicKey, bundle: &[u8], artifact_digest: &Digest) -> Result<Verified> {
    super::bounded("bundle", bundle)?;
    let bundle: Bundle = serde_json::from_slice(bundle)
        .map_err(|e| super::malformed(&format!("the bundle is not Sigstore bundle JSON: {e}")))?;
    if bundle.media_type != MEDIA_TYPE && bundle.media_type != MEDIA_TYPE_PARAMETER {
        return Err(Error::signature(SignatureProblem::Unsupported(format!(
            "bundle media type `{}` (we read {MEDIA_TYPE})",
            crate::util::sanitize::outside(&bundle.media_type, 100)
        ))));
    }
    match (bundle.message_signature, bundle.dsse_envelope) {
        (Some(signature), None) => {
            verify_message(key, &signature, artifact_digest)?;
            Ok(Verified::MessageSignature {
                digest: artifact_digest.clone(),
            })
        }
        (None, Some(envelope)) => {
            let (payload_type, payload) = dsse::verify_parsed(key, &envelope)?;
            if payload_type != dsse::IN_TOTO_PAYLOAD_TYPE {
                return Err(Error::signature(SignatureProblem::WrongType {
                    expected: dsse::IN_TOTO_PAYLOAD_TYPE.into(),
                    found: crate::util::sanitize::outside(&payload_type, 100),
                }));
            }
            dsse::check_statement_subject(&payload, artifact_digest)?;
            Ok(Verified::Dsse {
                payload_type,
                payload,
            })
        }
        (None, None) => Err(Error::signature(SignatureProblem::Missing)),
        (Some(_), Some(_)) => Err(super::malformed(
            "the bundle holds both a message signature and a DSSE envelope",
        )),
    }
}

fn verify_message(key: &PublicKey, signature: &MessageSignature, expected: &Digest) -> Result<()> {
    if expected.algorithm() != Algorithm::Sha256 {
        return Err(Error::signature(SignatureProblem::Unsupported(format!(
            "a message signature over a {} digest (only sha256)",
            expected.algorithm().as_str()
        ))));
    }
    let Some(digest) = &signature.message_digest else {
        return Err(super::malformed(
            "the bundle's message signature has no digest",
        ));
    };
    if digest.algorithm != "SHA2_256" {
        return Err(Error::signature(SignatureProblem::Unsupported(format!(
            "message digest algorithm `{}` (only SHA2_256)",
            crate::util::sanitize::outside(&digest.algorithm, 40)
        ))));
    }
    let bytes = BASE64
        .decode(&digest.digest)
        .map_err(|_| super::malformed("the bundle's message digest is not base64"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if hex != expected.hex() {
        return Err(Error::signature(SignatureProblem::DigestMismatch {
            expected: expected.to_string(),
            found: format!("sha256:{}", crate::util::sanitize::outside(&hex, 128)),
        }));
    }
    let der = BASE64
        .decode(&signature.signature)
        .map_err(|_| super::malformed("the bundle's signature is not base64"))?;
    key.verify_sha256(&bytes, &der)
}
