//! What a `cargo zeroimage` binary is made of: cargo's resolved graph for the target platform (`cargo
//! metadata --filter-platform`, with the build's feature flags), walked from the binary's package, and
//! narrowed to the crates the build actually compiled. `cargo metadata` unifies features over the
//! whole workspace, so its graph alone can hold optional crates another member enabled; the build's own
//! `compiler-artifact` messages say exactly which crates were compiled, for the target (linked into the
//! binary) or for the host (build scripts and procedural macros), with their features.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Package, PackageId, TargetKind};

use super::lockfile::Checksums;
use crate::cargo::build::Unit;
use crate::cargo::workspace::{cargo_program, run_metadata};
use crate::error::{Error, Result};
use crate::sbom::{Component, Ecosystem, Edge, Inventory, Origin, Scope, Source, Tool, Vcs};
use crate::util::cancel::CancelToken;

const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// Runs `cargo metadata` with the resolved graph for `target`: `flags` are the resolution flags
/// (`--locked`, `--offline`, `--config` ...) and the build's feature flags.
pub(crate) fn resolve(
    manifest_path: Option<&Path>,
    target: &str,
    flags: &[String],
    cancel: &CancelToken,
) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    let mut options = vec!["--filter-platform".to_owned(), target.to_owned()];
    options.extend(flags.iter().cloned());
    cmd.cargo_path(cargo_program()).other_options(options);
    if let Some(path) = manifest_path {
        cmd.manifest_path(path);
    }
    run_metadata(&cmd, cancel).map_err(|e| {
        Error::Invalid(format!(
            "reading the dependency graph for {target} with `cargo metadata` failed (needed for the \
             SBOM; --sbom none skips it): {}",
            crate::util::sanitize::outside(e.to_string().trim(), crate::util::sanitize::EXCERPT)
        ))
    })
}

/// The inventory of the binary of package `root`, from `metadata` (resolved for its target) and the
/// build's `units`; `checksums` from Cargo.lock.
pub(crate) fn inventory(
    metadata: &Metadata,
    units: &[Unit],
    root: &PackageId,
    checksums: &Checksums,
    vcs: Option<Vcs>,
    tools: Vec<Tool>,
) -> Result<Inventory> {
    let resolve = metadata.resolve.as_ref().ok_or_else(|| {
        Error::Invalid("`cargo metadata` returned no dependency graph".to_owned())
    })?;
    let packages: BTreeMap<&PackageId, &Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let is_proc_macro = |id: &PackageId| {
        packages
            .get(id)
            .is_some_and(|p| p.targets.iter().any(|t| t.is_kind(TargetKind::ProcMacro)))
    };

    let (reached, edges) = walk(root, &nodes, &is_proc_macro);

    // What the build compiled: for the target, and at all.
    let mut for_target: BTreeMap<&PackageId, &Unit> = BTreeMap::new();
    let mut compiled: BTreeMap<&PackageId, &Unit> = BTreeMap::new();
    for unit in units {
        compiled.entry(&unit.package_id).or_insert(unit);
        if unit.for_target {
            for_target.insert(&unit.package_id, unit);
        }
    }
    let known_units = !units.is_empty();

    let mut index: BTreeMap<&PackageId, usize> = BTreeMap::new();
    let mut components = Vec::new();
    for (&id, &runtime) in &reached {
        let is_root = id == root;
        if known_units && !is_root && !compiled.contains_key(id) {
            continue;
        }
        let Some(package) = packages.get(id) else {
            continue;
        };
        let linked = runtime && (!known_units || is_root || for_target.contains_key(id));
        let mut component = component_of(package, checksums);
        component.scope = if linked { Scope::Runtime } else { Scope::Build };
        component.features = match for_target.get(id).or(compiled.get(id)) {
            Some(unit) => unit.features.clone(),
            None => nodes
                .get(id)
                .map(|n| {
                    n.features
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        };
        if is_root {
            component.vcs.clone_from(&vcs);
        }
        index.insert(id, components.len());
        components.push(component);
    }
    let edges = edges
        .into_iter()
        .filter_map(|(from, to, build)| {
            Some(Edge {
                from: *index.get(from)?,
                to: *index.get(to)?,
                build: build || components[*index.get(to)?].scope == Scope::Build,
            })
        })
        .filter(|e| e.from != e.to)
        .collect();
    let mut inventory = Inventory {
        source: Source::Cargo,
        root: index.get(root).copied(),
        components,
        edges,
        tools,
    };
    inventory.normalize();
    Ok(inventory)
}

/// Each package reached from `root` (true when it is linked: reached through normal edges and not
/// through a procedural macro; false when it only runs at build time), and every edge walked (from,
/// to, build-time).
#[allow(clippy::type_complexity)]
fn walk<'m>(
    root: &'m PackageId,
    nodes: &BTreeMap<&'m PackageId, &'m cargo_metadata::Node>,
    is_proc_macro: &dyn Fn(&PackageId) -> bool,
) -> (
    BTreeMap<&'m PackageId, bool>,
    BTreeSet<(&'m PackageId, &'m PackageId, bool)>,
) {
    let mut reached: BTreeMap<&PackageId, bool> = BTreeMap::new();
    let mut edges: BTreeSet<(&PackageId, &PackageId, bool)> = BTreeSet::new();
    let mut queue = VecDeque::from([(root, true)]);
    while let Some((id, runtime)) = queue.pop_front() {
        match reached.get(id) {
            Some(&seen) if seen || !runtime => continue,
            _ => {}
        }
        reached.insert(id, runtime);
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal);
            let build = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Build);
            let macro_crate = is_proc_macro(&dep.pkg);
            if normal {
                queue.push_back((&dep.pkg, runtime && !macro_crate));
                edges.insert((id, &dep.pkg, macro_crate));
            }
            if build {
                queue.push_back((&dep.pkg, false));
                edges.insert((id, &dep.pkg, true));
            }
        }
    }
    (reached, edges)
}

fn component_of(package: &Package, checksums: &Checksums) -> Component {
    let source = package.source.as_ref().map(|s| s.repr.as_str());
    let origin = match source {
        None => Origin::Local,
        Some(s) if CRATES_IO.contains(&s) => Origin::CratesIo,
        Some(s) if s.starts_with("git+") => {
            let rest = &s["git+".len()..];
            let (url, commit) = match rest.split_once('#') {
                Some((url, commit)) => (url, Some(commit.to_owned())),
                None => (rest, None),
            };
            let url = url.split('?').next().unwrap_or(url).to_owned();
            Origin::Git { url, commit }
        }
        Some(s) => match s
            .strip_prefix("registry+")
            .or_else(|| s.strip_prefix("sparse+"))
        {
            Some(url) => Origin::Registry(url.to_owned()),
            None => Origin::Unknown,
        },
    };
    let name = package.name.to_string();
    let version = package.version.to_string();
    let mut component = Component::new(Ecosystem::Cargo, &name, &version, origin);
    component.sha256 = source
        .and_then(|s| checksums.get(&name, &version, s))
        .map(str::to_owned);
    component.license.clone_from(&package.license);
    component.authors.clone_from(&package.authors);
    component.description.clone_from(&package.description);
    component.homepage.clone_from(&package.homepage);
    component.repository.clone_from(&package.repository);
    component
}

/// The toolchain, from what `rustc -vV` printed.
pub(crate) fn rustc_tool(text: &str) -> Option<Tool> {
    let mut details = BTreeMap::new();
    let mut version = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "release" => version = Some(value.to_owned()),
            "commit-hash" | "commit-date" | "host" | "LLVM version" => {
                details.insert(key.to_owned(), value.to_owned());
            }
            _ => {}
        }
    }
    Some(Tool {
        name: "rustc".to_owned(),
        version: version?,
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolchain_comes_from_rustc_verbose_version() {
        let text = "rustc 1.95.0 (abc 2026-10-01)\nbinary: rustc\ncommit-hash: abc\n\
                    commit-date: 2026-10-01\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n\
                    LLVM version: 21.1.0\n";
        let tool = rustc_tool(text).unwrap();
        assert_eq!(
            (tool.name.as_str(), tool.version.as_str()),
            ("rustc", "1.95.0")
        );
        assert_eq!(
            tool.details.keys().collect::<Vec<_>>(),
            ["LLVM version", "commit-date", "commit-hash", "host"]
        );
        assert_eq!(tool.details["host"], "x86_64-unknown-linux-gnu");
        assert!(rustc_tool("no release line").is_none());
    }
}
