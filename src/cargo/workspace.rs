//! The workspace as `cargo metadata` describes it: packages, target dir, settings, and the image
//! annotations a package's manifest provides.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::{Metadata, MetadataCommand, Package, PackageId, TargetKind};

use super::settings::Settings;
use crate::error::{Error, Result};
use crate::oci::ANNOTATION_CREATED;
use crate::sbom::Vcs;
use crate::util::cancel::CancelToken;
use crate::util::timestamp::Timestamp;

/// The `cargo` to run: the one that invoked us (`$CARGO`), else from PATH.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Runs `cmd` as [`MetadataCommand::exec`] does, but as a `crate::util::child` process, so a cancel stops
/// it (`cargo metadata` may download and lock the package cache for a while).
pub(crate) fn run_metadata(
    cmd: &MetadataCommand,
    cancel: &CancelToken,
) -> cargo_metadata::Result<Metadata> {
    let output = crate::util::child::output(&mut cmd.cargo_command(), cancel)?;
    if !output.status.success() {
        return Err(cargo_metadata::Error::CargoMetadata {
            stderr: String::from_utf8(output.stderr)?,
        });
    }
    let stdout = std::str::from_utf8(&output.stdout)?
        .lines()
        .find(|line| line.starts_with('{'))
        .ok_or(cargo_metadata::Error::NoJson)?;
    MetadataCommand::parse(stdout)
}

/// A loaded workspace.
#[derive(Debug)]
pub struct Workspace {
    pub metadata: Metadata,
}

impl Workspace {
    /// Runs `cargo metadata --no-deps` for `manifest_path` (or the current directory), passing on the
    /// flags that change how cargo may resolve (`--locked`, `--offline`, `--config` ...); `cancel`
    /// stops it.
    pub fn load(
        manifest_path: Option<&Path>,
        extra: &[String],
        cancel: &CancelToken,
    ) -> Result<Workspace> {
        let mut cmd = MetadataCommand::new();
        cmd.cargo_path(cargo_program())
            .no_deps()
            .other_options(extra.to_vec());
        if let Some(path) = manifest_path {
            cmd.manifest_path(path);
        }
        let metadata = run_metadata(&cmd, cancel).map_err(|e| {
            let text = e.to_string();
            let detail = text
                .trim()
                .trim_start_matches("`cargo metadata` exited with an error:")
                .trim();
            Error::Invalid(format!(
                "reading the workspace with `cargo metadata` failed: {detail}"
            ))
        })?;
        Ok(Workspace { metadata })
    }

    pub fn package(&self, id: &PackageId) -> Option<&Package> {
        self.metadata.packages.iter().find(|p| &p.id == id)
    }

    fn package_named(&self, name: &str) -> Option<&Package> {
        self.metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == name)
    }

    /// The package whose settings decide what to build: the one `-p` names (when one is named), else the
    /// package of `manifest_path`, or of the nearest Cargo.toml above the current directory, as cargo
    /// itself picks it. `None` for a virtual workspace root.
    pub fn selected_package(
        &self,
        packages: &[String],
        manifest_path: Option<&Path>,
    ) -> Option<&Package> {
        match packages {
            [one] => return self.package_named(one.split('@').next().unwrap_or(one)),
            [] => {}
            _ => return None,
        }
        let manifest = if let Some(path) = manifest_path {
            path.to_owned()
        } else {
            let cwd = std::env::current_dir().ok()?;
            cwd.ancestors()
                .map(|d| d.join("Cargo.toml"))
                .find(|p| p.is_file())?
        };
        let manifest = manifest.canonicalize().ok()?;
        self.metadata.packages.iter().find(|p| {
            self.metadata.workspace_members.contains(&p.id)
                && p.manifest_path.as_std_path().canonicalize().ok().as_deref()
                    == Some(manifest.as_path())
        })
    }

    /// Reads and validates every member's settings, so a typo or a bad value anywhere in the workspace
    /// is reported before building.
    pub fn check_settings(&self) -> Result<()> {
        for package in &self.metadata.packages {
            if self.metadata.workspace_members.contains(&package.id) {
                let settings = self.settings(Some(package))?;
                settings.image_options()?;
                settings.essentials()?;
                settings.tag_pattern()?;
                settings.push_patterns()?;
                settings.load_targets()?;
                settings.repository()?;
                settings.base_ref()?;
                settings.sbom_formats()?;
            }
        }
        Ok(())
    }

    /// Settings of `package` (if any), with unset keys taken from the workspace.
    pub fn settings(&self, package: Option<&Package>) -> Result<Settings> {
        let root_manifest = self.metadata.workspace_root.join("Cargo.toml");
        let workspace = Settings::from_metadata(
            &self.metadata.workspace_metadata,
            root_manifest.as_std_path(),
            "workspace",
        )?;
        let own = match package {
            Some(p) => {
                Settings::from_metadata(&p.metadata, p.manifest_path.as_std_path(), "package")?
            }
            None => Settings::default(),
        };
        Ok(own.or(workspace))
    }

    pub fn root(&self) -> &Path {
        self.metadata.workspace_root.as_std_path()
    }

    pub fn target_dir(&self) -> PathBuf {
        self.metadata.target_directory.clone().into_std_path_buf()
    }
}

/// OCI annotations for an image of `bin` from `package`; the same keys become config labels.
pub fn annotations(
    package: &Package,
    bin: &str,
    revision: Option<&str>,
    created: Timestamp,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            map.insert(format!("org.opencontainers.image.{key}"), value);
        }
    };
    put("title", Some(bin.to_owned()));
    put("version", Some(package.version.to_string()));
    put("description", package.description.clone());
    put("licenses", package.license.clone());
    put("source", package.repository.clone());
    put("url", package.homepage.clone());
    put("documentation", package.documentation.clone());
    put(
        "authors",
        (!package.authors.is_empty()).then(|| package.authors.join(", ")),
    );
    put("revision", revision.map(str::to_owned));
    map.insert(ANNOTATION_CREATED.to_owned(), created.to_string());
    map
}

/// The commit checked out in the git repository holding `dir`, and whether there are uncommitted
/// changes (modified, staged or untracked files); `None` outside git (or when `cancel` stops git).
pub(crate) fn vcs_state(dir: &Path, cancel: &CancelToken) -> Option<Vcs> {
    let git = |args: &[&str]| {
        crate::util::child::output(Command::new("git").arg("-C").arg(dir).args(args), cancel)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| c.len() >= 40)?;
    let status = git(&["status", "--porcelain"])?;
    Some(Vcs {
        commit,
        dirty: !status.is_empty(),
    })
}

/// The binaries of `package`.
pub(crate) fn bins(package: &Package) -> Vec<&str> {
    package
        .targets
        .iter()
        .filter(|t| t.is_kind(TargetKind::Bin))
        .map(|t| t.name.as_str())
        .collect()
}

/// The binary `bin` of `package`, or when `None` its only binary or `default-run`; an error listing
/// the binaries otherwise.
pub(crate) fn bin_of(package: &Package, bin: Option<&str>) -> Result<String> {
    let all = bins(package);
    let list = || {
        all.iter()
            .map(|b| format!("`{b}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match bin {
        Some(bin) if all.contains(&bin) => Ok(bin.to_owned()),
        Some(bin) => Err(Error::Invalid(format!(
            "package `{}` has no binary `{bin}` (it has {})",
            package.name,
            if all.is_empty() {
                "none".to_owned()
            } else {
                list()
            }
        ))),
        None => match (all.as_slice(), package.default_run.as_deref()) {
            ([one], _) => Ok((*one).to_owned()),
            (_, Some(default)) if all.contains(&default) => Ok(default.to_owned()),
            ([], _) => Err(Error::Invalid(format!(
                "package `{}` has no binary target",
                package.name
            ))),
            _ => Err(Error::Invalid(format!(
                "package `{}` has several binaries ({}) and no `default-run`; name one as PACKAGE/BIN",
                package.name,
                list()
            ))),
        },
    }
}
