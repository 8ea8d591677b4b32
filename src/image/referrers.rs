//! What is attached to an image the OCI 1.1 way: each document (an SBOM, a provenance statement) is
//! the one layer of an artifact manifest (`artifactType` = the document's media type, the empty `{}`
//! config, `subject` = the image manifest it is about). They never enter the image's own index, so a
//! single-platform image stays a plain manifest (AWS Lambda refuses an index with attestation
//! manifests in it). In an archive, `referrers.json` (an image index of the artifact manifests, as a
//! registry's referrers API answers) lists them; in a registry, the referrers API or its fallback tag.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::image::blobs::{BlobSource, Memory, read_document};
use crate::image::{ImageTree, MAX_DOCUMENT};
use crate::oci::platform::Platform;
use crate::oci::{
    ANNOTATION_CREATED, Descriptor, Digest, Document, Extra, Index, Manifest, MediaType,
};
use crate::util::sanitize;
use crate::util::timestamp::Timestamp;

/// The predicate type of a SLSA provenance v1 statement.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// The archive entry listing the attachments.
pub const REFERRERS_FILE: &str = "referrers.json";
/// The empty JSON object, config of every artifact manifest.
pub const EMPTY_JSON: &[u8] = b"{}";
/// The file name a document had (`NAME.spdx.json`), on its layer.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The predicate type of an in-toto statement, on its layer (as docker's attestations have it).
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// The annotation naming what a bundle referrer's predicate is, as cosign writes it.
pub const ANNOTATION_BUNDLE_PREDICATE: &str = "dev.sigstore.bundle.predicateType";
/// The annotation saying what a bundle holds (`message-signature` or `dsse-envelope`).
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
/// Attachments read from one archive, at most.
const MAX_ATTACHMENTS: usize = 1000;

/// The kinds of document attached to an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    /// An SPDX 2.3 JSON SBOM.
    Spdx,
    /// A CycloneDX JSON SBOM.
    CycloneDx,
    /// An in-toto statement with SLSA provenance.
    Provenance,
    /// A Sigstore bundle: a signature of the image, or a signed attestation about it.
    SigstoreBundle,
    /// A cosign signature (a simple-signing payload, its signature in an annotation), carried in
    /// an archive as a referrer and pushed into the `.sig` tag.
    CosignSignature,
    /// A cosign signed attestation (a DSSE envelope), carried in an archive as a referrer and
    /// pushed into the `.att` tag.
    CosignAttestation,
}

impl DocumentKind {
    /// A signature or signed attestation, not a document about the image.
    pub fn is_signature(self) -> bool {
        matches!(
            self,
            DocumentKind::SigstoreBundle
                | DocumentKind::CosignSignature
                | DocumentKind::CosignAttestation
        )
    }

    /// The media type of the document, which is also its artifact type.
    pub fn media_type(self) -> &'static str {
        match self {
            DocumentKind::Spdx => "application/spdx+json",
            DocumentKind::CycloneDx => "application/vnd.cyclonedx+json",
            DocumentKind::Provenance => "application/vnd.in-toto+json",
            DocumentKind::SigstoreBundle => "application/vnd.dev.sigstore.bundle.v0.3+json",
            DocumentKind::CosignSignature => "application/vnd.dev.cosign.artifact.sig.v1+json",
            DocumentKind::CosignAttestation => "application/vnd.dev.cosign.artifact.att.v1+json",
        }
    }

    /// The file name suffix of the document written beside the archive.
    pub fn suffix(self) -> &'static str {
        match self {
            DocumentKind::Spdx => "spdx.json",
            DocumentKind::CycloneDx => "cdx.json",
            DocumentKind::Provenance => "provenance.json",
            DocumentKind::SigstoreBundle => "sigstore.json",
            DocumentKind::CosignSignature => "sig.json",
            DocumentKind::CosignAttestation => "att.json",
        }
    }

    /// The kind from its media type (an artifact read back from an archive).
    pub fn from_media_type(media_type: &str) -> Option<DocumentKind> {
        [
            DocumentKind::Spdx,
            DocumentKind::CycloneDx,
            DocumentKind::Provenance,
            DocumentKind::SigstoreBundle,
            DocumentKind::CosignSignature,
            DocumentKind::CosignAttestation,
        ]
        .into_iter()
        .find(|k| k.media_type() == media_type)
    }
}

#[derive(Clone, Debug)]
pub struct Attachment {
    pub kind: DocumentKind,
    /// The platform of the image an SBOM describes.
    pub platform: Option<Platform>,
    /// The document blob (the artifact manifest's layer).
    pub document: Descriptor,
    /// The artifact manifest.
    pub manifest: Document<Manifest>,
    /// What follows the name in the document's file name: `spdx.json`, `linux-arm64.cdx.json` ...
    pub suffix: String,
}

impl Attachment {
    /// An artifact manifest for `bytes` of `kind`, about `subject`.
    pub(crate) fn new(
        kind: DocumentKind,
        platform: Option<Platform>,
        subject: &Descriptor,
        bytes: &[u8],
        name: &str,
        suffix: String,
        created: Timestamp,
    ) -> Attachment {
        let title = format!("{name}.{suffix}");
        let mut document = Descriptor::new(
            MediaType::parse(kind.media_type()),
            Digest::of(bytes),
            bytes.len() as u64,
        );
        document
            .annotations
            .insert(ANNOTATION_TITLE.to_owned(), title);
        if kind == DocumentKind::Provenance {
            document.annotations.insert(
                ANNOTATION_PREDICATE_TYPE.to_owned(),
                SLSA_PROVENANCE_V1.to_owned(),
            );
        }
        let subject = Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        );
        let manifest = Document::new(Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: Some(kind.media_type().to_owned()),
            config: empty_config(),
            layers: vec![document.clone()],
            subject: Some(subject),
            annotations: [(ANNOTATION_CREATED.to_owned(), created.to_string())].into(),
            extra: Extra::new(),
        });
        Attachment {
            kind,
            platform,
            document,
            manifest,
            suffix,
        }
    }

    /// The artifact manifest's descriptor as a referrers index lists it: with its artifact type and
    /// annotations.
    pub fn descriptor(&self) -> Descriptor {
        let manifest = self.manifest.value();
        let mut descriptor = self.manifest.descriptor(MediaType::OciManifest);
        descriptor.artifact_type.clone_from(&manifest.artifact_type);
        descriptor.annotations = manifest.annotations.clone();
        descriptor
    }

    /// What it is, for messages: `the SPDX SBOM for linux/arm64 (sha256:0123456789ab)`, with its
    /// artifact manifest's digest cut short.
    pub fn label(&self) -> String {
        let what = match self.kind {
            DocumentKind::Spdx => "the SPDX SBOM",
            DocumentKind::CycloneDx => "the CycloneDX SBOM",
            DocumentKind::Provenance => "the provenance statement",
            DocumentKind::SigstoreBundle => "the signature bundle",
            DocumentKind::CosignSignature => "the cosign signature",
            DocumentKind::CosignAttestation => "the cosign attestation",
        };
        let digest = self.manifest.digest();
        let short = format!("{}:{}", digest.algorithm().as_str(), digest.short());
        match &self.platform {
            Some(platform) => format!("{what} for {platform} ({short})"),
            None => format!("{what} ({short})"),
        }
    }

    /// The image manifest (or index) it is about.
    pub fn subject(&self) -> &Descriptor {
        // Every attachment is made or read with a subject.
        self.manifest
            .value()
            .subject
            .as_ref()
            .unwrap_or(&self.manifest.value().config)
    }
}

/// The empty config descriptor of an artifact manifest.
pub fn empty_config() -> Descriptor {
    Descriptor::new(
        MediaType::OciEmpty,
        Digest::of(EMPTY_JSON),
        EMPTY_JSON.len() as u64,
    )
}

/// The documents attached to one image.
#[derive(Clone, Debug, Default)]
pub struct Attachments {
    pub items: Vec<Attachment>,
    /// The bytes of documents made in this run (and the empty config).
    pub memory: Memory,
}

impl Attachments {
    /// Adds a Sigstore bundle about `subject`, with the annotations cosign gives a bundle referrer.
    pub(crate) fn push_bundle(
        &mut self,
        subject: &Descriptor,
        platform: Option<Platform>,
        bytes: Vec<u8>,
        predicate_type: &str,
        content: &str,
    ) {
        let kind = DocumentKind::SigstoreBundle;
        let document = Descriptor::new(
            MediaType::parse(kind.media_type()),
            Digest::of(&bytes),
            bytes.len() as u64,
        );
        let annotations = [
            (ANNOTATION_BUNDLE_CONTENT.to_owned(), content.to_owned()),
            (
                ANNOTATION_BUNDLE_PREDICATE.to_owned(),
                predicate_type.to_owned(),
            ),
        ];
        self.push_artifact(kind, subject, platform, document, bytes, annotations.into());
    }

    /// Adds a cosign layer (its descriptor, with the signature annotation, and bytes) as an artifact
    /// about `subject`, as an archive carries it.
    pub(crate) fn push_cosign(
        &mut self,
        kind: DocumentKind,
        subject: &Descriptor,
        platform: Option<Platform>,
        document: Descriptor,
        bytes: Vec<u8>,
    ) {
        self.push_artifact(kind, subject, platform, document, bytes, BTreeMap::new());
    }

    /// Adds `bytes` as the one layer `document` of an artifact manifest of `kind` about `subject`.
    fn push_artifact(
        &mut self,
        kind: DocumentKind,
        subject: &Descriptor,
        platform: Option<Platform>,
        document: Descriptor,
        bytes: Vec<u8>,
        annotations: BTreeMap<String, String>,
    ) {
        let manifest = Document::new(Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: Some(kind.media_type().to_owned()),
            config: empty_config(),
            layers: vec![document.clone()],
            subject: Some(Descriptor::new(
                subject.media_type.clone(),
                subject.digest.clone(),
                subject.size,
            )),
            annotations,
            extra: Extra::new(),
        });
        self.memory.insert(document.digest.clone(), bytes);
        self.memory
            .insert(Digest::of(EMPTY_JSON), EMPTY_JSON.to_vec());
        self.items.push(Attachment {
            kind,
            platform,
            document,
            manifest,
            suffix: kind.suffix().to_owned(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The blobs the artifact manifests point at: the empty config and the documents, each once.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut seen = BTreeSet::new();
        let mut blobs = Vec::new();
        for item in &self.items {
            for blob in [&item.manifest.value().config, &item.document] {
                if seen.insert(blob.digest.clone()) {
                    blobs.push(blob.clone());
                }
            }
        }
        blobs
    }

    /// The image index listing every artifact manifest (`referrers.json`).
    pub fn index(&self) -> Document<Index> {
        Document::new(Index::new(
            self.items.iter().map(Attachment::descriptor).collect(),
        ))
    }

    /// The attachments `listed` names (an archive's `referrers.json`), each artifact manifest read
    /// from `source` and checked (digest, shape, a subject that is part of `tree`); none when nothing
    /// is listed.
    pub fn read(
        source: &dyn BlobSource,
        listed: Option<&Index>,
        tree: &ImageTree,
    ) -> Result<Attachments> {
        let Some(index) = listed else {
            return Ok(Attachments::default());
        };
        let bad = |what: String| Error::Invalid(format!("{}: {what}", source.describe()));
        if index.manifests.len() > MAX_ATTACHMENTS {
            return Err(bad(format!(
                "lists {} attachments in {REFERRERS_FILE}; at most {MAX_ATTACHMENTS} are accepted",
                index.manifests.len()
            )));
        }
        let mut subjects: BTreeSet<&Digest> = tree
            .manifests
            .iter()
            .map(|n| &n.descriptor.digest)
            .collect();
        subjects.insert(&tree.top.digest);
        let mut items = Vec::new();
        for descriptor in &index.manifests {
            if !descriptor.media_type.is_manifest() {
                return Err(bad(format!(
                    "lists a {} in {REFERRERS_FILE}, not an artifact manifest",
                    sanitize::outside(descriptor.media_type.as_str(), 100)
                )));
            }
            let bytes = read_document(source, descriptor, MAX_DOCUMENT)?;
            let manifest: Document<Manifest> =
                Document::parse(bytes, &descriptor.digest).map_err(|e| {
                    bad(format!(
                        "has an invalid artifact manifest {} ({})",
                        descriptor.digest,
                        sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                    ))
                })?;
            let value = manifest.value();
            let kind = value
                .artifact_type
                .as_deref()
                .and_then(DocumentKind::from_media_type);
            let (Some(kind), Some(subject), [document]) =
                (kind, &value.subject, value.layers.as_slice())
            else {
                return Err(bad(format!(
                    "has an attachment {} that is not an SBOM or provenance artifact with one \
                     document and a subject",
                    descriptor.digest
                )));
            };
            if !subjects.contains(&subject.digest) {
                return Err(bad(format!(
                    "has an attachment {} about {}, which is not this archive's image",
                    descriptor.digest, subject.digest
                )));
            }
            let platform = tree
                .manifests
                .iter()
                .find(|n| n.descriptor.digest == subject.digest && tree.index.is_some())
                .and_then(|n| n.descriptor.platform.clone());
            items.push(Attachment {
                kind,
                platform,
                document: document.clone(),
                manifest,
                suffix: kind.suffix().to_owned(),
            });
        }
        Ok(Attachments {
            items,
            memory: Memory::new(),
        })
    }
}
