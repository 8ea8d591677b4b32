//! The OCI image layout, in a tar archive or a directory: read as a source of images, written as the
//! archive.

pub(crate) mod archive;
pub mod dir;
pub mod read;
