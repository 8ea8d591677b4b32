//! Composing one platform's image: what the container runs (entrypoint, environment, user ...), on top of
//! nothing or of a base image's layers and config, written out as the config and manifest documents.

use std::collections::{BTreeMap, BTreeSet};

use crate::assemble::layer::Layer;
use crate::image::Image;
use crate::oci::platform::Platform;
use crate::oci::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ContainerConfig, Descriptor, DiffIds, Digest,
    Document, EmptyObject, Extra, History, ImageConfig, Manifest, MediaType,
};
use crate::util::timestamp::Timestamp;

/// The PATH that `docker build` sets in a FROM scratch image.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The tool and version, recorded as the comment of every history entry we write.
pub fn tool_comment() -> String {
    format!("zeroimage {}", env!("CARGO_PKG_VERSION"))
}

/// A base image to build on: its configuration and layers (with OCI media types), and what to call it.
#[derive(Clone, Debug)]
pub struct Base {
    /// The name the user gave, e.g. `gcr.io/distroless/static:nonroot`.
    pub name: String,
    /// The digest of the base's manifest (or of its index, for a multi-platform base).
    pub digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
}

/// Everything about an image except its own layers.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub platform: Platform,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    /// Config labels (what `docker inspect` shows).
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    pub created: Timestamp,
    /// Default arguments after the entrypoint.
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `PORT/PROTO` entries.
    pub exposed_ports: BTreeSet<String>,
    pub stop_signal: Option<String>,
    /// What the image is built on; `None` for FROM scratch.
    pub base: Option<Base>,
}

impl ImageSpec {
    /// A FROM scratch image for `platform` that runs `entrypoint`, with docker's default PATH.
    pub fn new(platform: Platform, entrypoint: &str, created: Timestamp) -> ImageSpec {
        ImageSpec {
            platform,
            entrypoint: vec![entrypoint.to_owned()],
            env: vec![DEFAULT_PATH_ENV.to_owned()],
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            created,
            cmd: Vec::new(),
            user: None,
            workdir: None,
            exposed_ports: BTreeSet::new(),
            stop_signal: None,
            base: None,
        }
    }

    /// An image on `base`, as a Dockerfile `FROM base` + `ENTRYPOINT ["entrypoint"]` makes it: the base's
    /// environment (with docker's default PATH when it has none), labels, user, working directory,
    /// ports and stop signal are inherited; `Cmd` is reset; the manifest names the base.
    pub fn on_base(
        platform: Platform,
        entrypoint: &str,
        created: Timestamp,
        base: Base,
    ) -> ImageSpec {
        let inherited = &base.config.config;
        let mut env = inherited.env.clone();
        if !env.iter().any(|e| e.split('=').next() == Some("PATH")) {
            env.insert(0, DEFAULT_PATH_ENV.to_owned());
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_BASE_NAME.to_owned(), base.name.clone());
        annotations.insert(ANNOTATION_BASE_DIGEST.to_owned(), base.digest.to_string());
        ImageSpec {
            platform,
            entrypoint: vec![entrypoint.to_owned()],
            env,
            labels: inherited.labels.clone(),
            annotations,
            created,
            cmd: Vec::new(),
            user: inherited.user.clone().filter(|u| !u.is_empty()),
            workdir: inherited.working_dir.clone().filter(|w| !w.is_empty()),
            exposed_ports: inherited.exposed_ports.keys().cloned().collect(),
            stop_signal: inherited.stop_signal.clone().filter(|s| !s.is_empty()),
            base: Some(base),
        }
    }

    /// Builds the config and manifest documents over the base's layers and `layers` (bottom first),
    /// each of ours with a history entry saying what added it (Dockerfile style, e.g. `COPY app /app`).
    /// Fields of the base's config we do not model (`Volumes`, `Healthcheck` ...) are kept.
    pub fn assemble(&self, layers: &[(Layer, String)]) -> Image {
        let created = self.created.to_string();
        let (mut history, mut diff_ids, mut manifest_layers, config_extra, container_extra) =
            match &self.base {
                Some(base) => (
                    base.config.history.clone(),
                    base.config.rootfs.diff_ids.clone(),
                    base.layers.clone(),
                    base.config.extra.clone(),
                    base.config.config.extra.clone(),
                ),
                None => (
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Extra::new(),
                    Extra::new(),
                ),
            };
        history.extend(layers.iter().map(|(_, created_by)| History {
            created: Some(created.clone()),
            created_by: Some(created_by.clone()),
            comment: Some(tool_comment()),
            ..History::default()
        }));
        diff_ids.extend(layers.iter().map(|(l, _)| l.diff_id.clone()));
        manifest_layers.extend(layers.iter().map(|(l, _)| l.descriptor.clone()));
        let config = Document::new(ImageConfig {
            architecture: self.platform.architecture.clone(),
            config: ContainerConfig {
                entrypoint: self.entrypoint.clone(),
                env: self.env.clone(),
                labels: self.labels.clone(),
                cmd: self.cmd.clone(),
                user: self.user.clone(),
                exposed_ports: self
                    .exposed_ports
                    .iter()
                    .map(|p| (p.clone(), EmptyObject {}))
                    .collect(),
                working_dir: self.workdir.clone(),
                stop_signal: self.stop_signal.clone(),
                extra: container_extra,
            },
            created: Some(created),
            history,
            os: self.platform.os.clone(),
            rootfs: DiffIds {
                kind: "layers".to_owned(),
                diff_ids,
            },
            variant: self.platform.variant.clone(),
            extra: config_extra,
        });
        let manifest = Document::new(Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config: config.descriptor(MediaType::OciConfig),
            layers: manifest_layers,
            subject: None,
            annotations: self.annotations.clone(),
            extra: Extra::new(),
        });
        Image {
            platform: self.platform.clone(),
            config,
            manifest,
        }
    }
}
