//! Pushing attached documents (SBOMs, provenance) as OCI 1.1 referrers. The documents and the empty
//! config go up as blobs, each artifact manifest by its digest. A registry with the referrers API says
//! so by answering a manifest with a `subject` with `OCI-Subject`, or by answering
//! `GET /v2/<name>/referrers/<digest>`; it then lists them itself. Otherwise (distribution 2.8, many
//! hosted registries) the distribution spec's fallback applies: the tag `sha256-<hex>` of the subject
//! holds an image index of its referrers, read and extended with ours, so referrers already there (a
//! signature, another tool's SBOM) are kept and a second push adds nothing.
//!
//! The fallback tag is read, merged and written by every pusher with no lock, so two pushes at once
//! can each write an index without the other's documents. After writing, the tag is read back (after
//! a wait longer than a read-and-write takes, so a write based on an older read has landed by then) and
//! merged again until it lists every document of ours, a bounded number of times. The write carries
//! `If-Match` with the ETag of the index it was merged from, so a registry that honours it refuses a
//! write over a change (412) and the merge starts again at once; distribution 2.8 sends an ETag but
//! ignores `If-Match`, so the read-back is what makes it work there.
//!
//! Every failure is per document (or per subject, for its listing) and reported to the caller, who
//! decides whether it stops the push (`--require-attachments`) or is a
//! warning: an attachment a registry refuses must not cost the image its tags.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::client::Registry;
use super::transport::http::{self, Payload};
use super::upload::{PushStats, Target, push_blob, push_scope};
use crate::error::registry::RegistryErrorKind as Kind;
use crate::error::{Error, Result};
use crate::image::MAX_DOCUMENT;
use crate::image::referrers::Attachment;
use crate::oci::{Descriptor, Digest, Document, Index, MediaType};
use crate::report::Listener;
use crate::util::sanitize;

/// Referrers listed in one fallback tag's index that we accept to read.
const MAX_REFERRERS: usize = 10_000;
/// Writes of one fallback tag before giving up on it: each follows a read that lacked some of our
/// documents, so running out means other pushes kept replacing the tag (or the registry keeps
/// answering with an older index).
pub(super) const MAX_MERGE_WRITES: usize = 8;
/// The shortest wait between writing the fallback tag and reading it back: longer than another
/// pusher's read-merge-write takes even on a busy machine, so a write of theirs based on a read made
/// before ours has landed when we look.
pub(super) const SETTLE_MIN: Duration = Duration::from_millis(500);
/// The longest such wait, however slow the registry's answers were.
pub(super) const SETTLE_MAX: Duration = Duration::from_secs(5);
/// The wait is this many times the time our own read and write took (a slow registry makes others
/// slow too).
pub(super) const SETTLE_FACTOR: u32 = 4;
/// The longest ETag we send back in `If-Match`.
pub(super) const MAX_ETAG: usize = 256;

/// How the registry took the attachments of one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listing {
    /// The registry's referrers API lists them.
    Api,
    /// The fallback tag `sha256-<hex>` lists them.
    FallbackTag(String),
}

/// What became of the attachments pushed to one repository.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// How each subject lists the documents about it that went up.
    pub listings: Vec<(Digest, Listing)>,
    /// How many documents are attached and listed.
    pub attached: usize,
    /// Documents that are not (their indexes in the attachments), each group with the error that
    /// stopped it: one document whose blob or manifest was refused, or every document of a subject
    /// whose listing failed.
    pub failed: Vec<(Vec<usize>, Error)>,
}

/// Pushes the attachments' blobs and artifact manifests to `repository`, then makes sure each subject
/// lists them (referrers API or fallback tag). Blobs come from `target.blobs`, or are mounted from
/// `mount_from` (a repository of the same registry pushed to before). A failure stops the documents it
/// concerns and is returned in [`Outcome::failed`], for the caller to decide about; only Ctrl-C stops
/// the whole.
pub(super) fn push(
    registry: &mut Registry,
    target: &Target,
    attachments: &[Attachment],
    mount_from: Option<&str>,
    stats: &mut PushStats,
    listener: &dyn Listener,
) -> Result<Outcome> {
    let repository = target.repository;
    let mut outcome = Outcome::default();
    // A failure of `items` with `error`, kept for the caller; Ctrl-C ends the push.
    let fail = |outcome: &mut Outcome, items: Vec<usize>, error: Error| -> Result<()> {
        if error.is_interrupted() {
            return Err(error);
        }
        outcome.failed.push((items, error));
        Ok(())
    };
    let mut blobs_done: BTreeSet<Digest> = BTreeSet::new();
    let mut by_subject: BTreeMap<&Digest, (bool, Vec<usize>)> = BTreeMap::new();
    'items: for (i, item) in attachments.iter().enumerate() {
        for blob in [&item.manifest.value().config, &item.document] {
            if blobs_done.contains(&blob.digest) {
                continue;
            }
            match push_blob(registry, target, blob, mount_from, stats, listener) {
                Ok(()) => {
                    blobs_done.insert(blob.digest.clone());
                }
                Err(error) => {
                    fail(&mut outcome, vec![i], error)?;
                    continue 'items;
                }
            }
        }
        let listed_by_registry = match put_artifact(registry, repository, item) {
            Ok(listed) => listed,
            Err(error) => {
                fail(&mut outcome, vec![i], error)?;
                continue;
            }
        };
        let entry = by_subject
            .entry(&item.subject().digest)
            .or_insert((false, Vec::new()));
        entry.0 |= listed_by_registry;
        entry.1.push(i);
    }
    for (subject, (answered, indexes)) in by_subject {
        let items: Vec<&Attachment> = indexes.iter().map(|&i| &attachments[i]).collect();
        let listing = match list(registry, repository, subject, answered, &items, listener) {
            Ok(listing) => listing,
            Err(error) => {
                fail(&mut outcome, indexes, error)?;
                continue;
            }
        };
        listener.detail(&format!(
            "{} document(s) about {} in {}/{repository}: {}",
            items.len(),
            subject.short(),
            registry.host,
            match &listing {
                Listing::Api => "listed by the registry's referrers API".to_owned(),
                Listing::FallbackTag(tag) => format!("listed in tag {tag}"),
            }
        ));
        outcome.attached += items.len();
        outcome.listings.push((subject.clone(), listing));
    }
    Ok(outcome)
}

/// Makes sure `subject` lists `items`: through the referrers API when the registry has it, else in
/// the fallback tag.
fn list(
    registry: &mut Registry,
    repository: &str,
    subject: &Digest,
    answered: bool,
    items: &[&Attachment],
    listener: &dyn Listener,
) -> Result<Listing> {
    if answered || has_referrers_api(registry, repository, subject)? {
        return Ok(Listing::Api);
    }
    fallback_tag(registry, repository, subject, items, listener).map(Listing::FallbackTag)
}

/// PUTs an artifact manifest by digest; true when the registry answered with `OCI-Subject` (it
/// indexes referrers itself).
fn put_artifact(registry: &mut Registry, repository: &str, item: &Attachment) -> Result<bool> {
    let digest = item.manifest.digest().to_string();
    let url = registry.url(&format!("/v2/{repository}/manifests/{digest}"));
    let headers = [("Content-Type", MediaType::OciManifest.to_string())];
    let response = registry.send(
        "PUT",
        &url,
        &push_scope(repository),
        &headers,
        &Payload::Bytes(item.manifest.bytes()),
    )?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("pushing an attached document to", repository, response));
    }
    Ok(http::header(&response, "oci-subject").is_some())
}

/// True when `GET /v2/<repository>/referrers/<subject>` answers: the registry has the referrers API.
fn has_referrers_api(registry: &mut Registry, repository: &str, subject: &Digest) -> Result<bool> {
    let url = registry.url(&format!("/v2/{repository}/referrers/{subject}"));
    let headers = [("Accept", MediaType::OciIndex.to_string())];
    let response = registry.send(
        "GET",
        &url,
        &push_scope(repository),
        &headers,
        &Payload::Empty,
    )?;
    let status = response.status().as_u16();
    let content_type = http::header(&response, "content-type").unwrap_or_default();
    // Drain what little there is, so the connection can be reused.
    let _ = http::read_limited(response, 64 << 10);
    Ok(status == 200 && content_type.starts_with(MediaType::OciIndex.as_str()))
}

/// Adds `items` to the index under the subject's fallback tag (creating it when missing), then reads it
/// back until it lists them all (see the module's documentation); returns the tag.
fn fallback_tag(
    registry: &mut Registry,
    repository: &str,
    subject: &Digest,
    items: &[&Attachment],
    listener: &dyn Listener,
) -> Result<String> {
    let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
    let url = registry.url(&format!("/v2/{repository}/manifests/{tag}"));
    let place = format!("{}/{repository}:{tag}", registry.host);
    let ours: Vec<Descriptor> = items.iter().map(|item| item.descriptor()).collect();
    let mut writes = 0;
    let mut settle = SETTLE_MIN;
    loop {
        let started = Instant::now();
        let (mut index, etag) = read_fallback_index(registry, repository, subject, &url, &place)?;
        let missing: Vec<&Descriptor> = ours
            .iter()
            .filter(|d| !index.manifests.iter().any(|m| m.digest == d.digest))
            .collect();
        if missing.is_empty() {
            if writes == 0 {
                listener.detail(&format!("{place} already lists every document"));
            }
            return Ok(tag);
        }
        if writes == MAX_MERGE_WRITES {
            return Err(registry.error(
                Kind::Protocol,
                format!(
                    "{place}: {} of our {} document(s) are still not listed after {MAX_MERGE_WRITES} \
                     writes of the referrers tag; other pushes kept replacing it",
                    missing.len(),
                    ours.len()
                ),
            ));
        }
        if writes > 0 {
            listener.detail(&format!(
                "{place} lost {} of our document(s) to another push; merging again",
                missing.len()
            ));
        }
        if index.manifests.len() + missing.len() > MAX_REFERRERS {
            return Err(registry.error(
                Kind::Protocol,
                format!(
                    "{place}: the referrers index would list more than {MAX_REFERRERS} manifests"
                ),
            ));
        }
        index.manifests.extend(missing.into_iter().cloned());
        index.media_type = Some(MediaType::OciIndex);
        let document = Document::new(index);
        let response = put_if_match(
            registry,
            repository,
            &url,
            &MediaType::OciIndex,
            document.bytes(),
            etag,
        )?;
        writes += 1;
        match response.status().as_u16() {
            201 => {}
            412 => {
                // The registry honours If-Match and the tag changed since we read it: read again at
                // once (after a moment, so two pushes do not keep meeting).
                drain(response);
                listener.detail(&format!(
                    "{place} changed while we merged; reading it again"
                ));
                registry.cx().cancel().sleep(jitter(SETTLE_MIN / 10))?;
                continue;
            }
            _ => {
                return Err(registry.unexpected(
                    "updating the referrers tag in",
                    repository,
                    response,
                ));
            }
        }
        drain(response);
        // Our read and write took this long; a push that read before our write lands its write well
        // within a few times that.
        settle = (started.elapsed() * SETTLE_FACTOR)
            .clamp(SETTLE_MIN, SETTLE_MAX)
            .max(settle);
        registry.cx().cancel().sleep(settle + jitter(settle / 2))?;
    }
}

/// The index under the fallback tag (empty when the tag does not exist) and its ETag, when the
/// registry sent a usable one.
fn read_fallback_index(
    registry: &mut Registry,
    repository: &str,
    subject: &Digest,
    url: &str,
    place: &str,
) -> Result<(Index, Option<String>)> {
    // Every manifest type is accepted, so that the registry shows what is there (distribution 2.8
    // answers 404 for an OCI image manifest when the Accept header does not name its type): a tag
    // holding anything but an index of referrers is someone else's, never to be overwritten.
    let accept = [("Accept", super::pull::ACCEPT.to_owned())];
    let response = registry.send(
        "GET",
        url,
        &push_scope(repository),
        &accept,
        &Payload::Empty,
    )?;
    match response.status().as_u16() {
        404 => {
            drain(response);
            return Ok((Index::new(Vec::new()), None));
        }
        200 => {}
        _ => return Err(registry.unexpected("reading the referrers tag of", repository, response)),
    }
    let etag = http::header(&response, "etag").filter(|e| {
        !e.is_empty() && e.len() <= MAX_ETAG && e.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    });
    let content_type = http::header(&response, "content-type")
        .map(|c| MediaType::parse(c.split(';').next().unwrap_or_default().trim()));
    let (bytes, more) = http::read_limited(response, MAX_DOCUMENT);
    if more {
        return Err(registry.error(
            Kind::Protocol,
            format!(
                "{place}: the referrers index is larger than {} MiB; refusing to read it",
                MAX_DOCUMENT >> 20
            ),
        ));
    }
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
        registry.error(
            Kind::Protocol,
            format!(
                "{place}: the tag holds no image index ({}); it is the referrers tag of \
                 {subject}: remove it, or push with --sbom none",
                sanitize::outside(&e.to_string(), sanitize::EXCERPT)
            ),
        )
    })?;
    // Anything but an OCI index by the registry's word, the document's own, or its shape.
    let by_registry =
        content_type.filter(|t| t.is_index() || t.is_manifest() || *t == MediaType::DockerSchema1);
    let by_shape = ["config", "layers", "fsLayers"]
        .iter()
        .any(|k| index.extra.contains_key(*k))
        .then(|| MediaType::Other("manifest".to_owned()));
    let held = [by_registry, index.media_type.clone(), by_shape]
        .into_iter()
        .flatten()
        .find(|m| *m != MediaType::OciIndex);
    if let Some(held) = held {
        return Err(registry.error(
            Kind::Protocol,
            format!(
                "{place}: the tag holds a {}, not an OCI image index of referrers; it is the \
                 referrers tag of {subject}: remove it, or push with --sbom none",
                sanitize::outside(held.as_str(), 100)
            ),
        ));
    }
    if index.manifests.len() > MAX_REFERRERS {
        return Err(registry.error(
            Kind::Protocol,
            format!(
                "{place}: the referrers index lists {} manifests; at most {MAX_REFERRERS} are \
                 accepted",
                index.manifests.len()
            ),
        ));
    }
    Ok((index, etag))
}

/// PUTs a tag's document (of `media_type`) at `url`, with `If-Match: etag` when the tag was read with
/// one: a registry that honours it answers 412 when another push changed the tag in between.
pub(super) fn put_if_match(
    registry: &mut Registry,
    repository: &str,
    url: &str,
    media_type: &MediaType,
    bytes: &[u8],
    etag: Option<String>,
) -> Result<http::Response> {
    let mut headers = vec![("Content-Type", media_type.to_string())];
    if let Some(etag) = etag {
        headers.push(("If-Match", etag));
    }
    registry.send(
        "PUT",
        url,
        &push_scope(repository),
        &headers,
        &Payload::Bytes(bytes),
    )
}

/// Reads what little body an answer has, so the connection can be reused.
pub(super) fn drain(response: http::Response) {
    let _ = http::read_limited(response, 64 << 10);
}

/// A random duration up to `most`, so that pushes that met once do not keep meeting.
pub(super) fn jitter(most: Duration) -> Duration {
    // The standard library's hasher keys are random per process: enough randomness for a wait.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let fraction = (hasher.finish() % 1000) as u32;
    most * fraction / 1000
}
