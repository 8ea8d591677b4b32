//! Credentials cloud registries hand out without a login step.

pub mod sigv4;
