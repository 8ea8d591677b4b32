//! Layers built in memory, for the tests of this module and of those that read a base.

use std::io::Write;

use crate::error::Result;
use crate::image::blobs::Memory;
use crate::oci::{Compression, Descriptor, Digest, MediaType};

use super::limits::Limits;
use super::scan::Scan;
use super::{Kind, RootFs};
use crate::util::cancel::CancelToken;

/// One layer's tar, entries written as given (no path checks, so tests can write hostile ones).
#[derive(Default)]
pub struct Layer {
    tar: Vec<u8>,
}

impl Layer {
    pub fn new() -> Layer {
        Layer::default()
    }

    fn entry(self, path: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Layer {
        let mode = if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        };
        self.owned(path, kind, link, data, (mode, 0))
    }

    fn owned(
        mut self,
        path: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        (mode, owner): (u32, u64),
    ) -> Layer {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(owner);
        header.set_gid(owner);
        header.set_mtime(0);
        header.set_cksum();
        self.tar.extend_from_slice(header.as_bytes());
        self.tar.extend_from_slice(data);
        self.tar.resize(self.tar.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn file(self, path: &str, data: &str) -> Layer {
        self.entry(path, tar::EntryType::Regular, "", data.as_bytes())
    }

    pub fn dir(self, path: &str) -> Layer {
        self.entry(path, tar::EntryType::Directory, "", b"")
    }

    /// A directory with another mode and owner.
    pub fn dir_owned(self, path: &str, mode: u32, uid: u64) -> Layer {
        self.owned(path, tar::EntryType::Directory, "", b"", (mode, uid))
    }

    /// A file with another mode.
    pub fn file_mode(self, path: &str, data: &str, mode: u32) -> Layer {
        self.owned(
            path,
            tar::EntryType::Regular,
            "",
            data.as_bytes(),
            (mode, 0),
        )
    }

    pub fn symlink(self, path: &str, target: &str) -> Layer {
        self.entry(path, tar::EntryType::Symlink, target, b"")
    }

    pub fn hardlink(self, path: &str, target: &str) -> Layer {
        self.entry(path, tar::EntryType::Link, target, b"")
    }

    /// The tar, with its end-of-archive blocks.
    pub fn tar(&self) -> Vec<u8> {
        let mut tar = self.tar.clone();
        tar.extend_from_slice(&[0; 1024]);
        tar
    }
}

/// Compresses `tar` as `compression` does.
pub fn compress(compression: Compression, tar: &[u8]) -> Vec<u8> {
    match compression {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            gz.finish().unwrap()
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

/// Blobs and descriptors of `layers`, gzip-compressed.
pub fn image(layers: &[Layer]) -> (Memory, Vec<Descriptor>) {
    let blobs: Vec<(Compression, Vec<u8>)> = layers
        .iter()
        .map(|l| (Compression::Gzip, compress(Compression::Gzip, &l.tar())))
        .collect();
    image_of(blobs)
}

/// Blobs already compressed, with their compression.
pub fn image_of(blobs: Vec<(Compression, Vec<u8>)>) -> (Memory, Vec<Descriptor>) {
    let mut memory = Memory::new();
    let mut descriptors = Vec::new();
    for (compression, bytes) in blobs {
        let digest = Digest::of(&bytes);
        descriptors.push(Descriptor::new(
            MediaType::OciLayer(compression),
            digest.clone(),
            bytes.len() as u64,
        ));
        memory.insert(digest, bytes);
    }
    (memory, descriptors)
}

/// The filesystem of `layers`, keeping `keep`.
pub fn scan(layers: &[Layer], keep: &[&str]) -> Result<RootFs> {
    let (memory, descriptors) = image(layers);
    RootFs::scan(&memory, &descriptors, keep, &CancelToken::new())
}

/// What `path` is in `rootfs`, links followed.
pub(super) fn kind(rootfs: &RootFs, path: &str) -> Option<Kind> {
    rootfs.kind(path)
}

/// A scan of `layers` within `limits`.
pub(super) fn scan_limited(
    memory: &Memory,
    layers: &[Descriptor],
    keep: &[&str],
    limits: Limits,
) -> Result<RootFs> {
    scan_checked(memory, layers, None, keep, limits)
}

/// A scan of `layers` within `limits`, checked against `diff_ids` when given.
pub(super) fn scan_checked(
    memory: &Memory,
    layers: &[Descriptor],
    diff_ids: Option<&[Digest]>,
    keep: &[&str],
    limits: Limits,
) -> Result<RootFs> {
    let scan = Scan {
        cancel: &CancelToken::new(),
        label: "base test".to_owned(),
        layers,
        diff_ids,
    };
    RootFs::scan_within("test", memory, &scan, keep, limits)
}
