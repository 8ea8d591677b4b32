//! Media types of the documents and layers we read and write: OCI and Docker v2 schema 2.

use std::fmt;

/// How a layer's tar is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    /// Uncompressed tar.
    None,
    /// gzip-compressed tar.
    Gzip,
    /// zstd-compressed tar.
    Zstd,
}

/// A media type, known or not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaType {
    /// `application/vnd.oci.image.index.v1+json`.
    OciIndex,
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.oci.image.config.v1+json`.
    OciConfig,
    /// The empty JSON blob `{}` of OCI 1.1 artifacts.
    OciEmpty,
    /// An OCI image layer, `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`.
    OciLayer(Compression),
    /// OCI's (deprecated) non-distributable layers.
    OciNondistributableLayer(Compression),
    /// A Docker manifest list (schema 2).
    DockerManifestList,
    /// A Docker image manifest (schema 2).
    DockerManifest,
    /// A Docker image config.
    DockerConfig,
    /// A Docker gzip-compressed layer.
    DockerLayer,
    /// Docker's foreign layers (Windows base layers, fetched from elsewhere).
    DockerForeignLayer,
    /// Docker's obsolete schema 1 manifests.
    DockerSchema1,
    /// Any other media type, as written.
    Other(String),
}

impl MediaType {
    /// The media type a string names; unknown ones become [`MediaType::Other`].
    pub fn parse(text: &str) -> MediaType {
        use Compression::{Gzip, None, Zstd};
        match text {
            "application/vnd.oci.image.index.v1+json" => MediaType::OciIndex,
            "application/vnd.oci.image.manifest.v1+json" => MediaType::OciManifest,
            "application/vnd.oci.image.config.v1+json" => MediaType::OciConfig,
            "application/vnd.oci.empty.v1+json" => MediaType::OciEmpty,
            "application/vnd.oci.image.layer.v1.tar" => MediaType::OciLayer(None),
            "application/vnd.oci.image.layer.v1.tar+gzip" => MediaType::OciLayer(Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd" => MediaType::OciLayer(Zstd),
            "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
                MediaType::OciNondistributableLayer(None)
            }
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
                MediaType::OciNondistributableLayer(Gzip)
            }
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                MediaType::OciNondistributableLayer(Zstd)
            }
            "application/vnd.docker.distribution.manifest.list.v2+json" => {
                MediaType::DockerManifestList
            }
            "application/vnd.docker.distribution.manifest.v2+json" => MediaType::DockerManifest,
            "application/vnd.docker.container.image.v1+json" => MediaType::DockerConfig,
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => MediaType::DockerLayer,
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                MediaType::DockerForeignLayer
            }
            "application/vnd.docker.distribution.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v1+prettyjws" => {
                MediaType::DockerSchema1
            }
            other => MediaType::Other(other.to_owned()),
        }
    }

    /// The media type string.
    pub fn as_str(&self) -> &str {
        use Compression::{Gzip, None, Zstd};
        match self {
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::OciConfig => "application/vnd.oci.image.config.v1+json",
            MediaType::OciEmpty => "application/vnd.oci.empty.v1+json",
            MediaType::OciLayer(None) => "application/vnd.oci.image.layer.v1.tar",
            MediaType::OciLayer(Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            MediaType::OciLayer(Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            MediaType::OciNondistributableLayer(None) => {
                "application/vnd.oci.image.layer.nondistributable.v1.tar"
            }
            MediaType::OciNondistributableLayer(Gzip) => {
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            }
            MediaType::OciNondistributableLayer(Zstd) => {
                "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            }
            MediaType::DockerManifestList => {
                "application/vnd.docker.distribution.manifest.list.v2+json"
            }
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
            MediaType::DockerConfig => "application/vnd.docker.container.image.v1+json",
            MediaType::DockerLayer => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            MediaType::DockerForeignLayer => {
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            }
            MediaType::DockerSchema1 => "application/vnd.docker.distribution.manifest.v1+json",
            MediaType::Other(text) => text,
        }
    }

    /// An image index or a Docker manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// An image manifest (OCI or Docker v2 schema 2).
    pub fn is_manifest(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// An image configuration.
    pub fn is_config(&self) -> bool {
        matches!(self, MediaType::OciConfig | MediaType::DockerConfig)
    }

    /// A filesystem layer we can copy and read: its compression. Foreign and non-distributable layers
    /// are not, and neither is anything unknown.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self {
            MediaType::OciLayer(c) => Some(*c),
            MediaType::DockerLayer => Some(Compression::Gzip),
            _ => None,
        }
    }

    /// The OCI media type for the same layer bytes (a Docker gzip layer is an OCI tar+gzip layer).
    pub fn to_oci_layer(&self) -> Option<MediaType> {
        self.layer_compression().map(MediaType::OciLayer)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MediaType, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(MediaType::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips() {
        use Compression::*;
        let known = [
            MediaType::OciIndex,
            MediaType::OciManifest,
            MediaType::OciConfig,
            MediaType::OciEmpty,
            MediaType::OciLayer(None),
            MediaType::OciLayer(Gzip),
            MediaType::OciLayer(Zstd),
            MediaType::OciNondistributableLayer(None),
            MediaType::OciNondistributableLayer(Gzip),
            MediaType::OciNondistributableLayer(Zstd),
            MediaType::DockerManifestList,
            MediaType::DockerManifest,
            MediaType::DockerConfig,
            MediaType::DockerLayer,
            MediaType::DockerForeignLayer,
            MediaType::DockerSchema1,
        ];
        for media_type in known {
            assert_eq!(MediaType::parse(media_type.as_str()), media_type);
        }
        assert_eq!(
            MediaType::parse("application/spdx+json"),
            MediaType::Other("application/spdx+json".into())
        );
    }

    #[test]
    fn docker_layers_are_oci_gzip_layers() {
        assert_eq!(
            MediaType::DockerLayer.to_oci_layer(),
            Some(MediaType::OciLayer(Compression::Gzip))
        );
        assert_eq!(MediaType::DockerForeignLayer.layer_compression(), None);
        assert!(MediaType::DockerManifestList.is_index());
        assert!(MediaType::DockerManifest.is_manifest());
    }
}
