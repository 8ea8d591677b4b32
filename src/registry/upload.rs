//! Writing to one repository of a registry, what pushing an image and attaching documents share: a
//! blob (skipped when present, mounted from another repository, uploaded whole or in chunks) and a
//! manifest.

use std::io::Read;

use super::client::Registry;
use super::transport::http::{Payload, Response, encode, header};
use crate::error::registry::RegistryErrorKind;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::oci::{Descriptor, Digest};
use crate::report::{Listener, ProgressReader, blob_progress};

/// Blobs up to this size go up in one request; larger ones in chunks of [`CHUNK_SIZE`].
pub(super) const MONOLITHIC_LIMIT: u64 = 32 << 20;
pub(super) const CHUNK_SIZE: u64 = 16 << 20;

/// Counts of what a push did, for status lines and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
}

/// Where a blob goes and where it comes from.
pub(super) struct Target<'a> {
    pub repository: &'a str,
    pub blobs: &'a dyn BlobSource,
    pub limits: UploadLimits,
}

/// When a blob goes up in one request, and the size of the chunks otherwise.
#[derive(Clone, Copy, Debug)]
pub(super) struct UploadLimits {
    /// Largest blob sent in a single request.
    pub monolithic_limit: u64,
    /// Chunk size for larger blobs.
    pub chunk_size: u64,
}

pub(super) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

pub(super) fn push_blob(
    registry: &mut Registry,
    target: &Target,
    blob: &Descriptor,
    mount_from: Option<&str>,
    stats: &mut PushStats,
    listener: &dyn Listener,
) -> Result<()> {
    let repository = target.repository;
    let scope = push_scope(repository);
    let url = registry.url(&format!("/v2/{repository}/blobs/{}", blob.digest));
    let response = registry.send("HEAD", &url, &scope, &[], &Payload::Empty)?;
    match response.status().as_u16() {
        200 => {
            listener.detail(&format!("{} exists in {repository}", blob.digest.short()));
            stats.skipped += 1;
            return Ok(());
        }
        404 => {}
        _ => return Err(registry.unexpected("checking a blob in", repository, response)),
    }
    let (location, scope) = if let Some(from) = mount_from {
        let scope = format!("{scope} repository:{from}:pull");
        let url = registry.url(&format!(
            "/v2/{repository}/blobs/uploads/?mount={}&from={}",
            encode(&blob.digest.to_string()),
            encode(from)
        ));
        let response = registry.send("POST", &url, &scope, &[], &Payload::Empty)?;
        match response.status().as_u16() {
            201 => {
                listener.detail(&format!("{} mounted from {from}", blob.digest.short()));
                stats.mounted += 1;
                return Ok(());
            }
            202 => (location_of(registry, response)?, scope),
            _ => return Err(registry.unexpected("mounting a blob into", repository, response)),
        }
    } else {
        let url = registry.url(&format!("/v2/{repository}/blobs/uploads/"));
        let response = registry.send("POST", &url, &scope, &[], &Payload::Empty)?;
        if response.status().as_u16() != 202 {
            return Err(registry.unexpected("starting an upload to", repository, response));
        }
        (location_of(registry, response)?, scope)
    };
    if blob.size <= target.limits.monolithic_limit {
        upload_whole(registry, target, blob, &location, &scope, listener)?;
    } else {
        upload_chunked(registry, target, blob, location, &scope, listener)?;
    }
    listener.detail(&format!(
        "{} uploaded ({} bytes)",
        blob.digest.short(),
        blob.size
    ));
    stats.uploaded += 1;
    Ok(())
}

fn upload_whole(
    registry: &mut Registry,
    target: &Target,
    blob: &Descriptor,
    location: &str,
    scope: &str,
    listener: &dyn Listener,
) -> Result<()> {
    let url = with_digest(location, &blob.digest);
    let progress = blob_progress(listener, "Uploading", &blob.digest, blob.size);
    // Every attempt (a retry) reads the blob again from its start.
    let open = || -> Result<Box<dyn Read + Send + '_>> {
        progress.rewind(0);
        Ok(Box::new(ProgressReader::new(
            target.blobs.open(blob)?,
            &*progress,
        )))
    };
    let headers = [("Content-Type", "application/octet-stream".to_owned())];
    let response = registry.send(
        "PUT",
        &url,
        scope,
        &headers,
        &Payload::Stream(&open, blob.size),
    )?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("uploading a blob to", target.repository, response));
    }
    progress.finish();
    Ok(())
}

fn upload_chunked(
    registry: &mut Registry,
    target: &Target,
    blob: &Descriptor,
    mut location: String,
    scope: &str,
    listener: &dyn Listener,
) -> Result<()> {
    let repository = target.repository;
    let chunk_size = target.limits.chunk_size;
    let mut source = target.blobs.open(blob)?;
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    let progress = blob_progress(listener, "Uploading", &blob.digest, blob.size);
    while sent < blob.size {
        registry.cx().cancel().check()?;
        let want = chunk_size.min(blob.size - sent);
        chunk.clear();
        // The verifying reader fails the read of the last byte when the blob is corrupt: the final
        // chunk, and so the commit below, never happen.
        (&mut source)
            .take(want)
            .read_to_end(&mut chunk)
            .map_err(|e| crate::image::blobs::read_error(target.blobs, blob, e))?;
        if chunk.len() as u64 != want {
            return Err(Error::Invalid(format!(
                "{}: blob {} ends early",
                target.blobs.describe(),
                blob.digest
            )));
        }
        let headers = [
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Content-Range", format!("{sent}-{}", sent + want - 1)),
        ];
        // A retried chunk is sent again from its first byte.
        let open = || -> Result<Box<dyn Read + Send + '_>> {
            progress.rewind(sent);
            Ok(Box::new(ProgressReader::new(chunk.as_slice(), &*progress)))
        };
        let response = registry.send(
            "PATCH",
            &location,
            scope,
            &headers,
            &Payload::Stream(&open, want),
        )?;
        if response.status().as_u16() != 202 {
            return Err(registry.unexpected("uploading a chunk to", repository, response));
        }
        location = location_of(registry, response)?;
        sent += want;
        listener.detail(&format!(
            "{}: {sent} of {} bytes",
            blob.digest.short(),
            blob.size
        ));
    }
    let url = with_digest(&location, &blob.digest);
    let response = registry.send("PUT", &url, scope, &[], &Payload::Empty)?;
    if response.status().as_u16() != 201 {
        return Err(registry.unexpected("finishing an upload to", repository, response));
    }
    progress.finish();
    Ok(())
}

pub(super) fn put_manifest(
    registry: &mut Registry,
    repository: &str,
    reference: &str,
    descriptor: &Descriptor,
    bytes: &[u8],
) -> Result<()> {
    let url = registry.url(&format!("/v2/{repository}/manifests/{reference}"));
    let headers = [("Content-Type", descriptor.media_type.to_string())];
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
fn location_of(registry: &Registry, response: Response) -> Result<String> {
    let location = header(&response, "location").ok_or_else(|| {
        registry.error(
            RegistryErrorKind::Protocol,
            format!(
                "{}: the registry started an upload without a Location header",
                registry.host
            ),
        )
    })?;
    registry.resolve_location(&location)
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}digest={}", encode(&digest.to_string()))
}
