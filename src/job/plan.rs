//! One plan for both jobs. Every option of an image is settled once (a flag, else what the crate's
//! Cargo.toml says, else the default) into typed values; then one execution packages the image,
//! delivers the archive and hands the image to its sinks. `zeroimage` has nothing under its flags;
//! `cargo zeroimage` passes each package's settings as [`Fallbacks`].

use std::path::PathBuf;

use super::base::{BaseImage, BaseRef};
use super::naming::NamePattern;
use super::package::{Input, PackageOptions, PackageSummary, package};
use super::publish::{Load, OciLayout, Publish, Published, Push};
use super::staging::Staging;
use super::{JobOptions, JobOutcome};
use crate::assemble::essentials::Essentials;
use crate::assemble::options::ImageOptions;
use crate::codec::compress::CompressOptions;
use crate::context::Context;
use crate::error::Result;
use crate::image::reference::Reference;
use crate::image::signatures::SignatureFormat;
use crate::load::{LoadOptions, LoadTarget};
use crate::registry::pull::PullOptions;
use crate::registry::push::PushOptions;
use crate::report::{Listener, human_size};
use crate::sbom::SbomFormats;
use crate::util::destination::is_dash;
use crate::util::timestamp::Timestamp;

/// What a configuration under the flags says (a crate's `[package.metadata.zeroimage]` over its
/// workspace's), already parsed: what each option falls back to when its flag is not given.
#[derive(Clone, Debug, Default)]
pub struct Fallbacks {
    /// Archive path.
    pub output: Option<PathBuf>,
    /// OCI layout directory the image is added to.
    pub oci_layout: Option<PathBuf>,
    /// Image name, `{bin}` not yet resolved.
    pub tag: Option<NamePattern>,
    /// Creation time.
    pub created: Option<Timestamp>,
    /// The creation time given is the wall clock (`created = "now"`).
    pub created_now: bool,
    /// Package a dynamically linked executable anyway.
    pub allow_dynamic: bool,
    /// Laid under the flags' configuration.
    pub config: ImageOptions,
    /// Merged under the flags' essentials.
    pub essentials: Essentials,
    /// Base image.
    pub base: Option<BaseRef>,
    /// Used when no reference is pushed to by flag.
    pub push: Vec<NamePattern>,
    /// Used when no runtime is loaded into by flag.
    pub load: Vec<LoadTarget>,
    /// Which SBOM documents to attach.
    pub sbom: Option<SbomFormats>,
    /// Whether to attach SLSA provenance.
    pub provenance: Option<bool>,
    /// Whether a document that cannot be attached fails the push.
    pub require_attachments: Option<bool>,
    /// Layer compression.
    pub compression: Option<CompressOptions>,
    /// Refuse an image AWS Lambda cannot run.
    pub lambda: bool,
    /// Private keys that sign every push.
    pub sign_keys: Vec<PathBuf>,
    /// The form of those signatures.
    pub signature_format: Option<SignatureFormat>,
    /// `Some(false)`: never ask a cloud for registry credentials.
    pub cloud_credentials: Option<bool>,
}

/// The options of one image, settled: every value a flag gave, else its fallback, else the default.
/// The output and the name keep `None` when neither gave one: each job has its own default for them.
#[derive(Clone, Debug)]
pub struct Settled {
    /// Archive path; `None`: the job's default.
    pub output: Option<PathBuf>,
    /// OCI layout directory the image is added to.
    pub oci_layout: Option<PathBuf>,
    /// Image name; `None`: the job's default.
    pub tag: Option<Reference>,
    /// Creation time written into configs and layer entries.
    pub created: Timestamp,
    /// The creation time is the wall clock, so the provenance may record when the build ran.
    pub created_now: bool,
    /// Package a dynamically linked executable anyway.
    pub allow_dynamic: bool,
    /// Environment, labels, user, ports ... for every config.
    pub config: ImageOptions,
    /// Extra files in a layer under the program's.
    pub essentials: Essentials,
    /// Base image; `None`: FROM scratch.
    pub base: Option<BaseRef>,
    /// The references pushed to, `{bin}` resolved.
    pub push: Vec<Reference>,
    /// How to reach the registries pushed to.
    pub push_options: PushOptions,
    /// Runtimes to load the image into.
    pub load: LoadOptions,
    /// Which SBOM documents to attach.
    pub sbom: SbomFormats,
    /// Whether to attach SLSA provenance.
    pub provenance: bool,
    /// Layer compression.
    pub compression: CompressOptions,
    /// Refuse an image AWS Lambda cannot run (else a push to ECR warns).
    pub lambda: bool,
}

impl JobOptions {
    /// These options over `fallbacks`, for the image of the program or binary `bin` (what `{bin}`
    /// stands for in names).
    pub(crate) fn settle(&self, fallbacks: Fallbacks, bin: &str) -> Result<Settled> {
        let tag = self.tag.as_ref().or(fallbacks.tag.as_ref());
        let push = if self.push.is_empty() {
            &fallbacks.push
        } else {
            &self.push
        };
        let load = if self.load.is_empty() {
            LoadOptions {
                targets: fallbacks.load,
                ..self.load.clone()
            }
        } else {
            self.load.clone()
        };
        let push = push
            .iter()
            .map(|p| p.resolve(bin))
            .collect::<Result<Vec<_>>>()?;
        Ok(Settled {
            output: self.output.clone().or(fallbacks.output),
            oci_layout: self.oci_layout.clone().or(fallbacks.oci_layout),
            tag: tag.map(|t| t.resolve(bin)).transpose()?,
            created: match self.created.or(fallbacks.created) {
                Some(created) => created,
                None => Timestamp::from_env()?,
            },
            created_now: self.created_now || (self.created.is_none() && fallbacks.created_now),
            allow_dynamic: self.allow_dynamic || fallbacks.allow_dynamic,
            config: fallbacks.config.overlay(self.config.clone()),
            essentials: self.essentials.clone().over(fallbacks.essentials),
            base: self.base.clone().or(fallbacks.base),
            lambda: self.lambda || fallbacks.lambda,
            push,
            push_options: PushOptions {
                require_attachments: self
                    .require_attachments
                    .or(fallbacks.require_attachments)
                    .unwrap_or(self.push_options.require_attachments),
                signer: match self
                    .signing
                    .signer(&fallbacks.sign_keys, fallbacks.signature_format)?
                {
                    Some(signer) => Some(signer),
                    None => self.push_options.signer.clone(),
                },
                client: crate::registry::client::ClientOptions {
                    cloud_credentials: self.push_options.client.cloud_credentials
                        && fallbacks.cloud_credentials != Some(false),
                    ..self.push_options.client.clone()
                },
                ..self.push_options.clone()
            },
            load,
            sbom: self.sbom.or(fallbacks.sbom).unwrap_or_default(),
            provenance: self.provenance.or(fallbacks.provenance).unwrap_or(false),
            compression: CompressOptions::chosen(
                self.compression,
                self.compression_level,
                fallbacks.compression,
            )?,
        })
    }
}

/// Everything decided about one image before anything is written.
#[derive(Debug)]
pub struct ImagePlan {
    /// The programs, one per platform.
    pub inputs: Vec<Input>,
    /// How to package; `output: None` writes no archive (the layers are spooled for the sinks).
    pub package: PackageOptions,
    /// Build on this image instead of FROM scratch.
    pub base: Option<BaseRef>,
    /// How a registry base is pulled.
    pub pull: PullOptions,
    /// Where the image is pushed once built.
    pub push: Push,
    /// The runtimes it is loaded into once built.
    pub load: Load,
    /// The OCI layout directory it is added to once built.
    pub layout: Option<OciLayout>,
}

impl ImagePlan {
    /// The sinks the image goes to after its archive, in order: the layout directory, pushes, then
    /// loads.
    fn sinks(&self) -> Vec<&dyn Publish> {
        let mut sinks: Vec<&dyn Publish> = Vec::new();
        if let Some(layout) = &self.layout {
            sinks.push(layout);
        }
        if !self.push.references.is_empty() {
            sinks.push(&self.push);
        }
        if !self.load.options.is_empty() {
            sinks.push(&self.load);
        }
        sinks
    }

    /// Packages the image, delivers its archive (through a staging file when it goes to a stream and
    /// is read back), reports it, and hands it to every sink; in the run `cx`.
    pub fn execute(&self, cx: &Context) -> Result<JobOutcome> {
        let listener = cx.listener();
        let sinks = self.sinks();
        let staging = Staging::new(
            self.package.output.as_deref(),
            !sinks.is_empty(),
            cx.cancel(),
        )?;
        let package_options = PackageOptions {
            output: staging.build_path(),
            ..self.package.clone()
        };
        let base = self
            .base
            .as_ref()
            .map(|base| BaseImage::open(base, &self.pull, cx))
            .transpose()?;
        let mut packaged = package(&self.inputs, &package_options, base.as_ref(), cx)?;
        staging.deliver(&mut packaged.summary, cx.cancel())?;
        report_written(&packaged.summary, listener);
        if self.package.sign.is_some()
            && self.push.references.is_empty()
            && packaged.summary.signatures.is_empty()
        {
            listener.warning(&format!(
                "--sign: nothing was signed: the image is not pushed, and its name ({}) has no \
                 registry to sign for; name it REGISTRY/REPOSITORY:TAG, or sign when pushing",
                packaged.tag().familiar()
            ));
        }
        let mut published = Vec::new();
        if !sinks.is_empty() {
            let image = packaged.stored(cx.cancel())?;
            for sink in sinks {
                published.push(sink.publish(&image, packaged.tag(), cx)?);
            }
        }
        let mut outcome = JobOutcome {
            summary: packaged.summary,
            pushed: Vec::new(),
            loaded: Vec::new(),
        };
        for result in published {
            match result {
                Published::Pushed(pushed) => {
                    let summary = &mut outcome.summary;
                    summary
                        .pushed
                        .extend(pushed.pushed.iter().map(ToString::to_string));
                    summary.attachments_not_pushed.extend(pushed.not_attached);
                    for signature in pushed.signatures {
                        if !summary.signatures.contains(&signature) {
                            summary.signatures.push(signature);
                        }
                    }
                    outcome.pushed.extend(pushed.pushed);
                }
                Published::Loaded(loaded) => {
                    outcome.summary.loaded.extend(loaded.iter().cloned());
                    outcome.loaded.extend(loaded);
                }
                Published::Stored(layout) => outcome.summary.oci_layout = Some(layout),
            }
        }
        Ok(outcome)
    }
}

/// The `Written` status line, when an archive was written.
fn report_written(summary: &PackageSummary, listener: &dyn Listener) {
    let Some(path) = &summary.path else {
        return;
    };
    let written = if is_dash(path) {
        "standard output".to_owned()
    } else {
        path.display().to_string()
    };
    listener.status(
        "Written",
        &format!(
            "{written} ({}, {}, {})",
            summary.tag,
            summary.digest,
            human_size(summary.size)
        ),
    );
}
