//! podman: `podman load` reading the stream on its standard input, so that the user's own podman
//! setup applies (storage.conf, containers.conf, rootless storage, and `CONTAINER_HOST` or
//! `--remote` configuration for a podman service elsewhere). podman keeps one image per platform
//! under a name; the whole index becomes a podman manifest list of the loaded images.

use std::process::Command;

use super::stream::{self, write_image};
use super::{Selection, command};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::ImageTree;
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::util::cancel::CancelToken;
use crate::util::sanitize;

const INSTALL: &str = "install podman (Debian and Ubuntu: `apt-get install podman`)";

pub(super) fn preflight() -> Result<()> {
    command::installed("podman", INSTALL)
}

fn podman(args: &[&str], what: &str, cancel: &CancelToken) -> Result<String> {
    let finished = command::run(Command::new("podman").args(args), "podman", INSTALL, cancel)?;
    if !finished.success {
        return Err(Error::Invalid(format!(
            "`podman {what}` failed: {}",
            finished.message()
        )));
    }
    Ok(finished.stdout)
}

/// Loads `tree` (one platform) and returns what podman calls it: the name, or `sha256:ID` unnamed.
fn load_one(
    tree: &ImageTree,
    blobs: &dyn BlobSource,
    name: Option<&Reference>,
    cancel: &CancelToken,
) -> Result<String> {
    let finished = command::run_fed(
        Command::new("podman").arg("load"),
        "podman",
        INSTALL,
        cancel,
        |w| write_image(w, tree, blobs, name, cancel),
    )?;
    if !finished.success {
        return Err(Error::Invalid(format!(
            "`podman load` failed: {}",
            finished.message()
        )));
    }
    // `Loaded image: NAME` (podman 4 and later), `Loaded image(s): NAME,...` (podman 3).
    let loaded = finished
        .stdout
        .lines()
        .rev()
        .find(|line| line.contains("Loaded image"))
        .and_then(|line| line.split_once(": "))
        .and_then(|(_, names)| names.split(',').next())
        .map(|name| sanitize::outside(name.trim(), 300));
    loaded.ok_or_else(|| {
        Error::Invalid(format!(
            "`podman load` did not say what it loaded: {}",
            finished.message()
        ))
    })
}

fn image_id(reference: &str, cancel: &CancelToken) -> Result<String> {
    let id = podman(
        &["image", "inspect", "--format", "{{.Id}}", reference],
        "image inspect",
        cancel,
    )?;
    Ok(sanitize::outside(id.trim(), 200))
}

/// Loads the selection; returns the name podman lists it under and its image ID.
pub(super) fn load(
    selection: &Selection,
    blobs: &dyn BlobSource,
    name: &Reference,
    cx: &Context,
) -> Result<(String, String)> {
    let cancel = cx.cancel();
    if !selection.all {
        let loaded = load_one(&selection.tree, blobs, Some(name), cancel)?;
        let id = image_id(&loaded, cancel)?;
        return Ok((loaded, id));
    }
    // Every platform's image, unnamed, then a manifest list under the name pointing at them.
    let mut ids = Vec::new();
    for index in 0..selection.tree.manifests.len() {
        let one = stream::single(&selection.tree, index);
        let loaded = load_one(&one, blobs, None, cancel)?;
        cx.listener().detail(&format!(
            "podman loaded the {} image as {loaded}",
            stream::describe_platforms(&one)
        ));
        ids.push(image_id(&loaded, cancel)?);
    }
    let full = name.full();
    // The name moves to the new list; an image it named before stays, unnamed (as a load does).
    let _ = command::run(
        Command::new("podman").args(["untag", &full]),
        "podman",
        INSTALL,
        cancel,
    );
    let list = podman(&["manifest", "create", &full], "manifest create", cancel)?;
    for id in &ids {
        podman(
            &[
                "manifest",
                "add",
                &full,
                &format!("containers-storage:{id}"),
            ],
            "manifest add",
            cancel,
        )?;
    }
    Ok((full, sanitize::outside(list.trim(), 200)))
}
