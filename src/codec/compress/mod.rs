//! Layer compression: gzip made of fixed-size blocks deflated in parallel, or multithreaded zstd.
//!
//! Reproducibility comes first: the bytes depend on the format, the level and (for gzip) the block
//! size, never on how many threads did the work, how the input was split into writes, or timing.
//! Gzip output is one member, as `pigz` writes it: each [`GZIP_BLOCK`] of input is deflated on its own,
//! primed with the 32 KiB before it as dictionary, and ends on a byte boundary (a sync flush), so the
//! pieces concatenate, in order, into a single deflate stream; the CRC-32s of the blocks are combined.
//! Zstd's own multithreaded mode already cuts its input into jobs of a size fixed by the parameters,
//! whatever the worker count, as long as there is at least one worker (its single-threaded mode would
//! give other bytes).

mod gzip;

use std::fmt;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::oci::{Compression as LayerCompression, MediaType};

pub use gzip::{GZIP_BLOCK, GzipWriter};

/// Gzip level when none is given: level 6 cannot beat `umoci` by far enough on two cores, level 3
/// does, within 1% of its size (see the README's performance section).
pub(crate) const DEFAULT_GZIP_LEVEL: u32 = 3;
/// Zstd level when none is given: zstd's own default.
pub(crate) const DEFAULT_ZSTD_LEVEL: u32 = 3;
/// Highest zstd level offered: the "ultra" levels above need windows of up to 128 MiB.
const MAX_ZSTD_LEVEL: u32 = 19;
/// Input per zstd job (zstd's default is 4 windows): small jobs bound the memory of each worker.
const ZSTD_JOB_SIZE: u32 = 1 << 20;
/// Environment variable overriding the number of compression threads (for tests and benchmarks).
pub const THREADS_ENV: &str = "ZEROIMAGE_THREADS";

/// The layer formats we write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// gzip: what every runtime reads.
    #[default]
    Gzip,
    /// zstd: smaller and faster; Docker before 23.0 cannot read it.
    Zstd,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
        }
    }

    fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Format::Gzip => 1..=9,
            Format::Zstd => 1..=MAX_ZSTD_LEVEL,
        }
    }

    fn default_level(self) -> u32 {
        match self {
            Format::Gzip => DEFAULT_GZIP_LEVEL,
            Format::Zstd => DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// How layers are compressed: format, level, and how many threads share the work (which never
/// changes the bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressOptions {
    format: Format,
    level: u32,
    /// `None`: [`THREADS_ENV`] if set, else every core.
    pub threads: Option<NonZeroUsize>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions::new(Format::Gzip)
    }
}

impl CompressOptions {
    /// `format` at its default level.
    pub fn new(format: Format) -> CompressOptions {
        CompressOptions {
            format,
            level: format.default_level(),
            threads: None,
        }
    }

    /// `format` at `level`, which must be one the format has (gzip 1-9, zstd 1-19).
    pub fn with_level(format: Format, level: u32) -> Result<CompressOptions> {
        if !format.levels().contains(&level) {
            let levels = format.levels();
            return Err(Error::Invalid(format!(
                "compression level {level} is not a {} level; use {} (fastest) to {} (smallest)",
                format.name(),
                levels.start(),
                levels.end()
            )));
        }
        Ok(CompressOptions {
            level,
            ..CompressOptions::new(format)
        })
    }

    /// The compression `choice` names (gzip when `None`), at `level` when that is given too; with
    /// neither, `fallback`, whose format a level alone applies to. A level given both ways must be the
    /// same.
    pub fn chosen(
        choice: Option<Choice>,
        level: Option<u32>,
        fallback: Option<CompressOptions>,
    ) -> Result<CompressOptions> {
        match (choice, level, fallback) {
            (None, None, fallback) => Ok(fallback.unwrap_or_default()),
            (None, Some(level), Some(fallback)) => {
                CompressOptions::with_level(fallback.format(), level)
            }
            (choice, level, _) => CompressOptions::resolve(choice, level),
        }
    }

    /// `choice` (`None`: gzip) with an optional separate level.
    pub fn resolve(choice: Option<Choice>, level: Option<u32>) -> Result<CompressOptions> {
        let choice = choice.unwrap_or_default();
        match (choice.level, level) {
            (Some(named), Some(level)) if level != named => Err(Error::Invalid(format!(
                "compression `{choice}` and compression level {level} disagree; give the level once"
            ))),
            (_, Some(level)) | (Some(level), None) => {
                CompressOptions::with_level(choice.format, level)
            }
            (None, None) => Ok(CompressOptions::new(choice.format)),
        }
    }

    /// The format written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The compression level used.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The media type of layers compressed this way.
    pub fn media_type(&self) -> MediaType {
        MediaType::OciLayer(match self.format {
            Format::Gzip => LayerCompression::Gzip,
            Format::Zstd => LayerCompression::Zstd,
        })
    }

    /// How many threads compress: the option, else [`THREADS_ENV`], else the cores available.
    pub fn thread_count(&self) -> usize {
        if let Some(threads) = self.threads {
            return threads.get();
        }
        std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<NonZeroUsize>().ok())
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// Starts a compressed stream into `out`.
    pub fn encoder<W: Write>(&self, out: W) -> io::Result<Encoder<W>> {
        let threads = self.thread_count();
        Ok(match self.format {
            Format::Gzip => Encoder::Gzip(Box::new(GzipWriter::new(out, self.level, threads)?)),
            Format::Zstd => Encoder::Zstd(Box::new(zstd_encoder(out, self.level, threads)?)),
        })
    }
}

/// A compression as a flag or a setting names it: `gzip`, `gzip:LEVEL`, `zstd` or `zstd:LEVEL`,
/// checked when parsed; the level stays unset when not named, so a separate level may still set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    format: Format,
    level: Option<u32>,
}

impl Choice {
    /// The format named.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The level named, if one was.
    pub fn level(&self) -> Option<u32> {
        self.level
    }
}

impl FromStr for Choice {
    type Err = Error;

    fn from_str(text: &str) -> Result<Choice> {
        let (name, level) = match text.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (text, None),
        };
        let format = match name {
            "gzip" => Format::Gzip,
            "zstd" => Format::Zstd,
            _ => {
                return Err(Error::Invalid(format!(
                    "compression `{text}` is not gzip[:LEVEL] or zstd[:LEVEL]"
                )));
            }
        };
        let level = match level {
            None => None,
            Some(level) => {
                let level = level.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "compression `{text}`: the level must be a number, e.g. {name}:{}",
                        format.default_level()
                    ))
                })?;
                Some(CompressOptions::with_level(format, level)?.level)
            }
        };
        Ok(Choice { format, level })
    }
}

/// As named: `zstd`, `zstd:19`.
impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.format.name())?;
        match self.level {
            Some(level) => write!(f, ":{level}"),
            None => Ok(()),
        }
    }
}

/// `gzip`, `gzip:LEVEL`, `zstd` or `zstd:LEVEL`.
impl FromStr for CompressOptions {
    type Err = Error;

    fn from_str(text: &str) -> Result<CompressOptions> {
        CompressOptions::resolve(Some(text.parse()?), None)
    }
}

impl fmt::Display for CompressOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.format.name(), self.level)
    }
}

/// A compressed stream being written; [`finish`](Encoder::finish) completes it and returns the writer.
pub enum Encoder<W: Write> {
    /// Writing gzip.
    Gzip(Box<GzipWriter<W>>),
    /// Writing zstd.
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
}

impl<W: Write> Encoder<W> {
    /// Completes the stream (trailer and all) and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(gzip) => gzip.finish(),
            Encoder::Zstd(zstd) => zstd.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(gzip) => gzip.write(data),
            Encoder::Zstd(zstd) => zstd.write(data),
        }
    }

    /// Does nothing: a flush must not change the compressed bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn zstd_encoder<W: Write>(
    out: W,
    level: u32,
    threads: usize,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    use zstd::stream::raw::CParameter;
    let level = i32::try_from(level).map_err(io::Error::other)?;
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    // At least one worker even on one core: zstd's single-threaded mode writes other bytes.
    let workers = u32::try_from(threads.max(1)).unwrap_or(u32::MAX);
    encoder.set_parameter(CParameter::NbWorkers(workers))?;
    encoder.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE))?;
    encoder.set_parameter(CParameter::ChecksumFlag(true))?;
    Ok(encoder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    pub(super) fn compress(compression: &CompressOptions, data: &[u8], piece: usize) -> Vec<u8> {
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        for part in data.chunks(piece.max(1)) {
            encoder.write_all(part).unwrap();
        }
        encoder.finish().unwrap()
    }

    pub(super) fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut decoder = flate2::read::GzDecoder::new(bytes);
        decoder.read_to_end(&mut out).unwrap();
        // One member: nothing follows it.
        let mut rest = Vec::new();
        decoder.into_inner().read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "{} bytes after the gzip member",
            rest.len()
        );
        out
    }

    /// Compressible but not trivial: text-like runs with a changing counter.
    pub(super) fn sample(len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        let mut i = 0u64;
        while data.len() < len {
            data.extend_from_slice(
                format!("line {} of {} ", i, i.wrapping_mul(2_654_435_761) % 977).as_bytes(),
            );
            i += 1;
        }
        data.truncate(len);
        data
    }

    /// Machine-code-like bytes: a small alphabet with repeats at random distances, where the
    /// compressor's hashing reaches past the end of a block.
    pub(super) fn binary_sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let r = next();
            if r % 4 == 0 && data.len() > 64 {
                let back = 1 + (r >> 8) as usize % data.len().min(40_000);
                let run = 3 + (r >> 40) as usize % 20;
                let start = data.len() - back;
                for i in 0..run {
                    data.push(data[start + i]);
                }
            } else {
                data.push((r >> 16) as u8 & 0x1f);
            }
        }
        data.truncate(len);
        data
    }

    pub(super) fn with_threads(
        mut compression: CompressOptions,
        threads: usize,
    ) -> CompressOptions {
        compression.threads = NonZeroUsize::new(threads);
        compression
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_threads_or_write_sizes() {
        let zstd = CompressOptions::new(Format::Zstd);
        for len in [0, 1, 3 << 20] {
            let data = sample(len);
            let one = compress(&with_threads(zstd, 1), &data, 64 * 1024);
            for (threads, piece) in [(2, 999), (8, 1 << 20), (16, 4096)] {
                let other = compress(&with_threads(zstd, threads), &data, piece);
                assert!(
                    one == other,
                    "{len} bytes, {threads} threads, writes of {piece}"
                );
            }
            assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
        }
    }

    #[test]
    fn compression_parses_format_and_level() {
        assert_eq!(
            "gzip".parse::<CompressOptions>().unwrap(),
            CompressOptions::default()
        );
        let zstd: CompressOptions = "zstd:7".parse().unwrap();
        assert_eq!((zstd.format(), zstd.level()), (Format::Zstd, 7));
        assert_eq!(zstd.to_string(), "zstd:7");
        assert_eq!(
            zstd.media_type().as_str(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let choice = |text: &str| Some(text.parse::<Choice>().unwrap());
        let resolved = CompressOptions::resolve(choice("zstd"), Some(9)).unwrap();
        assert_eq!((resolved.format(), resolved.level()), (Format::Zstd, 9));
        assert_eq!(
            CompressOptions::resolve(None, Some(9)).unwrap().to_string(),
            "gzip:9"
        );
        assert!(CompressOptions::resolve(choice("zstd:5"), Some(5)).is_ok());
        let err = CompressOptions::resolve(choice("zstd:5"), Some(7))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give the level once"), "{err}");
        assert!(CompressOptions::resolve(None, Some(12)).is_err());
        // A choice keeps the level unset when none was named, and reads as it was named.
        let named = "zstd".parse::<Choice>().unwrap();
        assert_eq!((named.format(), named.level()), (Format::Zstd, None));
        assert_eq!(named.to_string(), "zstd");
        assert_eq!("gzip:9".parse::<Choice>().unwrap().to_string(), "gzip:9");
        for bad in ["gzip:0", "gzip:10", "zstd:20", "zstd:x", "brotli", "gzip:"] {
            let err = bad.parse::<CompressOptions>().unwrap_err().to_string();
            assert!(err.contains(bad.split(':').next().unwrap()), "{bad}: {err}");
        }
    }
}
