//! Assembling an image from its layers: the config, then the manifest that points at it.

use std::collections::{BTreeMap, BTreeSet};

use crate::layer::Layer;
use crate::oci::{
    ContainerConfig, Descriptor, Digest, EmptyObject, History, ImageConfig, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_MANIFEST, Manifest, RootFs, to_json_bytes,
};
use crate::platform::Platform;
use crate::timestamp::Timestamp;

/// The PATH that `docker build` sets in a FROM scratch image.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The tool and version, recorded as the comment of every history entry we write.
pub fn tool_comment() -> String {
    format!("zeroimage {}", env!("CARGO_PKG_VERSION"))
}

/// Everything about an image except its layers.
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
}

impl ImageSpec {
    /// An image for `platform` that runs `entrypoint`, with docker's default PATH.
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
        }
    }

    /// Builds the config and manifest documents over `layers` (bottom first), each with a history
    /// entry saying what added it (Dockerfile style, e.g. `COPY app /app`).
    pub fn assemble(&self, layers: &[(Layer, String)]) -> Image {
        let created = self.created.to_string();
        let config = ImageConfig {
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
            },
            created: created.clone(),
            history: layers
                .iter()
                .map(|(_, created_by)| History {
                    created: created.clone(),
                    created_by: created_by.clone(),
                    comment: Some(tool_comment()),
                })
                .collect(),
            os: self.platform.os.clone(),
            rootfs: RootFs {
                kind: "layers".to_owned(),
                diff_ids: layers.iter().map(|(l, _)| l.diff_id.clone()).collect(),
            },
            variant: self.platform.variant.clone(),
        };
        let config = Blob::json(MEDIA_TYPE_CONFIG, &config);
        let layer_descriptors: Vec<Descriptor> =
            layers.iter().map(|(l, _)| l.descriptor.clone()).collect();
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST.to_owned(),
            config: config.descriptor.clone(),
            layers: layer_descriptors.clone(),
            annotations: self.annotations.clone(),
        };
        Image {
            platform: self.platform.clone(),
            config,
            manifest: Blob::json(MEDIA_TYPE_MANIFEST, &manifest),
            layers: layer_descriptors,
        }
    }
}

/// A JSON document as stored: the exact bytes and the descriptor that hashes them.
#[derive(Clone, Debug)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub descriptor: Descriptor,
}

impl Blob {
    /// Serializes once, then hashes and keeps those same bytes.
    pub fn json<T: serde::Serialize>(media_type: &str, doc: &T) -> Blob {
        let bytes = to_json_bytes(doc);
        let descriptor = Descriptor::new(media_type, Digest::of(&bytes), bytes.len() as u64);
        Blob { bytes, descriptor }
    }
}

/// One platform's image: config and manifest blobs plus the descriptors of its layers.
#[derive(Clone, Debug)]
pub struct Image {
    pub platform: Platform,
    pub config: Blob,
    pub manifest: Blob,
    pub layers: Vec<Descriptor>,
}
