//! `cargo zeroimage`: real cargo builds of the fixtures, crates with C code, the README's recipes,
//! and SBOMs and provenance. One test binary, so that the support code is compiled and linked once
//! for all of them.

// Tests are scenarios written as scripts; the pedantic lints are for the library and the commands.
#![allow(clippy::pedantic)]

#[path = "../support/mod.rs"]
mod support;

mod cargo_c_code;
mod cargo_zeroimage;
mod recipes;
mod release;
mod sbom;
