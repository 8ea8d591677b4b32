//! The dependency list `cargo auditable` embeds in a binary: zlib-compressed JSON in the `.dep-v0`
//! section, `{"packages":[{"name","version","source","kind","dependencies":[indices],"root"}]}`.
//! Outside input: the section's size, the decompressed size and the number of packages are bounded.

use std::io::Read;

use object::read::ReadRef;
use serde::Deserialize;

use super::{Component, Ecosystem, Edge, Inventory, Origin, Scope, Source, elf_section};

const SECTION: &[u8] = b".dep-v0";
/// Largest compressed section read (real ones are a few KiB).
const MAX_COMPRESSED: u64 = 8 << 20;
/// Largest JSON after decompression.
const MAX_JSON: u64 = 64 << 20;
/// Most packages accepted.
const MAX_PACKAGES: usize = 100_000;

#[derive(Deserialize)]
struct List {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    dependencies: Vec<usize>,
    #[serde(default)]
    root: bool,
}

/// The inventory in `data`'s `.dep-v0` section: `Ok(None)` when there is none, an error when it is
/// there but unreadable.
pub(crate) fn read<'data, R: ReadRef<'data>>(data: R) -> Result<Option<Inventory>, String> {
    let (found, _) = elf_section::find(data, SECTION)?;
    let Some(found) = found else {
        return Ok(None);
    };
    if found.size > MAX_COMPRESSED {
        return Err(format!(
            "its .dep-v0 section has {} bytes; at most {} KiB are read",
            found.size,
            MAX_COMPRESSED >> 10
        ));
    }
    let compressed = data
        .read_bytes_at(found.offset, found.size)
        .map_err(|()| "its .dep-v0 section cannot be read".to_owned())?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("its .dep-v0 section is not zlib data ({e})"))?;
    if json.len() as u64 > MAX_JSON {
        return Err(format!(
            "its .dep-v0 section holds more than {} MiB of JSON",
            MAX_JSON >> 20
        ));
    }
    parse(&json).map(Some)
}

fn parse(json: &[u8]) -> Result<Inventory, String> {
    let list: List = serde_json::from_slice(json).map_err(|e| {
        format!(
            "its .dep-v0 section is not a cargo auditable dependency list ({})",
            crate::sanitize::outside(&e.to_string(), crate::sanitize::EXCERPT)
        )
    })?;
    let count = list.packages.len();
    if count > MAX_PACKAGES {
        return Err(format!(
            "its .dep-v0 section lists {count} packages; at most {MAX_PACKAGES} are accepted"
        ));
    }
    let mut inventory = Inventory {
        source: Source::Auditable,
        root: None,
        components: Vec::with_capacity(count),
        edges: Vec::new(),
        tools: Vec::new(),
    };
    for (i, package) in list.packages.iter().enumerate() {
        let origin = match package.source.as_str() {
            "crates.io" => Origin::CratesIo,
            "git" => Origin::Git {
                url: String::new(),
                commit: None,
            },
            "local" => Origin::Local,
            "registry" => Origin::Registry(String::new()),
            _ => Origin::Unknown,
        };
        let mut component = Component::new(
            Ecosystem::Cargo,
            &crate::sanitize::outside(&package.name, 200),
            &crate::sanitize::outside(&package.version, 200),
            origin,
        );
        component.scope = match package.kind.as_deref() {
            Some("build") => Scope::Build,
            _ => Scope::Runtime,
        };
        if package.root && inventory.root.is_none() {
            inventory.root = Some(i);
        }
        for &dependency in &package.dependencies {
            if dependency >= count || dependency == i {
                return Err(format!(
                    "its .dep-v0 section names package {dependency} as a dependency of {i}; there are \
                     {count}"
                ));
            }
            inventory.edges.push(Edge {
                from: i,
                to: dependency,
                build: false,
            });
        }
        inventory.components.push(component);
    }
    for edge in &mut inventory.edges {
        edge.build = inventory.components[edge.to].scope == Scope::Build;
    }
    inventory.normalize();
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dependency_list() {
        let json = br#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
            {"name":"itoa","version":"1.0.19","source":"crates.io"},
            {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"}]}"#;
        let inventory = parse(json).unwrap();
        let names: Vec<&str> = inventory
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["app", "cc", "itoa"]);
        assert_eq!(inventory.root, Some(0));
        assert_eq!(inventory.components[1].scope, Scope::Build);
        assert_eq!(inventory.edges.len(), 2);
        assert!(inventory.edges.iter().any(|e| e.to == 1 && e.build));
    }

    #[test]
    fn refuses_dangling_indices() {
        let json = br#"{"packages":[{"name":"a","version":"1","dependencies":[5]}]}"#;
        assert!(parse(json).unwrap_err().contains("package 5"));
        assert!(parse(b"[]").is_err());
    }
}
