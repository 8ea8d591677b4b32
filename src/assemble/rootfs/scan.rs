//! Reading a base image's layers, bottom first: each blob checked against its media type, decompressed
//! on another thread within [`MAX_EXPANDED`](super::MAX_EXPANDED) bytes in all, hashed against its
//! diff_id, and walked entry by entry into the tree; read again while files to keep turn out to be
//! reached through links.

use crate::codec::decompress::{LayerReader, Mislabelled};
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::oci::{Descriptor, Digest};
use crate::tar::read::{Stream, Walker};
use crate::util::cancel::CancelToken;
use crate::util::sanitize;

use super::RootFs;
use super::apply::Problem;
use super::kept::patterns;
use super::limits::{LIMITS, Limits, MAX_EXPANDED_VAR, MAX_SCANS, amount, max_expanded};

/// The layers a scan reads, how messages name them, and what they must decompress to.
pub(super) struct Scan<'a> {
    pub(super) label: String,
    pub(super) layers: &'a [Descriptor],
    pub(super) diff_ids: Option<&'a [Digest]>,
    pub(super) cancel: &'a CancelToken,
}

impl RootFs {
    /// Applies `layers` (bottom first), read from `source`, and keeps the content of the regular files
    /// whose real path matches one of `keep`: absolute paths whose components may hold `*` (any run of
    /// characters) and `?` (one), e.g. `/etc/passwd` or `/etc/ld.so.conf.d/*`. A kept file larger than
    /// [`MAX_KEPT_FILE`](super::MAX_KEPT_FILE) is indexed without its content.
    ///
    /// Every blob is read to its end, so its digest is checked. Fails, naming the source and the layer,
    /// on a layer that cannot be read (unknown media type, corrupt data, a path escaping the root or
    /// longer than [`MAX_PATH`](super::MAX_PATH), a hard link to nothing), and beyond
    /// [`MAX_ENTRIES`](super::MAX_ENTRIES), [`MAX_NAME_BYTES`](super::MAX_NAME_BYTES) or
    /// [`MAX_KEPT_TOTAL`](super::MAX_KEPT_TOTAL).
    ///
    /// A file to keep may be reached through links (`/etc` a link to `usr/etc`, `/etc/passwd` a link,
    /// a hard link to a file not kept): its content is kept by its real path, which is known only once
    /// every layer is applied, so the layers are read again keeping those real paths too (at most
    /// [`MAX_SCANS`] times in all, for hard links to hard links).
    ///
    /// Each blob's first bytes must be what its media type says, and the layers may decompress to at
    /// most [`max_expanded`] bytes together. The scan stops when `cancel` is cancelled.
    pub fn scan(
        source: &dyn BlobSource,
        layers: &[Descriptor],
        keep: &[&str],
        cancel: &CancelToken,
    ) -> Result<RootFs> {
        let limits = Limits {
            expanded: max_expanded()?,
            ..LIMITS
        };
        let scan = Scan {
            label: source.describe(),
            layers,
            diff_ids: None,
            cancel,
        };
        RootFs::scan_within(&source.describe(), source, &scan, keep, limits)
    }

    /// [`RootFs::scan`] for the base image `name` (which messages give as `base NAME`), whose config
    /// lists `diff_ids`: each layer's decompressed stream must hash to its diff_id.
    pub fn scan_base(
        name: &str,
        source: &dyn BlobSource,
        layers: &[Descriptor],
        diff_ids: &[Digest],
        keep: &[&str],
        cancel: &CancelToken,
    ) -> Result<RootFs> {
        let limits = Limits {
            expanded: max_expanded()?,
            ..LIMITS
        };
        let scan = Scan {
            label: format!("base {}", sanitize::outside(name, sanitize::EXCERPT)),
            layers,
            diff_ids: Some(diff_ids),
            cancel,
        };
        RootFs::scan_within(name, source, &scan, keep, limits)
    }

    /// The scan of `scan`'s layers within `limits`, as [`RootFs::scan`] describes it.
    pub(super) fn scan_within(
        name: &str,
        source: &dyn BlobSource,
        scan: &Scan,
        keep: &[&str],
        limits: Limits,
    ) -> Result<RootFs> {
        if let Some(diff_ids) = scan.diff_ids
            && diff_ids.len() != scan.layers.len()
        {
            return Err(Error::Invalid(format!(
                "{}: its config lists {} layer diff ids for {} layers; the image is damaged",
                scan.label,
                diff_ids.len(),
                scan.layers.len()
            )));
        }
        let keep = patterns(keep)?;
        let apply = |keep: Vec<Vec<Vec<u8>>>| -> Result<RootFs> {
            let mut rootfs = RootFs::new(name, keep, limits);
            for index in 0..scan.layers.len() {
                rootfs.apply_layer(source, scan, index)?;
            }
            rootfs.parent_cache = None;
            Ok(rootfs)
        };
        let mut rootfs = apply(keep)?;
        for _ in 1..MAX_SCANS {
            let real = rootfs.real_paths_to_keep();
            if real.is_empty() {
                break;
            }
            let mut keep = rootfs.keep.clone();
            keep.extend(real);
            rootfs = apply(keep)?;
        }
        Ok(rootfs)
    }

    /// Applies layer `index`, decompressed on another thread while it is walked.
    fn apply_layer(&mut self, source: &dyn BlobSource, scan: &Scan, index: usize) -> Result<()> {
        std::thread::scope(|scope| self.apply_layer_in(scope, source, scan, index))
    }

    /// [`RootFs::apply_layer`] with its reading thread in `scope`: the blob checked against its media
    /// type, its stream against the expansion limit and its diff_id.
    fn apply_layer_in<'scope, 's: 'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        source: &'s dyn BlobSource,
        scan: &Scan,
        index: usize,
    ) -> Result<()> {
        let layer = &scan.layers[index];
        let bad = |what: String| {
            Error::Invalid(format!(
                "{}: layer {} of {} ({}): {what}",
                scan.label,
                index + 1,
                scan.layers.len(),
                layer.digest
            ))
        };
        let compression = layer.media_type.layer_compression().ok_or_else(|| {
            bad(format!(
                "`{}` is not a layer type that can be read (foreign and non-distributable layers \
                 are not fetched); use a base image whose layers are all tar, tar+gzip or tar+zstd",
                sanitize::outside(layer.media_type.as_str(), 100)
            ))
        })?;
        let limit = self.limits.expanded;
        let io_error = |e: std::io::Error| {
            if scan.cancel.is_cancelled() {
                return Error::Interrupted;
            }
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                return bad(format!(
                    "the layers decompress to more than {} together, more than common base \
                     images do (a decompression bomb?); if this base really is that large, raise \
                     the limit with {MAX_EXPANDED_VAR}=SIZE (e.g. {MAX_EXPANDED_VAR}=32GiB)",
                    amount(limit)
                ));
            }
            bad(sanitize::outside(&e.to_string(), sanitize::EXCERPT))
        };
        let diff_id = scan.diff_ids.and_then(|ids| ids.get(index));
        let mut reader = LayerReader::new(compression, source.open(layer)?, scan.cancel)
            .map_err(
                |e| match e.get_ref().and_then(|e| e.downcast_ref::<Mislabelled>()) {
                    Some(mislabelled) => bad(format!(
                        "{mislabelled} (`{}`); the image is damaged",
                        sanitize::outside(layer.media_type.as_str(), 100)
                    )),
                    None => io_error(e),
                },
            )?
            .limited_to(limit.saturating_sub(self.expanded))
            .read_ahead(scope);
        if let Some(diff_id) = diff_id {
            reader = reader.hashing_as(diff_id);
        }
        self.parent_cache = None;
        let layer_index = u32::try_from(index).unwrap_or(u32::MAX);
        {
            let mut walker = Walker::new(Stream(&mut reader));
            while let Some(head) = walker.next_entry().map_err(io_error)? {
                scan.cancel.check()?;
                self.apply_entry(&mut walker, &head, layer_index)
                    .map_err(|what| match what {
                        Problem::Io(e) => io_error(e),
                        Problem::Layer(what) => bad(what),
                    })?;
            }
        }
        let (actual, expanded) = reader.finish().map_err(io_error)?;
        self.expanded += expanded;
        if let (Some(expected), Some(actual)) = (diff_id, actual)
            && actual != *expected
        {
            return Err(bad(format!(
                "its content decompresses to {actual}, but the config lists diff_id {expected}; \
                 the image is damaged"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::limits::LIMITS;
    use super::super::testing::{Layer, compress, image_of, scan_checked, scan_limited};
    use super::*;
    use crate::oci::{Compression, MediaType};

    #[test]
    fn zstd_and_uncompressed_layers_are_read() {
        let lower = Layer::new()
            .file("etc/os-release", "ID=test\n")
            .file("bin/sh", "");
        let upper = Layer::new().file("bin/.wh.sh", "");
        let (memory, descriptors) = image_of(vec![
            (Compression::Zstd, compress(Compression::Zstd, &lower.tar())),
            (Compression::None, upper.tar()),
        ]);
        let rootfs = RootFs::scan(
            &memory,
            &descriptors,
            &["/etc/os-release"],
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(rootfs.file("/etc/os-release"), Some(&b"ID=test\n"[..]));
        assert!(!rootfs.exists("/bin/sh"));
    }

    #[test]
    fn every_blob_is_read_to_its_end_so_its_digest_is_checked() {
        // A plain layer with data after the end of its tar: the walker stops before it.
        let mut tar = Layer::new().file("a", "x").tar();
        tar.extend_from_slice(&[0; 4096]);
        let mut claimed = tar.clone();
        *claimed.last_mut().unwrap() = 1;
        let (mut memory, mut descriptors) = image_of(vec![(Compression::None, claimed)]);
        memory.insert(descriptors[0].digest.clone(), tar);
        let err = RootFs::scan(&memory, &descriptors, &[], &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 1 of 1"), "{err}");
        descriptors[0].media_type = MediaType::DockerForeignLayer;
        let err = RootFs::scan(&memory, &descriptors, &[], &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a layer type that can be read"), "{err}");
        descriptors[0].media_type = MediaType::OciLayer(Compression::Gzip);
        descriptors[0].digest = Digest::of(b"nothing");
        assert!(RootFs::scan(&memory, &descriptors, &[], &CancelToken::new()).is_err());
    }

    #[test]
    fn each_layer_must_decompress_to_the_diff_id_its_config_lists() {
        let lower = Layer::new().file("etc/os-release", "ID=test\n").tar();
        // Data after the end of the tar is part of the layer's diff id too.
        let mut upper = Layer::new().file("etc/motd", "hi").tar();
        upper.extend_from_slice(&[0; 2048]);
        let plain = Layer::new().file("a", "x").tar();
        let (memory, descriptors) = image_of(vec![
            (Compression::Gzip, compress(Compression::Gzip, &lower)),
            (Compression::Zstd, compress(Compression::Zstd, &upper)),
            (Compression::None, plain.clone()),
        ]);
        let diff_ids = [Digest::of(&lower), Digest::of(&upper), Digest::of(&plain)];
        let rootfs =
            scan_checked(&memory, &descriptors, Some(&diff_ids), &["/etc/*"], LIMITS).unwrap();
        assert_eq!(rootfs.file("/etc/motd"), Some(&b"hi"[..]));

        let mut wrong = diff_ids.clone();
        wrong[1] = Digest::of(&upper[..upper.len() - 2048]);
        let err = scan_checked(&memory, &descriptors, Some(&wrong), &[], LIMITS)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("base test: layer 2 of 3")
                && err.contains(&format!(
                    "its content decompresses to {}, but the config lists diff_id {}",
                    diff_ids[1], wrong[1]
                )),
            "{err}"
        );
        let err = scan_checked(&memory, &descriptors, Some(&diff_ids[..2]), &[], LIMITS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its config lists 2 layer diff ids for 3 layers"),
            "{err}"
        );
    }

    #[test]
    fn a_layer_whose_first_bytes_are_another_compression_is_refused() {
        let tar = Layer::new().file("a", "x").tar();
        for (labelled, content, found) in [
            (Compression::Gzip, Compression::Zstd, "zstd"),
            (Compression::Zstd, Compression::Gzip, "gzip"),
            (Compression::None, Compression::Gzip, "gzip"),
            (Compression::Gzip, Compression::None, "an uncompressed tar"),
        ] {
            let (memory, mut descriptors) = image_of(vec![(content, compress(content, &tar))]);
            descriptors[0].media_type = MediaType::OciLayer(labelled);
            let err = RootFs::scan(&memory, &descriptors, &[], &CancelToken::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("its content is {found}, but its media type says"))
                    && err.contains(descriptors[0].media_type.as_str()),
                "{err}"
            );
        }
        // A blob damaged in its first bytes is reported as damaged.
        let (mut memory, descriptors) =
            image_of(vec![(Compression::Gzip, compress(Compression::Gzip, &tar))]);
        let mut damaged = compress(Compression::Gzip, &tar);
        damaged[0] ^= 0xff;
        memory.insert(descriptors[0].digest.clone(), damaged);
        let err = RootFs::scan(&memory, &descriptors, &[], &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is corrupt"), "{err}");
    }

    #[test]
    fn the_layers_together_expand_to_the_limit_and_no_more() {
        let one = Layer::new().file("a", &"x".repeat(5000)).tar();
        let two = Layer::new().file("b", &"y".repeat(5000)).tar();
        let total = (one.len() + two.len()) as u64;
        let (memory, descriptors) = image_of(vec![
            (Compression::Zstd, compress(Compression::Zstd, &one)),
            (Compression::Gzip, compress(Compression::Gzip, &two)),
        ]);
        let exact = Limits {
            expanded: total,
            ..LIMITS
        };
        assert!(scan_limited(&memory, &descriptors, &[], exact).is_ok());
        let less = Limits {
            expanded: total - 1,
            ..LIMITS
        };
        let err = scan_limited(&memory, &descriptors, &[], less)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("base test: layer 2 of 2")
                && err.contains("the layers decompress to more than 12 KiB together")
                && err.contains(MAX_EXPANDED_VAR),
            "{err}"
        );
    }
}
