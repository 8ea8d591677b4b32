//! The dependency list `cargo auditable` embeds in a binary: zlib-compressed JSON in the `.dep-v0`
//! section, `{"packages":[{"name","version","source","kind","dependencies":[indices],"root"}]}`.
//! Outside input: the section's size, the decompressed size and the number of packages are bounded.

use std::cell::Cell;
use std::fmt;
use std::io::Read;

use object::read::ReadRef;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Component, Ecosystem, Edge, Inventory, Origin, Scope, Source, elf_section};

const SECTION: &[u8] = b".dep-v0";
/// Largest compressed section read (real ones are a few KiB).
const MAX_COMPRESSED: u64 = 8 << 20;
/// Largest JSON after decompression.
const MAX_JSON: u64 = 64 << 20;
/// Most packages accepted: the largest real dependency graphs have a few thousand crates.
pub(crate) const MAX_PACKAGES: usize = 100_000;
/// Most dependency indices accepted, all packages together and repeats included, counted as they are
/// read: real graphs have a few per crate.
pub(crate) const MAX_DEPENDENCIES: usize = 1_000_000;

struct Package {
    name: String,
    version: String,
    source: String,
    kind: Option<String>,
    dependencies: Vec<usize>,
    root: bool,
}

/// What the list may still hold, and the limit it went past, if any.
struct Budget {
    dependencies_left: Cell<usize>,
    exceeded: Cell<Option<String>>,
}

impl Budget {
    /// Notes that a limit was passed, as an error that stops the parser.
    fn exceeded<E: de::Error>(&self, what: String) -> E {
        let error = E::custom(&what);
        self.exceeded.set(Some(what));
        error
    }
}

/// Reads the list: the packages and their dependency indices are counted against [`MAX_PACKAGES`]
/// and [`MAX_DEPENDENCIES`] one by one, before they are kept, so that a small section cannot make a
/// large list.
struct ListSeed<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<Package>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Vec<Package>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `packages`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut packages = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "packages" && packages.is_none() {
                packages = Some(map.next_value_seed(PackagesSeed(self.0))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        packages.ok_or_else(|| de::Error::missing_field("packages"))
    }
}

struct PackagesSeed<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for PackagesSeed<'_> {
    type Value = Vec<Package>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PackagesSeed<'_> {
    type Value = Vec<Package>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of packages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut packages = Vec::new();
        loop {
            if packages.len() == MAX_PACKAGES {
                return match seq.next_element::<IgnoredAny>()? {
                    Some(_) => Err(self.0.exceeded(format!(
                        "lists more than {MAX_PACKAGES} packages, the most accepted"
                    ))),
                    None => Ok(packages),
                };
            }
            match seq.next_element_seed(PackageSeed(self.0))? {
                Some(package) => packages.push(package),
                None => return Ok(packages),
            }
        }
    }
}

struct PackageSeed<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for PackageSeed<'_> {
    type Value = Package;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PackageSeed<'_> {
    type Value = Package;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a package")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut name, mut version) = (None, None);
        let mut package = Package {
            name: String::new(),
            version: String::new(),
            source: String::new(),
            kind: None,
            dependencies: Vec::new(),
            root: false,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value::<String>()?),
                "version" => version = Some(map.next_value::<String>()?),
                "source" => package.source = map.next_value()?,
                "kind" => package.kind = map.next_value()?,
                "root" => package.root = map.next_value()?,
                "dependencies" => {
                    let seed = DependenciesSeed {
                        budget: self.0,
                        into: &mut package.dependencies,
                    };
                    map.next_value_seed(seed)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        package.name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        package.version = version.ok_or_else(|| de::Error::missing_field("version"))?;
        Ok(package)
    }
}

/// One package's dependency indices, appended to `into`, each taken from the budget.
struct DependenciesSeed<'a> {
    budget: &'a Budget,
    into: &'a mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for DependenciesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DependenciesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of package indices")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(index) = seq.next_element::<usize>()? {
            let left = self.budget.dependencies_left.get();
            if left == 0 {
                return Err(self.budget.exceeded(format!(
                    "lists more than {MAX_DEPENDENCIES} dependencies, the most accepted"
                )));
            }
            self.budget.dependencies_left.set(left - 1);
            self.into.push(index);
        }
        Ok(())
    }
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
    let budget = Budget {
        dependencies_left: Cell::new(MAX_DEPENDENCIES),
        exceeded: Cell::new(None),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let packages = ListSeed(&budget)
        .deserialize(&mut deserializer)
        .and_then(|packages| deserializer.end().map(|()| packages))
        .map_err(|e| match budget.exceeded.take() {
            Some(what) => format!("its .dep-v0 section {what}"),
            None => format!(
                "its .dep-v0 section is not a cargo auditable dependency list ({})",
                crate::util::sanitize::outside(&e.to_string(), crate::util::sanitize::EXCERPT)
            ),
        })?;
    let count = packages.len();
    let mut inventory = Inventory {
        source: Source::Auditable,
        root: None,
        components: Vec::with_capacity(count),
        edges: Vec::new(),
        tools: Vec::new(),
    };
    for (i, mut package) in packages.into_iter().enumerate() {
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
            &crate::util::sanitize::outside(&package.name, 200),
            &crate::util::sanitize::outside(&package.version, 200),
            origin,
        );
        component.scope = match package.kind.as_deref() {
            Some("build") => Scope::Build,
            _ => Scope::Runtime,
        };
        if package.root && inventory.root.is_none() {
            inventory.root = Some(i);
        }
        package.dependencies.sort_unstable();
        package.dependencies.dedup();
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
    fn dependencies_are_counted_as_they_are_read() {
        let mut json = br#"{"packages":[{"name":"a","version":"1"},{"name":"b","version":"1","dependencies":[0"#.to_vec();
        json.extend(b",0".repeat(MAX_DEPENDENCIES));
        json.extend_from_slice(b"]}]}");
        assert_eq!(
            parse(&json).unwrap_err(),
            format!(
                "its .dep-v0 section lists more than {MAX_DEPENDENCIES} dependencies, the most accepted"
            )
        );
        // Repeats within the limit are one edge.
        let json = br#"{"packages":[{"name":"a","version":"1"},{"name":"b","version":"1","dependencies":[0,0,0]}]}"#;
        assert_eq!(parse(json).unwrap().edges.len(), 1);
        let many = format!(
            r#"{{"packages":[{}]}}"#,
            vec![r#"{"name":"a","version":"1"}"#; MAX_PACKAGES + 1].join(",")
        );
        assert!(
            parse(many.as_bytes())
                .unwrap_err()
                .contains("more than 100000 packages")
        );
    }

    #[test]
    fn refuses_dangling_indices() {
        let json = br#"{"packages":[{"name":"a","version":"1","dependencies":[5]}]}"#;
        assert!(parse(json).unwrap_err().contains("package 5"));
        assert!(parse(b"[]").is_err());
    }
}
