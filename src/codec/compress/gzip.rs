//! Gzip in parallel: one member, as `pigz` writes it. Each [`GZIP_BLOCK`] of input is deflated on its
//! own thread, primed with the 32 KiB before it as dictionary, and ends on a byte boundary (a sync
//! flush), so the pieces concatenate, in order, into a single deflate stream; the CRC-32s of the blocks
//! are combined. Only the level and the block size decide the bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Input bytes per gzip block. Part of the output format: changing it changes every digest.
pub const GZIP_BLOCK: usize = 256 * 1024;
/// Deflate's window: how much of the previous block primes the next.
const DICTIONARY: usize = 32 * 1024;
/// Gzip header OS byte "unknown", so the bytes do not depend on where we run.
const GZIP_OS_UNKNOWN: u8 = 255;
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
/// one). At most two blocks per thread are in flight, each in buffers of a fixed size that are
/// reused, so memory does not grow with the input.
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
    use crate::codec::compress::CompressOptions;
    use crate::codec::compress::tests::{binary_sample, compress, gunzip, sample, with_threads};

    #[test]
    fn gzip_bytes_do_not_depend_on_threads_or_write_sizes() {
        let gzip = CompressOptions::default();
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
                for (threads, piece) in [(2, 999), (8, GZIP_BLOCK + 7), (3, 1 << 20), (16, 4096)] {
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
        let alone = compress(&CompressOptions::default(), copy, 4096).len();
        let mut data = block.clone();
        data.extend_from_slice(copy);
        let whole = compress(&CompressOptions::default(), &block, 4096).len();
        let both = compress(&CompressOptions::default(), &data, 4096);
        assert!(
            both.len() < whole + alone / 10,
            "{} bytes, against {whole} + {alone}",
            both.len()
        );
        assert_eq!(gunzip(&both), data);
    }
}
