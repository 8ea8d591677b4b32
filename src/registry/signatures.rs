//! cosign's signature and attestation tags in a registry: `sha256-<hex>.sig` and `.att`, each an
//! image manifest whose layers are signatures (or DSSE envelopes). Pushing reads the tag, adds the
//! layers it lacks and writes it back, then reads it again until it lists ours (other pushers do the
//! same with no lock: see `referrers`), so no signature already there is ever lost. Reading bounds
//! the layers listed and the bytes read.

use std::collections::BTreeMap;
use std::time::Instant;

use super::client::Registry;
use super::referrers::{
    MAX_ETAG, MAX_MERGE_WRITES, SETTLE_FACTOR, SETTLE_MAX, SETTLE_MIN, drain, jitter, put_if_match,
};
use super::transport::http::{self, Payload};
use super::upload::{PushStats, Target, push_blob, push_scope};
use crate::error::Result;
use crate::error::registry::RegistryErrorKind as Kind;
use crate::image::MAX_DOCUMENT;
use crate::image::blobs::Memory;
use crate::image::signatures::{
    CosignLayer, MAX_SIGNATURE_LAYERS, TagKind, parse_signature_manifest,
};
use crate::oci::{Descriptor, Digest, Document, Manifest, MediaType};
use crate::report::Listener;

/// Pushes `layers` into their tags in `repository`, keeping every layer already there. Returns the
/// tags written.
pub(super) fn push(
    registry: &mut Registry,
    repository: &str,
    layers: &[CosignLayer],
    stats: &mut PushStats,
    listener: &dyn Listener,
) -> Result<Vec<String>> {
    let mut memory = Memory::new();
    let mut groups: BTreeMap<(TagKind, &Digest), Vec<&CosignLayer>> = BTreeMap::new();
    for layer in layers {
        memory.insert(layer.descriptor.digest.clone(), layer.bytes.clone());
        groups
            .entry((layer.kind, &layer.subject))
            .or_default()
            .push(layer);
    }
    let mut tags = Vec::new();
    for ((kind, subject), ours) in groups {
        let target = Target {
            repository,
            blobs: &memory,
            limits: super::upload::UploadLimits {
                monolithic_limit: super::upload::MONOLITHIC_LIMIT,
                chunk_size: super::upload::CHUNK_SIZE,
            },
        };
        for layer in &ours {
            push_blob(registry, &target, &layer.descriptor, None, stats, listener)?;
        }
        let tag = kind.tag(subject);
        merge_into_tag(registry, repository, &tag, &ours, stats, listener)?;
        tags.push(tag);
    }
    Ok(tags)
}

/// True when `layer` is listed in `manifest`: the same blob with the same signature.
fn lists(manifest: &Manifest, layer: &Descriptor) -> bool {
    manifest.layers.iter().any(|l| {
        l.digest == layer.digest
            && l.annotations
                .get(crate::image::signatures::ANNOTATION_SIGNATURE)
                == layer
                    .annotations
                    .get(crate::image::signatures::ANNOTATION_SIGNATURE)
    })
}

fn merge_into_tag(
    registry: &mut Registry,
    repository: &str,
    tag: &str,
    ours: &[&CosignLayer],
    stats: &mut PushStats,
    listener: &dyn Listener,
) -> Result<()> {
    let place = format!("{}/{repository}:{tag}", registry.host);
    let mut writes = 0;
    let mut settle = SETTLE_MIN;
    loop {
        let started = Instant::now();
        let (existing, etag) = read_tag(registry, repository, tag)?;
        let mut manifest = existing.unwrap_or_else(empty_manifest);
        let missing: Vec<&Descriptor> = ours
            .iter()
            .map(|l| &l.descriptor)
            .filter(|d| !lists(&manifest, d))
            .collect();
        if missing.is_empty() {
            if writes == 0 {
                listener.detail(&format!("{place} already lists every signature"));
            }
            return Ok(());
        }
        if writes == MAX_MERGE_WRITES {
            return Err(registry.error(
                Kind::Protocol,
                format!(
                    "{place}: {} of our {} signature(s) are still not listed after \
                     {MAX_MERGE_WRITES} writes; other pushes kept replacing the tag",
                    missing.len(),
                    ours.len()
                ),
            ));
        }
        if manifest.layers.len() + missing.len() > MAX_SIGNATURE_LAYERS {
            return Err(registry.error(
                Kind::Protocol,
                format!("{place}: the tag would list more than {MAX_SIGNATURE_LAYERS} signatures"),
            ));
        }
        manifest.layers.extend(missing.into_iter().cloned());
        let config = config_for(&manifest.layers);
        manifest.config = Descriptor::new(
            MediaType::OciConfig,
            Digest::of(&config),
            config.len() as u64,
        );
        let mut memory = Memory::new();
        memory.insert(manifest.config.digest.clone(), config);
        let target = Target {
            repository,
            blobs: &memory,
            limits: super::upload::UploadLimits {
                monolithic_limit: super::upload::MONOLITHIC_LIMIT,
                chunk_size: super::upload::CHUNK_SIZE,
            },
        };
        push_blob(registry, &target, &manifest.config, None, stats, listener)?;
        let document = Document::new(manifest);
        let url = registry.url(&format!("/v2/{repository}/manifests/{tag}"));
        let response = put_if_match(
            registry,
            repository,
            &url,
            &MediaType::OciManifest,
            document.bytes(),
            etag,
        )?;
        writes += 1;
        match response.status().as_u16() {
            201 => drain(response),
            412 => {
                drain(response);
                registry.cx().cancel().sleep(jitter(SETTLE_MIN / 10))?;
                continue;
            }
            _ => {
                return Err(registry.unexpected(
                    "writing the signature tag in",
                    repository,
                    response,
                ));
            }
        }
        settle = (started.elapsed() * SETTLE_FACTOR)
            .clamp(SETTLE_MIN, SETTLE_MAX)
            .max(settle);
        registry.cx().cancel().sleep(settle + jitter(settle / 2))?;
    }
}

/// A signature manifest with no layers yet.
fn empty_manifest() -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        artifact_type: None,
        config: crate::image::referrers::empty_config(),
        layers: Vec::new(),
        subject: None,
        annotations: BTreeMap::new(),
        extra: crate::oci::Extra::new(),
    }
}

/// The config cosign gives a signature image: no platform, one diff id per (uncompressed) layer.
fn config_for(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": layers.iter().map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    serde_json::to_vec(&config).unwrap_or_default()
}

/// The manifest under `tag` (none when the tag does not exist) and its ETag. Anything but an image
/// manifest of at most [`MAX_SIGNATURE_LAYERS`] layers is refused: never overwritten, never trusted.
pub(super) fn read_tag(
    registry: &mut Registry,
    repository: &str,
    tag: &str,
) -> Result<(Option<Manifest>, Option<String>)> {
    let place = format!("{}/{repository}:{tag}", registry.host);
    let url = registry.url(&format!("/v2/{repository}/manifests/{tag}"));
    let accept = [("Accept", super::pull::ACCEPT.to_owned())];
    let response = registry.send(
        "GET",
        &url,
        &push_scope(repository),
        &accept,
        &Payload::Empty,
    )?;
    match response.status().as_u16() {
        404 => {
            drain(response);
            return Ok((None, None));
        }
        200 => {}
        _ => return Err(registry.unexpected("reading the signature tag of", repository, response)),
    }
    let etag = http::header(&response, "etag").filter(|e| {
        !e.is_empty() && e.len() <= MAX_ETAG && e.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    });
    let (bytes, more) = http::read_limited(response, MAX_DOCUMENT);
    if more {
        return Err(registry.error(
            Kind::Protocol,
            format!(
                "{place}: the signature manifest is larger than {} MiB; refusing to read it",
                MAX_DOCUMENT >> 20
            ),
        ));
    }
    let manifest = parse_signature_manifest(&bytes).map_err(|why| {
        registry.error(
            Kind::Protocol,
            format!("{place}: {why}; remove the tag or sign into another repository"),
        )
    })?;
    Ok((Some(manifest), etag))
}
