//! Base images written byte by byte into an OCI layout: layers whose tar entries, compression, media
//! type and diff id the test chooses, including damaged and hostile ones no tool would make (paths
//! climbing out of the root, a zstd blob labelled gzip, a config listing another diff id, a
//! decompression bomb).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";

/// The tag of the one image [`layout`] writes.
pub const TAG: &str = "base";

pub fn sha256(bytes: &[u8]) -> String {
    zeroimage::oci::Digest::of(bytes).to_string()
}

/// A layer's tar, entries written as given (no path checks, so tests can write hostile ones).
#[derive(Default)]
pub struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    /// A GNU header for `path` (up to 100 bytes, written raw), with `size` bytes of data to follow.
    fn header(mut self, path: &str, kind: tar::EntryType, link: &str, size: u64) -> Tar {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self
    }

    fn pad(mut self) -> Tar {
        self.bytes.resize(self.bytes.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn file(self, path: &str, data: &str) -> Tar {
        let mut tar = self.header(path, tar::EntryType::Regular, "", data.len() as u64);
        tar.bytes.extend_from_slice(data.as_bytes());
        tar.pad()
    }

    pub fn dir(self, path: &str) -> Tar {
        self.header(path, tar::EntryType::Directory, "", 0)
    }

    pub fn symlink(self, path: &str, target: &str) -> Tar {
        self.header(path, tar::EntryType::Symlink, target, 0)
    }

    /// The tar with its end-of-archive blocks.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        bytes.extend_from_slice(&[0; 1024]);
        bytes
    }

    /// Only the header of a regular file of `size` bytes (a bomb's data follows in other frames).
    pub fn file_header(path: &str, size: u64) -> Vec<u8> {
        Tar::new()
            .header(path, tar::EntryType::Regular, "", size)
            .bytes
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).unwrap()
}

/// One layer of a crafted image: its blob, the media type its manifest gives it and the diff id its
/// config lists.
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: String,
    pub diff_id: String,
}

impl Layer {
    pub fn gzip(tar: &Tar) -> Layer {
        let tar = tar.bytes();
        Layer {
            blob: gzip(&tar),
            media_type: GZIP.into(),
            diff_id: sha256(&tar),
        }
    }

    pub fn zstd(tar: &Tar) -> Layer {
        let tar = tar.bytes();
        Layer {
            blob: zstd(&tar),
            media_type: ZSTD.into(),
            diff_id: sha256(&tar),
        }
    }

    pub fn plain(tar: &Tar) -> Layer {
        let tar = tar.bytes();
        Layer {
            diff_id: sha256(&tar),
            blob: tar,
            media_type: PLAIN.into(),
        }
    }

    /// The same blob under another media type.
    pub fn labelled(mut self, media_type: &str) -> Layer {
        media_type.clone_into(&mut self.media_type);
        self
    }

    /// The same blob, with another diff id in the config.
    pub fn with_diff_id(mut self, diff_id: &str) -> Layer {
        diff_id.clone_into(&mut self.diff_id);
        self
    }
}

/// Writes an OCI layout `dir` holding one linux/amd64 image tagged [`TAG`] with `layers`; the config
/// lists `diff_ids` when given, else each layer's own. Returns `dir`.
pub fn layout_with(dir: &Path, layers: &[Layer], diff_ids: Option<Vec<String>>) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        serde_json::json!({"digest": digest, "size": bytes.len()})
    };
    let diff_ids =
        diff_ids.unwrap_or_else(|| layers.iter().map(|layer| layer.diff_id.clone()).collect());
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut config_descriptor = put(&config);
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|layer| {
            let mut descriptor = put(&layer.blob);
            descriptor["mediaType"] = layer.media_type.clone().into();
            descriptor
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": layer_descriptors,
    }))
    .unwrap();
    let mut manifest_descriptor = put(&manifest);
    manifest_descriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    manifest_descriptor["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": TAG});
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [manifest_descriptor],
        }))
        .unwrap(),
    )
    .unwrap();
    dir.to_owned()
}

/// [`layout_with`] the layers' own diff ids.
pub fn layout(dir: &Path, layers: &[Layer]) -> PathBuf {
    layout_with(dir, layers, None)
}

/// The `--from-archive` value naming the image of a crafted layout.
pub fn from(layout: &Path) -> String {
    format!("{}:{TAG}", layout.display())
}

/// A decompression bomb: one file of `chunks` × 64 MiB of zeros, its data made of one compressed
/// frame (zstd) or member (gzip) repeated, so that a blob of a few hundred KB expands to GiBs. The
/// diff id is the true one when `true_diff_id` (hashing what it expands to takes a while), else a
/// made-up one.
pub fn bomb(media_type: &str, chunks: u64, true_diff_id: bool) -> Layer {
    const CHUNK: usize = 64 << 20;
    let compress = |bytes: &[u8]| match media_type {
        ZSTD => zstd(bytes),
        GZIP => {
            // The best level: deflate's largest ratio, about 1000 to 1.
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(bytes).unwrap();
            gz.finish().unwrap()
        }
        other => panic!("no bomb for {other}"),
    };
    let header = Tar::file_header("bomb", chunks * CHUNK as u64);
    let zeros = vec![0u8; CHUNK];
    let frame = compress(&zeros);
    let end = [0u8; 1024];
    let mut hasher = Sha256::new();
    let mut blob = compress(&header);
    hasher.update(&header);
    for _ in 0..chunks {
        blob.extend_from_slice(&frame);
        if true_diff_id {
            hasher.update(&zeros);
        }
    }
    blob.extend(compress(&end));
    hasher.update(end);
    Layer {
        blob,
        media_type: media_type.into(),
        diff_id: zeroimage::oci::Digest::of_hasher(hasher).to_string(),
    }
}
