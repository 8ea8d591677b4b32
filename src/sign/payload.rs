//! cosign's simple-signing payload, the document a `.sig` signature signs: the repository and the
//! manifest digest it vouches for. Written byte for byte as cosign writes it (sigstore's
//! `payload.Cosign`, marshalled by Go's `encoding/json`), since verifiers hash the payload bytes.

use serde::Deserialize;

use crate::error::signing::SignatureProblem;
use crate::error::{Error, Result};
use crate::oci::Digest;

/// The media type of a `.sig` manifest's layers, each one payload.
pub const MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// What a payload names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference`: the repository (cosign writes it without a tag).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub digest: Digest,
}

impl SimpleSigning {
    /// Checks that the payload names exactly `docker_reference` and `digest`.
    pub fn covers(&self, docker_reference: &str, digest: &Digest) -> Result<()> {
        if self.digest != *digest {
            return Err(Error::signature(SignatureProblem::DigestMismatch {
                expected: digest.to_string(),
                found: self.digest.to_string(),
            }));
        }
        if self.docker_reference != docker_reference {
            return Err(Error::signature(SignatureProblem::ReferenceMismatch {
                expected: docker_reference.to_owned(),
                found: crate::util::sanitize::outside(&self.docker_reference, 200),
            }));
        }
        Ok(())
    }
}

/// The payload cosign signs for `digest` in `docker_reference` (the repository, without tag):
/// `{"critical":{"identity":{"docker-reference":...},"image":{"docker-manifest-digest":...},"type":"cosign container image signature"},"optional":null}`.
pub fn simple_signing(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":{}}},"optional":null}}"#,
        super::go_json_string(docker_reference),
        super::go_json_string(&digest.to_string()),
        super::go_json_string(SIGNATURE_TYPE),
    )
    .into_bytes()
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Reads a payload (at most [`super::MAX_DOCUMENT`] bytes): the repository and digest it names.
pub fn parse_simple_signing(bytes: &[u8]) -> Result<SimpleSigning> {
    super::bounded("payload", bytes)?;
    let payload: Payload = serde_json::from_slice(bytes)
        .map_err(|e| super::malformed(&format!("the payload is not cosign's JSON: {e}")))?;
    let critical = payload.critical;
    if critical.kind != SIGNATURE_TYPE {
        return Err(Error::signature(SignatureProblem::WrongType {
            expected: SIGNATURE_TYPE.into(),
            found: crate::util::sanitize::outside(&critical.kind, 100),
        }));
    }
    let digest = Digest::parse(&critical.image.docker_manifest_digest).ok_or_else(|| {
        super::malformed(&format!(
            "the payload's digest `{}` is not a digest",
            critical.image.docker_manifest_digest
        ))
    })?;
    Ok(SimpleSigning {
        docker_reference: critical.identity.docker_reference,
        digest,
    })
}
