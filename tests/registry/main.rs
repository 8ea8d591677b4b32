//! Registries: pushing, pulling, hostile registries, credentials, and base images taken from a
//! registry or an archive. One test binary, so that the support code is compiled and linked once
//! for all of them.

#[path = "../support/mod.rs"]
mod support;

mod base_images;
mod credentials;
mod hostile_registry;
mod pull;
mod registry;
