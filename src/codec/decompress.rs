//! Reading a layer's tar out of its blob: uncompressed, gzip (any number of members) or zstd (any
//! number of frames, skippable frames skipped), in bounded memory whatever the stream claims.
//!
//! A base image's layer is hostile input: its first bytes must be what its media type says (a zstd blob
//! labelled gzip is refused, as umoci refuses it, rather than guessed), the decompressed stream is
//! hashed so that it can be checked against the config's diff_id, and the bytes it expands to are
//! counted against a limit, so that a small blob cannot make hours of work (a decompression bomb).
//!
//! zstd is decoded by `ruzstd`, in pure Rust like the zlib-rs backend of flate2: decoding bytes from
//! any base image stays in memory-safe code, and building the tool needs no C compiler. It is slower
//! than libzstd, which only matters for zstd bases, read once per run.

use std::fmt;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;

use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::oci::{Compression, Digest, Hasher};
use crate::util::cancel::CancelToken;

/// Largest zstd window accepted: libzstd's default limit (window log 27), above which a frame needs
/// `--long` and a decoder told to accept it. A frame's window is what its decoder keeps in memory.
pub const MAX_ZSTD_WINDOW: u64 = 128 << 20;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// Decompressed bytes handed over at once by [`LayerReader::read_ahead`]'s thread.
const CHUNK: usize = 256 << 10;
/// Chunks decoded ahead of the reader: with the ones in hand, a few MiB of memory at most.
const CHUNKS_AHEAD: usize = 4;

/// What a blob's first bytes say it is.
pub fn sniff(first: &[u8]) -> Compression {
    match first {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [a, b, c, d, ..] if is_zstd_magic(u32::from_le_bytes([*a, *b, *c, *d])) => {
            Compression::Zstd
        }
        _ => Compression::None,
    }
}

/// A zstd frame or a skippable frame (which zstd:chunked puts first).
fn is_zstd_magic(magic: u32) -> bool {
    magic == ZSTD_MAGIC || magic & 0xFFFF_FFF0 == 0x184D_2A50
}

/// A blob whose content is not compressed as its media type says: consumers that go by the media type
/// (umoci, and runtimes through it) cannot read it.
#[derive(Debug)]
pub struct Mislabelled {
    pub labelled: Compression,
    pub found: Compression,
}

impl fmt::Display for Mislabelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |c: Compression| match c {
            Compression::None => "an uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        };
        write!(
            f,
            "its content is {}, but its media type says {}",
            name(self.found),
            name(self.labelled)
        )
    }
}

impl std::error::Error for Mislabelled {}

/// The tar stream inside a layer blob.
pub struct LayerReader<'a> {
    inner: Inner<'a>,
    /// Of the decompressed stream, for its diff_id.
    hasher: Option<Hasher>,
    expanded: u64,
    limit: u64,
    cancel: CancelToken,
}

enum Inner<'a> {
    Plain(Box<dyn Read + Send + 'a>),
    Gzip(Box<flate2::read::MultiGzDecoder<Box<dyn Read + Send + 'a>>>),
    Zstd(Box<Zstd<Box<dyn Read + Send + 'a>>>),
    /// Decoded on another thread.
    Ahead(Ahead),
}

impl Inner<'_> {
    /// The decoder's decompressed stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Inner::Plain(blob) => blob.read(buf),
            Inner::Gzip(gzip) => gzip.read(buf),
            Inner::Zstd(zstd) => zstd.read(buf),
            Inner::Ahead(ahead) => ahead.read(buf),
        }
    }

    /// Reads what is left of the blob after the decompressed stream ended, without decompressing
    /// it: normally nothing, as every decoder reads its stream to its end. The blob source checks the
    /// blob's digest on its last read.
    fn drain(self) -> io::Result<()> {
        let mut blob = match self {
            Inner::Plain(blob) => blob,
            Inner::Gzip(gzip) => gzip.into_inner(),
            Inner::Zstd(zstd) => zstd.source,
            // Its thread drained the blob before ending the stream.
            Inner::Ahead(_) => return Ok(()),
        };
        io::copy(&mut blob, &mut io::sink()).map(|_| ())
    }
}

/// The receiving end of [`LayerReader::read_ahead`]: chunks of the decompressed stream, an error, or
/// the end (the sender gone).
struct Ahead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Chunks read, handed back to be filled again.
    spare: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Ahead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.current.len() {
            let chunk = match self.chunks.recv() {
                Ok(chunk) => chunk?,
                Err(_) => return Ok(0),
            };
            let used = std::mem::replace(&mut self.current, chunk);
            let _ = self.spare.try_send(used);
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Not `ErrorKind::Interrupted`, which readers retry.
fn interrupted() -> io::Error {
    io::Error::other("interrupted")
}

impl<'a> LayerReader<'a> {
    /// Decompresses `blob`, compressed as `compression` says. Its first bytes are read at once: a blob
    /// that starts as another compression does fails with [`Mislabelled`], once the rest of it has
    /// been read so that a corrupt blob fails as such (an empty blob is left to the decoder). Reads fail
    /// (`Interrupted`) once `cancel` is cancelled.
    pub fn new(
        compression: Compression,
        mut blob: Box<dyn Read + Send + 'a>,
        cancel: &CancelToken,
    ) -> io::Result<LayerReader<'a>> {
        let mut first = [0u8; 4];
        let filled = read_up_to(&mut blob, &mut first)?;
        let found = sniff(&first[..filled]);
        if filled > 0 && found != compression {
            // A blob damaged in its first bytes is reported as damaged: its digest is checked on its
            // last read (the compressed bytes only, bounded by the blob's size).
            io::copy(&mut blob, &mut io::sink())?;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Mislabelled {
                    labelled: compression,
                    found,
                },
            ));
        }
        let blob: Box<dyn Read + Send + 'a> =
            Box::new(io::Cursor::new(first[..filled].to_vec()).chain(blob));
        let inner = match compression {
            Compression::None => Inner::Plain(blob),
            Compression::Gzip => Inner::Gzip(Box::new(flate2::read::MultiGzDecoder::new(blob))),
            Compression::Zstd => Inner::Zstd(Box::new(Zstd::new(blob))),
        };
        Ok(LayerReader {
            inner,
            hasher: None,
            expanded: 0,
            limit: u64::MAX,
            cancel: cancel.clone(),
        })
    }

    /// Hashes the decompressed stream with the algorithm of `diff_id` (see [`LayerReader::finish`]).
    pub fn hashing_as(mut self, diff_id: &Digest) -> LayerReader<'a> {
        self.hasher = Some(diff_id.hasher());
        self
    }

    /// Fails a read (with [`io::ErrorKind::FileTooLarge`]) once the stream has expanded to more than
    /// `limit` bytes.
    pub fn limited_to(mut self, limit: u64) -> LayerReader<'a> {
        self.limit = limit;
        self
    }

    /// Decompresses on a thread of `scope` while this reader is read: reading the blob (and hashing
    /// it for its digest) and decompressing take one core, the reader's work (the tar walk, the hash
    /// of the decompressed stream) another. The thread stops at the end of the stream, at an error,
    /// on a cancel, or when this reader is dropped.
    pub fn read_ahead<'scope>(mut self, scope: &'scope Scope<'scope, '_>) -> LayerReader<'a>
    where
        'a: 'scope,
    {
        let (chunks, receive) = sync_channel(CHUNKS_AHEAD);
        let (spare, spares) = sync_channel::<Vec<u8>>(CHUNKS_AHEAD + 2);
        let mut inner = std::mem::replace(
            &mut self.inner,
            Inner::Ahead(Ahead {
                chunks: receive,
                spare,
                current: Vec::new(),
                at: 0,
            }),
        );
        let cancel = self.cancel.clone();
        scope.spawn(move || {
            loop {
                let mut chunk = spares.try_recv().unwrap_or_default();
                chunk.resize(CHUNK, 0);
                let filled = if cancel.is_cancelled() {
                    Err(interrupted())
                } else {
                    read_up_to_with(&mut |buf| inner.read(buf), &mut chunk)
                };
                let sent = match filled {
                    Ok(0) => {
                        if let Err(e) = inner.drain() {
                            let _ = chunks.send(Err(e));
                        }
                        return;
                    }
                    Ok(n) => {
                        chunk.truncate(n);
                        chunks.send(Ok(chunk))
                    }
                    Err(e) => chunks.send(Err(e)),
                };
                if sent.is_err() {
                    // The reader is gone.
                    return;
                }
            }
        });
        self
    }

    /// Reads what is left of the stream, so that the blob source checks the blob's digest (on its last
    /// read) and the whole decompressed stream is hashed: data after the end of the tar counts too, and
    /// is bounded by the same limit. Returns the digest of the decompressed stream when asked for one
    /// ([`LayerReader::hashing_as`]), and how many bytes it has.
    pub fn finish(mut self) -> io::Result<(Option<Digest>, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        self.inner.drain()?;
        Ok((self.hasher.map(Hasher::finish), self.expanded))
    }
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Every read of a large entry's data goes through here, so a cancel is seen inside long skips.
        if self.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let n = self.inner.read(buf)?;
        self.expanded += n as u64;
        if self.expanded > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("the stream expands to more than {} bytes", self.limit),
            ));
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// A zstd stream of any number of frames. `ruzstd`'s streaming decoder reads one frame and does not
/// bound the window of the first one, so frame headers are read here: their window is checked, then
/// the header is handed to a fresh frame decoder.
struct Zstd<R> {
    source: R,
    frame: Option<FrameDecoder>,
}

impl<R: Read> Zstd<R> {
    fn new(source: R) -> Zstd<R> {
        Zstd {
            source,
            frame: None,
        }
    }

    /// Starts the next frame, skipping skippable ones; `false` at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            let mut magic = [0u8; 4];
            if !read_all_or_nothing(&mut self.source, &mut magic)? {
                return Ok(false);
            }
            let magic = u32::from_le_bytes(magic);
            if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
                let mut length = [0u8; 4];
                self.source.read_exact(&mut length).map_err(truncated)?;
                let length = u64::from(u32::from_le_bytes(length));
                let skipped = io::copy(&mut (&mut self.source).take(length), &mut io::sink())?;
                if skipped != length {
                    return Err(truncated(io::ErrorKind::UnexpectedEof.into()));
                }
                continue;
            }
            if magic != ZSTD_MAGIC {
                return Err(bad(
                    "a frame that does not start with the zstd magic number",
                ));
            }
            let header = self.frame_header()?;
            let mut decoder = FrameDecoder::new();
            decoder
                .init(io::Cursor::new(header).chain(&mut self.source))
                .map_err(|e| bad(&e.to_string()))?;
            self.frame = Some(decoder);
            return Ok(true);
        }
    }

    /// Reads the rest of a frame header (RFC 8878, 3.1.1.1) after the magic number, refusing a window
    /// above [`MAX_ZSTD_WINDOW`]. Returns the header bytes, magic number included.
    fn frame_header(&mut self) -> io::Result<Vec<u8>> {
        let mut header = ZSTD_MAGIC.to_le_bytes().to_vec();
        let mut byte = [0u8; 1];
        self.source.read_exact(&mut byte).map_err(truncated)?;
        let descriptor = byte[0];
        header.push(descriptor);
        let single_segment = descriptor & 0x20 != 0;
        let mut window = 0u64;
        if !single_segment {
            self.source.read_exact(&mut byte).map_err(truncated)?;
            header.push(byte[0]);
            let log = 10 + u32::from(byte[0] >> 3);
            let base = 1u64 << log;
            window = base + (base / 8) * u64::from(byte[0] & 7);
        }
        let dictionary_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let content_len = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let mut rest = vec![0u8; dictionary_len + content_len];
        self.source.read_exact(&mut rest).map_err(truncated)?;
        if single_segment {
            let mut size = [0u8; 8];
            size[..content_len].copy_from_slice(&rest[dictionary_len..]);
            window = u64::from_le_bytes(size) + if content_len == 2 { 256 } else { 0 };
        }
        header.extend(rest);
        if window > MAX_ZSTD_WINDOW {
            return Err(bad(&format!(
                "a frame with a {} MiB window (at most {} MiB are accepted, as libzstd does by default)",
                window >> 20,
                MAX_ZSTD_WINDOW >> 20
            )));
        }
        Ok(header)
    }
}

impl<R: Read> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(decoder) = &mut self.frame {
                while decoder.can_collect() < buf.len() && !decoder.is_finished() {
                    let wanted = buf.len() - decoder.can_collect();
                    decoder
                        .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                        .map_err(|e| bad(&e.to_string()))?;
                }
                let n = decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if decoder.is_finished() && decoder.can_collect() == 0 {
                    if let (Some(expected), Some(actual)) = (
                        decoder.get_checksum_from_data(),
                        decoder.get_calculated_checksum(),
                    ) && expected != actual
                    {
                        return Err(bad("a frame whose checksum does not match its content"));
                    }
                    self.frame = None;
                }
            }
            if !self.next_frame()? {
                return Ok(0);
            }
        }
    }
}

/// Reads into `buf` until it is full or the stream ends; returns how many bytes came.
fn read_up_to(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    read_up_to_with(&mut |buf| source.read(buf), buf)
}

/// [`read_up_to`] with any read function.
fn read_up_to_with(
    read: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Fills `buf`; `false` when the stream ends before its first byte.
fn read_all_or_nothing(source: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(truncated(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad("the stream ends inside a frame header")
    } else {
        e
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a valid zstd stream: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn decode(compression: Compression, blob: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        LayerReader::new(
            compression,
            Box::new(io::Cursor::new(blob)),
            &CancelToken::new(),
        )?
        .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn zstd_frames_and_skippable_frames_are_one_stream() {
        let mut blob = zstd(b"first frame, ");
        // A skippable frame (what zstd:chunked puts between its frames).
        blob.extend(0x184D_2A53u32.to_le_bytes());
        blob.extend(3u32.to_le_bytes());
        blob.extend(b"xyz");
        blob.extend(zstd(&b"second".repeat(10_000)));
        let out = decode(Compression::Zstd, blob).unwrap();
        assert!(out.starts_with(b"first frame, second"));
        assert_eq!(out.len(), 13 + 60_000);
    }

    #[test]
    fn zstd_windows_above_the_limit_are_refused_before_decoding() {
        // Magic, descriptor (no single segment, no checksum), window descriptor: log 10 + 21 = 2 GiB.
        let mut blob = ZSTD_MAGIC.to_le_bytes().to_vec();
        blob.extend([0x00, 21 << 3]);
        let err = decode(Compression::Zstd, blob).unwrap_err().to_string();
        assert!(err.contains("2048 MiB window"), "{err}");
        // Single segment: the content size is the window.
        let mut blob = ZSTD_MAGIC.to_le_bytes().to_vec();
        blob.push(0xE0);
        blob.extend((1u64 << 40).to_le_bytes());
        assert!(decode(Compression::Zstd, blob).is_err());
    }

    #[test]
    fn truncated_and_foreign_zstd_streams_are_errors() {
        let blob = zstd(&b"data".repeat(1000));
        assert!(decode(Compression::Zstd, blob[..blob.len() - 3].to_vec()).is_err());
        assert!(decode(Compression::Zstd, b"not zstd at all".to_vec()).is_err());
        assert_eq!(decode(Compression::Zstd, Vec::new()).unwrap(), b"");
    }

    #[test]
    fn gzip_members_are_one_stream() {
        use std::io::Write;
        let member = |data: &[u8]| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(data).unwrap();
            gz.finish().unwrap()
        };
        let mut blob = member(b"one ");
        blob.extend(member(b"two"));
        assert_eq!(decode(Compression::Gzip, blob).unwrap(), b"one two");
        assert_eq!(
            decode(Compression::None, b"plain".to_vec()).unwrap(),
            b"plain"
        );
    }

    #[test]
    fn first_bytes_name_the_compression_and_must_match_the_label() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&ZSTD_MAGIC.to_le_bytes()), Compression::Zstd);
        assert_eq!(sniff(&0x184D_2A5Fu32.to_le_bytes()), Compression::Zstd);
        assert_eq!(sniff(b"etc/"), Compression::None);
        assert_eq!(sniff(&[0x1f]), Compression::None);
        let err = decode(Compression::Gzip, zstd(b"tar")).unwrap_err();
        let mislabelled = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<Mislabelled>())
            .unwrap();
        assert_eq!(
            (mislabelled.labelled, mislabelled.found),
            (Compression::Gzip, Compression::Zstd)
        );
        assert_eq!(
            err.to_string(),
            "its content is zstd, but its media type says gzip"
        );
        assert!(decode(Compression::None, zstd(b"tar")).is_err());
        assert!(decode(Compression::Zstd, b"plain tar".to_vec()).is_err());
        // Short blobs are read whole before the check.
        assert_eq!(decode(Compression::None, b"ab".to_vec()).unwrap(), b"ab");
    }

    #[test]
    fn the_stream_is_hashed_to_its_end_and_limited() {
        let data = b"tar bytes ".repeat(1000);
        let diff_id = Digest::of(&data);
        let blob = zstd(&data);
        let open = || {
            LayerReader::new(
                Compression::Zstd,
                Box::new(io::Cursor::new(blob.clone())),
                &CancelToken::new(),
            )
        };
        // Reading only a part, then finishing, still hashes the whole stream.
        let mut reader = open().unwrap().hashing_as(&diff_id);
        let mut start = [0u8; 10];
        reader.read_exact(&mut start).unwrap();
        assert_eq!(reader.finish().unwrap(), (Some(diff_id), 10_000));
        let exact = open().unwrap().limited_to(10_000);
        assert_eq!(exact.finish().unwrap(), (None, 10_000));
        let err = open().unwrap().limited_to(9_999).finish().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
    }
}
