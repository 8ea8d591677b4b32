//! Which crates of a build compile C code for the target: those whose build script depends on the
//! `cc` or `cmake` crate (directly or through its other build dependencies), found in the dependency
//! graph `cargo metadata` resolves for that target and those features, before anything is built.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, PackageId, TargetKind};

use super::workspace::cargo_program;

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
}

/// The crates of the build for `triple` that compile C, by name; `None` when cargo could not resolve
/// the graph (the build will then say what is wrong).
pub(crate) fn crates_with_c(request: &GraphRequest, triple: &str) -> Option<Vec<CCrate>> {
    let metadata = |features: &[String]| {
        let mut cmd = MetadataCommand::new();
        let mut options = request.resolution_flags.to_vec();
        options.extend(features.iter().cloned());
        options.extend(["--filter-platform".to_owned(), triple.to_owned()]);
        cmd.cargo_path(cargo_program()).other_options(options);
        if let Some(path) = request.manifest_path {
            cmd.manifest_path(path);
        }
        cmd.exec().ok()
    };
    // Features cargo metadata cannot apply where `cargo build -p` can: the graph with the default
    // features is the next best.
    let metadata = metadata(&request.feature_flags).or_else(|| {
        (!request.feature_flags.is_empty())
            .then(|| metadata(&[]))
            .flatten()
    })?;
    let roots = roots(&metadata, request);
    Some(find(&metadata, &roots))
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
            };
            crates_with_c(&request, "aarch64-unknown-linux-musl")
        };
        let names = |crates: Option<Vec<CCrate>>| {
            crates.map(|c| c.into_iter().map(|c| c.name).collect::<Vec<_>>())
        };
        assert_eq!(names(find("with-c")), Some(vec!["with-c".to_owned()]));
        assert_eq!(names(find("hello")), Some(Vec::new()));
    }
}
