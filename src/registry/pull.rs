//! Pulling from a registry: [`RegistrySource`] resolves a tag or digest to the descriptor of a manifest
//! or index once (everything afterwards is read by that digest), then serves documents from the
//! registry's `/manifests/<digest>` and blobs through the blob cache, each checked against its digest.
//! Credentials, TLS, retries and timeouts are those of the push.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::client::{ClientOptions, Registry};
use super::transport::answer::{answered_elsewhere, describe_body};
use super::transport::http::{self, Payload, Response};
use crate::context::Context;
use crate::error::registry::{RegistryError, RegistryErrorKind as Kind};
use crate::error::{Error, Result};
use crate::image::MAX_DOCUMENT;
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::oci::{Descriptor, Digest, MediaType, VerifyingReader};
use crate::registry::cache::{BlobCache, CacheMode};
use crate::report::{Progress, ProgressReader, blob_progress};
use crate::util::sanitize;

/// What we accept for a manifest: OCI and Docker v2 schema 2 manifests and indexes, never schema 1.
pub(super) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
                      application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

/// How to pull.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Connection, TLS and authentication options.
    pub client: ClientOptions,
    /// Where pulled blobs are kept.
    pub cache: CacheMode,
    /// A base image must carry a signature by this key over its digest (`--from-verify-key`).
    pub verify_key: Option<crate::sign::PublicKey>,
}

/// One repository of one registry, as a source of blobs.
pub struct RegistrySource<'l> {
    registry: Mutex<Registry<'l>>,
    host: String,
    repository: String,
    cache: Arc<BlobCache>,
    /// Manifests and indexes read so far, by digest.
    documents: Mutex<BTreeMap<Digest, Arc<[u8]>>>,
    retries: u32,
    cx: Context<'l>,
}

/// Why a download attempt failed: worth another try (the connection broke or stalled) or not.
enum Failed {
    Retry(Error),
    Final(Error),
}

impl<'l> RegistrySource<'l> {
    /// Connects to the registry of `reference` and resolves its tag or digest to the top descriptor (a
    /// manifest or an index, with the media type the registry gave). A pinned digest must match what
    /// the registry serves; a tag is resolved once, and the descriptor carries its digest.
    pub fn resolve(
        reference: &Reference,
        options: &PullOptions,
        cx: &Context<'l>,
    ) -> Result<(RegistrySource<'l>, Descriptor)> {
        let cache = Arc::new(BlobCache::open(&options.cache, cx.cancel())?);
        RegistrySource::resolve_with_cache(reference, options, cache, cx)
    }

    /// [`RegistrySource::resolve`] with a cache already open (several sources may share one;
    /// `options.cache` is not used).
    pub fn resolve_with_cache(
        reference: &Reference,
        options: &PullOptions,
        cache: Arc<BlobCache>,
        cx: &Context<'l>,
    ) -> Result<(RegistrySource<'l>, Descriptor)> {
        let host = reference.domain().to_owned();
        let repository = reference.path().to_owned();
        let place = format!("{host}/{repository}");
        let in_place = |e: Error| within(&place, e);
        let credential = super::cloud::for_registry(&host, &options.client, cx)?;
        let registry =
            Registry::connect(&host, credential, &options.client, cx).map_err(in_place)?;
        let source = RegistrySource {
            registry: Mutex::new(registry),
            host,
            repository,
            cache,
            documents: Mutex::new(BTreeMap::new()),
            retries: options.client.retries,
            cx: cx.clone(),
        };
        let wanted = reference.manifest_reference();
        let (bytes, media_type, digest) = source.fetch_manifest(&wanted, reference.digest())?;
        let descriptor = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
        cx.listener().detail(&format!(
            "{place}: {} is {} {digest}",
            sanitize::outside(&wanted, 200),
            descriptor.media_type
        ));
        source.documents().insert(digest, bytes.into());
        Ok((source, descriptor))
    }

    /// The registry host, as the reference names it (`docker.io`, `localhost:5000`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The cache blobs are kept in.
    pub fn cache(&self) -> &Arc<BlobCache> {
        &self.cache
    }

    fn place(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    fn registry(&self) -> MutexGuard<'_, Registry<'l>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn documents(&self) -> MutexGuard<'_, BTreeMap<Digest, Arc<[u8]>>> {
        self.documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, kind: Kind, message: String) -> Error {
        RegistryError::new(kind, &self.host, format!("{}: {message}", self.place()))
            .in_repository(&self.repository)
            .into()
    }

    /// `GET /v2/<repository>/<what>/<reference>`, with the registry's lock held only for the request.
    fn get(&self, what: &str, reference: &str, headers: &[(&str, String)]) -> Result<Response> {
        let mut registry = self.registry();
        let url = registry.url(&format!("/v2/{}/{what}/{reference}", self.repository));
        registry
            .send("GET", &url, &self.scope(), headers, &Payload::Empty)
            .map_err(|e| within(&self.place(), e))
    }

    /// The error for an answer other than 200 to a GET of `thing`.
    fn refused(&self, thing: &str, response: Response) -> Error {
        let status = response.status().as_u16();
        let registry = self.registry();
        match status {
            401 => within(&self.place(), registry.refused(&response)),
            403 if answered_elsewhere(&response) => {
                within(&self.place(), registry.refused(&response))
            }
            403 => {
                let (body, _) = http::read_limited(response, 64 << 10);
                self.fail(
                    Kind::Denied,
                    format!(
                        "access denied (403); the account may not pull from this repository: {}",
                        describe_body(&body)
                    ),
                )
            }
            404 => {
                let (body, _) = http::read_limited(response, 64 << 10);
                // A manifest is what the user named; a blob is what the registry's manifest named.
                let advice = if thing.starts_with("manifest") {
                    "check the name and tag"
                } else {
                    "the registry lists it in the image but does not have it"
                };
                self.fail(
                    Kind::NotFound,
                    format!(
                        "{thing} not found (404); {advice}: {}",
                        describe_body(&body)
                    ),
                )
            }
            _ => registry.unexpected(&format!("pulling {thing} from"), &self.repository, response),
        }
    }

    /// Fetches a manifest or index by tag or digest: at most 4 MiB, schema 1 refused, the digest
    /// computed over the exact bytes and checked against `expected` and `Docker-Content-Digest`.
    fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, MediaType, Digest)> {
        let shown = format!("`{}`", sanitize::outside(reference, 200));
        let response = self.get("manifests", reference, &[("Accept", ACCEPT.to_owned())])?;
        if response.status().as_u16() != 200 {
            return Err(self.refused(&format!("manifest {shown}"), response));
        }
        let content_type = http::header(&response, "content-type");
        let claimed = http::header(&response, "docker-content-digest");
        let declared_len =
            http::header(&response, "content-length").and_then(|l| l.trim().parse::<u64>().ok());
        let too_large = || {
            self.fail(
                Kind::Protocol,
                format!(
                    "manifest {shown} is larger than {} MiB; refusing to read it",
                    MAX_DOCUMENT >> 20
                ),
            )
        };
        if declared_len.is_some_and(|l| l > MAX_DOCUMENT) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                self.fail(
                    Kind::Unreachable,
                    format!(
                        "reading manifest {shown}: {}",
                        sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                    ),
                )
            })?;
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Err(too_large());
        }
        let media_type = self.media_type_of(&shown, content_type.as_deref(), &bytes)?;
        let hash = |digest: &Digest| {
            let mut hasher = digest.hasher();
            hasher.update(&bytes);
            hasher.finish()
        };
        if let Some(claimed) = claimed {
            let claimed = Digest::parse(claimed.trim()).ok_or_else(|| {
                self.fail(Kind::Protocol, format!(
                    "the registry sent an invalid Docker-Content-Digest `{}` for manifest {shown}",
                    sanitize::outside(&claimed, 200)
                ))
            })?;
            let actual = hash(&claimed);
            if actual != claimed {
                return Err(self.fail(Kind::Corrupt, format!(
                    "the registry served other content for {claimed} (manifest {shown} hashes to \
                     {actual}); refusing it"
                )));
            }
        }
        let digest = match expected {
            Some(expected) => {
                let actual = hash(expected);
                if actual != *expected {
                    return Err(self.fail(Kind::Corrupt, format!(
                        "the registry served other content for {expected} (it hashes to {actual}); \
                         refusing it"
                    )));
                }
                expected.clone()
            }
            None => Digest::of(&bytes),
        };
        Ok((bytes, media_type, digest))
    }

    /// The media type of a manifest: the `Content-Type` the registry sent when it names a manifest or
    /// an index, else the document's own `mediaType`, else its shape. Schema 1 is refused.
    fn media_type_of(
        &self,
        shown: &str,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<MediaType> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<serde_json::Value>,
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            config: Option<serde_json::Value>,
        }
        let declared =
            content_type.map(|t| MediaType::parse(t.split(';').next().unwrap_or(t).trim()));
        let probe: Option<Probe> = serde_json::from_slice(bytes).ok();
        let schema1 = declared == Some(MediaType::DockerSchema1)
            || probe
                .as_ref()
                .and_then(|p| p.schema_version.as_ref())
                .and_then(serde_json::Value::as_u64)
                == Some(1);
        if schema1 {
            return Err(self.fail(
                Kind::Unsupported,
                format!(
                    "manifest {shown} is a Docker schema 1 manifest, which is obsolete and not \
                 supported; push the image again with a current docker or skopeo (schema 2 or OCI)"
                ),
            ));
        }
        let usable = |t: &MediaType| t.is_index() || t.is_manifest();
        if let Some(declared) = declared.as_ref().filter(|t| usable(t)) {
            return Ok(declared.clone());
        }
        let Some(probe) = probe else {
            return Err(self.fail(Kind::Protocol, format!("manifest {shown} is not JSON")));
        };
        if let Some(own) = probe.media_type.as_deref().map(MediaType::parse)
            && usable(&own)
        {
            return Ok(own);
        }
        match (probe.manifests.is_some(), probe.config.is_some()) {
            (true, false) => Ok(MediaType::OciIndex),
            (false, true) => Ok(MediaType::OciManifest),
            _ => Err(self.fail(
                Kind::Unsupported,
                format!(
                    "{shown} is not an image manifest or index (media type `{}`)",
                    sanitize::outside(
                        declared.as_ref().map_or("none", |t| t.as_str()),
                        sanitize::EXCERPT
                    )
                ),
            )),
        }
    }

    /// The document a tag names, its bytes read whole (at most [`MAX_DOCUMENT`]), or `None` when
    /// the tag does not exist: cosign's `.sig` and `.att` tags, the referrers fallback tag.
    pub fn optional_document(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        let shown = format!("`{}`", sanitize::outside(tag, 200));
        let response = self.get("manifests", tag, &[("Accept", ACCEPT.to_owned())])?;
        match response.status().as_u16() {
            404 => {
                let _ = http::read_limited(response, 64 << 10);
                return Ok(None);
            }
            200 => {}
            _ => return Err(self.refused(&format!("manifest {shown}"), response)),
        }
        let (bytes, more) = http::read_limited(response, MAX_DOCUMENT);
        if more {
            return Err(self.fail(
                Kind::Protocol,
                format!(
                    "manifest {shown} is larger than {} MiB; refusing to read it",
                    MAX_DOCUMENT >> 20
                ),
            ));
        }
        Ok(Some(bytes))
    }

    /// What the registry lists as referring to `subject`: its referrers API's answer, else the
    /// index under the fallback tag `sha256-<hex>`; at most `limit` descriptors.
    pub fn referrers(&self, subject: &Digest, limit: usize) -> Result<Vec<Descriptor>> {
        let response = self.get(
            "referrers",
            &subject.to_string(),
            &[("Accept", MediaType::OciIndex.to_string())],
        )?;
        let api = response.status().as_u16() == 200
            && http::header(&response, "content-type")
                .is_some_and(|c| c.starts_with(MediaType::OciIndex.as_str()));
        let bytes = if api {
            let (bytes, more) = http::read_limited(response, MAX_DOCUMENT);
            if more {
                return Err(self.fail(
                    Kind::Protocol,
                    format!("the referrers of {subject} are listed in more than 4 MiB"),
                ));
            }
            bytes
        } else {
            let _ = http::read_limited(response, 64 << 10);
            let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
            match self.optional_document(&tag)? {
                Some(bytes) => bytes,
                None => return Ok(Vec::new()),
            }
        };
        let index: crate::oci::Index = serde_json::from_slice(&bytes).map_err(|e| {
            self.fail(
                Kind::Protocol,
                format!(
                    "the referrers of {subject} are not an image index ({})",
                    sanitize::outside(&e.to_string(), sanitize::EXCERPT)
                ),
            )
        })?;
        if index.manifests.len() > limit {
            return Err(self.fail(
                Kind::Protocol,
                format!(
                    "{subject} has {} referrers listed; at most {limit} are read",
                    index.manifests.len()
                ),
            ));
        }
        Ok(index.manifests)
    }

    /// A manifest or index by digest: from memory, else from the registry.
    fn open_document(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let known = self.documents().get(&descriptor.digest).cloned();
        let bytes = if let Some(bytes) = known {
            bytes
        } else {
            let (bytes, _, digest) =
                self.fetch_manifest(&descriptor.digest.to_string(), Some(&descriptor.digest))?;
            let bytes: Arc<[u8]> = bytes.into();
            self.documents().insert(digest, bytes.clone());
            bytes
        };
        if bytes.len() as u64 != descriptor.size {
            return Err(self.fail(
                Kind::Corrupt,
                format!(
                    "manifest {} has {} bytes, but its descriptor says {}",
                    descriptor.digest,
                    bytes.len(),
                    descriptor.size
                ),
            ));
        }
        Ok(Box::new(VerifyingReader::new(
            io::Cursor::new(bytes),
            descriptor.digest.clone(),
            descriptor.size,
        )))
    }

    /// A blob: from the cache, else downloaded into it (retried when the transfer breaks).
    fn open_blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        if let Some(reader) = self.cache.get(descriptor, &self.cx)? {
            self.cx.listener().detail(&format!(
                "{} from the cache ({} bytes)",
                descriptor.digest.short(),
                descriptor.size
            ));
            return Ok(reader);
        }
        let progress = blob_progress(
            self.cx.listener(),
            "Downloading",
            &descriptor.digest,
            descriptor.size,
        );
        let mut attempt = 0;
        loop {
            self.cx.cancel().check()?;
            match self.download(descriptor, &*progress) {
                Ok(reader) => {
                    progress.finish();
                    self.cx.listener().detail(&format!(
                        "{} downloaded ({} bytes)",
                        descriptor.digest.short(),
                        descriptor.size
                    ));
                    return Ok(reader);
                }
                Err(Failed::Retry(error)) if attempt < self.retries => {
                    attempt += 1;
                    let wait = Duration::from_millis(250 * (1 << attempt.min(6)));
                    self.cx.listener().status(
                        "Retrying",
                        &format!(
                            "{error}; waiting {:.1} s (attempt {attempt} of {})",
                            wait.as_secs_f64(),
                            self.retries
                        ),
                    );
                    self.cx.cancel().sleep(wait)?;
                }
                Err(Failed::Retry(error) | Failed::Final(error)) => return Err(error),
            }
        }
    }

    /// One attempt at `GET /v2/<repository>/blobs/<digest>` (redirects to blob storage followed
    /// without credentials), streamed into the cache while hashing.
    fn download(
        &self,
        descriptor: &Descriptor,
        progress: &dyn Progress,
    ) -> std::result::Result<Box<dyn Read + Send>, Failed> {
        let digest = &descriptor.digest;
        let response = self
            .get("blobs", &digest.to_string(), &[])
            .map_err(Failed::Final)?;
        if response.status().as_u16() != 200 {
            return Err(Failed::Final(
                self.refused(&format!("blob {digest}"), response),
            ));
        }
        let length =
            http::header(&response, "content-length").and_then(|l| l.trim().parse::<u64>().ok());
        if let Some(length) = length.filter(|l| *l != descriptor.size) {
            return Err(Failed::Final(self.fail(
                Kind::Protocol,
                format!(
                    "the registry sent {length} bytes for blob {digest}, which has {}",
                    descriptor.size
                ),
            )));
        }
        let retry = std::cell::Cell::new(false);
        let on_read_error = |e: io::Error| {
            if self.cx.cancel().is_cancelled() {
                return Error::Interrupted;
            }
            use io::ErrorKind::InvalidData;
            let corrupt = e.kind() == InvalidData;
            retry.set(!corrupt);
            let message = sanitize::outside(&e.to_string(), sanitize::EXCERPT);
            if corrupt {
                self.fail(
                    Kind::Corrupt,
                    format!(
                        "{message}; the registry served corrupt content, and nothing was cached"
                    ),
                )
            } else {
                self.fail(
                    Kind::Unreachable,
                    format!("downloading blob {digest}: {message}"),
                )
            }
        };
        progress.rewind(0);
        let mut body = ProgressReader::new(response.into_body().into_reader(), progress);
        match self
            .cache
            .put(descriptor, &mut body, &on_read_error, self.cx.cancel())
        {
            Ok(reader) => Ok(reader),
            Err(error) if retry.get() => Err(Failed::Retry(error)),
            Err(error) => Err(Failed::Final(error)),
        }
    }
}

impl BlobSource for RegistrySource<'_> {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let media_type = &descriptor.media_type;
        if self.documents().contains_key(&descriptor.digest)
            || media_type.is_index()
            || media_type.is_manifest()
            || *media_type == MediaType::DockerSchema1
        {
            self.open_document(descriptor)
        } else {
            self.open_blob(descriptor)
        }
    }

    fn describe(&self) -> String {
        self.place()
    }
}

/// Names the registry and repository (`place`, `host/repository`) in a registry error that does not
/// already: one whose [`RegistryError::repository`] is unset (an error for a repository names it in
/// its message).
fn within(place: &str, error: Error) -> Error {
    match error {
        Error::Registry(e) if e.repository.is_none() => {
            let repository = place.split_once('/').map_or("", |(_, r)| r);
            let mut e = e.context(&format!("pulling {place}"));
            if !repository.is_empty() {
                e = e.in_repository(repository);
            }
            Error::Registry(Box::new(e))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_placed_by_its_repository_not_by_its_text() {
        let place = "r.example/team/app";
        // About another repository whose name starts like ours: it does not name ours.
        let elsewhere: Error = RegistryError::new(
            Kind::Denied,
            "r.example",
            "r.example/team/app-cache refused the mount",
        )
        .into();
        let Error::Registry(placed) = within(place, elsewhere) else {
            panic!("not a registry error");
        };
        assert_eq!(placed.repository.as_deref(), Some("team/app"));
        assert_eq!(
            placed.to_string(),
            "pulling r.example/team/app: r.example/team/app-cache refused the mount"
        );
        // About our repository: left as it is.
        let ours: Error =
            RegistryError::new(Kind::NotFound, "r.example", "r.example/team/app: no tag")
                .in_repository("team/app")
                .into();
        let Error::Registry(kept) = within(place, ours) else {
            panic!("not a registry error");
        };
        assert_eq!(kept.to_string(), "r.example/team/app: no tag");
    }
}
