//! Content digests (`sha256:<hex>`, `sha512:<hex>`), validated when parsed so that a digest can always
//! name a blob path; a writer that hashes and counts; a reader that verifies.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// The digest algorithms of the OCI image spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-256, what every image uses.
    Sha256,
    /// SHA-512, allowed by the OCI spec.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name in a digest string, e.g. `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest: an algorithm and its lowercase hex, both checked, so `blobs/<alg>/<hex>` is
/// always a plain relative path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The sha256 digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::of_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The sha256 digest of what `hasher` has seen.
    pub fn of_hasher(hasher: Sha256) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: to_hex(&hasher.finalize()),
        }
    }

    /// Parses `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
    pub fn parse(s: &str) -> Option<Digest> {
        let (algorithm, hex) = s.split_once(':')?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return None,
        };
        let valid = hex.len() == algorithm.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The algorithm of this digest.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex digits without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Path of this blob inside an OCI image layout.
    pub fn blob_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.as_str(), self.hex)
    }

    /// A hasher of this digest's algorithm, to verify content against it.
    pub fn hasher(&self) -> Hasher {
        match self.algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// The first 12 hex digits, for status lines.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> crate::error::Result<Digest> {
        Digest::parse(s).ok_or_else(|| {
            crate::error::Error::Invalid(format!(
                "`{}` is not a digest (sha256:<64 hex> or sha512:<128 hex>)",
                crate::util::sanitize::outside(s, 140)
            ))
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{}` is not a sha256 or sha512 digest",
                crate::util::sanitize::outside(&text, 140)
            ))
        })
    }
}

/// A running hash of either algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// Hashing with SHA-256.
    Sha256(Sha256),
    /// Hashing with SHA-512.
    Sha512(Sha512),
}

impl Hasher {
    /// Feeds `bytes` into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::of_hasher(h),
            Hasher::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: to_hex(&h.finalize()),
            },
        }
    }
}

/// Passes writes through to `inner` while hashing them (sha256) and counting bytes.
///
/// `sha2` hashers are not `io::Write`, and every stream we hash also needs its length.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, hashing with SHA-256.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::of_hasher(self.hasher), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `size` bytes and checks them against a digest; the read that delivers the last byte
/// fails instead when the content does not match, so a consumer (an upload) never completes with bad
/// bytes. A stream ending early, or going on past `size`, is an error too.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    read: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, which must yield exactly `size` bytes with digest `expected`.
    pub fn new(inner: R, expected: Digest, size: u64) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            hasher: Some(expected.hasher()),
            expected,
            size,
            read: 0,
        }
    }

    fn verify(&mut self) -> io::Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is corrupt (its content hashes to {actual})",
                    self.expected
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.read == self.size {
            // An empty blob still has to match, once.
            self.verify()?;
            return Ok(0);
        }
        let want = usize::try_from(self.size - self.read).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob {} ends after {} of its {} bytes",
                    self.expected, self.read, self.size
                ),
            ));
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.read += n as u64;
        if self.read == self.size {
            self.verify()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest_and_counts() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, digest, len) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(len, 11);
        assert_eq!(digest, Digest::of(b"hello world"));
    }

    #[test]
    fn parse_accepts_only_valid_lowercase_digests() {
        let d = Digest::of(b"x");
        assert_eq!(Digest::parse(&d.to_string()), Some(d.clone()));
        assert!(Digest::parse(&d.to_string().to_uppercase()).is_none());
        assert!(Digest::parse("sha512:abcd").is_none());
        assert!(Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").is_none());
        assert!(Digest::parse(&format!("sha256:{}", &d.hex()[1..])).is_none());
        assert!(Digest::parse(&format!("sha256:../../{}", &d.hex()[6..])).is_none());
        let mut h = Sha512::new();
        h.update(b"x");
        let sha512 = format!("sha512:{}", to_hex(&h.finalize()));
        let parsed = Digest::parse(&sha512).unwrap();
        assert_eq!(parsed.blob_path(), format!("blobs/sha512/{}", &sha512[7..]));
        let mut hasher = parsed.hasher();
        hasher.update(b"x");
        assert_eq!(hasher.finish(), parsed);
    }

    #[test]
    fn serde_refuses_invalid_digests() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>(r#""sha256:../../etc/passwd""#).is_err());
    }

    #[test]
    fn verifying_reader_fails_the_last_read_on_a_mismatch() {
        let data = b"hello world";
        let good = Digest::of(data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], good.clone(), 11)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let mut reader = VerifyingReader::new(&data[..], Digest::of(b"hello worle"), 11);
        let mut buf = [0u8; 4];
        let mut delivered = 0;
        let err = loop {
            match reader.read(&mut buf) {
                Ok(n) => delivered += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(delivered < 11, "the final bytes were held back");

        let err = VerifyingReader::new(&data[..5], good, 11)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = VerifyingReader::new(&b""[..], Digest::of(b"x"), 0)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        VerifyingReader::new(&b""[..], Digest::of(b""), 0)
            .read_to_end(&mut Vec::new())
            .unwrap();
    }
}
