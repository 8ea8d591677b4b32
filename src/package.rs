//! The whole job: check each executable, write the shared essentials layer and one program layer per
//! platform (into the archive being written, or a spool when only pushing), assemble config and manifest
//! per platform, finish the archive, and push what was built.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::{ImageArchive, ensure_distinct};
use crate::compose::ImageSpec;
use crate::compress::Compression;
use crate::elf::{self, Linkage};
use crate::error::{Error, Result};
use crate::essentials::Essentials;
use crate::image::{Image, ImageTree};
use crate::layer::{Layer, LayerSink, LayerSpec, MODE_EXECUTABLE};
use crate::oci::{Digest, MediaType};
use crate::options::ImageOptions;
use crate::platform::{Platform, PlatformOverride};
use crate::reference::Reference;
use crate::registry::push::{PushOptions, Pushed, push};
use crate::report::Listener;
use crate::source::archive::ArchiveSource;
use crate::source::spool::Spool;
use crate::source::{BlobSource, Composite, Memory};
use crate::timestamp::Timestamp;

/// One executable and the platform overrides for its image.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub platform: PlatformOverride,
}

/// How to package.
#[derive(Clone, Debug)]
pub struct PackageOptions {
    /// Where the archive goes; `None` writes no archive (the image is only pushed).
    pub output: Option<PathBuf>,
    /// Image name; `<program name>:latest` when `None`.
    pub tag: Option<Reference>,
    pub created: Timestamp,
    /// Package a dynamically linked executable anyway (with a warning).
    pub allow_dynamic: bool,
    /// Environment, labels, annotations, user, ports ... for every platform's config.
    pub config: ImageOptions,
    /// Extra files in a layer under the program's.
    pub essentials: Essentials,
    /// How the layers are compressed.
    pub compression: Compression,
}

/// One platform's image in the archive.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformSummary {
    pub platform: String,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct PackageSummary {
    /// The archive; empty when none was written.
    pub path: PathBuf,
    /// What a registry will call the image: the manifest's digest, or the image index's for several
    /// platforms.
    pub digest: Digest,
    /// Single-platform images only: the manifest digest (= `digest`), config and program layer digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<Digest>,
    /// `linux/amd64`, or the platforms joined by `,`.
    pub platform: String,
    pub platforms: Vec<PlatformSummary>,
    /// Archive size in bytes.
    pub size: u64,
    /// The image name, as docker shows it.
    pub tag: String,
    /// `REF@DIGEST` for each reference pushed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<String>,
}

/// The `output` a bare `zeroimage PROGRAM` writes: `PROGRAM.tar` beside the program.
pub fn default_output(input: &Path) -> PathBuf {
    let mut name = input.as_os_str().to_owned();
    name.push(".tar");
    PathBuf::from(name)
}

/// The image name used when none is given: the program's name, made a valid repository name.
pub fn default_tag(program_name: &str) -> Result<Reference> {
    let mut repo: String = program_name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    repo = repo.trim_matches(['.', '-']).to_owned();
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
}

/// What [`package`] built: the summary, the image tree, and where its blobs can be read back for a push.
pub struct Packaged {
    pub summary: PackageSummary,
    pub tree: ImageTree,
    /// The archive file written (`summary.path` may name the stream it was then copied to).
    archive: Option<PathBuf>,
    /// Configs (and manifests) of the images built.
    memory: Memory,
    /// The layers, when no archive was written.
    spool: Option<Spool>,
}

impl Packaged {
    /// Pushes what was built to every reference, reading blobs back from the archive written, or from
    /// the spool when there is none.
    pub fn push(
        &mut self,
        references: &[Reference],
        options: &PushOptions,
        listener: &dyn Listener,
    ) -> Result<Vec<Pushed>> {
        let pushed = match &self.spool {
            Some(spool) => {
                let mut blobs = Composite::new();
                blobs.add(spool, self.tree.blobs().iter().map(|d| d.digest.clone()));
                let configs = self
                    .tree
                    .manifests
                    .iter()
                    .map(|n| n.manifest.value().config.digest.clone());
                blobs.add(&self.memory, configs);
                push(&self.tree, &blobs, references, options, listener)?
            }
            None => {
                let path = self
                    .archive
                    .as_deref()
                    .ok_or_else(|| Error::Invalid("nothing was built to push".to_owned()))?;
                let archive = ArchiveSource::open(path)?;
                push(&self.tree, &archive, references, options, listener)?
            }
        };
        self.summary
            .pushed
            .extend(pushed.iter().map(ToString::to_string));
        Ok(pushed)
    }
}

/// Where the layers go while they are made.
enum Output {
    Archive(ImageArchive),
    Spool(Spool),
}

impl Output {
    fn sink(&mut self) -> &mut dyn LayerSink {
        match self {
            Output::Archive(archive) => archive,
            Output::Spool(spool) => spool,
        }
    }
}

/// Checks every input and builds one image, or with several inputs an image index with one image per
/// platform: into the archive `options.output` names, or (without one) into a spool for a push.
pub fn package(
    inputs: &[Input],
    options: &PackageOptions,
    listener: &dyn Listener,
) -> Result<Packaged> {
    let entrypoint = entrypoint_path(inputs, &options.config)?;
    let name = entrypoint
        .rsplit('/')
        .next()
        .unwrap_or(&entrypoint)
        .to_owned();
    let mut checked = Vec::new();
    for input in inputs {
        let platform = check_input(input, options.allow_dynamic, listener)?;
        if let Some(other) = checked.iter().find(|c: &&Checked| c.platform == platform) {
            return Err(Error::Invalid(format!(
                "{} and {} are both {platform}; an image index holds one image per platform",
                other.input.path.display(),
                input.path.display()
            )));
        }
        if let Some(output) = &options.output {
            ensure_distinct(&input.path, output)?;
        }
        checked.push(Checked { input, platform });
    }
    let tag = match &options.tag {
        Some(tag) => tag.clone(),
        None => default_tag(&name)?,
    };
    let essentials = options.essentials.layer()?;
    // Built before the archive is created, so that a program path clashing with the essentials
    // leaves nothing behind.
    let mut program_specs = Vec::new();
    for c in &checked {
        let mut spec = LayerSpec::new("the program");
        spec.add_file(&entrypoint, &c.input.path, MODE_EXECUTABLE)?;
        if let Some(essentials) = &essentials {
            spec.stack_on(&essentials.spec)?;
        }
        program_specs.push(spec);
    }

    let mut output = match &options.output {
        Some(path) => Output::Archive(ImageArchive::create(path, options.created)?),
        None => Output::Spool(Spool::new()?),
    };
    let platforms: Vec<String> = checked.iter().map(|c| c.platform.to_string()).collect();
    listener.status("Packaging", &format!("{name} ({})", platforms.join(", ")));
    listener.detail(&format!("image {}, entrypoint {entrypoint}", tag.full()));

    let mut shared_layers: Vec<(Layer, String)> = Vec::new();
    if let Some(essentials) = &essentials {
        let layer = write_layer(output.sink(), &essentials.spec, options, listener)?;
        shared_layers.push((layer, essentials.created_by.clone()));
    }
    let mut images: Vec<Image> = Vec::new();
    let mut program_layers = Vec::new();
    for (c, layer_spec) in checked.iter().zip(&program_specs) {
        let layer = write_layer(output.sink(), layer_spec, options, listener)?;
        let mut spec = ImageSpec::new(c.platform.clone(), &entrypoint, options.created);
        if let Some(essentials) = &essentials {
            for (key, value) in &essentials.env {
                crate::options::set_env(&mut spec.env, key, value);
            }
            spec.user.clone_from(&essentials.user);
        }
        options.config.apply_to(&mut spec);
        let mut layers = shared_layers.clone();
        layers.push((layer.clone(), format!("COPY {name} {entrypoint}")));
        images.push(spec.assemble(&layers));
        program_layers.push(layer);
    }
    let tree = ImageTree::of_images(&images)?;
    let mut memory = Memory::new();
    for image in &images {
        memory.insert(image.config.digest().clone(), image.config.bytes().to_vec());
    }
    let (path, size, spool) = match output {
        Output::Archive(archive) => {
            let mut blobs = Composite::new();
            blobs.add(&memory, images.iter().map(|i| i.config.digest().clone()));
            let written = archive.finish(&tree, &blobs as &dyn BlobSource, &tag, 0)?;
            (written.path, written.size, None)
        }
        Output::Spool(spool) => (PathBuf::new(), 0, Some(spool)),
    };
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
        pushed: Vec::new(),
    };
    debug_assert!(tree.top.media_type == MediaType::OciManifest || tree.index.is_some());
    Ok(Packaged {
        archive: spool.is_none().then(|| summary.path.clone()),
        summary,
        tree,
        memory,
        spool,
    })
}

fn write_layer(
    sink: &mut dyn LayerSink,
    spec: &LayerSpec,
    options: &PackageOptions,
    listener: &dyn Listener,
) -> Result<Layer> {
    let layer =
        sink.put_layer(&mut |out| Ok(spec.write(out, options.created, &options.compression)?.1))?;
    listener.detail(&format!(
        "layer {} ({} bytes), diff_id {}",
        layer.descriptor.digest, layer.descriptor.size, layer.diff_id
    ));
    Ok(layer)
}

/// Reads the ELF headers of one input and returns the platform its image is labelled with.
fn check_input(input: &Input, allow_dynamic: bool, listener: &dyn Listener) -> Result<Platform> {
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
    check_linkage(&input.path, &info.linkage, allow_dynamic, listener)?;
    listener.detail(&format!("{}: {:?}", input.path.display(), info.linkage));
    Ok(platform)
}

fn check_linkage(
    input: &Path,
    linkage: &Linkage,
    allow_dynamic: bool,
    listener: &dyn Listener,
) -> Result<()> {
    if linkage.is_static() {
        return Ok(());
    }
    let needs = linkage.describe_needs();
    if allow_dynamic {
        listener.warning(&format!(
            "{} is dynamically linked ({needs}); the image has no libraries, so it will not start \
             unless they are added",
            input.display()
        ));
        return Ok(());
    }
    Err(Error::input(
        input,
        format!(
            "is dynamically linked ({needs}), but a FROM scratch image has no loader or libraries; \
             build it statically (Rust: --target x86_64-unknown-linux-musl or \
             RUSTFLAGS=\"-C target-feature=+crt-static\"; Go: CGO_ENABLED=0) or pass --allow-dynamic"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
