//! Pushing an image: every blob once per repository (skipped when present, mounted when another
//! repository of the registry has it, uploaded in one piece or in chunks otherwise), then the manifests
//! by digest, then the attached documents (which need their subject pushed by digest, not tagged), and
//! only when all of that worked, the tags. Blobs come from any
//! [`BlobSource`](crate::image::blobs::BlobSource) and are verified as they are read.
//!
//! An attached document the registry refuses (some refuse artifact manifests: a `subject`, an
//! `artifactType`, the 2-byte empty config) is a warning and the image is tagged all the same; with
//! [`PushOptions::require_attachments`] it is an error, and as the documents go up before any tag, no
//! tag has moved then.

use std::collections::{BTreeMap, BTreeSet};

use super::client::{ClientOptions, Registry};
use super::upload::{self, PushStats, Target, UploadLimits, push_blob, put_manifest};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::Stored;
use crate::image::blobs::read_document;
use crate::image::reference::Reference;
use crate::image::referrers::Attachment;
use crate::image::referrers::DocumentKind;
use crate::image::signatures::{
    CosignLayer, MAX_LAYER, SignatureSummary, Signed, Signer, TagKind, docker_reference,
};
use crate::oci::Digest;
use crate::report::Listener;
use crate::util::sanitize;

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Connection, TLS and authentication options.
    pub client: ClientOptions,
    /// Largest blob sent in a single request.
    pub monolithic_limit: u64,
    /// Chunk size for larger blobs.
    pub chunk_size: u64,
    /// Repositories known to hold some of the blobs (a base image's), by registry host: a blob is
    /// mounted from there instead of uploaded when the target is on the same registry.
    pub mount_from: BTreeMap<Digest, (String, String)>,
    /// An attached document that cannot be pushed fails the push before any tag is set; otherwise
    /// it is a warning, and listed in [`PushOutcome::not_attached`].
    pub require_attachments: bool,
    /// Signs what is pushed, in each repository, before any tag is set: a signature that cannot be
    /// made or pushed fails the push with no tag moved.
    pub signer: Option<Signer>,
}

impl PushOptions {
    /// How blobs are uploaded.
    fn limits(&self) -> UploadLimits {
        UploadLimits {
            monolithic_limit: self.monolithic_limit,
            chunk_size: self.chunk_size,
        }
    }
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            client: ClientOptions::default(),
            monolithic_limit: upload::MONOLITHIC_LIMIT,
            chunk_size: upload::CHUNK_SIZE,
            mount_from: BTreeMap::new(),
            require_attachments: false,
            signer: None,
        }
    }
}

/// One reference pushed, and the digest it now points at.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pushed {
    /// The reference pushed to, as given.
    pub reference: String,
    /// The digest the reference now points at.
    pub digest: String,
}

impl std::fmt::Display for Pushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.reference, self.digest)
    }
}

/// An attached document that did not reach one repository, for `--message-format json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NotAttached {
    /// Which document: SPDX, CycloneDX or provenance.
    pub kind: crate::sbom::DocumentKind,
    /// The platform of the image an SBOM describes (several platforms only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The artifact manifest.
    pub manifest_digest: Digest,
    /// `HOST/REPOSITORY`.
    pub repository: String,
    /// Why: the registry's answer, escaped, on one line.
    pub error: String,
}

/// What a push did: each reference pushed, and the attached documents that were not.
#[derive(Clone, Debug, Default)]
pub struct PushOutcome {
    /// Each reference pushed.
    pub pushed: Vec<Pushed>,
    /// The attached documents that failed to push.
    pub not_attached: Vec<NotAttached>,
    /// The signatures pushed, in every repository.
    pub signatures: Vec<SignatureSummary>,
}

/// Pushes `image` to every reference; returns `REF@DIGEST` for each. The documents attached to it
/// are pushed after its manifests and listed as its referrers before any tag is set. One that fails
/// is a warning (and in [`PushOutcome::not_attached`]), or with
/// [`PushOptions::require_attachments`], the error, no tag set. Blobs the image knows to be in another
/// repository of the same registry are mounted from there.
pub fn push(
    image: &Stored,
    references: &[Reference],
    options: &PushOptions,
    cx: &Context,
) -> Result<PushOutcome> {
    let listener = cx.listener();
    let tree = &image.tree;
    let mut mount_from = image.mount_from.clone();
    mount_from.extend(options.mount_from.clone());
    // Group by registry, keeping the order given.
    let mut hosts: Vec<&str> = Vec::new();
    for reference in references {
        if !hosts.contains(&reference.domain()) {
            hosts.push(reference.domain());
        }
    }
    let mut sessions = Vec::new();
    let mut not_attached_all = Vec::new();
    let mut signatures = Vec::new();
    for host in hosts {
        let mut session = Session::open(host, options, cx)?;
        let here: Vec<&Reference> = references.iter().filter(|r| r.domain() == host).collect();
        for reference in &here {
            let repository = reference.path();
            if session.done.iter().any(|r| r == repository) {
                continue;
            }
            let failed = session.push_content(repository, image, &mount_from, options, cx)?;
            not_attached_all.extend(failed);
            session.done.push(repository.to_owned());
        }
        let stats = &session.stats;
        listener.detail(&format!(
            "{host}: {} blobs uploaded, {} mounted, {} already there",
            stats.uploaded, stats.mounted, stats.skipped
        ));
        signatures.append(&mut session.signatures);
        sessions.push((session.registry, here));
    }
    // Everything is in place: now the tags, so none points at a half-pushed image.
    let mut pushed = Vec::new();
    for (mut registry, here) in sessions {
        for reference in here {
            put_manifest(
                &mut registry,
                reference.path(),
                reference.tag(),
                &tree.top,
                tree.top_bytes(),
            )?;
            let result = Pushed {
                reference: reference.familiar(),
                digest: tree.top.digest.to_string(),
            };
            listener.status("Pushed", &result.to_string());
            pushed.push(result);
        }
    }
    Ok(PushOutcome {
        pushed,
        not_attached: not_attached_all,
        signatures,
    })
}

/// One registry's part of a push: its connection, what was uploaded, and the repositories done,
/// whose blobs later repositories mount.
struct Session<'r> {
    registry: Registry<'r>,
    host: &'r str,
    stats: PushStats,
    done: Vec<String>,
    signatures: Vec<SignatureSummary>,
}

impl<'r> Session<'r> {
    /// Connects to `host` with its credentials.
    fn open(host: &'r str, options: &PushOptions, cx: &Context<'r>) -> Result<Session<'r>> {
        let credential = super::cloud::for_registry(host, &options.client, cx)?;
        Ok(Session {
            registry: Registry::connect(host, credential, &options.client, cx)?,
            host,
            stats: PushStats::default(),
            done: Vec::new(),
            signatures: Vec::new(),
        })
    }

    /// Puts everything of `image` but its tags into `repository`: blobs (mounted where known), then
    /// manifests, then its attached documents. Returns the documents the registry refused.
    fn push_content(
        &mut self,
        repository: &str,
        image: &Stored,
        mount_from: &BTreeMap<Digest, (String, String)>,
        options: &PushOptions,
        cx: &Context,
    ) -> Result<Vec<NotAttached>> {
        let (listener, host, tree) = (cx.listener(), self.host, &image.tree);
        let all_blobs = tree.blobs();
        let target = Target {
            repository,
            blobs: image.blobs.as_ref(),
            limits: options.limits(),
        };
        listener.status(
            "Pushing",
            &format!("{host}/{repository} ({} blobs)", all_blobs.len()),
        );
        let first_done = self.done.first().map(String::as_str);
        for blob in &all_blobs {
            let known = mount_from
                .get(&blob.digest)
                .filter(|(h, r)| h == host && r != repository)
                .map(|(_, r)| r.as_str());
            let from = known.or(first_done);
            push_blob(
                &mut self.registry,
                &target,
                blob,
                from,
                &mut self.stats,
                listener,
            )?;
        }
        for node in &tree.manifests {
            put_manifest(
                &mut self.registry,
                repository,
                &node.manifest.digest().to_string(),
                &node.descriptor,
                node.manifest.bytes(),
            )?;
        }
        if let Some(index) = &tree.index {
            put_manifest(
                &mut self.registry,
                repository,
                &index.digest().to_string(),
                &tree.top,
                index.bytes(),
            )?;
        }
        let place = format!("{host}/{repository}");
        // cosign signatures an archive carries go into their tags, not the referrers.
        let (carried, documents): (Vec<&Attachment>, Vec<&Attachment>) =
            image.referrers.iter().partition(|item| {
                matches!(
                    item.kind,
                    DocumentKind::CosignSignature | DocumentKind::CosignAttestation
                )
            });
        let documents: Vec<Attachment> = documents.into_iter().cloned().collect();
        let failed = if documents.is_empty() {
            Vec::new()
        } else {
            let outcome = super::referrers::push(
                &mut self.registry,
                &target,
                &documents,
                first_done,
                &mut self.stats,
                listener,
            )?;
            report_attached(&place, &outcome, listener);
            not_attached(&place, &documents, outcome.failed, options, listener)?
        };
        let carried = self.carried(&carried, repository, image, cx)?;
        self.sign(options.signer.as_ref(), carried, repository, image, cx)?;
        Ok(failed)
    }

    /// The cosign signatures `image` carries (from its archive) that name this repository, as the
    /// layers of their tags; the others are a warning (they would not verify here).
    fn carried(
        &self,
        carried: &[&Attachment],
        repository: &str,
        image: &Stored,
        cx: &Context,
    ) -> Result<Vec<CosignLayer>> {
        let place = format!("{}/{repository}", self.host);
        let identity = docker_reference(&place);
        let mut layers = Vec::new();
        let mut elsewhere = BTreeSet::new();
        for item in carried {
            let bytes = read_document(image.blobs.as_ref(), &item.document, MAX_LAYER)?;
            let (kind, named) = match item.kind {
                DocumentKind::CosignSignature => (
                    TagKind::Signature,
                    crate::sign::payload::parse_simple_signing(&bytes)
                        .map(|p| p.docker_reference)
                        .unwrap_or_default(),
                ),
                _ => (TagKind::Attestation, attestation_name(&bytes)),
            };
            if named != identity {
                elsewhere.insert(sanitize::outside(&named, 200));
                continue;
            }
            layers.push(CosignLayer {
                kind,
                subject: item.subject().digest.clone(),
                descriptor: item.document.clone(),
                bytes,
                key: None,
            });
        }
        if !elsewhere.is_empty() {
            cx.listener().warning(&format!(
                "the signatures in {} name {}, not {identity}: they are not pushed there (sign \
                 for it with --sign KEY)",
                sanitize::outside(&image.name, sanitize::EXCERPT),
                elsewhere.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(layers)
    }

    /// Signs `image` as it is called in `repository` (with a signer) and pushes the signatures with
    /// those `carried` from its archive: bundles as referrers, cosign's layers into their tags. Any
    /// failure is the push's error (no tag is set yet).
    fn sign(
        &mut self,
        signer: Option<&Signer>,
        carried: Vec<CosignLayer>,
        repository: &str,
        image: &Stored,
        cx: &Context,
    ) -> Result<()> {
        let listener = cx.listener();
        let place = format!("{}/{repository}", self.host);
        let mut signed = match signer {
            Some(signer) => signer.sign(image, &place)?,
            None => Signed::default(),
        };
        // The archive's signatures by the same key are the same bytes (signing is deterministic).
        for layer in carried {
            let known = signed.layers.iter().any(|l| {
                l.descriptor.digest == layer.descriptor.digest
                    && l.descriptor.annotations == layer.descriptor.annotations
            });
            if !known {
                signed.layers.push(layer);
            }
        }
        if signed.count() == 0 {
            return Ok(());
        }
        let in_place = |e: Error| e.context(&format!("signing the image in {place}"));
        if !signed.bundles.is_empty() {
            let blobs = signed.bundles.memory.clone();
            let target = Target {
                repository,
                blobs: &blobs,
                limits: UploadLimits {
                    monolithic_limit: upload::MONOLITHIC_LIMIT,
                    chunk_size: upload::CHUNK_SIZE,
                },
            };
            let outcome = super::referrers::push(
                &mut self.registry,
                &target,
                &signed.bundles.items,
                None,
                &mut self.stats,
                listener,
            )
            .map_err(in_place)?;
            if let Some((_, error)) = outcome.failed.into_iter().next() {
                return Err(in_place(error));
            }
        }
        let tags = super::signatures::push(
            &mut self.registry,
            repository,
            &signed.layers,
            &mut self.stats,
            listener,
        )
        .map_err(in_place)?;
        let mut where_ = tags;
        if !signed.bundles.is_empty() {
            where_.push("bundles as referrers".to_owned());
        }
        listener.status(
            "Signed",
            &format!("{place}@{} ({})", image.digest(), where_.join(", ")),
        );
        self.signatures.extend(signed.summaries(&place));
        Ok(())
    }
}

/// The `Attached` status line for one repository, when something was attached.
fn report_attached(place: &str, outcome: &super::referrers::Outcome, listener: &dyn Listener) {
    if outcome.attached == 0 {
        return;
    }
    let tags: Vec<&str> = outcome
        .listings
        .iter()
        .filter_map(|(_, l)| match l {
            super::referrers::Listing::FallbackTag(tag) => Some(tag.as_str()),
            super::referrers::Listing::Api => None,
        })
        .collect();
    listener.status(
        "Attached",
        &format!(
            "{} document(s) to {place} ({})",
            outcome.attached,
            if tags.is_empty() {
                "referrers API".to_owned()
            } else {
                format!("tag {}", tags.join(", "))
            }
        ),
    );
}

/// The documents that did not reach `place` (`HOST/REPOSITORY`): each group of them a warning, or
/// with `require_attachments`, the first group's error (the tags are not set yet).
fn not_attached(
    place: &str,
    attachments: &[Attachment],
    failed: Vec<(Vec<usize>, Error)>,
    options: &PushOptions,
    listener: &dyn Listener,
) -> Result<Vec<NotAttached>> {
    let names = |indexes: &[usize]| -> String {
        let labels: Vec<String> = indexes
            .iter()
            .filter_map(|&i| attachments.get(i))
            .map(Attachment::label)
            .collect();
        labels.join(" and ")
    };
    let mut groups = failed.into_iter();
    if options.require_attachments {
        if let Some((indexes, error)) = groups.next() {
            let others: usize = groups.map(|(items, _)| items.len()).sum();
            let also = match others {
                0 => String::new(),
                1 => "; 1 more document was not attached either".to_owned(),
                n => format!("; {n} more documents were not attached either"),
            };
            return Err(error
                .context(&format!(
                    "{} could not be attached to {place}",
                    names(&indexes)
                ))
                .context_suffix(&format!("no tag was set (--require-attachments){also}")));
        }
        return Ok(Vec::new());
    }
    let mut list = Vec::new();
    for (indexes, error) in groups {
        let why = error.to_string();
        let verb = if indexes.len() == 1 { "was" } else { "were" };
        listener.warning(&format!(
            "{} {verb} not attached to {place}: {why}; the image is pushed without it \
             (--require-attachments makes this an error)",
            names(&indexes)
        ));
        for item in indexes.iter().filter_map(|&i| attachments.get(i)) {
            list.push(NotAttached {
                kind: item.kind,
                platform: item.platform.as_ref().map(ToString::to_string),
                manifest_digest: item.manifest.digest().clone(),
                repository: place.to_owned(),
                error: why.clone(),
            });
        }
    }
    Ok(list)
}

/// Signs the image `reference` names in its registry (`zeroimage sign`): its digest (and each
/// platform's manifest under an index) in its repository, the signatures merged with those there.
/// Returns the image, pinned by digest, and the signatures made.
pub fn sign_pushed(
    reference: &Reference,
    signer: &Signer,
    options: &PushOptions,
    cx: &Context,
) -> Result<PushOutcome> {
    let pull = super::pull::PullOptions {
        client: options.client.clone(),
        ..super::pull::PullOptions::default()
    };
    let (source, top) = super::pull::RegistrySource::resolve(reference, &pull, cx)?;
    let image = Stored::read(reference.full(), Box::new(source), &top)?;
    let mut session = Session::open(reference.domain(), options, cx)?;
    session.sign(Some(signer), Vec::new(), reference.path(), &image, cx)?;
    Ok(PushOutcome {
        pushed: vec![Pushed {
            reference: reference.familiar(),
            digest: image.digest().to_string(),
        }],
        not_attached: Vec::new(),
        signatures: session.signatures,
    })
}

/// The name of the first subject of the in-toto statement in a DSSE envelope, or `""`.
fn attestation_name(envelope: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        payload: String,
    }
    #[derive(serde::Deserialize)]
    struct Statement {
        subject: Vec<Subject>,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        name: String,
    }
    use base64::Engine as _;
    serde_json::from_slice::<Envelope>(envelope)
        .ok()
        .and_then(|e| {
            base64::engine::general_purpose::STANDARD
                .decode(e.payload)
                .ok()
        })
        .and_then(|p| serde_json::from_slice::<Statement>(&p).ok())
        .and_then(|s| s.subject.into_iter().next())
        .map(|s| s.name)
        .unwrap_or_default()
}
