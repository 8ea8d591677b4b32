//! Layer compression and decompression.

pub mod compress;
pub(crate) mod decompress;
