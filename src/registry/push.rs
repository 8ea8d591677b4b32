//! Pushing an image archive: every blob once per repository (skipped when present, mounted when
//! another repository of the registry has it, uploaded in one piece or in chunks otherwise), then the
//! manifests by digest, and only when all of that worked, the tags.

use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::client::{self, ClientOptions, Payload, Registry, encode};
use super::credentials;
use crate::archive_reader::{ArchiveReader, FoundDescriptor};
use crate::error::{Error, Result};
use crate::oci::Digest;
use crate::reference::Reference;
use crate::report::Listener;

/// Blobs up to this size go up in one request; larger ones in chunks of `chunk_size`.
const MONOLITHIC_LIMIT: u64 = 32 << 20;
const CHUNK_SIZE: u64 = 16 << 20;

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    pub client: ClientOptions,
    /// Largest blob sent in a single request.
    pub monolithic_limit: u64,
    /// Chunk size for larger blobs.
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            client: ClientOptions::default(),
            monolithic_limit: MONOLITHIC_LIMIT,
            chunk_size: CHUNK_SIZE,
        }
    }
}

/// One reference pushed, and the digest it now points at.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pushed {
    pub reference: String,
    pub digest: String,
}

impl std::fmt::Display for Pushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.reference, self.digest)
    }
}

/// Counts of what a push did, for status lines and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
}

/// Pushes the image in `archive` to every reference; returns `REF@DIGEST` for each.
pub fn push_archive(
    archive: &Path,
    references: &[Reference],
    options: &PushOptions,
    listener: &dyn Listener,
) -> Result<Vec<Pushed>> {
    let reader = ArchiveReader::open(archive)?;
    let image = reader.image()?;
    let mut blobs: Vec<&FoundDescriptor> = Vec::new();
    for manifest in &image.manifests {
        for blob in &manifest.blobs {
            if !blobs.iter().any(|b| b.digest == blob.digest) {
                blobs.push(blob);
            }
        }
    }
    let (top, top_bytes) = image.top();

    // Group by registry, keeping the order given.
    let mut hosts: Vec<&str> = Vec::new();
    for reference in references {
        if !hosts.contains(&reference.domain()) {
            hosts.push(reference.domain());
        }
    }
    let mut sessions = Vec::new();
    for host in hosts {
        let credential = credentials::lookup(host, listener)?;
        let mut registry = Registry::connect(host, credential, &options.client, listener)?;
        let mut stats = PushStats::default();
        let mut done_repositories: Vec<String> = Vec::new();
        let here: Vec<&Reference> = references.iter().filter(|r| r.domain() == host).collect();
        for reference in &here {
            let repository = reference.path();
            if done_repositories.iter().any(|r| r == repository) {
                continue;
            }
            listener.status(
                "Pushing",
                &format!("{host}/{repository} ({} blobs)", blobs.len()),
            );
            for blob in &blobs {
                let mount_from = done_repositories.first().map(String::as_str);
                push_blob(
                    &mut registry,
                    &reader,
                    repository,
                    blob,
                    mount_from,
                    options,
                    &mut stats,
                    listener,
                )?;
            }
            for manifest in &image.manifests {
                put_manifest(
                    &mut registry,
                    repository,
                    &manifest.descriptor.digest,
                    &manifest.descriptor,
                    &manifest.bytes,
                )?;
            }
            if let Some((index, bytes)) = &image.index {
                put_manifest(&mut registry, repository, &index.digest, index, bytes)?;
            }
            done_repositories.push(repository.to_owned());
        }
        listener.detail(&format!(
            "{host}: {} blobs uploaded, {} mounted, {} already there",
            stats.uploaded, stats.mounted, stats.skipped
        ));
        sessions.push((registry, here));
    }
    // Everything is in place: now the tags, so none points at a half-pushed image.
    let mut pushed = Vec::new();
    for (mut registry, here) in sessions {
        for reference in here {
            put_manifest(
                &mut registry,
                reference.path(),
                reference.tag(),
                top,
                top_bytes,
            )?;
            let result = Pushed {
                reference: reference.familiar(),
                digest: top.digest.clone(),
            };
            listener.status("Pushed", &result.to_string());
            pushed.push(result);
        }
    }
    Ok(pushed)
}

fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[allow(clippy::too_many_arguments)]
fn push_blob(
    registry: &mut Registry,
    reader: &ArchiveReader,
    repository: &str,
    blob: &FoundDescriptor,
    mount_from: Option<&str>,
    options: &PushOptions,
    stats: &mut PushStats,
    listener: &dyn Listener,
) -> Result<()> {
    let scope = push_scope(repository);
    let url = registry.url(&format!("/v2/{repository}/blobs/{}", blob.digest));
    let response = registry.send("HEAD", &url, &scope, &[], &Payload::Empty)?;
    match response.status().as_u16() {
        200 => {
            listener.detail(&format!("{} exists in {repository}", short(&blob.digest)));
            stats.skipped += 1;
            return Ok(());
        }
        404 => {}
        _ => return Err(registry.unexpected("checking a blob in", repository, response)),
    }
    let (location, scope) = match mount_from {
        Some(from) => {
            let scope = format!("{scope} repository:{from}:pull");
            let url = registry.url(&format!(
                "/v2/{repository}/blobs/uploads/?mount={}&from={}",
                encode(&blob.digest),
                encode(from)
            ));
            let response = registry.send("POST", &url, &scope, &[], &Payload::Empty)?;
            match response.status().as_u16() {
                201 => {
                    listener.detail(&format!("{} mounted from {from}", short(&blob.digest)));
                    stats.mounted += 1;
                    return Ok(());
                }
                202 => (location_of(registry, response)?, scope),
                _ => return Err(registry.unexpected("mounting a blob into", repository, response)),
            }
        }
        None => {
            let url = registry.url(&format!("/v2/{repository}/blobs/uploads/"));
            let response = registry.send("POST", &url, &scope, &[], &Payload::Empty)?;
            if response.status().as_u16() != 202 {
                return Err(registry.unexpected("starting an upload to", repository, response));
            }
            (location_of(registry, response)?, scope)
        }
    };
    if blob.size <= options.monolithic_limit {
        upload_whole(registry, reader, repository, blob, &location, &scope)?;
    } else {
        upload_chunked(
            registry,
            reader,
            repository,
            blob,
            location,
            &scope,
            options.chunk_size,
            listener,
        )?;
    }
    listener.detail(&format!(
        "{} uploaded ({} bytes)",
        short(&blob.digest),
        blob.size
    ));
    stats.uploaded += 1;
    Ok(())
}

fn upload_whole(
    registry: &mut Registry,
    reader: &ArchiveReader,
    repository: &str,
    blob: &FoundDescriptor,
    location: &str,
    scope: &str,
) -> Result<()> {
    let url = with_digest(location, &blob.digest);
    let open = || -> Result<Box<dyn Read + Send>> { Ok(Box::new(reader.verified_blob(blob)?)) };
    let headers = [("Content-Type", "application/octet-stream".to_owned())];
    let response = registry.send(
        "PUT",
        &url,
        scope,
        &headers,
        &Payload::Stream(&open, blob.size),
    )?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("uploading a blob to", repository, response));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn upload_chunked(
    registry: &mut Registry,
    reader: &ArchiveReader,
    repository: &str,
    blob: &FoundDescriptor,
    mut location: String,
    scope: &str,
    chunk_size: u64,
    listener: &dyn Listener,
) -> Result<()> {
    let (offset, size) = reader.blob_range(blob)?;
    let mut source = reader.open_range(offset, size)?;
    let mut hasher = Sha256::new();
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    while sent < size {
        crate::cancel::check()?;
        let want = chunk_size.min(size - sent);
        chunk.clear();
        (&mut source)
            .take(want)
            .read_to_end(&mut chunk)
            .map_err(Error::io("reading", reader.path()))?;
        if chunk.len() as u64 != want {
            return Err(Error::input(
                reader.path(),
                "ended inside a blob; the archive is truncated",
            ));
        }
        hasher.update(&chunk);
        let headers = [
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Content-Range", format!("{sent}-{}", sent + want - 1)),
        ];
        let response =
            registry.send("PATCH", &location, scope, &headers, &Payload::Bytes(&chunk))?;
        if response.status().as_u16() != 202 {
            return Err(registry.unexpected("uploading a chunk to", repository, response));
        }
        location = location_of(registry, response)?;
        sent += want;
        listener.detail(&format!("{}: {sent} of {size} bytes", short(&blob.digest)));
    }
    let actual = Digest::of_hasher(hasher).to_string();
    if actual != blob.digest {
        return Err(Error::input(
            reader.path(),
            format!(
                "blob {} is corrupt (its content hashes to {actual}); nothing was tagged",
                blob.digest
            ),
        ));
    }
    let url = with_digest(&location, &blob.digest);
    let response = registry.send("PUT", &url, scope, &[], &Payload::Empty)?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("finishing an upload to", repository, response));
    }
    Ok(())
}

fn put_manifest(
    registry: &mut Registry,
    repository: &str,
    reference: &str,
    descriptor: &FoundDescriptor,
    bytes: &[u8],
) -> Result<()> {
    let url = registry.url(&format!("/v2/{repository}/manifests/{reference}"));
    let headers = [("Content-Type", descriptor.media_type.clone())];
    let response = registry.send(
        "PUT",
        &url,
        &push_scope(repository),
        &headers,
        &Payload::Bytes(bytes),
    )?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("pushing a manifest to", repository, response));
    }
    Ok(())
}

/// The upload URL a registry answered with, resolved against the registry (it may be elsewhere: blob
/// storage; credentials then stay behind).
fn location_of(registry: &Registry, response: ureq::http::Response<ureq::Body>) -> Result<String> {
    let location = client::header(&response, "location").ok_or_else(|| {
        Error::Registry(format!(
            "{}: the registry started an upload without a Location header",
            registry.host
        ))
    })?;
    registry.resolve_location(&location)
}

fn with_digest(url: &str, digest: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}digest={}", encode(digest))
}

fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}
