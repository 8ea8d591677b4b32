//! containerd: `ctr images import` reading the stream on its standard input, into a namespace
//! (`k8s.io` for the images a k3s or kind node runs). ctr unpacks the image into the snapshotter
//! (`$CONTAINERD_SNAPSHOTTER`, else containerd's default), so it is ready for `ctr run`. ctr ships
//! with containerd; speaking containerd's gRPC API directly would take an HTTP/2 and protobuf stack.

#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;

use super::stream::write_image;
#[cfg(windows)]
use super::windows::UnixStream;
use super::{Selection, command, socket_error};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;

const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
const INSTALL: &str = "install containerd's client `ctr` (Debian and Ubuntu: `apt-get install \
                       containerd`; k3s: `k3s ctr`, linked as ctr)";
const START: &str = "start containerd (`sudo systemctl start containerd`), or set CONTAINERD_ADDRESS \
                     to its socket (k3s: /run/k3s/containerd/containerd.sock)";
const PERMISSION: &str = "containerd's socket belongs to root: run as root (`sudo -E`), or give \
                          your group access to the socket";

/// containerd's socket: `$CONTAINERD_ADDRESS`, else the default; and where that came from.
fn address() -> (PathBuf, &'static str) {
    match std::env::var("CONTAINERD_ADDRESS") {
        Ok(address) if !address.is_empty() => (
            PathBuf::from(address.strip_prefix("unix://").unwrap_or(&address)),
            "CONTAINERD_ADDRESS",
        ),
        _ => (
            PathBuf::from(DEFAULT_ADDRESS),
            "containerd's default; CONTAINERD_ADDRESS names another",
        ),
    }
}

/// The socket accepts connections, and ctr is installed.
pub(super) fn preflight() -> Result<()> {
    if cfg!(windows) {
        return Err(Error::Invalid(
            "--load containerd needs containerd's unix socket, which Windows hosts do not have; \
             import the archive with `ctr images import` where containerd runs, or load into \
             docker or podman"
                .to_owned(),
        ));
    }
    let (socket, origin) = address();
    UnixStream::connect(&socket).map_err(|e| {
        socket_error(
            "containerd",
            "CONTAINERD_ADDRESS",
            &socket,
            origin,
            &e,
            START,
            PERMISSION,
        )
    })?;
    command::installed("ctr", INSTALL)
}

/// The namespace: the option, else `$CONTAINERD_NAMESPACE`, else `default`.
fn namespace(option: Option<&str>) -> String {
    option
        .map(str::to_owned)
        .or_else(|| std::env::var("CONTAINERD_NAMESPACE").ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Imports the selection; returns the name containerd lists it under and the digest it points at.
pub(super) fn load(
    selection: &Selection,
    blobs: &dyn BlobSource,
    name: &Reference,
    namespace_option: Option<&str>,
    cx: &Context,
) -> Result<(String, String)> {
    let listener = cx.listener();
    preflight()?;
    let (socket, _) = address();
    let namespace = namespace(namespace_option);
    listener.detail(&format!(
        "ctr images import at {} in namespace {namespace}",
        socket.display()
    ));
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(&socket)
        .args(["--namespace", &namespace, "images", "import"]);
    if selection.all {
        cmd.arg("--all-platforms");
    } else if let Some(platform) = selection.tree.top.platform.as_ref() {
        // Without it, ctr keeps only the machine's platform: a foreign image would be filtered out.
        cmd.args(["--platform", &platform.to_string()]);
    }
    cmd.arg("-");
    let finished = command::run_fed(&mut cmd, "ctr", INSTALL, cx.cancel(), |w| {
        write_image(w, &selection.tree, blobs, Some(name), cx.cancel())
    })?;
    let full = name.full();
    if !finished.success {
        return Err(Error::Invalid(format!(
            "`ctr images import` of {full} into containerd ({}, namespace {namespace}) failed: {}",
            socket.display(),
            finished.message()
        )));
    }
    if !finished.stdout.contains(&full) {
        return Err(Error::Invalid(format!(
            "`ctr images import` did not import {full}: {}",
            finished.message()
        )));
    }
    Ok((full, selection.tree.top.digest.to_string()))
}
