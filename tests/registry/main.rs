//! Registries: pushing, pulling, hostile registries, credentials, and base images taken from a
//! registry or an archive. One test binary, so that the support code is compiled and linked once
//! for all of them.

// Tests are scenarios written as scripts; the pedantic lints are for the library and the commands.
#![allow(clippy::pedantic)]

#[path = "../support/mod.rs"]
mod support;

mod base_images;
mod cloud_credentials;
mod credentials;
mod hostile_registry;
mod image_refs;
mod pull;
mod registry;
mod signing;
