//! `cargo zeroimage`: real cargo builds of the fixtures, crates with C code, the README's recipes,
//! and SBOMs and provenance. One test binary, so that the support code is compiled and linked once
//! for all of them.

#[path = "../support/mod.rs"]
mod support;

mod cargo_c_code;
mod cargo_zeroimage;
mod recipes;
mod sbom;
