//! The `zeroimage` command line and what it writes: bad input, ELF checks, the image format,
//! configuration and layers, compression, multi-platform archives, base images read from disk,
//! signals, signing keys and signed documents, the fuzz regressions, and the Windows build under
//! wine. One test binary, so that the support code is compiled and linked once for all of them.

// Tests are scenarios written as scripts; the pedantic lints are for the library and the commands.
#![allow(clippy::pedantic)]

#[path = "../support/mod.rs"]
mod support;

mod base_checks;
mod base_rootfs;
mod cli;
mod compression;
mod elf_checks;
mod fuzz_regressions;
mod image_config;
mod image_format;
mod lambda;
mod layer_contents;
mod multi_platform;
mod oci_layout;
mod signals;
mod signing_keys;
mod validator;
mod windows_host;
