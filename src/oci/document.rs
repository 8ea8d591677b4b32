//! A JSON document together with the exact bytes it was read from or serialized to: digests are of
//! those bytes, so a document read is never re-serialized to be hashed, and one we write is serialized
//! once, then hashed and written as is.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Descriptor, Digest, MediaType};

/// A parsed document and its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Document<T> {
    value: T,
    bytes: Vec<u8>,
    digest: Digest,
}

impl<T: Serialize> Document<T> {
    /// Serializes `value` once; those bytes are the document.
    pub fn new(value: T) -> Document<T> {
        let bytes = to_json_bytes(&value);
        let digest = Digest::of(&bytes);
        Document {
            value,
            bytes,
            digest,
        }
    }
}

impl<T: DeserializeOwned> Document<T> {
    /// Parses `bytes`, keeping them; the digest is computed with `expected`'s algorithm (callers check
    /// it against what the descriptor said).
    pub fn parse(bytes: Vec<u8>, expected: &Digest) -> serde_json::Result<Document<T>> {
        let value = serde_json::from_slice(&bytes)?;
        let mut hasher = expected.hasher();
        hasher.update(&bytes);
        Ok(Document {
            value,
            digest: hasher.finish(),
            bytes,
        })
    }
}

impl<T> Document<T> {
    /// The parsed value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The exact bytes the digest is of.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The digest of the bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The size of the bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// A descriptor of this document with `media_type`.
    pub fn descriptor(&self, media_type: MediaType) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.size())
    }
}

/// Serializes a document to the exact bytes that are hashed and written.
pub fn to_json_bytes<T: Serialize>(doc: &T) -> Vec<u8> {
    // Our documents hold only strings, integers, booleans, vectors and string-keyed maps: serialization
    // cannot fail.
    serde_json::to_vec(doc).unwrap_or_else(|e| unreachable!("serializing an OCI document: {e}"))
}
