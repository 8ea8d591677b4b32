//! Pushing attached documents (SBOMs, provenance) as OCI 1.1 referrers. The documents and the empty
//! config go up as blobs, each artifact manifest by its digest. A registry with the referrers API says
//! so by answering a manifest with a `subject` with `OCI-Subject`, or by answering
//! `GET /v2/<name>/referrers/<digest>`; it then lists them itself. Otherwise (distribution 2.8, many
//! hosted registries) the distribution spec's fallback applies: the tag `sha256-<hex>` of the subject
//! holds an image index of its referrers, read and extended with ours, so referrers already there (a
//! signature, another tool's SBOM) are kept and a second push adds nothing.

use std::collections::BTreeMap;

use super::client::{self, Payload, Registry};
use super::error::RegistryErrorKind as Kind;
use super::push::{PushStats, Target, push_blob, push_scope};
use crate::attach::{Attachment, Attachments};
use crate::error::Result;
use crate::image::MAX_DOCUMENT;
use crate::oci::{Digest, Document, Index, MediaType};
use crate::report::Listener;
use crate::sanitize;

/// Referrers listed in one fallback tag's index that we accept to read.
const MAX_REFERRERS: usize = 10_000;

/// How the registry took the attachments of one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listing {
    /// The registry's referrers API lists them.
    Api,
    /// The fallback tag `sha256-<hex>` lists them.
    FallbackTag(String),
}

/// Pushes the attachments' blobs and artifact manifests to `repository`, then makes sure each subject
/// lists them (referrers API or fallback tag). Blobs come from `target.blobs`, or are mounted from
/// `mount_from` (a repository of the same registry pushed to before).
pub(super) fn push(
    registry: &mut Registry,
    target: &Target,
    attachments: &Attachments,
    mount_from: Option<&str>,
    stats: &mut PushStats,
    listener: &dyn Listener,
) -> Result<Vec<(Digest, Listing)>> {
    let repository = target.repository;
    for blob in attachments.blobs() {
        push_blob(registry, target, &blob, mount_from, stats, listener)?;
    }
    let mut by_subject: BTreeMap<&Digest, (bool, Vec<&Attachment>)> = BTreeMap::new();
    for item in &attachments.items {
        let listed_by_registry = put_artifact(registry, repository, item)?;
        let entry = by_subject
            .entry(&item.subject().digest)
            .or_insert((false, Vec::new()));
        entry.0 |= listed_by_registry;
        entry.1.push(item);
    }
    let mut listings = Vec::new();
    for (subject, (answered, items)) in by_subject {
        let listing = if answered || has_referrers_api(registry, repository, subject)? {
            Listing::Api
        } else {
            Listing::FallbackTag(fallback_tag(
                registry, repository, subject, &items, listener,
            )?)
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
        listings.push((subject.clone(), listing));
    }
    Ok(listings)
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
    Ok(client::header(&response, "oci-subject").is_some())
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
    let content_type = client::header(&response, "content-type").unwrap_or_default();
    // Drain what little there is, so the connection can be reused.
    let _ = client::read_limited(response, 64 << 10);
    Ok(status == 200 && content_type.starts_with(MediaType::OciIndex.as_str()))
}

/// Adds `items` to the index under the subject's fallback tag (creating it when missing); returns the
/// tag.
fn fallback_tag(
    registry: &mut Registry,
    repository: &str,
    subject: &Digest,
    items: &[&Attachment],
    listener: &dyn Listener,
) -> Result<String> {
    let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
    let url = registry.url(&format!("/v2/{repository}/manifests/{tag}"));
    let scope = push_scope(repository);
    let accept = [("Accept", MediaType::OciIndex.to_string())];
    let response = registry.send("GET", &url, &scope, &accept, &Payload::Empty)?;
    let place = format!("{}/{repository}:{tag}", registry.host);
    let mut index = match response.status().as_u16() {
        404 => Index::new(Vec::new()),
        200 => {
            let (bytes, more) = client::read_limited(response, MAX_DOCUMENT);
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
                         {subject}, remove it or push with --sbom none",
                        sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                    ),
                )
            })?;
            if index
                .media_type
                .as_ref()
                .is_some_and(|m| *m != MediaType::OciIndex)
            {
                return Err(registry.error(
                    Kind::Protocol,
                    format!(
                        "{place}: the tag holds a {}, not an OCI image index of referrers; remove \
                         it or push with --sbom none",
                        sanitize::outside(
                            index.media_type.as_ref().map_or("", |m| m.as_str()),
                            100
                        )
                    ),
                ));
            }
            if index.manifests.len() > MAX_REFERRERS {
                return Err(registry.error(
                    Kind::Protocol,
                    format!(
                        "{place}: the referrers index lists {} manifests; at most {MAX_REFERRERS} \
                         are accepted",
                        index.manifests.len()
                    ),
                ));
            }
            index
        }
        _ => return Err(registry.unexpected("reading the referrers tag of", repository, response)),
    };
    let before = index.manifests.len();
    for item in items {
        if !index
            .manifests
            .iter()
            .any(|d| &d.digest == item.manifest.digest())
        {
            index.manifests.push(item.descriptor());
        }
    }
    if index.manifests.len() == before {
        listener.detail(&format!("{place} already lists every document"));
        return Ok(tag);
    }
    index.media_type = Some(MediaType::OciIndex);
    let document = Document::new(index);
    let headers = [("Content-Type", MediaType::OciIndex.to_string())];
    let response = registry.send(
        "PUT",
        &url,
        &scope,
        &headers,
        &Payload::Bytes(document.bytes()),
    )?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("updating the referrers tag in", repository, response));
    }
    Ok(tag)
}
