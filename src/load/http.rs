//! Just enough HTTP/1.1 for a local daemon's API on a unix socket: one request per connection, a
//! request body streamed with chunked encoding, and a response read within fixed bounds (the head at
//! most [`MAX_HEAD`] bytes, a chunk-size line at most 1 KiB).

use std::io::{self, BufRead, Read, Write};

/// Largest response head (status line and headers) read.
pub(crate) const MAX_HEAD: u64 = 64 << 10;
const MAX_CHUNK_LINE: u64 = 1024;
/// A request body goes out in chunks of this size.
const CHUNK: usize = 64 << 10;

/// Writes a request head. `Connection: close`: each request has its own connection.
pub(crate) fn write_head(
    out: &mut dyn Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: zeroimage/{}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// A request body in chunked encoding: buffered into [`CHUNK`]-sized chunks; [`finish`](Self::finish)
/// sends the last one and the terminating empty chunk.
pub(crate) struct ChunkedWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ChunkedWriter<W> {
    pub(crate) fn new(inner: W) -> ChunkedWriter<W> {
        ChunkedWriter {
            inner,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        write!(self.inner, "{:x}\r\n", self.buf.len())?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(b"\r\n")?;
        self.buf.clear();
        Ok(())
    }

    /// Sends what is buffered and ends the body.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.send_chunk()?;
        self.inner.write_all(b"0\r\n\r\n")?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full; `finish` sends the rest.
        Ok(())
    }
}

/// How the response body is delimited.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked {
        left: u64,
        /// A chunk's data ended and its CRLF is still to be read.
        crlf: bool,
        done: bool,
    },
    Close,
}

/// A response: status and the body, readable with [`Read`] (chunked encoding undone).
#[derive(Debug)]
pub(crate) struct Response<R> {
    pub status: u16,
    reader: R,
    framing: Framing,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One CRLF- or LF-terminated line, at most `limit` bytes.
fn read_line(reader: &mut dyn BufRead, limit: u64) -> io::Result<String> {
    let mut line = Vec::new();
    reader.take(limit + 1).read_until(b'\n', &mut line)?;
    if line.len() as u64 > limit {
        return Err(bad("the daemon sent an overlong line"));
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads the response head; the body is then read from the response.
pub(crate) fn read_response<R: BufRead>(mut reader: R) -> io::Result<Response<R>> {
    let mut budget = MAX_HEAD;
    let mut next_line = |reader: &mut R| -> io::Result<String> {
        let line = read_line(reader, budget)?;
        budget = budget.saturating_sub(line.len() as u64 + 2);
        Ok(line)
    };
    let status_line = next_line(&mut reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(bad("the daemon did not answer in HTTP/1.x"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| bad("the daemon sent a malformed status line"))?;
    let mut framing = Framing::Close;
    loop {
        let line = next_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("the daemon sent a malformed header"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                framing = Framing::Chunked {
                    left: 0,
                    crlf: false,
                    done: false,
                };
            }
            "content-length" if !matches!(framing, Framing::Chunked { .. }) => {
                framing = Framing::Length(
                    value
                        .parse()
                        .map_err(|_| bad("the daemon sent a malformed Content-Length"))?,
                );
            }
            _ => {}
        }
    }
    Ok(Response {
        status,
        reader,
        framing,
    })
}

impl<R: BufRead> Read for Response<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.framing {
            Framing::Close => self.reader.read(buf),
            Framing::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the daemon's answer was cut short",
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked { left, crlf, done } => loop {
                if *done {
                    return Ok(0);
                }
                if *left > 0 {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = self.reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the daemon's answer was cut short",
                        ));
                    }
                    *left -= n as u64;
                    if *left == 0 {
                        *crlf = true;
                    }
                    return Ok(n);
                }
                if *crlf {
                    if !read_line(&mut self.reader, 2)?.is_empty() {
                        return Err(bad("the daemon sent a malformed chunk"));
                    }
                    *crlf = false;
                }
                let line = read_line(&mut self.reader, MAX_CHUNK_LINE)?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| bad("the daemon sent a malformed chunk size"))?;
                if size == 0 {
                    // Trailers, then the end.
                    while !read_line(&mut self.reader, MAX_CHUNK_LINE)?.is_empty() {}
                    *done = true;
                } else {
                    *left = size;
                }
            },
        }
    }
}

/// Percent-encodes an image name for a URL path (`/` and `:` stay, as docker's routes expect them).
pub(crate) fn encode_path(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(byte as char);
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &str) -> (u16, String) {
        let mut response = read_response(raw.as_bytes()).unwrap();
        let mut text = String::new();
        response.read_to_string(&mut text).unwrap();
        (response.status, text)
    }

    #[test]
    fn chunked_length_and_close_delimited_bodies_are_read() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(body(chunked), (200, "hello world".to_owned()));
        let length = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(body(length), (404, "abc".to_owned()));
        let close = "HTTP/1.0 500 Oops\nContent-Type: text/plain\n\nuntil the end";
        assert_eq!(body(close), (500, "until the end".to_owned()));
    }

    #[test]
    fn malformed_and_oversized_heads_are_refused() {
        assert!(read_response("SSH-2.0\r\n\r\n".as_bytes()).is_err());
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(70_000));
        assert!(read_response(huge.as_bytes()).is_err());
        let cut = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        let mut response = read_response(cut.as_bytes()).unwrap();
        assert!(response.read_to_end(&mut Vec::new()).is_err());
        let bad_size = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let mut response = read_response(bad_size.as_bytes()).unwrap();
        assert!(response.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn chunked_writer_frames_and_ends_the_body() {
        let mut writer = ChunkedWriter::new(Vec::new());
        writer.write_all(b"abc").unwrap();
        writer.write_all(&vec![b'x'; CHUNK]).unwrap();
        let sent = writer.finish().unwrap();
        let raw = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            &sent,
        ]
        .concat();
        let mut response = read_response(raw.as_slice()).unwrap();
        let mut back = Vec::new();
        response.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), CHUNK + 3);
        assert!(back.starts_with(b"abcx"));
        assert!(sent.ends_with(b"0\r\n\r\n"));
    }

    #[test]
    fn names_are_encoded_for_paths() {
        assert_eq!(
            encode_path("localhost:5000/app:1.0"),
            "localhost:5000/app:1.0"
        );
        assert_eq!(encode_path("a b?#"), "a%20b%3F%23");
    }
}
