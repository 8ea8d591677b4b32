//! Making the SBOMs and provenance attached to an image (see [`crate::image::referrers`] for how
//! they are attached), and writing them beside the archive.
//!
//! In the archive, the artifact manifests and documents are blobs like any other, and
//! `referrers.json` (an image index of the artifact manifests, as a registry's referrers API answers)
//! lists them; `index.json` keeps its one descriptor, so skopeo, podman, containerd and docker read
//! the archive exactly as before and ignore the rest. Beside the archive, each document is also written
//! as a file (`NAME.spdx.json`, `NAME.cdx.json`, `NAME.provenance.json`) for CI to keep.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::image::referrers::{Attachment, Attachments, EMPTY_JSON};
use crate::image::{Image, ImageTree};
use crate::oci::platform::Platform;
use crate::oci::{Descriptor, Digest, MediaType};
use crate::sbom::provenance::{self, ProvenanceInputs};
use crate::sbom::{self, DocumentKind, ImageSubject, Inventory, ProgramFile, SbomFormats};
use crate::util::outputs::Staged;
use crate::util::timestamp::Timestamp;

/// What to attach to the images built.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// SBOM formats, one document each per platform.
    pub sbom: SbomFormats,
    /// A provenance statement about the image, when set.
    pub provenance: Option<ProvenanceInputs>,
    /// What each input (in order) is made of, as its build knows it; `None` (or missing): read from
    /// the program itself (cargo auditable's list, Go's build information).
    pub inventories: Vec<Option<Inventory>>,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            sbom: SbomFormats::DEFAULT,
            provenance: None,
            inventories: Vec::new(),
        }
    }
}

impl AttachOptions {
    /// True when nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.sbom.is_none() && self.provenance.is_none()
    }
}

/// One attached document.
/// One attached document, for `--message-format json`.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentSummary {
    pub kind: DocumentKind,
    pub artifact_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The image manifest (or index) the document is about.
    pub subject: Digest,
    /// The artifact manifest.
    pub manifest_digest: Digest,
    /// The document itself.
    pub document_digest: Digest,
    pub size: u64,
    /// The copy written beside the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// One program of the image: where it is in the image and what it is made of.
pub(crate) struct Program {
    pub file: ProgramFile,
    pub inventory: Inventory,
}

/// Reads what `input` is made of from the program itself: cargo auditable's list, else Go's build
/// information, else nothing (and why, for `-v`). An embedded list that cannot be read (damaged, or
/// larger than plausible) is not fatal: the SBOM then describes the program file alone, and the second
/// value is the warning saying why.
pub(crate) fn inventory_of_program(input: &Path) -> Result<(Inventory, Option<String>)> {
    let file = crate::util::fsutil::open_regular(input, "a program")?;
    let cache = object::ReadCache::new(file);
    let unreadable = |what: &str, why: String| {
        let reason = format!("its {what} could not be read: {why}");
        let warning = format!(
            "{}: {reason}; its SBOM lists the program file alone",
            input.display()
        );
        Ok((Inventory::program_only(reason), Some(warning)))
    };
    match sbom::auditable::read(&cache) {
        Ok(Some(inventory)) => return Ok((inventory, None)),
        Ok(None) => {}
        Err(why) => return unreadable("cargo auditable dependency list", why),
    }
    match sbom::gobuild::read(&cache) {
        Ok(Some(inventory)) => return Ok((inventory, None)),
        Ok(None) => {}
        Err(why) => return unreadable("Go build information", why),
    }
    Ok((
        Inventory::program_only(
            "it carries no cargo auditable dependency list (.dep-v0) and no Go build information",
        ),
        None,
    ))
}

/// What the attachments are made from.
pub(crate) struct Sources<'a> {
    pub tree: &'a ImageTree,
    pub images: &'a [Image],
    /// One per image, in order.
    pub programs: &'a [Program],
    pub tag: &'a Reference,
    pub base: Option<(&'a str, &'a Digest)>,
    pub created: Timestamp,
    /// The name the documents' titles start with (the program's), so that the archive's bytes do
    /// not depend on its file name.
    pub name: &'a str,
}

/// Makes every document `options` asks for, each in its artifact manifest.
pub(crate) fn make(options: &AttachOptions, sources: &Sources) -> Attachments {
    let mut attachments = Attachments::default();
    attachments
        .memory
        .insert(Digest::of(EMPTY_JSON), EMPTY_JSON.to_vec());
    let several = sources.images.len() > 1;
    let add = |attachments: &mut Attachments,
               kind: DocumentKind,
               platform: Option<&Platform>,
               subject: &Descriptor,
               bytes: Vec<u8>| {
        let suffix = suffix_of(kind, platform.filter(|_| several));
        let item = Attachment::new(
            kind,
            platform.filter(|_| several).cloned(),
            subject,
            &bytes,
            sources.name,
            suffix,
            sources.created,
        );
        attachments
            .memory
            .insert(item.document.digest.clone(), bytes);
        attachments.items.push(item);
    };
    for (image, program) in sources.images.iter().zip(sources.programs) {
        let subject = ImageSubject {
            name: sources.tag,
            manifest_digest: image.manifest.digest(),
            platform: &image.platform,
            base: sources.base,
            program: &program.file,
            created: sources.created,
        };
        let descriptor = image.manifest.descriptor(MediaType::OciManifest);
        for (wanted, kind) in [
            (options.sbom.spdx, DocumentKind::Spdx),
            (options.sbom.cyclonedx, DocumentKind::CycloneDx),
        ] {
            if wanted {
                let bytes = sbom::document(kind, &subject, &program.inventory);
                add(
                    &mut attachments,
                    kind,
                    Some(&image.platform),
                    &descriptor,
                    bytes,
                );
            }
        }
    }
    if let Some(inputs) = &options.provenance {
        let mut subjects = vec![(sources.tag.name(), &sources.tree.top.digest)];
        if several {
            for image in sources.images {
                subjects.push((
                    format!("{} ({})", sources.tag.name(), image.platform),
                    image.manifest.digest(),
                ));
            }
        }
        let finished = inputs.started.and_then(|_| "now".parse::<Timestamp>().ok());
        let bytes = provenance::write(inputs, &subjects, finished);
        add(
            &mut attachments,
            DocumentKind::Provenance,
            None,
            &sources.tree.top,
            bytes,
        );
    }
    attachments
}

/// `linux-arm64`, `linux-arm-v7`: a platform in a file name.
fn platform_slug(platform: &Platform) -> String {
    platform.to_string().replace('/', "-")
}

/// What follows the name in a document's file name: `spdx.json`, `linux-arm64.cdx.json` (the
/// platform only in an image of several).
fn suffix_of(kind: DocumentKind, platform: Option<&Platform>) -> String {
    match platform {
        Some(p) => format!("{}.{}", platform_slug(p), kind.suffix()),
        None => kind.suffix().to_owned(),
    }
}

/// The documents [`make`] will make for images of `platforms` (one each), with the suffix of each
/// one's file name, known before anything is built.
pub(crate) fn planned(
    options: &AttachOptions,
    platforms: &[Platform],
) -> Vec<(DocumentKind, String)> {
    let several = platforms.len() > 1;
    let mut planned = Vec::new();
    for platform in platforms {
        for (wanted, kind) in [
            (options.sbom.spdx, DocumentKind::Spdx),
            (options.sbom.cyclonedx, DocumentKind::CycloneDx),
        ] {
            if wanted {
                planned.push((kind, suffix_of(kind, Some(platform).filter(|_| several))));
            }
        }
    }
    if options.provenance.is_some() {
        planned.push((
            DocumentKind::Provenance,
            suffix_of(DocumentKind::Provenance, None),
        ));
    }
    planned
}

/// The name documents beside `archive` start with: its file name without `.tar`.
fn stem_of(archive: &Path) -> String {
    let name = archive
        .file_name()
        .map_or_else(|| "image".to_owned(), |n| n.to_string_lossy().into_owned());
    match name.strip_suffix(".tar") {
        Some(stem) if !stem.is_empty() => stem.to_owned(),
        _ => name,
    }
}

/// Where the document with `suffix` goes beside `archive` (the path as given): `NAME.SUFFIX` in its
/// directory, NAME being the archive's file name without `.tar`.
pub(crate) fn path_beside(archive: &Path, suffix: &str) -> PathBuf {
    crate::util::destination::parent_dir(archive).join(format!("{}.{suffix}", stem_of(archive)))
}

/// Where a document beside the archive really goes: its path with every link followed (a link is
/// kept, as the archive's is). Anything there but a regular file is refused.
pub(crate) fn target_beside(path: &Path) -> Result<PathBuf> {
    let target = crate::util::fsutil::resolve_links(path)?;
    match std::fs::symlink_metadata(&target) {
        Ok(meta) if !meta.is_file() => Err(Error::input(
            path,
            "is not a regular file, and a document written beside the archive goes there; remove \
             it or choose another -o/--output (the documents are named after the archive)",
        )),
        _ => Ok(target),
    }
}

/// Writes each document beside `archive` (the path as given) as `NAME.SUFFIX` under a temporary name,
/// to be put in place with the archive (see [`crate::util::outputs::put_in_place`]); returns them and the
/// summaries with the paths they will have.
pub(crate) fn stage_beside(
    archive: &Path,
    attachments: &Attachments,
    cx: &Context,
) -> Result<(Vec<Staged>, Vec<AttachmentSummary>)> {
    let listener = cx.listener();
    let mut summaries = summarize(attachments);
    let mut staged = Vec::new();
    for (item, summary) in attachments.items.iter().zip(&mut summaries) {
        let path = path_beside(archive, &item.suffix);
        let target = target_beside(&path)?;
        let dir = crate::util::destination::parent_dir(&target);
        let name = target.file_name().unwrap_or(target.as_os_str());
        let (mut file, temp) = crate::util::outputs::temp_file(&dir, name, ".partial", 0o644)
            .map_err(Error::io("writing", &path))?;
        // Copied from the document in memory as it is read (and verified): it can be tens of MiB.
        let mut document = attachments.memory.open(&item.document)?;
        std::io::copy(&mut document, &mut file).map_err(Error::io("writing", &path))?;
        listener.detail(&format!("{}: {}", item.kind.suffix(), path.display()));
        staged.push(Staged::new(temp, target, cx.cancel()));
        summary.path = Some(path);
    }
    Ok((staged, summaries))
}

/// The summaries of `attachments`, without paths.
pub(crate) fn summarize(attachments: &Attachments) -> Vec<AttachmentSummary> {
    attachments
        .items
        .iter()
        .map(|item| AttachmentSummary {
            kind: item.kind,
            artifact_type: item.kind.media_type().to_owned(),
            platform: item.platform.as_ref().map(ToString::to_string),
            subject: item.subject().digest.clone(),
            manifest_digest: item.manifest.digest().clone(),
            document_digest: item.document.digest.clone(),
            size: item.document.size,
            path: None,
        })
        .collect()
}
