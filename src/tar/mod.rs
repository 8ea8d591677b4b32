//! The tar format, as far as images need it.

pub(crate) mod read;
pub(crate) mod write;
