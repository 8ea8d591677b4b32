//! Base images: where one comes from (a registry, an image archive, an OCI layout directory), the
//! image it resolves to (a tag is resolved once; the digest is used from then on), and the base for each
//! platform being built, matched the way containerd matches platforms.

use std::path::{Path, PathBuf};

use crate::assemble::compose::Base;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::image::{ManifestNode, Stored, read_config};
use crate::layout::Layout;
use crate::oci::platform::Platform;
use crate::oci::{Descriptor, Digest, MediaType};
use crate::registry::pull::{PullOptions, RegistrySource};
use crate::report::Listener;
use crate::util::sanitize;

/// What the user named as the base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseRef {
    /// `--from REF`: a registry image, by tag or pinned by digest.
    Registry(Reference),
    /// `--from-archive PATH[:TAG]`: an oci-archive, a docker-archive or an OCI layout directory, and the
    /// name of one image in it when it holds several.
    Archive {
        /// The archive file or layout directory.
        path: PathBuf,
        /// The image's name in it, when it holds several.
        tag: Option<String>,
    },
}

impl BaseRef {
    /// Parses `--from-archive PATH[:TAG]`: the path is the longest prefix that exists (paths may hold
    /// `:`, and so may names such as `example.com/base:1`); what follows names the image.
    pub fn archive(spec: &str) -> Result<BaseRef> {
        if spec.is_empty() {
            return Err(Error::Invalid(
                "--from-archive needs a path: PATH[:TAG]".to_owned(),
            ));
        }
        let split = spec
            .match_indices(':')
            .rev()
            .map(|(i, _)| (&spec[..i], &spec[i + 1..]))
            .find(|(path, tag)| !path.is_empty() && !tag.is_empty() && Path::new(path).exists());
        Ok(match split {
            Some(_) if Path::new(spec).exists() => BaseRef::Archive {
                path: PathBuf::from(spec),
                tag: None,
            },
            Some((path, tag)) => BaseRef::Archive {
                path: PathBuf::from(path),
                tag: Some(tag.to_owned()),
            },
            None => BaseRef::Archive {
                path: PathBuf::from(spec),
                tag: None,
            },
        })
    }

    /// Parses `--from REF`: `[registry/]repository[:tag][@digest]`.
    pub fn registry(spec: &str) -> Result<BaseRef> {
        Reference::parse_pinnable(spec).map(BaseRef::Registry)
    }
}

/// A base image, resolved: the image its reference names (a tag is resolved once; the digest is used
/// from then on), and where it came from.
pub struct BaseImage<'l> {
    /// The image, named as the user gave it (as recorded in `org.opencontainers.image.base.name`);
    /// from a registry, its blobs are known to be in its repository (a push to the same registry
    /// mounts them instead of uploading them).
    pub image: Stored<'l>,
    /// The archive file or layout directory, when the base comes from one.
    local: Option<PathBuf>,
}

impl<'l> BaseImage<'l> {
    /// Resolves `base`: a registry image's tag is resolved to a digest and its manifests read (blobs
    /// come later, through the cache, when they are needed); an archive or layout directory is indexed.
    pub fn open(base: &BaseRef, pull: &PullOptions, cx: &Context<'l>) -> Result<BaseImage<'l>> {
        match base {
            BaseRef::Archive { path, .. } if pull.verify_key.is_some() => Err(Error::input(
                path,
                "--from-verify-key checks the signatures a registry holds, and an archive base \
                 has none there; push the base and use --from REF, or leave out --from-verify-key",
            )),
            BaseRef::Archive { path, tag } => Self::open_archive(path, tag.as_deref(), cx),
            BaseRef::Registry(reference) => {
                let (source, top) = RegistrySource::resolve(reference, pull, cx)?;
                if let Some(key) = &pull.verify_key {
                    let tree = crate::image::ImageTree::read(&source, &top)?;
                    let repository = format!("{}/{}", source.host(), source.repository());
                    let verified = crate::image::signatures::verify(
                        &source,
                        &tree,
                        &repository,
                        key,
                        false,
                    )
                    .map_err(|e| e.context("the base image is refused (--from-verify-key)"))?;
                    for line in &verified.signatures {
                        cx.listener().status("Verified", &format!("base: {line}"));
                    }
                }
                let image = Self::read(reference.full(), Box::new(source), &top, cx.listener())?;
                Ok(BaseImage {
                    image: image.held_by(reference.domain(), reference.path()),
                    local: None,
                })
            }
        }
    }

    /// Opens an archive or layout directory base.
    pub fn open_archive(path: &Path, tag: Option<&str>, cx: &Context) -> Result<BaseImage<'l>> {
        let layout = Layout::open(path, cx.cancel())?.ok_or_else(|| {
            Error::input(
                path,
                "no such base image archive or OCI layout directory (--from-archive)",
            )
        })?;
        let top = layout.select(tag)?.descriptor.clone();
        let name = match tag {
            Some(tag) => format!("{}:{tag}", path.display()),
            None => path.display().to_string(),
        };
        Ok(BaseImage {
            image: Self::read(name, Box::new(layout), &top, cx.listener())?,
            local: Some(path.to_owned()),
        })
    }

    fn read(
        name: String,
        source: Box<dyn BlobSource + 'l>,
        top: &Descriptor,
        listener: &dyn Listener,
    ) -> Result<Stored<'l>> {
        if !(top.media_type.is_index() || top.media_type.is_manifest()) {
            return Err(Error::Invalid(format!(
                "base {}: {} is a `{}`, not an image or an image index",
                sanitize::outside(&name, sanitize::EXCERPT),
                top.digest,
                sanitize::outside(top.media_type.as_str(), 100)
            )));
        }
        let image = Stored::read(name, source, top)?;
        listener.status(
            "Resolved",
            &format!("base {} ({})", image.name, image.digest()),
        );
        Ok(image)
    }

    /// The name the user gave.
    pub fn name(&self) -> &str {
        &self.image.name
    }

    /// The digest of what the name resolved to (a manifest, or an index for a multi-platform base).
    pub fn digest(&self) -> &Digest {
        self.image.digest()
    }

    /// Where the base's blobs are read from.
    pub fn source(&self) -> &dyn BlobSource {
        self.image.blobs.as_ref()
    }

    /// The base for `platform`: the manifest an index offers for exactly that platform (arm variants
    /// matched as containerd does: arm64 means v8, arm means v7), or the single manifest when its
    /// config says that platform. Its layers keep their bytes and digests; only Docker media types
    /// become their OCI equivalents.
    pub(crate) fn for_platform(&self, platform: &Platform) -> Result<Base> {
        let node = self.node_for(platform)?;
        let config = read_config(self.source(), node)?;
        let value = config.value().clone();
        let offered = Platform {
            architecture: value.architecture.clone(),
            os: value.os.clone(),
            variant: value.variant.clone(),
            os_version: None,
            os_features: Vec::new(),
        };
        if !platform.matches(&offered) {
            return Err(Error::Invalid(format!(
                "base {} is {} (its config says so), but the image being built is {platform}; \
                 choose a base for {platform}",
                sanitize::outside(&self.image.name, sanitize::EXCERPT),
                describe(&offered)
            )));
        }
        let manifest = node.manifest.value();
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let media_type = layer.media_type.to_oci_layer().ok_or_else(|| {
                let why = match layer.media_type {
                    MediaType::DockerForeignLayer | MediaType::OciNondistributableLayer(_) => {
                        "a foreign (non-distributable) layer, which must be fetched from elsewhere \
                         and cannot be copied into an image: such bases are Windows images"
                    }
                    _ => "not a filesystem layer we can copy",
                };
                Error::Invalid(format!(
                    "base {}: layer {} is `{}`, {why}",
                    sanitize::outside(&self.image.name, sanitize::EXCERPT),
                    layer.digest,
                    sanitize::outside(layer.media_type.as_str(), 100)
                ))
            })?;
            let mut copied = Descriptor::new(media_type, layer.digest.clone(), layer.size);
            copied.annotations = layer.annotations.clone();
            layers.push(copied);
        }
        if value.rootfs.diff_ids.len() != layers.len() {
            return Err(Error::Invalid(format!(
                "base {}: its config lists {} layer diff ids for {} layers; the image is damaged",
                sanitize::outside(&self.image.name, sanitize::EXCERPT),
                value.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        Ok(Base {
            name: self.image.name.clone(),
            digest: self.image.digest().clone(),
            config: value,
            layers,
        })
    }

    /// The platforms the base offers, in its order: its index's entries (attestation entries, which
    /// say `unknown/unknown`, included), or the one its config says.
    pub fn platforms(&self) -> Result<Vec<Platform>> {
        if self.image.tree.index.is_some() {
            return Ok(self
                .image
                .tree
                .manifests
                .iter()
                .filter_map(|node| node.descriptor.platform.clone())
                .collect());
        }
        let config = read_config(self.source(), &self.image.tree.manifests[0])?;
        let value = config.value();
        Ok(vec![Platform {
            architecture: value.architecture.clone(),
            os: value.os.clone(),
            variant: value.variant.clone(),
            os_version: None,
            os_features: Vec::new(),
        }])
    }

    fn node_for(&self, platform: &Platform) -> Result<&ManifestNode> {
        if self.image.tree.index.is_none() {
            return Ok(&self.image.tree.manifests[0]);
        }
        let found = self.image.tree.manifests.iter().find(|node| {
            node.descriptor
                .platform
                .as_ref()
                .is_some_and(|offered| platform.matches(offered))
        });
        found.ok_or_else(|| {
            let offered: Vec<String> = self
                .image
                .tree
                .manifests
                .iter()
                .filter_map(|n| n.descriptor.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(describe)
                .collect();
            Error::Invalid(format!(
                "base {} has no image for {platform}; it offers {}",
                sanitize::outside(&self.image.name, sanitize::EXCERPT),
                if offered.is_empty() {
                    "no platform at all".to_owned()
                } else {
                    sanitize::outside(&offered.join(", "), sanitize::EXCERPT)
                }
            ))
        })
    }

    /// The files on this machine the base is read from, each with what it is (for messages): the
    /// archive, or the layout's `index.json`, `oci-layout` and the blobs of this image.
    pub(crate) fn local_files(&self) -> Vec<(PathBuf, &'static str)> {
        let Some(path) = &self.local else {
            return Vec::new();
        };
        if !path.is_dir() {
            return vec![(path.clone(), "the base image archive (--from-archive)")];
        }
        const LAYOUT: &str = "a file of the base image layout (--from-archive)";
        let mut files = vec![
            (path.join("index.json"), LAYOUT),
            (path.join("oci-layout"), LAYOUT),
        ];
        let documents = std::iter::once(&self.image.tree.top.digest).chain(
            self.image
                .tree
                .manifests
                .iter()
                .map(|n| &n.descriptor.digest),
        );
        for digest in documents.cloned().chain(self.image.blob_digests()) {
            files.push((path.join(digest.blob_path()), LAYOUT));
        }
        files
    }
}

/// `os/arch[/variant]` of a platform read from outside, for messages.
fn describe(platform: &Platform) -> String {
    let mut text = format!("{}/{}", platform.os, platform.architecture);
    if let Some(variant) = platform.variant.as_deref().filter(|v| !v.is_empty()) {
        text.push('/');
        text.push_str(variant);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_specs_split_a_tag_only_when_the_path_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let with_colon = dir.path().join("a:b.tar");
        std::fs::write(&with_colon, b"").unwrap();
        assert_eq!(
            BaseRef::archive(&with_colon.display().to_string()).unwrap(),
            BaseRef::Archive {
                path: with_colon.clone(),
                tag: None
            }
        );
        let plain = dir.path().join("base.tar");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(
            BaseRef::archive(&format!("{}:example.com/base:1", plain.display())).unwrap(),
            BaseRef::Archive {
                path: plain.clone(),
                tag: Some("example.com/base:1".into())
            }
        );
        assert_eq!(
            BaseRef::archive(&format!("{}:1.0", with_colon.display())).unwrap(),
            BaseRef::Archive {
                path: with_colon.clone(),
                tag: Some("1.0".into())
            }
        );
        assert_eq!(
            BaseRef::archive("missing.tar:1.0").unwrap(),
            BaseRef::Archive {
                path: "missing.tar:1.0".into(),
                tag: None
            },
            "a missing path is reported whole"
        );
        assert!(BaseRef::archive("").is_err());
    }
}
