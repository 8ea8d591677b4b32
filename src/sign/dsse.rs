//! DSSE envelopes (Dead Simple Signing Envelope), which carry signed in-toto attestations: the
//! signature covers the pre-authentication encoding of the payload type and payload, never the JSON
//! around them. Written as cosign writes them (go-securesystemslib's `dsse.Envelope`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use serde::Deserialize;

use super::{MessageSigner, PublicKey};
use crate::error::signing::SignatureProblem;
use crate::error::{Error, Result};
use crate::oci::Digest;

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The media type of a layer holding an envelope (cosign's `.att` manifests).
pub const MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The most signatures an envelope may list.
const MAX_SIGNATURES: usize = 64;

/// DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The envelope's JSON (`payloadType`, `payload`, `signatures: [{keyid, sig}]`), as cosign writes it.
pub fn sign_envelope(key: &dyn MessageSigner, payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let signature = key.sign(&pae(payload_type, payload));
    format!(
        r#"{{"payloadType":{},"payload":"{}","signatures":[{{"keyid":"","sig":"{}"}}]}}"#,
        super::go_json_string(payload_type),
        BASE64.encode(payload),
        BASE64.encode(signature)
    )
    .into_bytes()
}

#[derive(Deserialize)]
pub(crate) struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

#[derive(Deserialize)]
pub(crate) struct Signature {
    pub sig: String,
}

/// Checks that at least one signature of the envelope is `key`'s; returns the payload type and the
/// payload. The envelope is bounded by [`super::MAX_DOCUMENT`].
pub fn verify_envelope(key: &PublicKey, envelope: &[u8]) -> Result<(String, Vec<u8>)> {
    super::bounded("envelope", envelope)?;
    let envelope: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| super::malformed(&format!("the envelope is not DSSE JSON: {e}")))?;
    verify_parsed(key, &envelope)
}

/// [`verify_envelope`] of an envelope already parsed (a bundle's).
pub(crate) fn verify_parsed(key: &PublicKey, envelope: &Envelope) -> Result<(String, Vec<u8>)> {
    if envelope.signatures.is_empty() {
        return Err(Error::signature(SignatureProblem::Missing));
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(super::malformed(&format!(
            "the envelope lists {} signatures, more than {MAX_SIGNATURES}",
            envelope.signatures.len()
        )));
    }
    let payload = decode(&envelope.payload)
        .ok_or_else(|| super::malformed("the envelope's payload is not base64"))?;
    let signed = pae(&envelope.payload_type, &payload);
    let mut last = None;
    for signature in &envelope.signatures {
        let Some(der) = decode(&signature.sig) else {
            last = Some(super::malformed(
                "a signature of the envelope is not base64",
            ));
            continue;
        };
        match key.verify(&signed, &der) {
            Ok(()) => return Ok((envelope.payload_type.clone(), payload)),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| Error::signature(SignatureProblem::Missing)))
}

/// DSSE allows both base64 alphabets.
fn decode(text: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(text)
        .or_else(|_| BASE64_URL.decode(text))
        .ok()
}

#[derive(Deserialize)]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Checks that an in-toto statement names `digest` among its subjects.
pub fn check_statement_subject(payload: &[u8], digest: &Digest) -> Result<()> {
    super::bounded("payload", payload)?;
    let statement: Statement = serde_json::from_slice(payload)
        .map_err(|e| super::malformed(&format!("the payload is not an in-toto statement: {e}")))?;
    let algorithm = digest.algorithm().as_str();
    let mut found = None;
    for subject in &statement.subject {
        if let Some(hex) = subject.digest.get(algorithm) {
            if hex == digest.hex() {
                return Ok(());
            }
            found.get_or_insert_with(|| format!("{algorithm}:{hex}"));
        }
    }
    Err(Error::signature(SignatureProblem::DigestMismatch {
        expected: digest.to_string(),
        found: found.map_or_else(
            || "no subject digest".to_owned(),
            |f| crate::util::sanitize::outside(&f, 140),
        ),
    }))
}
