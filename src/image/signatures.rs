//! An image's signatures, in the two forms verifiers read.
//!
//! - **cosign**: the manifest tagged `sha256-<hex>.sig` beside the image, one layer per signature: a
//!   simple-signing payload naming the repository and the digest, its signature in an annotation.
//!   Signed attestations (an SBOM, provenance) are DSSE envelopes, one per layer of the `.att` tag.
//! - **bundle**: a Sigstore bundle (v0.3) per signature, attached as an OCI 1.1 referrer of what it
//!   signs: a message signature over the manifest's bytes, or a DSSE envelope for an attestation.
//!
//! [`Signer::sign`] makes both from a key; [`check_signature`] and [`check_attestation`] judge what a
//! registry or an archive holds. Nothing here reads or writes a registry.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::value::RawValue;

use super::Stored;
use super::blobs::read_document;
use super::referrers::{Attachment, DocumentKind, SLSA_PROVENANCE_V1};
use super::{ImageTree, MAX_DOCUMENT};
use crate::error::Result;
use crate::oci::{Descriptor, Digest, MediaType};
use crate::sign::{MessageSigner, PublicKey, bundle, dsse, payload};
use crate::util::sanitize;

/// The media type of a cosign signature layer (a simple-signing payload).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The media type of a cosign attestation layer (a DSSE envelope).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation holding a cosign layer's signature (base64 DER).
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The annotation naming an attestation layer's predicate type.
pub const ANNOTATION_PREDICATE: &str = "predicateType";
pub use super::referrers::{ANNOTATION_BUNDLE_CONTENT, ANNOTATION_BUNDLE_PREDICATE};
/// The predicate type of a bundle that signs an image.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The predicate type of an SPDX SBOM in an in-toto statement.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// The predicate type of a CycloneDX SBOM in an in-toto statement.
pub const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";
/// The longest signature annotation read (a P-256 DER signature is at most 72 bytes, 96 in base64).
const MAX_SIGNATURE_ANNOTATION: usize = 1024;
/// The largest signature layer read (a payload is a few hundred bytes; an envelope holds an SBOM).
pub const MAX_LAYER: u64 = MAX_DOCUMENT;

/// Which forms of signature to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SignatureFormat {
    /// cosign's `.sig` and `.att` tags.
    #[default]
    Cosign,
    /// Sigstore bundles attached as referrers.
    Bundle,
    /// Both.
    Both,
}

impl SignatureFormat {
    /// Parses `cosign`, `bundle` or `both`.
    pub fn parse(text: &str) -> Option<SignatureFormat> {
        match text {
            "cosign" => Some(SignatureFormat::Cosign),
            "bundle" => Some(SignatureFormat::Bundle),
            "both" => Some(SignatureFormat::Both),
            _ => None,
        }
    }

    fn cosign(self) -> bool {
        matches!(self, SignatureFormat::Cosign | SignatureFormat::Both)
    }

    fn bundle(self) -> bool {
        matches!(self, SignatureFormat::Bundle | SignatureFormat::Both)
    }
}

/// Which cosign tag a layer goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagKind {
    /// `sha256-<hex>.sig`: signatures.
    Signature,
    /// `sha256-<hex>.att`: signed attestations.
    Attestation,
}

impl TagKind {
    /// The tag holding this kind of layer for `subject`.
    pub fn tag(self, subject: &Digest) -> String {
        let suffix = match self {
            TagKind::Signature => "sig",
            TagKind::Attestation => "att",
        };
        format!(
            "{}-{}.{suffix}",
            subject.algorithm().as_str(),
            subject.hex()
        )
    }
}

/// One layer of a cosign tag: its descriptor (with the annotations) and its bytes.
#[derive(Clone, Debug)]
pub struct CosignLayer {
    /// The tag it goes to.
    pub kind: TagKind,
    /// The manifest or index it is about.
    pub subject: Digest,
    /// The layer as the tag's manifest lists it.
    pub descriptor: Descriptor,
    /// The payload or envelope.
    pub bytes: Vec<u8>,
    /// The id of the key that signed it, when known (not for signatures read from an archive).
    pub key: Option<String>,
}

/// What signing made for one repository: cosign layers and bundle referrers.
#[derive(Clone, Debug, Default)]
pub struct Signed {
    /// Layers of the `.sig` and `.att` tags.
    pub layers: Vec<CosignLayer>,
    /// Bundles, as artifact manifests about what they sign (their bytes in `bundles.memory`).
    pub bundles: super::referrers::Attachments,
    /// The id of the key that signed each bundle, in the order of `bundles.items`.
    pub bundle_keys: Vec<String>,
}

/// One signature made, for `--message-format json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignatureSummary {
    /// `HOST/REPOSITORY` it names and was pushed to.
    pub repository: String,
    /// The manifest or index signed (or the one an attestation is about).
    pub subject: Digest,
    /// `cosign` or `bundle`.
    pub format: &'static str,
    /// `signature`, or the predicate type of a signed attestation.
    pub what: String,
    /// The key's id: the hex SHA-256 of its public key (PKIX DER), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The tag holding it (`sha256-<hex>.sig`), or the bundle's artifact manifest digest.
    pub location: String,
}

impl Signed {
    /// How many signatures and signed attestations there are.
    pub fn count(&self) -> usize {
        self.layers.len() + self.bundles.items.len()
    }

    /// Every signature as an artifact about what it signs, as an archive carries them: the bundles,
    /// and each cosign layer in a manifest of its own (pushed into its tag later).
    pub fn into_attachments(self, tree: &ImageTree) -> super::referrers::Attachments {
        let mut attachments = self.bundles;
        for layer in self.layers {
            let Some((subject, platform)) = describe_subject(tree, &layer.subject) else {
                continue;
            };
            let kind = match layer.kind {
                TagKind::Signature => DocumentKind::CosignSignature,
                TagKind::Attestation => DocumentKind::CosignAttestation,
            };
            attachments.push_cosign(kind, &subject, platform, layer.descriptor, layer.bytes);
        }
        attachments
    }

    /// A summary of each, as pushed to `repository`.
    pub fn summaries(&self, repository: &str) -> Vec<SignatureSummary> {
        let layers = self.layers.iter().map(|layer| SignatureSummary {
            repository: repository.to_owned(),
            subject: layer.subject.clone(),
            format: "cosign",
            what: layer
                .descriptor
                .annotations
                .get(ANNOTATION_PREDICATE)
                .cloned()
                .unwrap_or_else(|| "signature".to_owned()),
            key: layer.key.clone(),
            location: layer.kind.tag(&layer.subject),
        });
        let bundles = self
            .bundles
            .items
            .iter()
            .zip(&self.bundle_keys)
            .map(|(item, key)| {
                let predicate = item
                    .manifest
                    .value()
                    .annotations
                    .get(ANNOTATION_BUNDLE_PREDICATE)
                    .cloned()
                    .unwrap_or_default();
                SignatureSummary {
                    repository: repository.to_owned(),
                    subject: item.subject().digest.clone(),
                    format: "bundle",
                    what: if predicate == COSIGN_SIGN_PREDICATE {
                        "signature".to_owned()
                    } else {
                        predicate
                    },
                    key: Some(key.clone()),
                    location: item.manifest.digest().to_string(),
                }
            });
        layers.chain(bundles).collect()
    }
}

/// Signs images with keys (any [`MessageSigner`]), in the forms asked for.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<Arc<dyn MessageSigner>>,
    format: SignatureFormat,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &self.keys.len())
            .field("format", &self.format)
            .finish()
    }
}

impl Signer {
    /// A signer with `keys` (loaded, so a wrong password fails before anything is built).
    pub fn new(keys: Vec<Arc<dyn MessageSigner>>, format: SignatureFormat) -> Signer {
        Signer { keys, format }
    }

    /// The keys' public halves.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.iter().map(|k| k.public_key()).collect()
    }

    /// Signs `image` as it is called in `repository` (`HOST/PATH`, no tag): the top digest and, for
    /// an index, each platform's manifest; with a key, each attached SBOM and provenance statement
    /// too, as an in-toto statement in a DSSE envelope.
    pub fn sign(&self, image: &Stored, repository: &str) -> Result<Signed> {
        self.sign_parts(
            &image.tree,
            &image.referrers,
            image.blobs.as_ref(),
            repository,
        )
    }

    /// [`Signer::sign`] for an image in parts: its tree, the documents attached to it and where
    /// their bytes are.
    pub fn sign_parts(
        &self,
        tree: &ImageTree,
        referrers: &[Attachment],
        blobs: &dyn super::blobs::BlobSource,
        repository: &str,
    ) -> Result<Signed> {
        let identity = docker_reference(repository);
        let mut signed = Signed::default();
        let subjects = subjects(tree);
        let mut statements = Vec::new();
        for item in referrers {
            let Some(predicate_type) = predicate_type(item.kind) else {
                continue;
            };
            let document = read_document(blobs, &item.document, MAX_DOCUMENT)?;
            let statement = statement(&document, item, &identity, predicate_type)?;
            statements.push((item, predicate_type, statement));
        }
        for key in self.keys.iter().map(AsRef::as_ref) {
            let key_id = key.public_key().key_id();
            for (subject, bytes) in &subjects {
                if self.format.cosign() {
                    let payload = payload::simple_signing(&identity, &subject.digest);
                    let signature = BASE64.encode(key.sign(&payload));
                    signed.layers.push(layer(
                        TagKind::Signature,
                        &subject.digest,
                        SIMPLE_SIGNING,
                        payload,
                        [(ANNOTATION_SIGNATURE, signature)],
                        &key_id,
                    ));
                }
                if self.format.bundle() {
                    let bytes = bundle::message_signature(key, bytes);
                    signed.bundles.push_bundle(
                        subject,
                        None,
                        bytes,
                        COSIGN_SIGN_PREDICATE,
                        "message-signature",
                    );
                    signed.bundle_keys.push(key_id.clone());
                }
            }
            for (item, predicate_type, statement) in &statements {
                if self.format.cosign() {
                    let envelope = dsse::sign_envelope(key, dsse::IN_TOTO_PAYLOAD_TYPE, statement);
                    signed.layers.push(layer(
                        TagKind::Attestation,
                        &item.subject().digest,
                        DSSE_ENVELOPE,
                        envelope,
                        [
                            (ANNOTATION_PREDICATE, (*predicate_type).to_owned()),
                            (ANNOTATION_SIGNATURE, String::new()),
                        ],
                        &key_id,
                    ));
                }
                if self.format.bundle() {
                    let bytes = bundle::dsse(key, dsse::IN_TOTO_PAYLOAD_TYPE, statement);
                    signed.bundles.push_bundle(
                        item.subject(),
                        item.platform.clone(),
                        bytes,
                        predicate_type,
                        "dsse-envelope",
                    );
                    signed.bundle_keys.push(key_id.clone());
                }
            }
        }
        Ok(signed)
    }
}

/// The first of `names` (an archive's names for its image) that names a registry repository:
/// `HOST/PATH`, without the tag. A name without a registry (Docker Hub's implicit one) is none.
pub fn registry_repository(names: &[String]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| name.parse::<super::reference::Reference>().ok())
        .find(|r| r.domain() != super::reference::DOCKER_HUB)
        .map(|r| format!("{}/{}", r.domain(), r.path()))
}

/// What cosign calls a repository in a payload: Docker Hub as `index.docker.io`.
pub fn docker_reference(repository: &str) -> String {
    match repository.split_once('/') {
        Some((super::reference::DOCKER_HUB, path)) => format!("index.docker.io/{path}"),
        _ => repository.to_owned(),
    }
}

/// The descriptor of `digest` in `tree` (its top or one of its manifests) and its platform.
fn describe_subject(
    tree: &ImageTree,
    digest: &Digest,
) -> Option<(Descriptor, Option<crate::oci::platform::Platform>)> {
    if tree.top.digest == *digest {
        return Some((tree.top.clone(), None));
    }
    tree.manifests
        .iter()
        .find(|n| n.descriptor.digest == *digest)
        .map(|n| (n.descriptor.clone(), n.descriptor.platform.clone()))
}

/// What gets signed: the top of the tree and, under an index, each manifest, with the bytes.
fn subjects(tree: &ImageTree) -> Vec<(Descriptor, &[u8])> {
    let mut list = vec![(tree.top.clone(), tree.top_bytes())];
    if tree.index.is_some() {
        for node in &tree.manifests {
            list.push((node.descriptor.clone(), node.manifest.bytes()));
        }
    }
    list
}

/// The in-toto predicate type a document is signed under; none for what is not an attestation.
pub fn predicate_type(kind: DocumentKind) -> Option<&'static str> {
    match kind {
        DocumentKind::Spdx => Some(SPDX_PREDICATE),
        DocumentKind::CycloneDx => Some(CYCLONEDX_PREDICATE),
        DocumentKind::Provenance => Some(SLSA_PROVENANCE_V1),
        DocumentKind::SigstoreBundle
        | DocumentKind::CosignSignature
        | DocumentKind::CosignAttestation => None,
    }
}

/// The in-toto statement signed for an attached document: the provenance statement as it is (it
/// names the image already), an SBOM as the predicate of a statement about the manifest it describes.
fn statement(
    document: &[u8],
    item: &Attachment,
    identity: &str,
    predicate_type: &str,
) -> Result<Vec<u8>> {
    if item.kind == DocumentKind::Provenance {
        return Ok(document.to_vec());
    }
    let predicate: &RawValue = serde_json::from_slice(document).map_err(|e| {
        crate::error::Error::Invalid(format!(
            "{} is not JSON ({}); it cannot be signed",
            item.label(),
            sanitize::outside(&e.to_string(), sanitize::EXCERPT)
        ))
    })?;
    let subject = &item.subject().digest;
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": identity, "digest": {subject.algorithm().as_str(): subject.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    Ok(serde_json::to_vec(&statement).unwrap_or_default())
}

fn layer<const N: usize>(
    kind: TagKind,
    subject: &Digest,
    media_type: &str,
    bytes: Vec<u8>,
    annotations: [(&str, String); N],
    key: &str,
) -> CosignLayer {
    let mut descriptor = Descriptor::new(
        MediaType::parse(media_type),
        Digest::of(&bytes),
        bytes.len() as u64,
    );
    for (name, value) in annotations {
        descriptor.annotations.insert(name.to_owned(), value);
    }
    CosignLayer {
        kind,
        subject: subject.clone(),
        descriptor,
        bytes,
        key: Some(key.to_owned()),
    }
}

/// What a check found about one signature or attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by the key, over this digest (and repository, for a cosign signature).
    Verified(String),
    /// Signed by the key but over something else: a failure of the check.
    Wrong(String),
    /// Not a signature by this key (another key's, or not a signature at all).
    Other(String),
}

/// Judges one cosign signature layer (`descriptor` and its bytes) against `key`: it must be a
/// signature by the key over a payload naming `subject` in `repository`.
pub fn check_signature(
    key: &PublicKey,
    descriptor: &Descriptor,
    bytes: &[u8],
    subject: &Digest,
    repository: &str,
) -> Verdict {
    let Some(signature) = descriptor.annotations.get(ANNOTATION_SIGNATURE) else {
        return Verdict::Other(format!(
            "layer {} has no signature",
            descriptor.digest.short()
        ));
    };
    if signature.len() > MAX_SIGNATURE_ANNOTATION {
        return Verdict::Other(format!(
            "layer {} has a signature annotation of {} bytes; at most {MAX_SIGNATURE_ANNOTATION} \
             are read",
            descriptor.digest.short(),
            signature.len()
        ));
    }
    let Ok(signature) = BASE64.decode(signature.trim()) else {
        return Verdict::Other(format!(
            "layer {} has a signature that is not base64",
            descriptor.digest.short()
        ));
    };
    if key.verify(bytes, &signature).is_err() {
        return Verdict::Other(format!(
            "layer {} is not signed by key {}",
            descriptor.digest.short(),
            short_key(key)
        ));
    }
    let parsed = match payload::parse_simple_signing(bytes) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Verdict::Wrong(format!(
                "layer {} is signed by key {} but its payload is not a simple-signing payload: {e}",
                descriptor.digest.short(),
                short_key(key)
            ));
        }
    };
    let identity = docker_reference(repository);
    if parsed.digest != *subject {
        return Verdict::Wrong(format!(
            "a signature by key {} covers {}, not {subject}",
            short_key(key),
            parsed.digest
        ));
    }
    if parsed.docker_reference != identity {
        return Verdict::Wrong(format!(
            "a signature by key {} names repository {}, not {identity}",
            short_key(key),
            sanitize::outside(&parsed.docker_reference, 200)
        ));
    }
    Verdict::Verified(format!(
        "cosign signature of {subject} in {identity} by key {}",
        short_key(key)
    ))
}

/// Judges one bundle (a referrer's document) against `key`: a message signature over `subject`, or
/// a DSSE envelope whose statement names it.
pub fn check_bundle(key: &PublicKey, bytes: &[u8], subject: &Digest) -> Verdict {
    match bundle::verify(key, bytes, subject) {
        Ok(bundle::Verified::Dsse { payload, .. }) => Verdict::Verified(format!(
            "bundle attestation {} about {subject} by key {}",
            predicate_of(&payload),
            short_key(key)
        )),
        Ok(_) => Verdict::Verified(format!(
            "bundle signature of {subject} by key {}",
            short_key(key)
        )),
        Err(e) => Verdict::Other(format!("a bundle about {}: {e}", subject.short())),
    }
}

/// Judges one DSSE envelope (a `.att` layer) against `key`: signed by it, with an in-toto statement
/// whose subjects include `subject`. Returns the predicate type with the verdict.
pub fn check_attestation(key: &PublicKey, envelope: &[u8], subject: &Digest) -> Verdict {
    let (payload_type, statement) = match dsse::verify_envelope(key, envelope) {
        Ok(found) => found,
        Err(e) => return Verdict::Other(format!("an attestation: {e}")),
    };
    if payload_type != dsse::IN_TOTO_PAYLOAD_TYPE {
        return Verdict::Wrong(format!(
            "an envelope signed by key {} holds {}, not an in-toto statement",
            short_key(key),
            sanitize::outside(&payload_type, 100)
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Statement {
        #[serde(default)]
        subject: Vec<Subject>,
        #[serde(default)]
        predicate_type: String,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        #[serde(default)]
        digest: std::collections::BTreeMap<String, String>,
    }
    let Ok(statement) = serde_json::from_slice::<Statement>(&statement) else {
        return Verdict::Wrong(format!(
            "an envelope signed by key {} holds no in-toto statement",
            short_key(key)
        ));
    };
    let names = statement.subject.iter().any(|s| {
        s.digest
            .get(subject.algorithm().as_str())
            .is_some_and(|hex| hex == subject.hex())
    });
    let what = sanitize::outside(&statement.predicate_type, 200);
    if names {
        Verdict::Verified(format!(
            "attestation {what} about {subject} by key {}",
            short_key(key)
        ))
    } else {
        Verdict::Wrong(format!(
            "an attestation {what} signed by key {} is not about {subject}",
            short_key(key)
        ))
    }
}

/// The predicate type of an in-toto statement, escaped, for messages.
fn predicate_of(statement: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Statement {
        #[serde(default)]
        predicate_type: String,
    }
    let kind = serde_json::from_slice::<Statement>(statement)
        .map(|s| s.predicate_type)
        .unwrap_or_default();
    sanitize::outside(&kind, 200)
}

/// A key's id cut short, for messages.
pub fn short_key(key: &PublicKey) -> String {
    key.key_id().chars().take(12).collect()
}

/// Where an image's signatures are read from: a registry repository or an archive.
pub trait SignatureStore {
    /// The manifest under a tag (`sha256-<hex>.sig`), or `None` when there is none.
    fn tag_document(&self, tag: &str) -> Result<Option<Vec<u8>>>;
    /// The artifact manifests listed as referring to `subject`.
    fn referrers_of(&self, subject: &Digest) -> Result<Vec<Descriptor>>;
    /// Where the layers and documents are read from, each read verified.
    fn blobs(&self) -> &dyn super::blobs::BlobSource;
}

/// Referrers of one subject read when verifying, at most.
pub const MAX_REFERRERS_READ: usize = 1000;

/// What a verification found: a line per signature and attestation verified.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Verification {
    /// The image checked, `REPOSITORY@DIGEST`.
    pub image: String,
    /// Each signature verified.
    pub signatures: Vec<String>,
    /// Each attestation verified (with `attestations`).
    pub attestations: Vec<String>,
}

/// Checks that `key` signed the image `tree` in `repository` (as `store` holds it): at least one
/// signature (cosign's or a bundle) over the top digest and naming the repository; with
/// `attestations`, at least one attestation, and every envelope the key signed naming the manifest
/// it is attached to. Signatures by other keys are passed over; one by this key over anything else
/// is a failure. The error says which check failed.
pub fn verify(
    store: &dyn SignatureStore,
    tree: &ImageTree,
    repository: &str,
    key: &PublicKey,
    attestations: bool,
) -> Result<Verification> {
    let top = &tree.top.digest;
    let image = format!("{}@{top}", docker_reference(repository));
    let fail = |reason: String| crate::error::Error::Unverified {
        image: image.clone(),
        reason,
    };
    let mut found = Verification {
        image: image.clone(),
        ..Verification::default()
    };
    let mut wrong = Vec::new();
    let mut others = Vec::new();
    let mut judge = |verdict: Verdict, into: &mut Vec<String>| match verdict {
        Verdict::Verified(line) => into.push(line),
        Verdict::Wrong(line) => wrong.push(line),
        Verdict::Other(line) => others.push(line),
    };
    for layer in tag_layers(store, TagKind::Signature, top)? {
        if layer.media_type.as_str() != SIMPLE_SIGNING {
            continue;
        }
        let bytes = read_document(store.blobs(), &layer, MAX_LAYER)?;
        judge(
            check_signature(key, &layer, &bytes, top, repository),
            &mut found.signatures,
        );
    }
    let mut attested = Vec::new();
    let subjects: Vec<Digest> = subjects(tree).into_iter().map(|(d, _)| d.digest).collect();
    for subject in &subjects {
        for (content, bytes) in bundles(store, subject)? {
            let verdict = check_bundle(key, &bytes, subject);
            if content == "dsse-envelope" {
                judge(verdict, &mut attested);
            } else if subject == top {
                judge(verdict, &mut found.signatures);
            }
        }
        if attestations {
            for layer in tag_layers(store, TagKind::Attestation, subject)? {
                if layer.media_type.as_str() != DSSE_ENVELOPE {
                    continue;
                }
                let bytes = read_document(store.blobs(), &layer, MAX_LAYER)?;
                judge(check_attestation(key, &bytes, subject), &mut attested);
            }
        }
    }
    if attestations {
        found.attestations = attested;
    }
    if let Some(first) = wrong.first() {
        return Err(fail(first.clone()));
    }
    if found.signatures.is_empty() {
        let seen = if others.is_empty() {
            "no signature is attached".to_owned()
        } else {
            format!(
                "no signature by key {} covers it ({} other: {})",
                short_key(key),
                others.len(),
                others.join("; ")
            )
        };
        return Err(fail(seen));
    }
    if attestations && found.attestations.is_empty() {
        return Err(fail(format!(
            "no attestation signed by key {} is attached",
            short_key(key)
        )));
    }
    Ok(found)
}

/// The layers of a cosign tag of `subject`, none when the tag does not exist.
fn tag_layers(
    store: &dyn SignatureStore,
    kind: TagKind,
    subject: &Digest,
) -> Result<Vec<Descriptor>> {
    let tag = kind.tag(subject);
    let Some(bytes) = store.tag_document(&tag)? else {
        return Ok(Vec::new());
    };
    let manifest = parse_signature_manifest(&bytes).map_err(|why| {
        crate::error::Error::Invalid(format!("{}:{tag}: {why}", store.blobs().describe()))
    })?;
    Ok(manifest.layers)
}

/// The bundles attached to `subject`: what each holds (its content annotation) and its bytes.
fn bundles(store: &dyn SignatureStore, subject: &Digest) -> Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    for descriptor in store.referrers_of(subject)? {
        if descriptor.artifact_type.as_deref() != Some(DocumentKind::SigstoreBundle.media_type()) {
            continue;
        }
        let bytes = read_document(store.blobs(), &descriptor, MAX_DOCUMENT)?;
        let Ok(manifest) = serde_json::from_slice::<crate::oci::Manifest>(&bytes) else {
            continue;
        };
        let [layer] = manifest.layers.as_slice() else {
            continue;
        };
        let content = manifest
            .annotations
            .get(ANNOTATION_BUNDLE_CONTENT)
            .cloned()
            .unwrap_or_default();
        found.push((content, read_document(store.blobs(), layer, MAX_DOCUMENT)?));
    }
    Ok(found)
}

/// Layers one signature tag may list before it is refused (cosign adds one per signing).
pub const MAX_SIGNATURE_LAYERS: usize = 1000;

/// Parses a signature tag's manifest: an image manifest of at most [`MAX_SIGNATURE_LAYERS`] layers.
pub fn parse_signature_manifest(bytes: &[u8]) -> std::result::Result<crate::oci::Manifest, String> {
    let manifest: crate::oci::Manifest = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the tag holds no image manifest ({})",
            sanitize::outside(&e.to_string(), sanitize::EXCERPT)
        )
    })?;
    if manifest
        .media_type
        .as_ref()
        .is_some_and(|m| !m.is_manifest())
    {
        return Err("the tag holds an index, not a signature manifest".to_owned());
    }
    if manifest.layers.len() > MAX_SIGNATURE_LAYERS {
        return Err(format!(
            "the tag lists {} layers; at most {MAX_SIGNATURE_LAYERS} signatures are read",
            manifest.layers.len()
        ));
    }
    Ok(manifest)
}

/// An image read from an archive or layout holds its signatures as referrers: cosign's layers in
/// artifacts of their own (a tag's manifest is made of those about its subject), bundles as they are.
impl SignatureStore for Stored<'_> {
    fn tag_document(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        let kind = match tag.rsplit_once('.') {
            Some((_, "sig")) => DocumentKind::CosignSignature,
            Some((_, "att")) => DocumentKind::CosignAttestation,
            _ => return Ok(None),
        };
        let layers: Vec<&Descriptor> = self
            .referrers
            .iter()
            .filter(|item| item.kind == kind)
            .filter(|item| {
                let subject = &item.subject().digest;
                TagKind::tag(
                    if kind == DocumentKind::CosignSignature {
                        TagKind::Signature
                    } else {
                        TagKind::Attestation
                    },
                    subject,
                ) == tag
            })
            .map(|item| &item.document)
            .collect();
        if layers.is_empty() {
            return Ok(None);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OciManifest.as_str(),
            "config": super::referrers::empty_config(),
            "layers": layers,
        });
        Ok(Some(serde_json::to_vec(&manifest).unwrap_or_default()))
    }

    fn referrers_of(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        Ok(self
            .referrers
            .iter()
            .filter(|item| item.subject().digest == *subject)
            .map(Attachment::descriptor)
            .collect())
    }

    fn blobs(&self) -> &dyn super::blobs::BlobSource {
        self.blobs.as_ref()
    }
}
