//! Running `cargo build` and collecting the executables it reports.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cargo_metadata::{Message, PackageId, TargetKind};

use super::workspace::cargo_program;
use crate::error::{Error, Result};
use crate::util::cancel::CancelToken;

/// One `cargo build`.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// `--target` triple (always passed: without it cargo builds for the host, in another directory).
    pub target: String,
    /// Every other argument for `cargo build`.
    pub args: Vec<OsString>,
    /// Extra environment, e.g. the linker for a cross build, the zig cargo-zigbuild runs.
    pub env: Vec<(String, OsString)>,
    /// cargo-zigbuild, to run the build instead of cargo (it makes zig the C compiler and linker).
    pub zigbuild: Option<PathBuf>,
    /// Crates whose build scripts compile C, by package: when one of those does not finish, the
    /// failure is the C compiler's and `c_hint` is added to the error.
    pub c_crates: Vec<(PackageId, String)>,
    pub c_hint: String,
    /// Build through `cargo auditable`, which embeds the dependency list in the binary (not with
    /// cargo-zigbuild, which runs cargo itself).
    pub auditable: bool,
}

/// An executable cargo built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    pub package_id: PackageId,
    /// The bin target's name.
    pub name: String,
    pub path: PathBuf,
}

/// A crate cargo compiled in the build: for the target (linked into the program) or for the host
/// (build scripts, their dependencies, procedural macros).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub package_id: PackageId,
    pub for_target: bool,
    pub features: Vec<String>,
}

/// What a build made: its executables and every crate it compiled.
#[derive(Clone, Debug, Default)]
pub struct Built {
    pub executables: Vec<Executable>,
    pub units: Vec<Unit>,
}

/// Runs the build with cargo's diagnostics and progress going to the terminal as usual, and returns the
/// executables and compiled crates from cargo's `compiler-artifact` messages.
/// `cancel` stops cargo with everything it started.
pub fn build(request: &BuildRequest, cancel: &CancelToken) -> Result<Built> {
    let mut cmd = if let Some(zigbuild) = &request.zigbuild {
        let mut cmd = Command::new(zigbuild);
        // The same cargo as ours, e.g. under `cargo +nightly zeroimage`.
        cmd.arg("zigbuild").env("CARGO", cargo_program());
        cmd
    } else {
        let mut cmd = Command::new(cargo_program());
        if request.auditable {
            cmd.arg("auditable");
        }
        cmd.arg("build");
        cmd
    };
    cmd.arg("--message-format=json-render-diagnostics")
        .arg("--target")
        .arg(&request.target)
        .args(&request.args)
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // In a process group of its own (see `crate::util::child`): a cancel stops cargo with every rustc and
    // build script it started, so nothing keeps the target directory locked.
    let mut process =
        crate::util::child::spawn(&mut cmd, cancel).map_err(|e| match &request.zigbuild {
            Some(path) => Error::Invalid(format!("cannot run {}: {e}", path.display())),
            None => Error::Invalid(format!("cannot run cargo: {e}")),
        })?;
    let stdout = process
        .child()
        .stdout
        .take()
        .ok_or_else(|| Error::Invalid("cargo's output was not captured".to_owned()))?;
    let mut executables = Vec::new();
    let mut units = Vec::new();
    let mut finished_ok = None;
    // Build scripts compiled, and those that ran to the end.
    let mut scripts_built = HashSet::new();
    let mut scripts_ran = HashSet::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let message =
            message.map_err(|e| Error::Invalid(format!("reading cargo's output: {e}")))?;
        match message {
            Message::CompilerArtifact(artifact) if artifact.target.is_kind(TargetKind::Bin) => {
                if let Some(path) = artifact.executable {
                    executables.push(Executable {
                        package_id: artifact.package_id,
                        name: artifact.target.name,
                        path: path.into_std_path_buf(),
                    });
                }
            }
            Message::CompilerArtifact(artifact) => {
                if artifact.target.is_kind(TargetKind::CustomBuild) {
                    scripts_built.insert(artifact.package_id.clone());
                }
                units.push(Unit {
                    for_target: built_for_target(&artifact, &request.target),
                    package_id: artifact.package_id,
                    features: artifact.features,
                });
            }
            Message::BuildScriptExecuted(script) => {
                scripts_ran.insert(script.package_id);
            }
            Message::BuildFinished(done) => finished_ok = Some(done.success),
            // Build scripts and tools may print plain lines on stdout; keep stdout ours.
            Message::TextLine(line) => eprintln!("{line}"),
            _ => {}
        }
    }
    let status = process
        .wait()
        .map_err(|e| Error::Invalid(format!("waiting for cargo: {e}")))?;
    cancel.check()?;
    if !status.success() || finished_ok == Some(false) {
        let mut message = format!(
            "`cargo build --target {}` failed; see cargo's errors above",
            request.target
        );
        let failed: Vec<String> = request
            .c_crates
            .iter()
            .filter(|(id, _)| scripts_built.contains(id) && !scripts_ran.contains(id))
            .map(|(_, name)| format!("`{name}`"))
            .collect();
        let (scripts, compile) = match failed.len() {
            1 => ("build script", "compiles"),
            _ => ("build scripts", "compile"),
        };
        if !failed.is_empty() {
            message.push_str(&format!(
                "; the {scripts} of {} {compile} C code and did not finish: {}",
                failed.join(", "),
                request.c_hint
            ));
        }
        return Err(Error::Build(message));
    }
    Ok(Built { executables, units })
}

/// True when an artifact was compiled for `target`: with `--target`, cargo puts those under
/// `<target-dir>/<target>/<profile>/` and what runs on the host (build scripts and their dependencies,
/// procedural macros) under `<target-dir>/<profile>/`.
fn built_for_target(artifact: &cargo_metadata::Artifact, target: &str) -> bool {
    let target_dir_name = std::path::Path::new(target)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(target);
    artifact.filenames.first().is_some_and(|file| {
        // <target-dir>/<target>/<profile>/deps/<file>
        file.ancestors().nth(3).and_then(|d| d.file_name()) == Some(target_dir_name)
    })
}
