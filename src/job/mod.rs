//! The whole run of `zeroimage`, as a library call: package the given programs, deliver the archive
//! (through a staging file when it goes to a stream and is also pushed), and push it. The cargo job
//! (`CargoJob`) builds its programs first, then ends the same way.

pub mod base;
pub mod lambda;
pub mod naming;
pub mod package;
pub(crate) mod parameters;
pub(crate) mod plan;
pub(crate) mod publish;
pub mod refs;
pub mod signing;
mod staging;

use std::path::PathBuf;

pub(crate) use staging::ensure_stdout_free;

use base::BaseRef;
use lambda::LambdaCheck;
use naming::NamePattern;
use package::{Input, PackageOptions, PackageSummary, default_output, entrypoint_path};
use plan::{Fallbacks, ImagePlan};
use publish::{Load, OciLayout, Push};

use crate::assemble::essentials::Essentials;
use crate::assemble::options::ImageOptions;
use crate::codec::compress::Choice;
use crate::context::Context;
use crate::error::Result;
use crate::image::reference::Reference;
use crate::load::{LoadOptions, Loaded};
use crate::registry::pull::PullOptions;
use crate::registry::push::{PushOptions, Pushed};
use crate::sbom::SbomFormats;
use crate::sbom::attach::AttachOptions;
use crate::sbom::provenance::{self, ProvenanceInputs};
use crate::util::destination::is_standard_output;
use crate::util::timestamp::Timestamp;

/// What the caller decides about the image and where it goes; the same for both jobs. Every field is
/// optional: the defaults make a FROM scratch image written beside the program.
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// Where the archive goes. `None`: `PROGRAM.tar` beside the program, or no archive at all when
    /// pushing, loading or adding to an OCI layout (the cargo job writes one unless it adds to a
    /// layout: its `output` setting, else beside the binary).
    pub output: Option<PathBuf>,
    /// Add the image to this OCI image layout directory (created when missing); the cargo job: its
    /// `oci-layout` setting too.
    pub oci_layout: Option<PathBuf>,
    /// Image name (`{bin}` is the program's name); `None`: the program's name (the cargo job: its
    /// `tag` setting, else `<bin>:<version>`).
    pub tag: Option<NamePattern>,
    /// Creation time; `None`: [`Timestamp::from_env`] (the cargo job: its `created` setting first).
    pub created: Option<Timestamp>,
    /// Package a dynamically linked executable anyway (with a warning).
    pub allow_dynamic: bool,
    /// Image configuration; the cargo job lays it over the package's annotations and its settings.
    pub config: ImageOptions,
    /// The essentials layer; the cargo job merges it with its settings.
    pub essentials: Essentials,
    /// Build on this image instead of FROM scratch.
    pub base: Option<BaseRef>,
    /// How a registry base is pulled (registry options, the blob cache).
    pub pull_options: PullOptions,
    /// Push the image to these references once built (`{bin}` is the program's name).
    pub push: Vec<NamePattern>,
    /// How to reach the registries pushed to.
    pub push_options: PushOptions,
    /// Load the image into these local runtimes once built.
    pub load: LoadOptions,
    /// The caller prints its own result on standard output (`--message-format json`), so an archive
    /// going there is refused before anything is built.
    pub stdout_reserved: bool,
    /// SBOM formats attached to each image; `None`: SPDX (the cargo job: its `sbom` setting first).
    pub sbom: Option<SbomFormats>,
    /// Attach a SLSA provenance statement; `None`: no (the cargo job: its `provenance` setting).
    pub provenance: Option<bool>,
    /// A document that cannot be attached in a registry fails the push, before any tag is set;
    /// `None`: `push_options.require_attachments` (the cargo job: its `require-attachments` setting
    /// first). Otherwise it is a warning and the image is pushed without it.
    pub require_attachments: Option<bool>,
    /// The creation time is the wall clock (`--created now`), so the provenance may record when the
    /// build ran; otherwise it records no time at all.
    pub created_now: bool,
    /// Layer compression, `gzip[:LEVEL]` or `zstd[:LEVEL]`; `None`: gzip (the cargo job: its
    /// `compression` setting first).
    pub compression: Option<Choice>,
    /// Compression level; alone, it applies to the format otherwise chosen.
    pub compression_level: Option<u32>,
    /// Check AWS Lambda's rules and refuse an image Lambda cannot run, before anything is written;
    /// without it (and without the cargo job's `lambda` setting), a push to ECR warns instead.
    pub lambda: bool,
    /// Keys that sign every push (`--sign`; the cargo job: its `sign-key` setting otherwise).
    pub signing: signing::SigningOptions,
}

/// `zeroimage`'s job: the programs to package (one per platform) and the options.
#[derive(Clone, Debug, Default)]
pub struct Job {
    /// The programs, each with the platform overrides for its image.
    pub inputs: Vec<Input>,
    /// The image, its base, the archive and the push.
    pub options: JobOptions,
}

/// What a job made.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    /// The archive written (`path`, when one was) and the image's digests; `pushed` lists
    /// `REF@DIGEST` for each reference pushed.
    pub summary: PackageSummary,
    /// Each reference pushed, with the digest it now points at.
    pub pushed: Vec<Pushed>,
    /// Each runtime the image was loaded into.
    pub loaded: Vec<Loaded>,
}

impl JobOutcome {
    /// True when the archive went to standard output, where nothing else may then be printed.
    pub fn archive_on_stdout(&self) -> bool {
        self.summary.path.as_deref().is_some_and(is_standard_output)
    }
}

impl Job {
    /// Packages the inputs, writes the archive, pushes and loads the image, in the run `cx`: progress
    /// goes to its listener, its token cancels the run, and registries get the credentials of its
    /// keychain.
    pub fn run(&self, cx: &Context) -> Result<JobOutcome> {
        self.plan(cx)?.execute(cx)
    }

    /// Decides everything about the image before anything is written; the runtimes and clusters to
    /// load into are checked in the run `cx`.
    pub(crate) fn plan(&self, cx: &Context) -> Result<ImagePlan> {
        let options = &self.options;
        ensure_stdout_free(options.output.as_deref(), options.stdout_reserved)?;
        crate::load::preflight(&options.load.targets, cx.cancel())?;
        let entrypoint = entrypoint_path(&self.inputs, &options.config)?;
        let program = entrypoint.rsplit('/').next().unwrap_or("image").to_owned();
        let settled = options.settle(Fallbacks::default(), &program)?;
        if let Some(dir) = &settled.oci_layout {
            let tag = match &settled.tag {
                Some(tag) => tag.clone(),
                None => package::default_tag(&program)?,
            };
            crate::layout::store::ref_name(&tag)?;
            crate::layout::store::check(dir)?;
        }
        // Pushing, loading or adding to a layout without an output writes no archive: the layers
        // are spooled and read back from there.
        let reading_back =
            !settled.push.is_empty() || !settled.load.is_empty() || settled.oci_layout.is_some();
        let output = match (settled.output, self.inputs.as_slice()) {
            (Some(path), _) => Some(path),
            (None, _) if reading_back => None,
            (None, [single]) => Some(default_output(&single.path)),
            // Several programs in several directories: name the archive after the program, here.
            (None, _) => Some(PathBuf::from(format!("{program}.tar"))),
        };
        if let (Some(output), Some(dir)) = (&output, &settled.oci_layout) {
            crate::layout::store::ensure_apart(output, dir)?;
        }
        let provenance = settled.provenance.then(|| ProvenanceInputs {
            build_type: provenance::BUILD_TYPE_PROGRAM.to_owned(),
            external_parameters: parameters::provenance_parameters(
                options,
                &options.config,
                &options.essentials,
                settled.tag.as_ref(),
            ),
            resolved_dependencies: Vec::new(),
            started: settled.created_now.then(|| "now".parse().ok()).flatten(),
        });
        Ok(ImagePlan {
            inputs: self.inputs.clone(),
            package: PackageOptions {
                output,
                tag: settled.tag,
                created: settled.created,
                allow_dynamic: settled.allow_dynamic,
                config: settled.config,
                essentials: settled.essentials,
                compression: settled.compression,
                lambda: LambdaCheck::choose(
                    settled.lambda,
                    settled.push.iter().map(Reference::domain),
                ),
                attach: AttachOptions {
                    sbom: settled.sbom,
                    provenance,
                    inventories: Vec::new(),
                },
                sign: settled.push_options.signer.clone(),
            },
            base: settled.base,
            pull: options.pull_options.clone(),
            push: Push {
                references: settled.push,
                options: settled.push_options,
            },
            load: Load {
                options: settled.load,
            },
            layout: settled.oci_layout.map(|path| OciLayout { path }),
        })
    }
}
