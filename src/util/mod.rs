//! Small helpers every layer uses: cancellation and child processes, files and output paths, text
//! from outside made safe to print, timestamps.

pub mod cancel;
pub(crate) mod child;
pub(crate) mod destination;
pub(crate) mod fsutil;
pub(crate) mod outputs;
pub mod sanitize;
pub mod terminal;
pub mod text_output;
pub mod timestamp;
#[cfg(windows)]
pub(crate) mod windows;
