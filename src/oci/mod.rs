//! OCI image-spec documents, written by hand so that every map is ordered and every byte is ours to pin.

mod digest;
mod types;

pub use digest::{Digest, HashingWriter};
pub use types::*;
