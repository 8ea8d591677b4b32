//! What the cargo job attaches to its image: per target, the SBOM of the binary from cargo's resolved
//! graph and the build's compiled crates; the provenance statement with the build's options, the
//! source commit, Cargo.lock and the toolchain. And `--auditable`: building through `cargo auditable`.

use std::path::{Path, PathBuf};

use cargo_metadata::Metadata;
use serde_json::{Value, json};

use super::build::{Executable, Unit};
use super::lockfile::lockfile_digest;
use super::options::CargoOptions;
use super::workspace::{Workspace, cargo_program};
use crate::context::Context;
use crate::error::Result;
use crate::image::reference::Reference;
use crate::job::JobOptions;
use crate::job::parameters::provenance_parameters;
use crate::sbom::attach::AttachOptions;
use crate::sbom::provenance::{self, ProvenanceInputs};
use crate::sbom::{self, Inventory, SbomFormats};
use crate::util::timestamp::Timestamp;

/// Whether to build through `cargo auditable`: when asked and installed; asked but missing is a
/// warning, and the build goes on without it.
pub(crate) fn use_auditable(requested: bool, cx: &Context) -> bool {
    if !requested {
        return false;
    }
    let installed = crate::util::child::output(
        std::process::Command::new(cargo_program()).args(["auditable", "--version"]),
        cx.cancel(),
    )
    .is_ok_and(|output| output.status.success());
    if !installed {
        cx.listener().warning(
            "--auditable: cargo-auditable is not installed (`cargo install cargo-auditable`); \
             building without embedding the dependency list",
        );
    }
    installed
}

/// One target's build: its triple, the binary and the crates compiled.
pub(crate) struct TargetBuild<'a> {
    pub triple: &'a str,
    pub executable: &'a Executable,
    pub units: &'a [Unit],
    /// The dependency graph cargo resolved for the target before the build, when it was.
    pub graph: Option<&'a Metadata>,
}

/// The attachments of the cargo job's image.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attach_options(
    cargo: &CargoOptions,
    job: &JobOptions,
    workspace: &Workspace,
    sbom: SbomFormats,
    provenance: bool,
    builds: &[TargetBuild],
    rustc_version: Option<&str>,
    vcs: Option<&sbom::Vcs>,
    tag: &Reference,
    started: Option<Timestamp>,
    auditable: bool,
    cx: &Context,
) -> Result<AttachOptions> {
    let listener = cx.listener();
    let mut options = AttachOptions {
        sbom,
        provenance: None,
        inventories: Vec::new(),
    };
    if sbom.is_none() && !provenance {
        return Ok(options);
    }
    let root = workspace.root();
    let lock_path = root.join("Cargo.lock");
    let rustc = rustc_version.and_then(super::sbom::rustc_tool);
    if !sbom.is_none() {
        let checksums = super::lockfile::Checksums::read(&lock_path)?;
        let mut flags = cargo.resolution_flags();
        flags.extend(cargo.feature_flags());
        // A crate shared by several binaries is warned about once.
        let mut warned = std::collections::BTreeSet::new();
        for build in builds {
            listener.detail(&format!(
                "reading cargo's dependency graph for {}",
                build.triple
            ));
            let resolved;
            let metadata = if let Some(graph) = build.graph {
                graph
            } else {
                resolved = super::sbom::resolve(
                    cargo.manifest_path.as_deref(),
                    build.triple,
                    &flags,
                    cx.cancel(),
                )?;
                &resolved
            };
            let inventory: Inventory = super::sbom::inventory(
                metadata,
                build.units,
                &build.executable.package_id,
                &checksums,
                vcs.cloned(),
                rustc.iter().cloned().collect(),
            )?;
            for warning in inventory.license_warnings() {
                if warned.insert(warning.clone()) {
                    listener.warning(&warning);
                }
            }
            options.inventories.push(Some(inventory));
        }
    }
    if provenance {
        options.provenance = Some(provenance_inputs(
            cargo,
            job,
            builds,
            tag,
            &lock_path,
            vcs,
            rustc.as_ref(),
            started,
            auditable,
        ));
    }
    Ok(options)
}

#[allow(clippy::too_many_arguments)]
fn provenance_inputs(
    cargo: &CargoOptions,
    job: &JobOptions,
    builds: &[TargetBuild],
    tag: &Reference,
    lock_path: &Path,
    vcs: Option<&sbom::Vcs>,
    rustc: Option<&sbom::Tool>,
    started: Option<Timestamp>,
    auditable: bool,
) -> ProvenanceInputs {
    let mut parameters = provenance_parameters(job, &job.config, &job.essentials, Some(tag));
    let executable = builds.first().map(|b| b.executable);
    parameters.insert(
        "targets".into(),
        json!(builds.iter().map(|b| b.triple).collect::<Vec<_>>()),
    );
    if let Some(executable) = executable {
        parameters.insert("bin".into(), json!(executable.name));
    }
    if !cargo.packages.is_empty() {
        parameters.insert("packages".into(), json!(cargo.packages));
    }
    parameters.insert(
        "profile".into(),
        json!(cargo.profile.as_deref().unwrap_or("release")),
    );
    let features = cargo.feature_flags();
    if !features.is_empty() {
        parameters.insert("features".into(), json!(features));
    }
    if let Some(manifest) = cargo.manifest_path.as_deref().and_then(relative_to_cwd) {
        parameters.insert("manifestPath".into(), json!(manifest));
    }
    for (flag, on) in [
        ("locked", cargo.locked),
        ("frozen", cargo.frozen),
        ("offline", cargo.offline),
        ("auditable", auditable),
    ] {
        if on {
            parameters.insert(flag.into(), Value::Bool(true));
        }
    }
    let mut dependencies = Vec::new();
    if let Some(vcs) = vcs {
        dependencies.push(provenance::resource(
            "source",
            None,
            &[("gitCommit", &vcs.commit)],
            &[("dirty", Value::Bool(vcs.dirty))],
        ));
    }
    if let Some(digest) = lockfile_digest(lock_path) {
        dependencies.push(provenance::resource(
            "Cargo.lock",
            None,
            &[("sha256", digest.hex())],
            &[],
        ));
    }
    if let Some(rustc) = rustc {
        let commit = rustc
            .details
            .get("commit-hash")
            .cloned()
            .unwrap_or_default();
        let annotations: Vec<(&str, Value)> = rustc
            .details
            .iter()
            .filter(|(k, _)| k.as_str() != "commit-hash")
            .map(|(k, v)| (k.as_str(), json!(v)))
            .collect();
        let digest: Vec<(&str, &str)> = if commit.is_empty() {
            Vec::new()
        } else {
            vec![("gitCommit", commit.as_str())]
        };
        dependencies.push(provenance::resource(
            "rustc",
            Some(&format!("pkg:generic/rustc@{}", rustc.version)),
            &digest,
            &annotations,
        ));
    }
    ProvenanceInputs {
        build_type: provenance::BUILD_TYPE_CARGO.to_owned(),
        external_parameters: parameters,
        resolved_dependencies: dependencies,
        started,
    }
}

/// `path` as given when relative; an absolute path names this machine only and is left out.
fn relative_to_cwd(path: &Path) -> Option<PathBuf> {
    path.is_relative().then(|| path.to_owned())
}
