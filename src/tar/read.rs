//! Walking a tar stream whatever it claims, in constant memory: headers are checked (checksum, sizes),
//! PAX and GNU long-name extensions are read only up to a small bound, and entry data is skipped or
//! handed out as a bounded reader. The `tar` crate parses each header; its own reader keeps extension
//! records of any declared size in memory, which a hostile archive turns into gigabytes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

const BLOCK: u64 = 512;
/// Largest PAX extended header we read (paths, link targets, a few attributes).
const MAX_PAX: u64 = 1 << 20;
/// Largest GNU long name or long link target.
const MAX_LONG_NAME: u64 = 64 << 10;

/// A tar stream's source: it can skip data without reading it when it is a file.
pub trait TarSource: Read {
    /// Moves `n` bytes forward.
    fn skip(&mut self, n: u64) -> io::Result<()>;
}

impl TarSource for File {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(|_| invalid("an entry size beyond any file"))?;
        self.seek(SeekFrom::Current(n)).map(|_| ())
    }
}

impl<T: AsRef<[u8]>> TarSource for io::Cursor<T> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(|_| invalid("an entry size beyond any file"))?;
        self.seek(SeekFrom::Current(n)).map(|_| ())
    }
}

/// A non-seekable stream (a decompressed layer): skipping reads and drops.
#[allow(
    dead_code,
    reason = "reading a decompressed layer's entries; only the tests do it today"
)]
pub struct Stream<R>(pub R);

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> TarSource for Stream<R> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.0).take(n), &mut io::sink())?;
        if copied != n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            ));
        }
        Ok(())
    }
}

/// One entry's header, with PAX and GNU extensions applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHead {
    /// The path as stored (bytes: tar does not promise UTF-8).
    pub path: Vec<u8>,
    pub kind: tar::EntryType,
    /// Bytes of data following the header.
    pub size: u64,
    /// Link target, for hard and symbolic links.
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    /// Owner, with PAX `uid`/`gid` applied (0 when the header field cannot be read).
    pub uid: u64,
    pub gid: u64,
    /// Where the data starts, counted from the start of the stream.
    pub offset: u64,
}

impl EntryHead {
    /// The path as text with a leading `./` removed, when it is UTF-8.
    pub fn name(&self) -> Option<&str> {
        let name = std::str::from_utf8(&self.path).ok()?;
        Some(name.strip_prefix("./").unwrap_or(name))
    }
}

/// Iterates over the entries of a tar stream.
pub struct Walker<R> {
    source: R,
    /// Stream position of the next header.
    next: u64,
    /// Bytes of the current entry's data not consumed yet (data is padded to 512 bytes).
    position: u64,
    /// Stream position where the current entry's data ends (its padding follows).
    data_end: u64,
    done: bool,
}

impl<R: TarSource> Walker<R> {
    pub fn new(source: R) -> Walker<R> {
        Walker {
            source,
            next: 0,
            position: 0,
            data_end: 0,
            done: false,
        }
    }

    /// The next entry, or `None` at the end of the archive. Data of the previous entry that was not read
    /// is skipped.
    pub fn next_entry(&mut self) -> io::Result<Option<EntryHead>> {
        if self.done {
            return Ok(None);
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<u8>> = None;
        loop {
            if !self.seek_to_next()? {
                self.done = true;
                return Ok(None);
            }
            let mut block = [0u8; BLOCK as usize];
            if !self.read_block(&mut block)? {
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            check_checksum(&block, header)?;
            let kind = header.entry_type();
            let size = header.entry_size()?;
            let data = self.next;
            self.next = data
                .checked_add(padded(size))
                .ok_or_else(|| invalid("an entry size beyond any file"))?;
            self.data_end = data + size;
            match kind {
                tar::EntryType::XHeader => {
                    pax = Some(self.read_extension(size, MAX_PAX, "PAX header")?);
                }
                tar::EntryType::XGlobalHeader => {
                    // Global defaults are read and ignored: they may not change where data lies.
                    self.read_extension(size, MAX_PAX, "PAX global header")?;
                }
                tar::EntryType::GNULongName => {
                    long_name = Some(trim_nul(self.read_extension(
                        size,
                        MAX_LONG_NAME,
                        "long name",
                    )?));
                }
                tar::EntryType::GNULongLink => {
                    long_link = Some(trim_nul(self.read_extension(
                        size,
                        MAX_LONG_NAME,
                        "long link name",
                    )?));
                }
                tar::EntryType::GNUSparse => {
                    return Err(invalid("a GNU sparse file, which is not supported here"));
                }
                _ => {
                    let mut path = long_name
                        .take()
                        .unwrap_or_else(|| header.path_bytes().into_owned());
                    let mut link = long_link
                        .take()
                        .or_else(|| header.link_name_bytes().map(std::borrow::Cow::into_owned));
                    let mut size = size;
                    let mut uid = header.uid().unwrap_or(0);
                    let mut gid = header.gid().unwrap_or(0);
                    if let Some(records) = pax.take() {
                        for (key, value) in pax_records(&records)? {
                            match key {
                                b"path" => path = value.to_vec(),
                                b"linkpath" => link = Some(value.to_vec()),
                                b"size" => {
                                    size = std::str::from_utf8(value)
                                        .ok()
                                        .and_then(|v| v.parse().ok())
                                        .ok_or_else(|| {
                                            invalid("a PAX size that is not a number")
                                        })?;
                                    self.next = data
                                        .checked_add(padded(size))
                                        .ok_or_else(|| invalid("an entry size beyond any file"))?;
                                    self.data_end = data + size;
                                }
                                b"uid" => uid = pax_number(value).unwrap_or(uid),
                                b"gid" => gid = pax_number(value).unwrap_or(gid),
                                _ => {}
                            }
                        }
                    }
                    return Ok(Some(EntryHead {
                        path,
                        kind,
                        size,
                        link,
                        mode: header.mode().unwrap_or(0),
                        uid,
                        gid,
                        offset: data,
                    }));
                }
            }
        }
    }

    /// A reader over the current entry's data (which `entry` describes), at most `entry.size` bytes.
    #[allow(
        dead_code,
        reason = "reading a decompressed layer's entries; only the tests do it today"
    )]
    pub fn data(&mut self, entry: &EntryHead) -> io::Result<EntryData<'_, R>> {
        if self.position != entry.offset {
            return Err(invalid("entry data was already consumed"));
        }
        Ok(EntryData {
            walker: self,
            left: entry.size,
        })
    }

    /// Moves to the next header; `false` when the stream ends in the padding of the last entry's data.
    fn seek_to_next(&mut self) -> io::Result<bool> {
        // `position` is where the source is now; move it to the next header.
        if self.next < self.position {
            return Err(invalid("entry data was read past its end"));
        }
        if self.data_end > self.position {
            self.source.skip(self.data_end - self.position)?;
            self.position = self.data_end;
        }
        let padding = self.next - self.position;
        self.position = self.next;
        match self.source.skip(padding) {
            Ok(()) => Ok(true),
            // umoci 0.4 ends its layers right after the last entry's data, without padding or the
            // end-of-archive blocks (as a seek past the end of a file reads): what came is complete.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads one header block; `false` at a clean end of stream.
    fn read_block(&mut self, block: &mut [u8; BLOCK as usize]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < block.len() {
            match self.source.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(invalid("the archive ends inside a header")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.position += BLOCK;
        self.next = self.position;
        Ok(true)
    }

    fn read_extension(&mut self, size: u64, max: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > max {
            return Err(invalid(&format!(
                "a {what} of {size} bytes (at most {max} are accepted)"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut self.source).take(size).read_to_end(&mut bytes)?;
        self.position += bytes.len() as u64;
        if bytes.len() as u64 != size {
            return Err(invalid("the archive ends inside an extension header"));
        }
        Ok(bytes)
    }
}

/// The data of one entry; what is not read is skipped by the next [`Walker::next_entry`].
#[allow(
    dead_code,
    reason = "reading a decompressed layer's entries; only the tests do it today"
)]
pub struct EntryData<'a, R> {
    walker: &'a mut Walker<R>,
    left: u64,
}

impl<R: TarSource> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        let n = self.walker.source.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            ));
        }
        self.left -= n as u64;
        self.walker.position += n as u64;
        Ok(n)
    }
}

fn pax_number(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK).saturating_mul(BLOCK)
}

fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a valid tar archive: {what}"),
    )
}

fn check_checksum(block: &[u8; BLOCK as usize], header: &tar::Header) -> io::Result<()> {
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    let stored = header
        .cksum()
        .map_err(|_| invalid("a header checksum that is not a number"))?;
    if stored != sum {
        return Err(invalid("a header checksum mismatch"));
    }
    Ok(())
}

/// The `key=value` records of a PAX extended header (`LEN key=value\n`, LEN counting the whole record).
fn pax_records(bytes: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| invalid("a malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .filter(|&l| l > space + 1 && l <= rest.len())
            .ok_or_else(|| invalid("a malformed PAX record length"))?;
        let record = &rest[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| invalid("a PAX record without its newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| invalid("a PAX record without `=`"))?;
        records.push((&record[..eq], &record[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data).unwrap();
    }

    fn walk(bytes: Vec<u8>) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut walker = Walker::new(Stream(io::Cursor::new(bytes)));
        let mut out = Vec::new();
        while let Some(head) = walker.next_entry()? {
            let mut data = Vec::new();
            walker.data(&head)?.read_to_end(&mut data)?;
            out.push((head.name().unwrap_or("?").to_owned(), data));
        }
        Ok(out)
    }

    #[test]
    fn reads_plain_long_and_pax_names() {
        let mut builder = tar::Builder::new(Vec::new());
        entry(&mut builder, "./short", b"one");
        let long = format!("{}/file", "d".repeat(300));
        // The tar crate writes a GNU long-name entry for this one.
        entry(&mut builder, &long, b"two");
        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("path", b"pax/named".as_slice())])
            .unwrap();
        entry(&mut pax, "ignored", b"three");
        let mut bytes = builder.into_inner().unwrap();
        bytes.truncate(bytes.len() - 1024);
        bytes.extend(pax.into_inner().unwrap());
        let entries = walk(bytes).unwrap();
        assert_eq!(entries[0], ("short".to_owned(), b"one".to_vec()));
        assert_eq!(entries[1], (long, b"two".to_vec()));
        assert_eq!(entries[2], ("pax/named".to_owned(), b"three".to_vec()));
    }

    #[test]
    fn huge_extension_headers_are_refused_without_reading_them() {
        let mut header = tar::Header::new_ustar();
        header.set_path("PaxHeaders/x").unwrap();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(4 << 30);
        header.set_cksum();
        let bytes = header.as_bytes().to_vec();
        let err = walk(bytes).unwrap_err().to_string();
        assert!(err.contains("at most"), "{err}");
    }

    #[test]
    fn a_stream_may_end_in_the_padding_of_its_last_entry() {
        let mut builder = tar::Builder::new(Vec::new());
        entry(&mut builder, "a", b"first");
        entry(&mut builder, "b", b"last");
        let mut bytes = builder.into_inner().unwrap();
        // What umoci 0.4 writes: no padding after the last data, no end-of-archive blocks.
        bytes.truncate(3 * 512 + 4);
        let entries = walk(bytes.clone()).unwrap();
        assert_eq!(entries[1], ("b".to_owned(), b"last".to_vec()));
        // Without reading the data, skipping it still needs all of it.
        let mut walker = Walker::new(Stream(io::Cursor::new(&bytes[..3 * 512 + 2])));
        walker.next_entry().unwrap();
        walker.next_entry().unwrap();
        assert!(walker.next_entry().is_err());
    }

    #[test]
    fn corrupt_headers_and_truncation_are_errors() {
        let mut builder = tar::Builder::new(Vec::new());
        entry(&mut builder, "a", b"data");
        let mut bytes = builder.into_inner().unwrap();
        bytes[10] ^= 1;
        assert!(
            walk(bytes.clone())
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        bytes[10] ^= 1;
        bytes.truncate(300);
        assert!(walk(bytes).is_err());
    }
}
