//! The whole job: check each executable, write the shared essentials layer and one program layer per
//! platform (into the archive being written, or a spool when only pushing), assemble config and manifest
//! per platform, finish the archive, and push what was built.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::assemble::compose::{Base, ImageSpec};
use crate::assemble::elf::{self, Linkage};
use crate::assemble::essentials::BASE_FILES;
use crate::assemble::essentials::{Essentials, EssentialsLayer};
use crate::assemble::layer::{Layer, LayerSpec, MODE_EXECUTABLE};
use crate::assemble::loader::{LOADER_FILES, check_dynamic};
use crate::assemble::options::ImageOptions;
use crate::assemble::rootfs::RootFs;
use crate::codec::compress::CompressOptions;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::{BlobSink, BlobSource, Composite, Memory};
use crate::image::reference::Reference;
use crate::image::referrers::Attachments;
use crate::image::spool::Spool;
use crate::image::{Image, ImageTree, Stored};
use crate::job::base::BaseImage;
use crate::job::lambda::{self, LambdaCheck};
use crate::layout::archive::ImageArchive;
use crate::layout::read::ArchiveSource;
use crate::layout::store::LayoutSummary;
use crate::load::Loaded;
use crate::oci::platform::{Platform, PlatformOverride};
use crate::oci::{Digest, MediaType};
use crate::registry::push::NotAttached;
use crate::report::Listener;
use crate::sbom::attach::{self, AttachOptions, AttachmentSummary, Program};
use crate::sbom::{DocumentKind, ProgramFile};
use crate::util::cancel::CancelToken;
use crate::util::destination::Destination;
use crate::util::outputs::Inputs;
use crate::util::timestamp::Timestamp;

/// One executable and the platform overrides for its image.
#[derive(Clone, Debug)]
pub struct Input {
    /// The executable to package.
    pub path: PathBuf,
    /// OS, architecture and variant that override what the ELF header says.
    pub platform: PlatformOverride,
}

/// How to package.
#[derive(Clone, Debug)]
pub struct PackageOptions {
    /// Where the archive goes; `None` writes no archive (the image is only pushed).
    pub output: Option<PathBuf>,
    /// Image name; `<program name>:latest` when `None`.
    pub tag: Option<Reference>,
    /// Creation time written into configs and layer entries.
    pub created: Timestamp,
    /// Package a dynamically linked executable anyway (with a warning).
    pub allow_dynamic: bool,
    /// Environment, labels, annotations, user, ports ... for every platform's config.
    pub config: ImageOptions,
    /// Extra files in a layer under the program's.
    pub essentials: Essentials,
    /// SBOMs and provenance attached to the image.
    pub attach: AttachOptions,
    /// How the layers are compressed.
    pub compression: CompressOptions,
    /// What is done about AWS Lambda's rules.
    pub lambda: LambdaCheck,
    /// Signs the image into its archive when its name has a registry (`--sign`), for `zeroimage
    /// push` to publish; pushes in the same run sign again for each repository.
    pub sign: Option<crate::image::signatures::Signer>,
}

/// One platform's image in the archive.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformSummary {
    /// The platform, e.g. `linux/arm64/v8`.
    pub platform: String,
    /// Digest of the platform's manifest.
    pub manifest_digest: Digest,
    /// Digest of the platform's config.
    pub config_digest: Digest,
}

/// The base image an image was built on.
#[derive(Clone, Debug, Serialize)]
pub struct BaseSummary {
    /// The name given for it, as typed.
    pub name: String,
    /// The manifest or index digest it resolved to.
    pub digest: Digest,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct PackageSummary {
    /// The archive; `None` when none was written (the JSON summary then says `""`).
    #[serde(serialize_with = "path_or_empty")]
    pub path: Option<PathBuf>,
    /// What a registry will call the image: the manifest's digest, or the image index's for several
    /// platforms.
    pub digest: Digest,
    /// Single-platform images only: the manifest digest (= `digest`), config and program layer digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<Digest>,
    /// The config digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<Digest>,
    /// The program layer digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<Digest>,
    /// `linux/amd64`, or the platforms joined by `,`.
    pub platform: String,
    /// Each platform's image, in index order.
    pub platforms: Vec<PlatformSummary>,
    /// Archive size in bytes.
    pub size: u64,
    /// The image name, as docker shows it.
    pub tag: String,
    /// The base, when the image is not FROM scratch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseSummary>,
    /// `REF@DIGEST` for each reference pushed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<String>,
    /// Each local runtime the image was loaded into.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loaded: Vec<Loaded>,
    /// The OCI layout directory the image was added to, and the name it is listed under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci_layout: Option<LayoutSummary>,
    /// The SBOMs and provenance attached, with the files written beside the archive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentSummary>,
    /// The attached documents a registry did not take, each with the repository and why (the image
    /// itself was pushed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments_not_pushed: Vec<NotAttached>,
    /// The signatures pushed with the image (`--sign`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<crate::image::signatures::SignatureSummary>,
}

/// The archive's path, or `""` for none: what the JSON summary has always said.
#[allow(clippy::ref_option)] // serde's `serialize_with` hands the field by reference
fn path_or_empty<S: serde::Serializer>(
    path: &Option<PathBuf>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match path {
        Some(path) => path.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}

/// The `output` a bare `zeroimage PROGRAM` writes: `PROGRAM.tar` beside the program.
pub fn default_output(input: &Path) -> PathBuf {
    let mut name = input.as_os_str().to_owned();
    name.push(".tar");
    PathBuf::from(name)
}

/// The image name used when none is given: the program's name, made a valid repository name.
pub(crate) fn default_tag(program_name: &str) -> Result<Reference> {
    let repo = super::naming::repository_name(program_name);
    Reference::with_tag(&repo, "latest").map_err(|_| {
        Error::Invalid(format!(
            "cannot make an image name from `{program_name}`; pass one with --tag NAME[:TAG]"
        ))
    })
}

/// The path of the program in the image: `--entrypoint-path`, else `/<file name>`, which must be the
/// same for every input.
pub fn entrypoint_path(inputs: &[Input], options: &ImageOptions) -> Result<String> {
    if let Some(path) = &options.entrypoint_path {
        return Ok(path.clone());
    }
    let mut names = inputs.iter().map(|input| {
        input
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::input(
                    &input.path,
                    "has no UTF-8 file name to use as the entrypoint",
                )
            })
    });
    let first = names
        .next()
        .ok_or_else(|| Error::Invalid("no executable to package".to_owned()))??;
    for name in names {
        let name = name?;
        if name != first {
            return Err(Error::Invalid(format!(
                "the executables are named `{first}` and `{name}`; say where the program goes in the \
                 image with --entrypoint-path /PATH"
            )));
        }
    }
    Ok(format!("/{first}"))
}

/// A checked input, ready to be written.
struct Checked<'a> {
    input: &'a Input,
    platform: Platform,
    /// The base for its platform.
    base: Option<Base>,
    /// What the base's filesystem holds, when something had to be looked up there.
    rootfs: Option<RootFs>,
}

/// What [`package`] built: the summary, the image tree, and where its blobs can be read back for a push.
pub struct Packaged<'a> {
    /// What was written, for the status line and JSON output.
    pub summary: PackageSummary,
    /// The base the images were built on.
    base: Option<&'a BaseImage<'a>>,
    /// The manifests (and index) built, for pushing.
    pub tree: ImageTree,
    /// The archive file written (`summary.path` may name the stream it was then copied to).
    archive: Option<PathBuf>,
    /// Configs (and manifests) of the images built.
    memory: Memory,
    /// The layers, when no archive was written.
    spool: Option<Spool>,
    /// The image's name.
    tag: Reference,
    /// The documents attached to the image.
    attachments: Attachments,
    /// The signatures the archive carries.
    signatures: Attachments,
}

impl Packaged<'_> {
    /// The image built, for a sink: read back from the archive written, else from the spool, the
    /// base's blobs and the configs; with the documents attached to it.
    /// `cancel` stops the indexing of the archive.
    pub fn stored(&self, cancel: &CancelToken) -> Result<Stored<'_>> {
        let mut blobs = Composite::new();
        if let Some(spool) = &self.spool {
            blobs.add(spool, spool.digests());
            if let Some(base) = self.base {
                blobs.add(base.source(), base.image.blob_digests());
            }
            let configs = self
                .tree
                .manifests
                .iter()
                .map(|n| n.manifest.value().config.digest.clone());
            blobs.add(&self.memory, configs);
        } else {
            let path = self
                .archive
                .as_deref()
                .ok_or_else(|| Error::Invalid("nothing was built to read back".to_owned()))?;
            let archive = ArchiveSource::open(path, cancel)?;
            let digests: Vec<Digest> = self
                .tree
                .blobs()
                .into_iter()
                .map(|d| d.digest.clone())
                .collect();
            blobs.add_owned(Box::new(archive), digests);
        }
        let documents = self.attachments.blobs().into_iter().map(|d| d.digest);
        blobs.add(&self.attachments.memory, documents);
        let signatures = self.signatures.blobs().into_iter().map(|d| d.digest);
        blobs.add(&self.signatures.memory, signatures);
        Ok(Stored {
            name: self.tag.full(),
            tree: self.tree.clone(),
            blobs: Box::new(blobs),
            referrers: self
                .attachments
                .items
                .iter()
                .chain(&self.signatures.items)
                .cloned()
                .collect(),
            mount_from: self
                .base
                .map(|b| b.image.mount_from.clone())
                .unwrap_or_default(),
        })
    }

    /// The image's name.
    pub fn tag(&self) -> &Reference {
        &self.tag
    }
}

/// Where the layers go while they are made.
enum Output {
    Archive(ImageArchive),
    Spool(Spool),
}

impl Output {
    fn sink(&mut self) -> &mut dyn BlobSink {
        match self {
            Output::Archive(archive) => archive,
            Output::Spool(spool) => spool,
        }
    }
}

/// Checks every input and builds one image, or with several inputs an image index with one image per
/// platform, FROM scratch or on `base`: into the archive `options.output` names, or (without one) into
/// a spool for a push.
pub fn package<'a>(
    inputs: &[Input],
    options: &PackageOptions,
    base: Option<&'a BaseImage<'a>>,
    cx: &Context,
) -> Result<Packaged<'a>> {
    let listener = cx.listener();
    let entrypoint = entrypoint_path(inputs, &options.config)?;
    let name = entrypoint
        .rsplit('/')
        .next()
        .unwrap_or(&entrypoint)
        .to_owned();
    let run = Run {
        options,
        base,
        entrypoint: &entrypoint,
        name: &name,
        cx,
    };
    let checked = run.check(inputs)?;
    let tag = match &options.tag {
        Some(tag) => tag.clone(),
        None => default_tag(&name)?,
    };
    let (essentials_layers, program_specs) = run.layer_specs(&checked)?;
    run.check_lambda(&checked, &program_specs, &essentials_layers)?;
    let mut output = run.open_output(&checked, &program_specs, &essentials_layers)?;
    let platforms: Vec<String> = checked.iter().map(|c| c.platform.to_string()).collect();
    listener.status("Packaging", &format!("{name} ({})", platforms.join(", ")));
    listener.detail(&format!("image {}, entrypoint {entrypoint}", tag.full()));
    let (images, program_layers) =
        run.write_images(&checked, &program_specs, &essentials_layers, &mut output)?;
    let tree = ImageTree::of_images(&images)?;
    let attachments = attachments_of(
        &checked,
        &program_layers,
        &images,
        &tree,
        &tag,
        base,
        &entrypoint,
        &name,
        options,
        listener,
    )?;
    let (signatures, signature_summaries) = signatures_of(options, &tree, &attachments, &tag)?;
    let mut memory = Memory::new();
    for image in &images {
        memory.insert(image.config.digest().clone(), image.config.bytes().to_vec());
    }
    let (path, size, spool, attachment_summaries) = run.deliver(
        output,
        &tree,
        &images,
        &memory,
        &tag,
        [&attachments, &signatures],
    )?;
    let single = images.len() == 1;
    let summary = PackageSummary {
        path,
        digest: tree.top.digest.clone(),
        manifest_digest: single.then(|| images[0].manifest.digest().clone()),
        config_digest: single.then(|| images[0].config.digest().clone()),
        layer_digest: single.then(|| program_layers[0].descriptor.digest.clone()),
        platform: platforms.join(","),
        platforms: images
            .iter()
            .map(|image| PlatformSummary {
                platform: image.platform.to_string(),
                manifest_digest: image.manifest.digest().clone(),
                config_digest: image.config.digest().clone(),
            })
            .collect(),
        size,
        tag: tag.familiar(),
        base: base.map(|b| BaseSummary {
            name: b.name().to_owned(),
            digest: b.digest().clone(),
        }),
        pushed: Vec::new(),
        loaded: Vec::new(),
        oci_layout: None,
        attachments: attachment_summaries,
        attachments_not_pushed: Vec::new(),
        signatures: signature_summaries,
    };
    debug_assert!(tree.top.media_type == MediaType::OciManifest || tree.index.is_some());
    Ok(Packaged {
        base,
        archive: summary.path.clone(),
        summary,
        tree,
        memory,
        spool,
        tag,
        attachments,
        signatures,
    })
}

/// The signatures the archive carries: with `--sign` and a name with a registry (a name without one
/// is no repository to sign for: the push signs), for that repository; with their summaries.
fn signatures_of(
    options: &PackageOptions,
    tree: &ImageTree,
    attachments: &Attachments,
    tag: &Reference,
) -> Result<(Attachments, Vec<crate::image::signatures::SignatureSummary>)> {
    match &options.sign {
        Some(signer)
            if options.output.is_some() && tag.domain() != crate::image::reference::DOCKER_HUB =>
        {
            let repository = format!("{}/{}", tag.domain(), tag.path());
            let signed =
                signer.sign_parts(tree, &attachments.items, &attachments.memory, &repository)?;
            let summaries = signed.summaries(&repository);
            Ok((signed.into_attachments(tree), summaries))
        }
        _ => Ok((Attachments::default(), Vec::new())),
    }
}

/// What every step of one [`package`] call shares.
struct Run<'r, 'a> {
    options: &'r PackageOptions,
    base: Option<&'a BaseImage<'a>>,
    entrypoint: &'r str,
    name: &'r str,
    cx: &'r Context<'r>,
}

impl Run<'_, '_> {
    /// Checks each input (its ELF, its platform, its linkage against the base's files), one per
    /// platform, and reads its platform's base.
    fn check<'i>(&self, inputs: &'i [Input]) -> Result<Vec<Checked<'i>>> {
        let (options, base, entrypoint, cx) = (self.options, self.base, self.entrypoint, self.cx);
        let listener = cx.listener();
        let mut checked = Vec::new();
        for input in inputs {
            let (platform, linkage) = check_input(input)?;
            if let Some(other) = checked.iter().find(|c: &&Checked| c.platform == platform) {
                return Err(Error::Invalid(format!(
                    "{} and {} are both {platform}; an image index holds one image per platform",
                    other.input.path.display(),
                    input.path.display()
                )));
            }
            let platform_base = base.map(|b| b.for_platform(&platform)).transpose()?;
            // Every layer of the base is read, whatever the options: its blobs and diff ids are checked
            // (a damaged base makes an image no runtime unpacks), and its files matter to a dynamic
            // program, to the essentials (its accounts, its CA bundle) and to the directories our
            // layers pass through.
            let rootfs = match (base, &platform_base) {
                (Some(image), Some(platform_base)) => {
                    let keep: Vec<&str> = BASE_FILES.iter().chain(LOADER_FILES).copied().collect();
                    listener.detail(&format!(
                        "reading the filesystem of {} for {platform}",
                        image.name()
                    ));
                    Some(RootFs::scan_base(
                        image.name(),
                        image.source(),
                        &platform_base.layers,
                        &platform_base.config.rootfs.diff_ids,
                        &keep,
                        cx.cancel(),
                    )?)
                }
                _ => None,
            };
            let library_path = library_path(&options.config, platform_base.as_ref());
            check_linkage(
                &input.path,
                &linkage,
                entrypoint,
                rootfs.as_ref(),
                library_path.as_deref(),
                &platform,
                options.allow_dynamic,
                listener,
            )?;
            listener.detail(&format!("{}: {linkage:?}", input.path.display()));
            checked.push(Checked {
                input,
                platform,
                base: platform_base,
                rootfs,
            });
        }
        Ok(checked)
    }

    /// AWS Lambda's rules, checked on what is about to be built (before the archive is created).
    fn check_lambda(
        &self,
        checked: &[Checked],
        program_specs: &[LayerSpec],
        essentials_layers: &[Option<EssentialsLayer>],
    ) -> Result<()> {
        let options = self.options;
        if options.lambda == LambdaCheck::Off {
            return Ok(());
        }
        let planned: Vec<lambda::Planned> = checked
            .iter()
            .zip(program_specs)
            .zip(essentials_layers)
            .map(|((c, program), essentials)| lambda::Planned {
                platform: &c.platform,
                entrypoint: self.entrypoint,
                base_layers: c.base.as_ref().map_or(&[], |b| b.layers.as_slice()),
                base: c.rootfs.as_ref(),
                own: std::iter::once(program)
                    .chain(essentials.as_ref().map(|e| &e.spec))
                    .collect(),
                own_media_type: options.compression.media_type(),
            })
            .collect();
        lambda::enforce(options.lambda, &planned, self.cx.listener())
    }

    /// The essentials layer and the program layer of each platform, built before the archive is
    /// created, so that a program path clashing with the essentials leaves nothing behind. On a base,
    /// each platform's essentials see that platform's files.
    fn layer_specs(
        &self,
        checked: &[Checked],
    ) -> Result<(Vec<Option<EssentialsLayer>>, Vec<LayerSpec>)> {
        let (options, entrypoint, listener) = (self.options, self.entrypoint, self.cx.listener());
        let mut essentials_layers = Vec::new();
        let mut program_specs = Vec::new();
        for c in checked {
            let mut essentials = options.essentials.layer_on(c.rootfs.as_ref())?;
            let mut spec = LayerSpec::new("the program");
            spec.add_file(entrypoint, &c.input.path, MODE_EXECUTABLE)?;
            if let Some(essentials) = &mut essentials {
                spec.stack_on(&essentials.spec)?;
                for note in &essentials.notes {
                    listener.detail(note);
                }
            }
            if let Some(rootfs) = &c.rootfs {
                if let Some(essentials) = &mut essentials {
                    essentials.spec.over_base(rootfs)?;
                }
                spec.over_base(rootfs)?;
            }
            essentials_layers.push(essentials);
            program_specs.push(spec);
        }
        Ok((essentials_layers, program_specs))
    }

    /// The archive `options.output` names (checked first not to be one of the inputs), else a spool.
    fn open_output(
        &self,
        checked: &[Checked],
        program_specs: &[LayerSpec],
        essentials_layers: &[Option<EssentialsLayer>],
    ) -> Result<Output> {
        let (options, base, cx) = (self.options, self.base, self.cx);
        Ok(match &options.output {
            Some(path) => {
                if let Destination::File(target) = Destination::resolve(path)? {
                    let platforms: Vec<Platform> =
                        checked.iter().map(|c| c.platform.clone()).collect();
                    let inputs = inputs_of(checked, program_specs, essentials_layers, base);
                    let documents = attach::planned(&options.attach, &platforms);
                    check_outputs(path, &target, &inputs, &documents)?;
                }
                Output::Archive(ImageArchive::create(path, options.created, cx.cancel())?)
            }
            None => Output::Spool(Spool::new(cx.cancel())?),
        })
    }

    /// Writes each platform's layers into `output` and describes its image.
    fn write_images(
        &self,
        checked: &[Checked],
        program_specs: &[LayerSpec],
        essentials_layers: &[Option<EssentialsLayer>],
        output: &mut Output,
    ) -> Result<(Vec<Image>, Vec<Layer>)> {
        let (options, entrypoint, name, cx) = (self.options, self.entrypoint, self.name, self.cx);
        let mut images: Vec<Image> = Vec::new();
        let mut program_layers = Vec::new();
        for ((c, layer_spec), essentials) in
            checked.iter().zip(program_specs).zip(essentials_layers)
        {
            let mut layers: Vec<(Layer, String)> = Vec::new();
            if let Some(essentials) = essentials {
                // The same essentials for every platform make the same layer, stored once.
                let layer = write_layer(output.sink(), &essentials.spec, options, cx)?;
                layers.push((layer, essentials.created_by.clone()));
            }
            let layer = write_layer(output.sink(), layer_spec, options, cx)?;
            let mut spec = match &c.base {
                Some(base) => ImageSpec::on_base(
                    c.platform.clone(),
                    entrypoint,
                    options.created,
                    base.clone(),
                ),
                None => ImageSpec::new(c.platform.clone(), entrypoint, options.created),
            };
            if let Some(essentials) = essentials {
                for (key, value) in &essentials.env {
                    crate::assemble::options::set_env(&mut spec.env, key, value);
                }
                if essentials.user.is_some() {
                    spec.user.clone_from(&essentials.user);
                }
            }
            options.config.apply_to(&mut spec);
            layers.push((layer.clone(), format!("COPY {name} {entrypoint}")));
            images.push(spec.assemble(&layers));
            program_layers.push(layer);
        }
        Ok((images, program_layers))
    }

    /// Finishes the archive (with the documents beside it, all or none) or hands over the spool:
    /// the archive's path and size, the spool, and what became of each document.
    fn deliver(
        &self,
        output: Output,
        tree: &ImageTree,
        images: &[Image],
        memory: &Memory,
        tag: &Reference,
        [attachments, signatures]: [&Attachments; 2],
    ) -> Result<Delivered> {
        let (base, cx) = (self.base, self.cx);
        Ok(match output {
            Output::Archive(mut archive) => {
                archive.attach(attachments)?;
                archive.attach(signatures)?;
                let to_file = archive.target().is_some();
                let mut blobs = Composite::new();
                if let Some(base) = base {
                    blobs.add(base.source(), base.image.blob_digests());
                }
                blobs.add(memory, images.iter().map(|i| i.config.digest().clone()));
                let finished = archive.finish(tree, &blobs as &dyn BlobSource, tag, 0)?;
                // The documents beside the archive and the archive itself appear together, or none.
                let (beside, summaries) = if to_file {
                    attach::stage_beside(&finished.summary().path, attachments, cx)?
                } else {
                    (Vec::new(), attach::summarize(attachments))
                };
                let written = finished.put_in_place(beside)?;
                (Some(written.path), written.size, None, summaries)
            }
            Output::Spool(spool) => (None, 0, Some(spool), attach::summarize(attachments)),
        })
    }
}

/// The archive's path and size (none and 0 for a spool), the spool, and each document's summary.
type Delivered = (Option<PathBuf>, u64, Option<Spool>, Vec<AttachmentSummary>);

/// Every file the layers and the base are read from, as messages name them.
fn inputs_of(
    checked: &[Checked],
    program_specs: &[LayerSpec],
    essentials: &[Option<EssentialsLayer>],
    base: Option<&BaseImage>,
) -> Inputs {
    let mut inputs = Inputs::default();
    for c in checked {
        inputs.add(&c.input.path, "the input executable");
    }
    let specs = program_specs
        .iter()
        .chain(essentials.iter().flatten().map(|e| &e.spec));
    for spec in specs {
        for (path, origin) in spec.host_files() {
            inputs.add(path, &format!("a file of {origin}"));
        }
    }
    for (path, what) in base.map(BaseImage::local_files).unwrap_or_default() {
        inputs.add(&path, what);
    }
    inputs
}

/// Refuses, before anything is written, an archive at `output` (reaching the file `target`) or a
/// document beside it that would replace one of `inputs`, or two outputs that are one file.
fn check_outputs(
    output: &Path,
    target: &Path,
    inputs: &Inputs,
    documents: &[(DocumentKind, String)],
) -> Result<()> {
    if let Some(input) = inputs.find(target) {
        let reached = if input.path == output {
            String::new()
        } else {
            format!(" ({})", input.path.display())
        };
        return Err(Error::input(
            output,
            format!(
                "is {} itself{reached}; choose another -o/--output",
                input.what
            ),
        ));
    }
    let mut written = vec![target.to_owned()];
    for (kind, suffix) in documents {
        let path = attach::path_beside(output, suffix);
        let doc_target = attach::target_beside(&path)?;
        let what = match kind {
            DocumentKind::Spdx => "SPDX SBOM",
            DocumentKind::CycloneDx => "CycloneDX SBOM",
            DocumentKind::Provenance => "provenance statement",
            DocumentKind::SigstoreBundle => "signature bundle",
            DocumentKind::CosignSignature => "cosign signature",
            DocumentKind::CosignAttestation => "cosign attestation",
        };
        let off = match kind {
            DocumentKind::Provenance => "leave out --provenance",
            _ => "pass --sbom none",
        };
        let replaced = match inputs.find(&doc_target) {
            Some(input) => Some(format!("{} ({})", input.what, input.path.display())),
            None if written.contains(&doc_target) => Some("the archive itself".to_owned()),
            None => None,
        };
        if let Some(replaced) = replaced {
            return Err(Error::input(
                &path,
                format!(
                    "the {what} written beside the archive would replace {replaced}; choose another \
                     -o/--output (the documents are named after the archive), or {off}"
                ),
            ));
        }
        written.push(doc_target);
    }
    Ok(())
}

/// The documents to attach: each program's SBOM (from what its build knows, else from the program
/// itself) and the provenance statement.
#[allow(clippy::too_many_arguments)]
fn attachments_of(
    checked: &[Checked],
    program_layers: &[Layer],
    images: &[Image],
    tree: &ImageTree,
    tag: &Reference,
    base: Option<&BaseImage>,
    entrypoint: &str,
    name: &str,
    options: &PackageOptions,
    listener: &dyn Listener,
) -> Result<Attachments> {
    if options.attach.is_empty() {
        return Ok(Attachments::default());
    }
    let mut programs = Vec::new();
    for (i, (c, layer)) in checked.iter().zip(program_layers).enumerate() {
        let (digest, size) = layer.file(entrypoint).ok_or_else(|| {
            Error::Invalid(format!(
                "the program layer of {} does not hold {entrypoint}",
                c.input.path.display()
            ))
        })?;
        let file = ProgramFile::new(entrypoint, digest, *size);
        let inventory = match options.attach.inventories.get(i).cloned().flatten() {
            Some(inventory) => inventory,
            None if options.attach.sbom.is_none() => {
                crate::sbom::Inventory::program_only("no SBOM")
            }
            None => {
                let (inventory, warning) = attach::inventory_of_program(&c.input.path)?;
                if let Some(warning) = warning {
                    listener.warning(&warning);
                }
                inventory
            }
        };
        listener.detail(&format!(
            "SBOM of {}: {} components, from {}",
            c.input.path.display(),
            inventory.components.len(),
            inventory.source.describe()
        ));
        programs.push(Program { file, inventory });
    }
    let mut attach_options = options.attach.clone();
    if let Some(provenance) = &mut attach_options.provenance {
        if provenance.build_type == crate::sbom::provenance::BUILD_TYPE_PROGRAM {
            for (c, program) in checked.iter().zip(&programs) {
                provenance
                    .resolved_dependencies
                    .push(crate::sbom::provenance::resource(
                        &c.input
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        None,
                        &[("sha256", &program.file.sha256)],
                        &[("platform", c.platform.to_string().into())],
                    ));
            }
        }
        if let Some(base) = base {
            provenance
                .resolved_dependencies
                .push(crate::sbom::provenance::image_resource(
                    base.name(),
                    base.digest(),
                ));
        }
    }
    let sources = attach::Sources {
        tree,
        images,
        programs: &programs,
        tag,
        base: base.map(|b| (b.name(), b.digest())),
        created: options.created,
        name,
    };
    Ok(attach::make(&attach_options, &sources))
}

fn write_layer(
    sink: &mut dyn BlobSink,
    spec: &LayerSpec,
    options: &PackageOptions,
    cx: &Context,
) -> Result<Layer> {
    let mut written = None;
    sink.put_streamed(&mut |out| {
        let layer = spec
            .write(out, options.created, &options.compression, cx.cancel())?
            .1;
        let digest = layer.descriptor.digest.clone();
        written = Some(layer);
        Ok(digest)
    })?;
    let layer = written.ok_or_else(|| Error::Invalid("no layer was written".to_owned()))?;
    cx.listener().detail(&format!(
        "layer {} ({} bytes), diff_id {}",
        layer.descriptor.digest, layer.descriptor.size, layer.diff_id
    ));
    Ok(layer)
}

/// Reads the ELF headers of one input: the platform its image is labelled with, and how it is linked.
fn check_input(input: &Input) -> Result<(Platform, Linkage)> {
    let info = elf::inspect(&input.path)?;
    let platform = input.platform.apply(&info.platform)?;
    if !info.platform.runs_as(&platform) {
        return Err(Error::input(
            &input.path,
            format!(
                "is a {} executable, but the image would be labelled {platform}; drop the platform \
                 override or package a {} build",
                info.platform.architecture, platform.architecture
            ),
        ));
    }
    Ok((platform, info.linkage))
}

/// The `LD_LIBRARY_PATH` the program will run with: ours, else the base's.
fn library_path(config: &ImageOptions, base: Option<&Base>) -> Option<String> {
    const KEY: &str = "LD_LIBRARY_PATH";
    if let Some((_, value)) = config.env.iter().rev().find(|(k, _)| k == KEY) {
        return Some(value.clone());
    }
    base?.config.config.env.iter().rev().find_map(|e| {
        e.strip_prefix(KEY)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_owned)
    })
}

/// A static program runs anywhere. A dynamic one runs on a base that has its loader and libraries (looked
/// up in the base's layers), and nowhere else; `--allow-dynamic` turns the refusal into a warning.
#[allow(clippy::too_many_arguments)]
fn check_linkage(
    input: &Path,
    linkage: &Linkage,
    entrypoint: &str,
    rootfs: Option<&RootFs>,
    library_path: Option<&str>,
    platform: &Platform,
    allow_dynamic: bool,
    listener: &dyn Listener,
) -> Result<()> {
    if linkage.is_static() {
        return Ok(());
    }
    let needs = linkage.describe_needs();
    let Some(rootfs) = rootfs else {
        if allow_dynamic {
            listener.warning(&format!(
                "{} is dynamically linked ({needs}); the image has no libraries, so it will not \
                 start unless they are added",
                input.display()
            ));
            return Ok(());
        }
        return Err(Error::input(
            input,
            format!(
                "is dynamically linked ({needs}), but a FROM scratch image has no loader or \
                 libraries; build it statically (Rust: --target x86_64-unknown-linux-musl or \
                 RUSTFLAGS=\"-C target-feature=+crt-static\"; Go: CGO_ENABLED=0), build on a base \
                 that has them (--from), or pass --allow-dynamic"
            ),
        ));
    };
    match check_dynamic(linkage, entrypoint, library_path, rootfs, platform) {
        Ok(()) => {
            listener.detail(&format!(
                "{}: the base has its loader and libraries ({needs})",
                input.display()
            ));
            Ok(())
        }
        Err(missing) if allow_dynamic => {
            listener.warning(&format!(
                "{} is dynamically linked and {missing}; it will not start as it is",
                input.display()
            ));
            Ok(())
        }
        Err(missing) => Err(Error::input(
            input,
            format!(
                "is dynamically linked and {missing}; use a base with them, build the program \
                 statically, or pass --allow-dynamic"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_archive_is_an_empty_path_in_the_json_summary() {
        #[derive(Serialize)]
        struct Summary {
            #[serde(serialize_with = "path_or_empty")]
            path: Option<PathBuf>,
        }
        let json = |path: Option<&str>| {
            serde_json::to_string(&Summary {
                path: path.map(PathBuf::from),
            })
            .unwrap()
        };
        assert_eq!(json(None), r#"{"path":""}"#);
        assert_eq!(json(Some("dist/app.tar")), r#"{"path":"dist/app.tar"}"#);
    }

    #[test]
    fn default_output_appends_tar_beside_the_program() {
        assert_eq!(
            default_output(Path::new("bin/app")),
            PathBuf::from("bin/app.tar")
        );
        assert_eq!(default_output(Path::new("app")), PathBuf::from("app.tar"));
    }

    #[test]
    fn default_tag_is_a_valid_name_from_the_program() {
        assert_eq!(default_tag("app").unwrap().familiar(), "app:latest");
        assert_eq!(default_tag("My_App").unwrap().familiar(), "my-app:latest");
        assert_eq!(
            default_tag("hello.v2").unwrap().familiar(),
            "hello.v2:latest"
        );
        assert!(default_tag("__").is_err());
    }

    #[test]
    fn entrypoint_comes_from_the_common_file_name_or_the_option() {
        let input = |p: &str| Input {
            path: p.into(),
            platform: PlatformOverride::default(),
        };
        let options = ImageOptions::default();
        assert_eq!(
            entrypoint_path(&[input("a/app"), input("b/app")], &options).unwrap(),
            "/app"
        );
        let err = entrypoint_path(&[input("app-amd64"), input("app-arm64")], &options).unwrap_err();
        assert!(err.to_string().contains("--entrypoint-path"));
        let options = ImageOptions {
            entrypoint_path: Some("/usr/local/bin/app".into()),
            ..Default::default()
        };
        assert_eq!(
            entrypoint_path(&[input("x")], &options).unwrap(),
            "/usr/local/bin/app"
        );
    }
}
