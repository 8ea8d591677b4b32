//! Adding an image to an OCI image layout directory (`--oci-layout DIR`; ko's `--oci-layout-path`,
//! skopeo's `oci:DIR:NAME`): its blobs go beside those already there and `index.json` gets one entry
//! for it, named by `org.opencontainers.image.ref.name`. The other images and their blobs stay; an
//! entry of the same name is replaced (its blobs stay too: a layout may hold blobs nothing names).
//!
//! What may be written to: a directory that does not exist yet (it is created), an empty one, or an
//! OCI layout (a valid `oci-layout` file, an `index.json` and a `referrers.json` that parse, real
//! `blobs` directories). Anything else is refused
//! before a byte is written, so blobs never land in a directory that is not a layout.
//!
//! How the directory stays whole:
//! - the run holds an exclusive `flock` on the directory itself, from reading `index.json` to
//!   replacing it, so runs adding to one layout at once take turns and keep each other's entries
//!   (a run waits at most [`LOCK_WAIT`] for its turn, and a cancel ends the wait);
//! - each blob is written to a temporary file in its `blobs/<algorithm>/` directory, its size and
//!   digest checked on the bytes written, synced, and renamed to its name; a blob already there is
//!   kept when it has the right size and digest (a damaged one is refused, never replaced);
//! - `index.json` (and `referrers.json`) are written the same way and renamed over the old ones only
//!   when every blob is in place, `index.json` last (a failed rename puts back what was replaced);
//! - a run that fails (or is cancelled) removes what it added: its temporary files, the blobs it
//!   wrote, and for a new layout the files and directories it created; `index.json` is unchanged.
//!
//! The documents attached to the image (SBOMs, provenance) go in as in the archive: their blobs and
//! artifact manifests are stored, and `referrers.json` (an image index of artifact manifests, each
//! with its `subject`) lists them beside those of the other images. `index.json` lists only images:
//! unnamed artifact entries there (oras's way) make `oci-image-tool validate` fail (it predates the
//! empty config of OCI 1.1, and a lookup by name matches every unnamed entry) and make a layout of
//! one image look like several to tools that take "the one image" of a layout. Documents about an
//! image that only a replaced entry named are dropped from `referrers.json` with it.

mod blobs;
mod check;
mod lock;

pub use check::{check, ensure_apart, ref_name};
pub use lock::LOCK_WAIT;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dir::{LayoutSource, subject_of};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::read_document;
use crate::image::reference::Reference;
use crate::image::referrers::REFERRERS_FILE;
use crate::image::{ImageTree, MAX_DOCUMENT, Stored};
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, Digest, Index, to_json_bytes,
};
use crate::util::cancel::CancelToken;
use crate::util::outputs::{Staged, put_in_place, temp_file};
use blobs::{BlobWriter, cannot_write, init, sync_dir};
use check::{Kind, classify, foreign};
use lock::{Undo, create_dirs, lock};

/// Largest `index.json` read (the same bound as for reading a layout).
const MAX_INDEX: u64 = 4 << 20;
/// Largest `oci-layout` file read.
const MAX_MARKER: u64 = 64 << 10;
/// Blobs are copied in pieces of this size.
const COPY_SIZE: usize = 256 << 10;
/// Mode of the files written (less the umask), as the archive's.
const FILE_MODE: u32 = 0o644;
/// How a run names the option in its messages.
const FLAG: &str = "--oci-layout";

/// What was added, for the status line and `--message-format json`.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutSummary {
    /// The layout directory, as given.
    pub path: PathBuf,
    /// The name the image is listed under (`org.opencontainers.image.ref.name`): what
    /// `skopeo inspect oci:DIR:NAME` and `--from-archive DIR:NAME` take.
    pub ref_name: String,
    /// Blobs written; the others were in the layout already.
    #[serde(skip)]
    pub blobs_written: usize,
}

/// Adds `image`, called `name`, to the layout at `dir` (created when missing), in the run `cx`: its
/// blobs, those of the documents attached to it, and its entry in `index.json`.
pub fn add(dir: &Path, image: &Stored, name: &Reference, cx: &Context) -> Result<LayoutSummary> {
    let ref_name = ref_name(name)?;
    let cancel = cx.cancel();
    let listener = cx.listener();
    let mut undo = Undo::default();
    let created = create_dirs(dir)?;
    let outermost = created.first().cloned();
    undo.dirs.extend(created);
    // Held until the undo is done, if it must be.
    undo.lock = Some(lock(dir, &mut undo, cx)?);
    let (index, referrers) = match classify(dir)? {
        Kind::Foreign => return Err(foreign(dir)),
        Kind::Missing | Kind::Empty => {
            // A forced end of the run takes the directories it made with it: while the lock is
            // held, nothing else is in them.
            undo.guard = outermost.map(|dir| cancel.temporary(&dir));
            init(dir, &mut undo, cancel)?;
            (Index::new(Vec::new()), None)
        }
        Kind::Layout(found) => match *found {
            (Some(index), referrers) => (index, referrers),
            (None, referrers) => {
                listener.warning(&format!(
                    "{} has an oci-layout file but no index.json; starting one",
                    dir.display()
                ));
                (Index::new(Vec::new()), referrers)
            }
        },
    };
    let mut writer = BlobWriter {
        dir,
        undo: &mut undo,
        cancel,
        written: 0,
        dirs: BTreeSet::new(),
    };
    writer.put_image(image)?;
    writer.sync()?;
    let written = writer.written;
    let (index, referrers) = updated(dir, index, referrers, image, &ref_name, name);
    let mut staged = Vec::new();
    if let Some(referrers) = referrers {
        staged.push(stage(
            dir,
            REFERRERS_FILE,
            &to_json_bytes(&referrers),
            cancel,
        )?);
    }
    staged.push(stage(dir, "index.json", &to_json_bytes(&index), cancel)?);
    put_in_place(staged, cancel)?;
    // index.json names the blobs now: nothing is undone any more.
    undo.disarm();
    sync_dir(dir)?;
    listener.detail(&format!(
        "{}: {written} blobs written, the others were there",
        dir.display()
    ));
    listener.status(
        "Stored",
        &format!(
            "{ref_name} in {} (OCI layout, {})",
            dir.display(),
            image.digest()
        ),
    );
    Ok(LayoutSummary {
        path: dir.to_owned(),
        ref_name,
        blobs_written: written,
    })
}

/// The layout's new `index.json` and, when it changes, `referrers.json`. `index.json`: every entry
/// but those naming the same image (by `ref.name`, or by containerd's full name), then the image's,
/// named. `referrers.json`: every document listed but those about an image only a replaced entry
/// named, then the image's documents not listed yet.
fn updated(
    dir: &Path,
    mut index: Index,
    referrers: Option<Index>,
    image: &Stored,
    ref_name: &str,
    name: &Reference,
) -> (Index, Option<Index>) {
    let full = name.full();
    let same_name = |d: &Descriptor| {
        d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(ref_name)
            || d.annotations.get(ANNOTATION_CONTAINERD_NAME) == Some(&full)
    };
    let (replaced, mut kept): (Vec<Descriptor>, Vec<Descriptor>) =
        std::mem::take(&mut index.manifests)
            .into_iter()
            .partition(|d| same_name(d));
    let mut documents = referrers.clone().unwrap_or_else(|| Index::new(Vec::new()));
    if !replaced.is_empty() && !documents.manifests.is_empty() {
        let blobs = LayoutSource::blobs_of(dir);
        let gone: BTreeSet<Digest> = replaced
            .iter()
            .flat_map(|d| subjects_of(&blobs, d))
            .collect();
        let mut live: BTreeSet<Digest> = kept.iter().flat_map(|d| subjects_of(&blobs, d)).collect();
        live.extend(tree_subjects(&image.tree));
        documents.manifests.retain(|d| {
            subject_of(&blobs, d).is_none_or(|s| !gone.contains(&s) || live.contains(&s))
        });
    }
    let mut top = image.tree.top.clone();
    top.annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), ref_name.to_owned());
    top.annotations
        .insert(ANNOTATION_CONTAINERD_NAME.to_owned(), full);
    kept.push(top);
    index.manifests = kept;
    for attachment in &image.referrers {
        let descriptor = attachment.descriptor();
        if !documents
            .manifests
            .iter()
            .any(|d| d.digest == descriptor.digest)
        {
            documents.manifests.push(descriptor);
        }
    }
    let changed = match &referrers {
        Some(before) => before.manifests != documents.manifests,
        None => !documents.manifests.is_empty(),
    };
    (index, changed.then_some(documents))
}

/// What documents about the image an entry names may be about: the entry's own digest and, for an
/// index, each manifest it lists (an index that cannot be read counts as itself only).
fn subjects_of(blobs: &LayoutSource, descriptor: &Descriptor) -> Vec<Digest> {
    let mut subjects = vec![descriptor.digest.clone()];
    if descriptor.media_type.is_index() {
        let listed = read_document(blobs, descriptor, MAX_DOCUMENT)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Index>(&bytes).ok());
        if let Some(listed) = listed {
            subjects.extend(listed.manifests.into_iter().map(|d| d.digest));
        }
    }
    subjects
}

/// The digests documents about `tree` name: its top and each manifest.
fn tree_subjects(tree: &ImageTree) -> Vec<Digest> {
    std::iter::once(tree.top.digest.clone())
        .chain(tree.manifests.iter().map(|n| n.descriptor.digest.clone()))
        .collect()
}

/// `bytes`, complete and synced under a temporary name in `dir`, to be renamed to `dir/name`.
fn stage(dir: &Path, name: &str, bytes: &[u8], cancel: &CancelToken) -> Result<Staged> {
    cancel.check()?;
    let (mut file, temp) = temp_file(dir, std::ffi::OsStr::new(name), ".partial", FILE_MODE)
        .map_err(|e| cannot_write(dir, &e))?;
    let staged = Staged::new(temp, dir.join(name), cancel);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", dir.join(name)))?;
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ManifestNode;
    use crate::image::blobs::Memory;
    use crate::oci::{Compression, Document, Extra, Manifest, MediaType};
    use crate::report::Silent;
    use std::fs;

    const LAYER: &[u8] = b"not really a tar, but a blob all the same";

    /// An image of one layer whose config is `config`; the layer's bytes are in its blobs only when
    /// `layer_stored`, so that adding it fails half-way otherwise (unless the layout has it).
    fn image(config: &[u8], layer: &[u8], layer_stored: bool) -> Stored<'static> {
        let mut memory = Memory::new();
        memory.insert(Digest::of(config), config.to_vec());
        if layer_stored {
            memory.insert(Digest::of(layer), layer.to_vec());
        }
        let manifest = Document::new(Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config: Descriptor::new(
                MediaType::OciConfig,
                Digest::of(config),
                config.len() as u64,
            ),
            layers: vec![Descriptor::new(
                MediaType::OciLayer(Compression::Gzip),
                Digest::of(layer),
                layer.len() as u64,
            )],
            subject: None,
            annotations: std::collections::BTreeMap::new(),
            extra: Extra::new(),
        });
        let top = manifest.descriptor(MediaType::OciManifest);
        Stored {
            name: "test".to_owned(),
            tree: ImageTree {
                top: top.clone(),
                index: None,
                manifests: vec![ManifestNode {
                    descriptor: top,
                    manifest,
                }],
            },
            blobs: Box::new(memory),
            referrers: Vec::new(),
            mount_from: std::collections::BTreeMap::new(),
        }
    }

    /// Every path under `dir` with its bytes (directories as `None`).
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(path) = pending.pop() {
            for entry in fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path.clone());
                    found.push((path, None));
                } else {
                    let bytes = fs::read(&path).unwrap();
                    found.push((path, Some(bytes)));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_failed_add_leaves_no_new_layout_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/oci");
        let name: Reference = "app:1".parse().unwrap();
        let cx = Context::new(&Silent);
        // The config is written, then the layer cannot be read: all of it goes again.
        let err = add(&dir, &image(b"{\"a\":1}", LAYER, false), &name, &cx).unwrap_err();
        assert!(
            err.to_string().contains("not among the built ones"),
            "{err}"
        );
        assert!(
            !tmp.path().join("new").exists(),
            "{:?}",
            snapshot(tmp.path())
        );
        // An empty directory given stays, empty.
        fs::create_dir(tmp.path().join("empty")).unwrap();
        let empty = tmp.path().join("empty");
        add(&empty, &image(b"{\"a\":1}", LAYER, false), &name, &cx).unwrap_err();
        assert_eq!(snapshot(&empty), []);
    }

    #[test]
    fn a_failed_add_leaves_an_existing_layout_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("oci");
        let cx = Context::new(&Silent);
        let first: Reference = "app:1".parse().unwrap();
        let added = add(&dir, &image(b"{\"a\":1}", LAYER, true), &first, &cx).unwrap();
        assert_eq!((added.ref_name.as_str(), added.blobs_written), ("app:1", 3));
        let before = snapshot(&dir);
        let second: Reference = "app:2".parse().unwrap();
        add(
            &dir,
            &image(b"{\"a\":2}", b"another layer", false),
            &second,
            &cx,
        )
        .unwrap_err();
        assert_eq!(snapshot(&dir), before, "nothing added, nothing left");
        // The same again with its layer: added beside the first, which is kept.
        let added = add(&dir, &image(b"{\"a\":2}", LAYER, true), &second, &cx).unwrap();
        assert_eq!(added.blobs_written, 2, "the layer was there already");
        let index: Index =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index
            .manifests
            .iter()
            .map(|d| d.annotations[ANNOTATION_REF_NAME].as_str())
            .collect();
        assert_eq!(names, ["app:1", "app:2"]);
    }
}
