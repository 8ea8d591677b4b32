//! Images handed to real runtimes and peers: `--load` into docker, containerd and podman, and
//! skopeo, umoci + runc, oci-image-tool, podman, docker, containerd and qemu running what we wrote.
//! One test binary, so that the support code is compiled and linked once for all of them.

// Tests are scenarios written as scripts; the pedantic lints are for the library and the commands.
#![allow(clippy::pedantic)]

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod load;
mod oci_layout;
mod peers;
