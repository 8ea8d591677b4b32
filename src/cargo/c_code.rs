//! Which crates of a build compile C code for the target: those whose build script depends on the
//! `cc` or `cmake` crate (directly or through its other build dependencies), found in the dependency
//! graph `cargo metadata` resolves for that target and those features, before anything is built.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::thread::JoinHandle;

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, PackageId, TargetKind};

use super::workspace::{cargo_program, run_metadata};
use crate::util::cancel::CancelToken;

/// The crates that build scripts use to compile C and C++.
const C_BUILD_CRATES: [&str; 2] = ["cc", "cmake"];

/// A crate whose build script compiles C.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CCrate {
    pub name: String,
    pub id: PackageId,
}

/// What `cargo metadata` needs to resolve the graph the build will use.
pub(crate) struct GraphRequest<'a> {
    pub manifest_path: Option<&'a Path>,
    /// `--locked`, `--offline`, `--config` ... as for the build.
    pub resolution_flags: &'a [String],
    /// The feature flags among the build's arguments.
    pub feature_flags: Vec<String>,
    /// `--package` specs; none: `selected`, else the workspace's default members.
    pub packages: &'a [String],
    pub selected: Option<&'a PackageId>,
    /// Stops `cargo metadata`.
    pub cancel: &'a CancelToken,
}

/// The dependency graph of a build, as `cargo metadata` resolves it for one target.
pub(crate) struct Graph {
    pub metadata: Metadata,
    /// False when cargo metadata refused the build's feature flags and the graph has the default
    /// features instead.
    pub exact: bool,
}

/// The graph the build for `triple` will use; `None` when cargo could not resolve it (the build will
/// then say what is wrong).
pub(crate) fn resolve_graph(request: &GraphRequest, triple: &str) -> Option<Graph> {
    resolve(
        request.manifest_path,
        request.resolution_flags,
        &request.feature_flags,
        triple,
        request.cancel,
    )
}

fn resolve(
    manifest_path: Option<&Path>,
    resolution_flags: &[String],
    feature_flags: &[String],
    triple: &str,
    cancel: &CancelToken,
) -> Option<Graph> {
    let metadata = |features: &[String]| {
        let mut cmd = MetadataCommand::new();
        let mut options = resolution_flags.to_vec();
        options.extend(features.iter().cloned());
        options.extend(["--filter-platform".to_owned(), triple.to_owned()]);
        cmd.cargo_path(cargo_program()).other_options(options);
        if let Some(path) = manifest_path {
            cmd.manifest_path(path);
        }
        run_metadata(&cmd, cancel).ok()
    };
    if let Some(metadata) = metadata(feature_flags) {
        return Some(Graph {
            metadata,
            exact: true,
        });
    }
    // Features cargo metadata cannot apply where `cargo build -p` can: the graph with the default
    // features is the next best.
    (!feature_flags.is_empty())
        .then(|| metadata(&[]))
        .flatten()
        .map(|metadata| Graph {
            metadata,
            exact: false,
        })
}

/// Graphs resolved ahead on other threads, while the workspace is read, for the targets the build
/// will most likely need: `cargo metadata` costs tens of milliseconds a target.
#[derive(Default)]
pub(crate) struct Prefetched {
    running: RefCell<BTreeMap<String, JoinHandle<Option<Graph>>>>,
}

impl Prefetched {
    /// Starts resolving the graph of each of `triples`, in the run `cancel` cancels.
    pub fn start(
        triples: Vec<String>,
        manifest_path: Option<&Path>,
        resolution_flags: Vec<String>,
        feature_flags: Vec<String>,
        cancel: &CancelToken,
    ) -> Prefetched {
        let mut running = BTreeMap::new();
        for triple in triples {
            let manifest_path = manifest_path.map(Path::to_owned);
            let (flags, features) = (resolution_flags.clone(), feature_flags.clone());
            let key = triple.clone();
            let cancel = cancel.clone();
            let handle = std::thread::spawn(move || {
                resolve(
                    manifest_path.as_deref(),
                    &flags,
                    &features,
                    &triple,
                    &cancel,
                )
            });
            running.insert(key, handle);
        }
        Prefetched {
            running: RefCell::new(running),
        }
    }

    /// The graph of `triple` when it was started, once it is ready.
    pub fn take(&self, triple: &str) -> Option<Option<Graph>> {
        let handle = self.running.borrow_mut().remove(triple)?;
        Some(handle.join().ok().flatten())
    }
}

/// The crates of the build that compile C, by name.
pub(crate) fn crates_with_c(metadata: &Metadata, request: &GraphRequest) -> Vec<CCrate> {
    find(metadata, &roots(metadata, request))
}

/// The packages `cargo build` starts from.
fn roots(metadata: &Metadata, request: &GraphRequest) -> Vec<PackageId> {
    let members = || {
        metadata
            .packages
            .iter()
            .filter(|p| metadata.workspace_members.contains(&p.id))
    };
    if !request.packages.is_empty() {
        let names: Vec<&str> = request
            .packages
            .iter()
            .map(|spec| spec.split('@').next().unwrap_or(spec))
            .collect();
        return members()
            .filter(|p| names.contains(&p.name.as_str()))
            .map(|p| p.id.clone())
            .collect();
    }
    if let Some(id) = request.selected {
        return vec![id.clone()];
    }
    if metadata.workspace_default_members.is_available() {
        return metadata.workspace_default_members.to_vec();
    }
    members().map(|p| p.id.clone()).collect()
}

/// Walks the target side of the graph (normal dependencies) from `roots`; a package there whose build
/// dependencies reach `cc` or `cmake` compiles C for the target.
fn find(metadata: &Metadata, roots: &[PackageId]) -> Vec<CCrate> {
    let Some(resolve) = &metadata.resolve else {
        return Vec::new();
    };
    let nodes: HashMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let deps_of = |id: &PackageId, kind: DependencyKind| -> Vec<PackageId> {
        nodes
            .get(id)
            .map(|node| {
                node.deps
                    .iter()
                    .filter(|d| d.dep_kinds.iter().any(|k| k.kind == kind))
                    .map(|d| d.pkg.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let package = |id: &PackageId| metadata.packages.iter().find(|p| &p.id == id);
    let reaches_c_builder = |start: Vec<PackageId>| {
        let mut seen: HashSet<PackageId> = HashSet::new();
        let mut queue: VecDeque<PackageId> = start.into();
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if package(&id).is_some_and(|p| C_BUILD_CRATES.contains(&p.name.as_str())) {
                return true;
            }
            queue.extend(deps_of(&id, DependencyKind::Normal));
        }
        false
    };
    let mut found = BTreeSet::new();
    let mut seen: HashSet<PackageId> = HashSet::new();
    let mut queue: VecDeque<PackageId> = roots.iter().cloned().collect();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(p) = package(&id) {
            let has_build_script = p.targets.iter().any(|t| t.is_kind(TargetKind::CustomBuild));
            if has_build_script && reaches_c_builder(deps_of(&id, DependencyKind::Build)) {
                found.insert(CCrate {
                    name: p.name.to_string(),
                    id: id.clone(),
                });
            }
        }
        queue.extend(deps_of(&id, DependencyKind::Normal));
    }
    found.into_iter().collect()
}

/// `` `a` ``, `` `a` and `b` ``, `` `a`, `b` and `c` ``.
pub(crate) fn list(crates: &[CCrate]) -> String {
    let names: Vec<String> = crates.iter().map(|c| format!("`{}`", c.name)).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_lists_read_as_english() {
        let c = |name: &str| CCrate {
            name: name.to_owned(),
            id: PackageId {
                repr: name.to_owned(),
            },
        };
        assert_eq!(list(&[c("a")]), "`a`");
        assert_eq!(list(&[c("a"), c("b")]), "`a` and `b`");
        assert_eq!(list(&[c("a"), c("b"), c("c")]), "`a`, `b` and `c`");
    }

    #[test]
    fn the_fixture_build_scripts_are_found_and_pure_rust_is_not() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let find = |fixture: &str| {
            let manifest = root.join(fixture).join("Cargo.toml");
            let request = GraphRequest {
                manifest_path: Some(&manifest),
                resolution_flags: &["--locked".to_owned()],
                feature_flags: Vec::new(),
                packages: &[],
                selected: None,
                cancel: &CancelToken::new(),
            };
            let graph = resolve_graph(&request, "aarch64-unknown-linux-musl")?;
            assert!(graph.exact);
            Some(crates_with_c(&graph.metadata, &request))
        };
        let names = |crates: Option<Vec<CCrate>>| {
            crates.map(|c| c.into_iter().map(|c| c.name).collect::<Vec<_>>())
        };
        assert_eq!(names(find("with-c")), Some(vec!["with-c".to_owned()]));
        assert_eq!(names(find("hello")), Some(Vec::new()));
    }
}
