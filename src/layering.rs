//! The layering rule of the source tree, checked on every `cargo test`.
//!
//! Dependencies point one way: the command line over resolve, resolve over the cargo job, the cargo job
//! over the image job, the job over the transports (runtimes, registries, layouts), the supply chain and
//! the building of layers, those over the codecs, tar and the image model, and the model over the OCI
//! documents and the utilities. [`ORDER`] lists the top-level modules from the highest to the lowest; a
//! module may name only modules below it. Inside each folder the files name each other without a loop
//! (a file's parent `mod.rs` declares and re-exports it and does not count). Paths are read from the
//! text (`crate::`, `super::`, `self::`, grouped `use` trees, doc links), not from the compiler, so a
//! doc link counts as a dependency too: a reader follows it the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules, highest first. A new module goes where its imports put it.
const ORDER: &[&str] = &[
    "resolve", "fuzzing", "cargo", "job", "load", "registry", "layout", "sbom", "assemble",
    "codec", "tar", "image", "context", "report", "sign", "oci", "util", "error",
];

/// A module path such as `["assemble", "rootfs"]`, and the file it is written in.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    text: String,
}

fn modules(src: &Path) -> Vec<Module> {
    let mut found = Vec::new();
    collect(src, src, &mut found);
    found
}

fn collect(root: &Path, dir: &Path, found: &mut Vec<Module>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
                .path()
        })
        .collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let first = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        // The binaries and the command line they include are outside the library.
        if matches!(first, "bin" | "cli" | "lib.rs" | "layering.rs") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            found.push(Module {
                path: parts,
                file: rel.to_path_buf(),
                text: without_tests(&text),
            });
        }
    }
}

/// The text before the file's unit tests, which may reach anywhere.
fn without_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// Every module path the text names, made absolute (`crate::a::b`), with grouped `use` trees expanded
/// one level (`crate::a::{b, c::D}` names `a::b` and `a::c`).
fn named_paths(module: &Module) -> Vec<(usize, Vec<String>)> {
    let mut named = Vec::new();
    for (number, line) in module.text.lines().enumerate() {
        for (prefix, base) in [
            ("crate::", Vec::new()),
            ("super::", parent(&module.path, &module.file)),
            ("self::", own(&module.path, &module.file)),
        ] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                for tail in expand(rest) {
                    let mut path = base.clone();
                    path.extend(tail);
                    named.push((number + 1, path));
                }
            }
        }
    }
    named
}

/// The module a `super::` path starts from: the parent of the file's module.
fn parent(path: &[String], file: &Path) -> Vec<String> {
    let mut own = own(path, file);
    own.pop();
    own
}

fn own(path: &[String], _file: &Path) -> Vec<String> {
    path.to_vec()
}

/// The segments after a path prefix: `a::b::C` gives `[a, b, C]`; `{a, b::c}` gives `[a]` and `[b, c]`.
fn expand(rest: &str) -> Vec<Vec<String>> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        return items
            .iter()
            .map(|item| segments(item.trim()))
            .filter(|s| !s.is_empty())
            .collect();
    }
    vec![segments(rest)]
}

fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    out
}

/// The longest known module that `path` names (an item path ends in a module's item).
fn target(path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

#[test]
fn top_level_modules_name_only_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let rank = |name: &str| ORDER.iter().position(|o| *o == name);
    let mut upward = Vec::new();
    for module in &modules {
        let Some(own) = module.path.first() else {
            continue;
        };
        let Some(own_rank) = rank(own) else {
            upward.push(format!(
                "src/{}: `{own}` is missing from ORDER",
                module.file.display()
            ));
            continue;
        };
        for (line, path) in named_paths(module) {
            let name = match path.first().map(String::as_str) {
                Some("Error" | "Result") => "error",
                Some(name) => name,
                None => continue,
            };
            if target(&path, &known).is_none() && !matches!(name, "error") {
                continue;
            }
            match rank(name) {
                Some(r) if r < own_rank => upward.push(format!(
                    "src/{}:{line}: `{own}` names `{}`, which is above it",
                    module.file.display(),
                    path.join("::")
                )),
                _ => {}
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layering:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_files_of_each_folder_name_each_other_without_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    // Edges between siblings: a file naming something inside a sibling (or the sibling's folder)
    // depends on that sibling. Parents and children do not count: a folder's mod.rs declares them.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for module in &modules {
        for (_, path) in named_paths(module) {
            let Some(to) = target(&path, &known) else {
                continue;
            };
            let common = module
                .path
                .iter()
                .zip(&to)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.path.len() || common == to.len() {
                continue;
            }
            let from = module.path[..=common].to_vec();
            let to = to[..=common].to_vec();
            edges.entry(from).or_default().insert(to);
        }
    }
    let mut loops = Vec::new();
    for start in edges.keys() {
        if let Some(cycle) = cycle_from(start, &edges) {
            loops.push(
                cycle
                    .iter()
                    .map(|p| p.join("::"))
                    .collect::<Vec<_>>()
                    .join(" -> "),
            );
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

/// A path of edges from `start` back to itself, if there is one (depth-first, every node once).
fn cycle_from(
    start: &Vec<String>,
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
) -> Option<Vec<Vec<String>>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    while let Some((node, trail)) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = trail.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = trail.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn the_check_reads_grouped_and_relative_paths() {
    assert_eq!(
        expand("{a, b::{c, d}, e::F}"),
        vec![vec!["a"], vec!["b"], vec!["e", "F"]]
    );
    assert_eq!(expand("a::b::C;"), vec![vec!["a", "b", "C"]]);
    let module = Module {
        path: vec!["image".into(), "stored".into()],
        file: "image/stored.rs".into(),
        text: "use super::blobs::Memory;\nuse crate::{oci::Digest, util};\nx_crate::no".into(),
    };
    let named: Vec<_> = named_paths(&module)
        .into_iter()
        .map(|(_, p)| p.join("::"))
        .collect();
    assert_eq!(named, vec!["image::blobs::Memory", "oci::Digest", "util"]);
}
