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

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

use crate::error::{Error, Result};
use crate::oci::{Compression as LayerCompression, MediaType};

/// Input bytes per gzip block. Part of the output format: changing it changes every digest.
pub const GZIP_BLOCK: usize = 256 * 1024;
/// Deflate's window: how much of the previous block primes the next.
const DICTIONARY: usize = 32 * 1024;
/// Gzip level when none is given: level 6 cannot beat `umoci` by far enough on two cores, level 3
/// does, within 1% of its size (see the README's performance section).
pub const DEFAULT_GZIP_LEVEL: u32 = 3;
/// Zstd level when none is given: zstd's own default.
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;
/// Highest zstd level offered: the "ultra" levels above need windows of up to 128 MiB.
const MAX_ZSTD_LEVEL: u32 = 19;
/// Input per zstd job (zstd's default is 4 windows): small jobs bound the memory of each worker.
const ZSTD_JOB_SIZE: u32 = 1 << 20;
/// Gzip header OS byte "unknown", so the bytes do not depend on where we run.
const GZIP_OS_UNKNOWN: u8 = 255;
/// Environment variable overriding the number of compression threads (for tests and benchmarks).
pub const THREADS_ENV: &str = "ZEROIMAGE_THREADS";

/// The layer formats we write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Gzip,
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
pub struct Compression {
    format: Format,
    level: u32,
    /// `None`: [`THREADS_ENV`] if set, else every core.
    pub threads: Option<NonZeroUsize>,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::new(Format::Gzip)
    }
}

impl Compression {
    /// `format` at its default level.
    pub fn new(format: Format) -> Compression {
        Compression {
            format,
            level: format.default_level(),
            threads: None,
        }
    }

    /// `format` at `level`, which must be one the format has (gzip 1-9, zstd 1-19).
    pub fn with_level(format: Format, level: u32) -> Result<Compression> {
        if !format.levels().contains(&level) {
            let levels = format.levels();
            return Err(Error::Invalid(format!(
                "compression level {level} is not a {} level; use {} (fastest) to {} (smallest)",
                format.name(),
                levels.start(),
                levels.end()
            )));
        }
        Ok(Compression {
            level,
            ..Compression::new(format)
        })
    }

    /// The compression `text` names (`gzip[:LEVEL]` or `zstd[:LEVEL]`; gzip when `None`), at `level`
    /// when that is given too. A level given both ways must be the same.
    pub fn resolve(text: Option<&str>, level: Option<u32>) -> Result<Compression> {
        let named = match text {
            Some(text) => text.parse()?,
            None => Compression::default(),
        };
        match (text.and_then(|t| t.split_once(':')), level) {
            (Some(_), Some(level)) if level != named.level => Err(Error::Invalid(format!(
                "compression `{}` and compression level {level} disagree; give the level once",
                text.unwrap_or_default()
            ))),
            (_, Some(level)) => Compression::with_level(named.format, level),
            (_, None) => Ok(named),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

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

    /// Whether Docker before 25 can load layers compressed this way (it reads gzip only).
    pub fn docker_readable(&self) -> bool {
        self.format == Format::Gzip
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

/// `gzip`, `gzip:LEVEL`, `zstd` or `zstd:LEVEL`.
impl FromStr for Compression {
    type Err = Error;

    fn from_str(text: &str) -> Result<Compression> {
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
        match level {
            None => Ok(Compression::new(format)),
            Some(level) => {
                let level = level.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "compression `{text}`: the level must be a number, e.g. {name}:{}",
                        format.default_level()
                    ))
                })?;
                Compression::with_level(format, level)
            }
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.format.name(), self.level)
    }
}

/// A compressed stream being written; [`finish`](Encoder::finish) completes it and returns the writer.
pub enum Encoder<W: Write> {
    Gzip(Box<GzipWriter<W>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
}

impl<W: Write> Encoder<W> {
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

/// Capacity of a job's input: the dictionary, then the block.
const INPUT_CAPACITY: usize = DICTIONARY + GZIP_BLOCK;
/// Capacity of a job's output: enough for a block that does not compress (stored blocks cost 5 bytes
/// per 64 KiB), so a worker never grows it.
const OUTPUT_CAPACITY: usize = GZIP_BLOCK + GZIP_BLOCK / 64 + 1024;

/// One block to deflate: `input` holds the end of the previous block (`dictionary` bytes), then the
/// block itself; `output` is a buffer for the result.
struct Job {
    index: u64,
    /// A compressor never used before (see [`deflate_job`]).
    deflate: Compress,
    input: Vec<u8>,
    dictionary: usize,
    last: bool,
    output: Vec<u8>,
}

/// A deflated block, with the buffers to reuse.
struct Done {
    job: Job,
    crc: Crc,
}

/// Threads deflating jobs; dropping the pool stops them.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<io::Result<Done>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (job_tx, job_rx) = sync_channel::<Job>(max_in_flight(threads));
        let (done_tx, done_rx) = sync_channel(max_in_flight(threads));
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    loop {
                        // A poisoned lock means another worker panicked: stop too.
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panic becomes an error for the writer, which would otherwise wait
                        // for this block forever.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            deflate_job(job)
                        }))
                        .unwrap_or_else(|_| Err(stopped()));
                        if done.send(result).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(job_tx),
            results: done_rx,
            workers,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing both channels ends every worker, whether it waits for a job or to hand one back.
        self.jobs = None;
        let (_, closed) = sync_channel(0);
        drop(std::mem::replace(&mut self.results, closed));
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Blocks handed out and not written yet: one per thread and as many waiting, so that a thread that
/// finishes early finds work while the oldest block, which must be written first, is still running.
fn max_in_flight(threads: usize) -> usize {
    2 * threads
}

fn stopped() -> io::Error {
    io::Error::other("a compression thread stopped unexpectedly")
}

/// Deflates one block: a raw deflate stream primed with the dictionary, ending byte-aligned (sync
/// flush) so the next block's stream can follow it, or ending the whole stream when `last`.
///
/// Each block gets a new compressor: one that is reset keeps the previous stream's window, which the
/// hashing of the last few bytes of a block reads, so the output would depend on which blocks the
/// same thread deflated before. The writer's thread makes them, so that their memory is allocated and
/// freed in one place rather than left behind in each worker thread's allocator arena.
fn deflate_job(mut job: Job) -> io::Result<Done> {
    let deflate = &mut job.deflate;
    let (dictionary, block) = job.input.split_at(job.dictionary);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    job.output.clear();
    loop {
        let consumed = usize::try_from(deflate.total_in()).map_err(io::Error::other)?;
        let status = deflate
            .compress_vec(&block[consumed..], &mut job.output, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() == block.len() as u64;
        // A flush is complete when it left output space unused; a finish when the stream ended.
        let complete = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => all_in && job.output.len() < job.output.capacity(),
        };
        if complete {
            break;
        }
        job.output.reserve(64 * 1024);
    }
    let mut crc = Crc::new();
    crc.update(block);
    Ok(Done { job, crc })
}

/// A gzip member written from [`GZIP_BLOCK`]-sized blocks deflated on `threads` threads (here when
/// one). At most one block per thread, and one more, is in flight, each in buffers of a fixed size
/// that are reused, so memory does not grow with the input.
pub struct GzipWriter<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    /// The block being filled, after its dictionary.
    block: Vec<u8>,
    dictionary: usize,
    /// Index of the next block to hand out, and of the next one to write.
    dispatched: u64,
    written: u64,
    /// Deflated blocks that arrived before the ones ahead of them.
    ready: BTreeMap<u64, Done>,
    crc: Crc,
    pool: Option<Pool>,
    /// Buffers to reuse, for inputs and for outputs.
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
}

impl<W: Write> GzipWriter<W> {
    /// Writes the gzip header (no name, mtime 0, OS unknown) and starts the first block.
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<GzipWriter<W>> {
        // Extra flags as gzip sets them: 2 for the slowest level, 4 for the fastest.
        let xfl = match level {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNKNOWN])?;
        Ok(GzipWriter {
            out,
            level,
            threads: threads.max(1),
            block: Vec::with_capacity(INPUT_CAPACITY),
            dictionary: 0,
            dispatched: 0,
            written: 0,
            ready: BTreeMap::new(),
            crc: Crc::new(),
            pool: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
        })
    }

    /// Hands the current block out (or deflates it here), `last` when the stream ends with it.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let mut next = self
            .inputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(INPUT_CAPACITY));
        next.clear();
        let tail = self.block.len() - DICTIONARY.min(self.block.len() - self.dictionary);
        next.extend_from_slice(&self.block[tail..]);
        let input = std::mem::replace(&mut self.block, next);
        let dictionary = std::mem::replace(&mut self.dictionary, input.len() - tail);
        let output = self
            .outputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(OUTPUT_CAPACITY));
        let job = Job {
            index: self.dispatched,
            deflate: Compress::new(flate2::Compression::new(self.level), false),
            input,
            dictionary,
            last,
            output,
        };
        self.dispatched += 1;
        // One thread, or a stream of one block: no pool worth starting.
        if self.threads == 1 || (last && self.pool.is_none()) {
            let done = deflate_job(job)?;
            return self.write_done(done);
        }
        let threads = self.threads;
        let pool = self.pool.get_or_insert_with(|| Pool::new(threads));
        let sender = pool.jobs.as_ref().ok_or_else(stopped)?;
        sender.send(job).map_err(|_| stopped())?;
        while self.dispatched - self.written >= max_in_flight(self.threads) as u64 {
            self.receive()?;
        }
        Ok(())
    }

    /// Waits for one deflated block, then writes every block that is next in order.
    fn receive(&mut self) -> io::Result<()> {
        let pool = self.pool.as_ref().ok_or_else(stopped)?;
        let done = pool.results.recv().map_err(|_| stopped())??;
        self.ready.insert(done.job.index, done);
        while let Some(done) = self.ready.remove(&self.written) {
            self.write_done(done)?;
        }
        Ok(())
    }

    fn write_done(&mut self, done: Done) -> io::Result<()> {
        debug_assert_eq!(done.job.index, self.written);
        self.out.write_all(&done.job.output)?;
        self.crc.combine(&done.crc);
        self.written += 1;
        let Job { input, output, .. } = done.job;
        self.inputs.push(input);
        self.outputs.push(output);
        Ok(())
    }

    /// Deflates what is left (an empty last block when the input ended on a block boundary), writes
    /// the trailer and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.written < self.dispatched {
            self.receive()?;
        }
        self.pool = None;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let filled = self.block.len() - self.dictionary;
        let take = (GZIP_BLOCK - filled).min(data.len());
        self.block.extend_from_slice(&data[..take]);
        if filled + take == GZIP_BLOCK {
            self.dispatch(false)?;
        }
        Ok(take)
    }

    /// Does nothing: a flush must not change the compressed bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(compression: &Compression, data: &[u8], piece: usize) -> Vec<u8> {
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        for part in data.chunks(piece.max(1)) {
            encoder.write_all(part).unwrap();
        }
        encoder.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
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
    fn sample(len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        let mut i = 0u64;
        while data.len() < len {
            data.extend_from_slice(
                format!("line {} of {} ", i, i.wrapping_mul(2654435761) % 977).as_bytes(),
            );
            i += 1;
        }
        data.truncate(len);
        data
    }

    /// Machine-code-like bytes: a small alphabet with repeats at random distances, where the
    /// compressor's hashing reaches past the end of a block.
    fn binary_sample(len: usize) -> Vec<u8> {
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

    fn with_threads(mut compression: Compression, threads: usize) -> Compression {
        compression.threads = NonZeroUsize::new(threads);
        compression
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_threads_or_write_sizes() {
        let gzip = Compression::default();
        for len in [
            0,
            1,
            GZIP_BLOCK - 1,
            GZIP_BLOCK,
            GZIP_BLOCK + 1,
            3 * GZIP_BLOCK,
            7 * GZIP_BLOCK + 12345,
        ] {
            for data in [sample(len), binary_sample(len)] {
                let one = compress(&with_threads(gzip, 1), &data, 64 * 1024);
                for (threads, piece) in [(2, 999), (8, GZIP_BLOCK + 7), (3, 1 << 20)] {
                    let other = compress(&with_threads(gzip, threads), &data, piece);
                    assert!(
                        one == other,
                        "{len} bytes, {threads} threads, writes of {piece}"
                    );
                }
                assert_eq!(gunzip(&one), data, "{len} bytes");
            }
        }
    }

    #[test]
    fn gzip_blocks_are_primed_with_the_previous_block() {
        // A block followed by a copy of its last 16 KiB: the copy costs almost nothing when the
        // second block can refer to the first.
        let block = sample(GZIP_BLOCK);
        let copy = &block[GZIP_BLOCK - DICTIONARY / 2..];
        let alone = compress(&Compression::default(), copy, 4096).len();
        let mut data = block.clone();
        data.extend_from_slice(copy);
        let whole = compress(&Compression::default(), &block, 4096).len();
        let both = compress(&Compression::default(), &data, 4096);
        assert!(
            both.len() < whole + alone / 10,
            "{} bytes, against {whole} + {alone}",
            both.len()
        );
        assert_eq!(gunzip(&both), data);
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_threads_or_write_sizes() {
        let zstd = Compression::new(Format::Zstd);
        for len in [0, 1, 3 << 20] {
            let data = sample(len);
            let one = compress(&with_threads(zstd, 1), &data, 64 * 1024);
            for (threads, piece) in [(2, 999), (8, 1 << 20)] {
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
            "gzip".parse::<Compression>().unwrap(),
            Compression::default()
        );
        let zstd: Compression = "zstd:7".parse().unwrap();
        assert_eq!((zstd.format(), zstd.level()), (Format::Zstd, 7));
        assert_eq!(zstd.to_string(), "zstd:7");
        assert_eq!(
            zstd.media_type().as_str(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let resolved = Compression::resolve(Some("zstd"), Some(9)).unwrap();
        assert_eq!((resolved.format(), resolved.level()), (Format::Zstd, 9));
        assert_eq!(
            Compression::resolve(None, Some(9)).unwrap().to_string(),
            "gzip:9"
        );
        assert!(Compression::resolve(Some("zstd:5"), Some(5)).is_ok());
        let err = Compression::resolve(Some("zstd:5"), Some(7))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give the level once"), "{err}");
        assert!(Compression::resolve(None, Some(12)).is_err());
        for bad in ["gzip:0", "gzip:10", "zstd:20", "zstd:x", "brotli", "gzip:"] {
            let err = bad.parse::<Compression>().unwrap_err().to_string();
            assert!(err.contains(bad.split(':').next().unwrap()), "{bad}: {err}");
        }
    }
}
