//! The whole job for one executable: checks, layer, config and manifest, archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::{ImageArchive, ensure_distinct};
use crate::elf::{self, Linkage};
use crate::error::{Error, Result};
use crate::image::ImageSpec;
use crate::layer::{LayerSpec, MODE_EXECUTABLE};
use crate::oci::Digest;
use crate::platform::PlatformOverride;
use crate::reference::Reference;
use crate::report::Listener;
use crate::timestamp::Timestamp;

/// How to package one executable.
#[derive(Clone, Debug)]
pub struct PackageOptions {
    /// Where the archive goes.
    pub output: PathBuf,
    /// Image name; `<basename>:latest` when `None`.
    pub tag: Option<Reference>,
    pub platform: PlatformOverride,
    pub created: Timestamp,
    /// Package a dynamically linked executable anyway (with a warning).
    pub allow_dynamic: bool,
    /// Manifest annotations (e.g. `org.opencontainers.image.version`).
    pub annotations: BTreeMap<String, String>,
    /// Config labels, what `docker inspect` shows.
    pub labels: BTreeMap<String, String>,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct PackageSummary {
    pub path: PathBuf,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub layer_digest: Digest,
    pub platform: String,
    /// Archive size in bytes.
    pub size: u64,
    /// The image name, as docker shows it.
    pub tag: String,
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

/// Checks `input` and writes an image archive whose only content is `input` at `/<basename>`.
pub fn package_executable(
    input: &Path,
    options: &PackageOptions,
    listener: &dyn Listener,
) -> Result<PackageSummary> {
    let info = elf::inspect(input)?;
    let platform = options.platform.apply(&info.platform)?;
    if !info.platform.runs_as(&platform) {
        return Err(Error::input(
            input,
            format!(
                "is a {} executable, but the image would be labelled {platform}; drop the platform \
                 override or package a {} build",
                info.platform.architecture, platform.architecture
            ),
        ));
    }
    check_linkage(input, &info.linkage, options.allow_dynamic, listener)?;
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::input(input, "has no UTF-8 file name to use as the entrypoint"))?;
    let tag = match &options.tag {
        Some(tag) => tag.clone(),
        None => default_tag(name)?,
    };
    ensure_distinct(input, &options.output)?;
    let mut archive = ImageArchive::create(&options.output, options.created)?;
    listener.status("Packaging", &format!("{name} ({platform})"));
    listener.detail(&format!(
        "{}: {:?}, image {}",
        input.display(),
        info.linkage,
        tag.full()
    ));

    let entrypoint = format!("/{name}");
    let mut layer_spec = LayerSpec::new();
    layer_spec.add_file(&entrypoint, input, MODE_EXECUTABLE)?;
    let layer = archive.add_streamed_blob(|out| {
        let (_, layer) = layer_spec.write(out, options.created)?;
        Ok((layer.descriptor.digest.clone(), layer))
    })?;
    listener.detail(&format!(
        "layer {} ({} bytes), diff_id {}",
        layer.descriptor.digest, layer.descriptor.size, layer.diff_id
    ));
    let mut spec = ImageSpec::new(platform.clone(), &entrypoint, options.created);
    spec.annotations = options.annotations.clone();
    spec.labels = options.labels.clone();
    let image = spec.assemble(&[(layer.clone(), format!("COPY {name} {entrypoint}"))]);
    let written = archive.finish_single(&image, &tag)?;
    Ok(PackageSummary {
        path: written.path,
        manifest_digest: image.manifest.descriptor.digest,
        config_digest: image.config.descriptor.digest,
        layer_digest: layer.descriptor.digest,
        platform: platform.to_string(),
        size: written.size,
        tag: tag.familiar(),
    })
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
}
