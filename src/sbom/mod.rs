//! Software bills of materials and build provenance for the images we build.
//!
//! An [`Inventory`] says what one program is made of: for `cargo zeroimage`, the crates cargo
//! compiled into it (`cargo`); for any other program, what it carries itself (a `cargo auditable`
//! dependency list, `auditable`, or Go's build information, `gobuild`). The writers turn it into
//! an SPDX 2.3 (`spdx`) or CycloneDX 1.6 (`cyclonedx`) document about the image, and `provenance`
//! writes a SLSA v1 provenance statement. Every document is a pure function of its inputs: identifiers
//! come from the image digest, lists are sorted, and the only time is the image's `created`.

pub(crate) mod attach;
pub(crate) mod auditable;
mod cyclonedx;
mod elf_section;
pub(crate) mod gobuild;
mod license;
pub(crate) mod provenance;
mod purl;
mod spdx;
mod uri;

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::image::reference::Reference;
use crate::oci::Digest;
use crate::oci::platform::Platform;
use crate::util::timestamp::Timestamp;

pub use crate::image::referrers::DocumentKind;
pub(crate) use license::License;
pub use provenance::ProvenanceInputs;

/// `--sbom`: which SBOM documents each image gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SbomFormats {
    /// Attach an SPDX 2.3 document.
    pub spdx: bool,
    /// Attach a CycloneDX document.
    pub cyclonedx: bool,
}

impl SbomFormats {
    /// What an image gets unless told otherwise: an SPDX document.
    pub const DEFAULT: SbomFormats = SbomFormats {
        spdx: true,
        cyclonedx: false,
    };
    /// No SBOM (`--sbom none`).
    pub const NONE: SbomFormats = SbomFormats {
        spdx: false,
        cyclonedx: false,
    };

    /// True when no SBOM is asked for.
    pub fn is_none(&self) -> bool {
        !self.spdx && !self.cyclonedx
    }
}

impl Default for SbomFormats {
    fn default() -> Self {
        SbomFormats::DEFAULT
    }
}

impl FromStr for SbomFormats {
    type Err = Error;

    fn from_str(value: &str) -> Result<SbomFormats> {
        let (spdx, cyclonedx) = match value {
            "spdx" => (true, false),
            "cyclonedx" => (false, true),
            "both" => (true, true),
            "none" => (false, false),
            other => {
                return Err(Error::Invalid(format!(
                    "`{}` is not an SBOM format; use spdx, cyclonedx, both or none",
                    crate::util::sanitize::outside(other, 100)
                )));
            }
        };
        Ok(SbomFormats { spdx, cyclonedx })
    }
}

impl fmt::Display for SbomFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.spdx, self.cyclonedx) {
            (true, false) => "spdx",
            (false, true) => "cyclonedx",
            (true, true) => "both",
            (false, false) => "none",
        })
    }
}

/// Which ecosystem a component comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ecosystem {
    /// A Rust crate.
    Cargo,
    /// A Go module.
    Go,
}

/// Where a component's source came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// crates.io.
    CratesIo,
    /// Another cargo registry: its index URL.
    Registry(String),
    /// A git repository and the commit used.
    Git {
        /// The repository URL.
        url: String,
        /// The commit used, when known.
        commit: Option<String>,
    },
    /// A path on the building machine (a workspace member, a path dependency): never named, since
    /// the path means nothing elsewhere.
    Local,
    /// A Go module from its proxy, identified by its path and version.
    GoModule,
    /// Nothing is known.
    Unknown,
}

/// Whether a component ends up in the program or only helped build it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Compiled into the program.
    Runtime,
    /// Build scripts' dependencies and procedural macros: run at build time, not in the program.
    Build,
}

/// The state of a source checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vcs {
    /// The commit checked out, hex.
    pub commit: String,
    /// Uncommitted changes were present: the commit alone does not reproduce the source.
    pub dirty: bool,
}

/// One package the program is made of (or was built with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// Cargo crate or Go module.
    pub ecosystem: Ecosystem,
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: String,
    /// Where its source came from.
    pub origin: Origin,
    /// In the program, or build-time only.
    pub scope: Scope,
    /// The license as the package declares it: an SPDX expression, a legacy form (`MIT/Apache-2.0`)
    /// or any text. The documents record text that is no SPDX expression as text.
    pub license: Option<String>,
    /// sha256 (hex) of the package archive, e.g. the `.crate` file, from Cargo.lock.
    pub sha256: Option<String>,
    /// Go's `h1:` hash of the module, from its build information.
    pub go_sum: Option<String>,
    /// Authors as the package declares them.
    pub authors: Vec<String>,
    /// The package's description.
    pub description: Option<String>,
    /// The package's homepage URL.
    pub homepage: Option<String>,
    /// The package's source repository URL.
    pub repository: Option<String>,
    /// Features enabled in this build.
    pub features: Vec<String>,
    /// The checkout the root package was built from.
    pub vcs: Option<Vcs>,
    /// What replaced this module (Go's `=>` lines): `path version`, or a local directory.
    pub replaced_by: Option<String>,
}

impl Component {
    /// A component with only a name and version.
    pub fn new(ecosystem: Ecosystem, name: &str, version: &str, origin: Origin) -> Component {
        Component {
            ecosystem,
            name: name.to_owned(),
            version: version.to_owned(),
            origin,
            scope: Scope::Runtime,
            license: None,
            sha256: None,
            go_sum: None,
            authors: Vec::new(),
            description: None,
            homepage: None,
            repository: None,
            features: Vec::new(),
            vcs: None,
            replaced_by: None,
        }
    }

    /// The package URL, when the component can be found again by it. Local packages have none: a
    /// `pkg:cargo` URL without a repository names a crates.io crate, which a workspace member is not.
    pub fn purl(&self) -> Option<String> {
        purl::of(self)
    }

    /// Where its source can be downloaded, when known: a valid URL, its parts percent-encoded.
    pub fn download_location(&self) -> Option<String> {
        match (&self.ecosystem, &self.origin) {
            (Ecosystem::Cargo, Origin::CratesIo) => Some(format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                uri::segment(&self.name),
                uri::segment(&self.version)
            )),
            (_, Origin::Git { url, commit }) => {
                let url = uri::any(url)?;
                Some(match commit {
                    Some(commit) => format!("git+{url}@{}", uri::segment(commit)),
                    None => format!("git+{url}"),
                })
            }
            (Ecosystem::Go, Origin::GoModule) if self.replaced_by.is_none() => {
                let path: Vec<String> = purl::go_escape(&self.name)
                    .split('/')
                    .map(uri::segment)
                    .collect();
                Some(format!(
                    "https://proxy.golang.org/{}/@v/{}.zip",
                    path.join("/"),
                    uri::segment(&self.version)
                ))
            }
            _ => None,
        }
    }

    /// The declared license as the documents record it.
    pub(crate) fn declared_license(&self) -> Option<License> {
        self.license.as_deref().and_then(License::of)
    }

    /// The sha256 the documents can carry: 64 lowercase hex digits, as Cargo.lock writes it.
    pub(crate) fn sha256_hex(&self) -> Option<&str> {
        self.sha256.as_deref().filter(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }
}

/// A tool that took part in the build (the compiler).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tool {
    /// The tool's name, e.g. `rustc`.
    pub name: String,
    /// The tool's version.
    pub version: String,
    /// Further facts (`commit-hash`, `host`, `LLVM version` ...), sorted.
    pub details: BTreeMap<String, String>,
}

/// How a program's contents were learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// From cargo: the resolved graph and the units of the build.
    Cargo,
    /// From the `.dep-v0` section `cargo auditable` embeds.
    Auditable,
    /// From the build information embedded by the Go toolchain.
    GoBuildInfo,
    /// Nothing was found; the reason, for `-v`.
    ProgramOnly(String),
}

impl Source {
    /// How the contents were learned, in words for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Cargo => "cargo's resolved dependency graph".to_owned(),
            Source::Auditable => "the dependency list embedded by cargo auditable".to_owned(),
            Source::GoBuildInfo => "the Go build information in the program".to_owned(),
            Source::ProgramOnly(reason) => format!("the program file alone ({reason})"),
        }
    }
}

/// An edge of the dependency graph: `from` depends on `to` (indices into the inventory's components).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// Index of the dependent component.
    pub from: usize,
    /// Index of the dependency.
    pub to: usize,
    /// Build-time only: a build dependency or a procedural macro.
    pub build: bool,
}

/// What one program is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// How the contents were learned.
    pub source: Source,
    /// The package the program was built from (index into `components`).
    pub root: Option<usize>,
    /// Every component, sorted; the root among them.
    pub components: Vec<Component>,
    /// Dependency edges between components.
    pub edges: Vec<Edge>,
    /// Tools used in the build (the compiler).
    pub tools: Vec<Tool>,
}

impl Inventory {
    /// An inventory of the program file alone.
    pub fn program_only(reason: impl Into<String>) -> Inventory {
        Inventory {
            source: Source::ProgramOnly(reason.into()),
            root: None,
            components: Vec::new(),
            edges: Vec::new(),
            tools: Vec::new(),
        }
    }

    /// Sorts the components (by ecosystem, name, version, origin) and remaps the root and edges, so
    /// that the same contents give the same document however they were found. The components are
    /// moved, not copied: an inventory can hold `gobuild::MAX_MODULES` of them.
    pub fn normalize(&mut self) {
        self.components.shrink_to_fit();
        let mut order: Vec<usize> = (0..self.components.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.components[a], &self.components[b]);
            (a.ecosystem, &a.name, &a.version, &a.origin, a.scope).cmp(&(
                b.ecosystem,
                &b.name,
                &b.version,
                &b.origin,
                b.scope,
            ))
        });
        let mut new_index = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        // Put component `order[new]` at `new`, cycle by cycle, by swapping: no second list.
        for start in 0..order.len() {
            let mut at = start;
            while order[at] != usize::MAX {
                let from = order[at];
                order[at] = usize::MAX;
                if from == start {
                    break;
                }
                self.components.swap(at, from);
                at = from;
            }
        }
        self.root = self.root.map(|r| new_index[r]);
        for edge in &mut self.edges {
            edge.from = new_index[edge.from];
            edge.to = new_index[edge.to];
        }
        self.edges.sort();
        self.edges.dedup();
        for component in &mut self.components {
            component.features.sort();
            component.features.dedup();
        }
        self.tools.sort();
        self.tools.dedup();
    }

    /// A warning for each component whose declared license is no SPDX expression (the documents
    /// record it as text), in component order.
    pub fn license_warnings(&self) -> Vec<String> {
        self.components
            .iter()
            .filter_map(|c| match c.declared_license()? {
                License::Text(text) => Some(format!(
                    "{} {} declares the license `{text}`, which is not an SPDX expression; the SBOM \
                     records it as text (use an expression such as `MIT OR Apache-2.0`, or \
                     `LicenseRef-...` for a license of your own)",
                    crate::util::sanitize::outside(&c.name, 200),
                    crate::util::sanitize::outside(&c.version, 200)
                )),
                License::Expression { .. } => None,
            })
            .collect()
    }
}

/// The program file as it is in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramFile {
    /// Its path in the image, e.g. `/app`.
    pub path: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl ProgramFile {
    /// The program at `path_in_image`, with the sha256 and size its bytes had in the layer.
    pub fn new(path_in_image: &str, digest: &Digest, size: u64) -> ProgramFile {
        ProgramFile {
            path: path_in_image.to_owned(),
            sha256: digest.hex().to_owned(),
            size,
        }
    }
}

/// The image a document describes: one platform's manifest.
#[derive(Clone, Debug)]
pub struct ImageSubject<'a> {
    /// The image's name.
    pub name: &'a Reference,
    /// Digest of the platform's manifest.
    pub manifest_digest: &'a Digest,
    /// The platform.
    pub platform: &'a Platform,
    /// The base image, when there is one: its name and digest.
    pub base: Option<(&'a str, &'a Digest)>,
    /// The program file in the image.
    pub program: &'a ProgramFile,
    /// The image's creation time.
    pub created: Timestamp,
}

/// The SBOM of one image in `kind` (SPDX or CycloneDX): its bytes.
pub fn document(kind: DocumentKind, subject: &ImageSubject, inventory: &Inventory) -> Vec<u8> {
    match kind {
        DocumentKind::Spdx => spdx::write(subject, inventory),
        DocumentKind::CycloneDx => cyclonedx::write(subject, inventory),
        DocumentKind::Provenance
        | DocumentKind::SigstoreBundle
        | DocumentKind::CosignSignature
        | DocumentKind::CosignAttestation => {
            unreachable!("only SBOMs are written here")
        }
    }
}

/// A name-based UUID (RFC 9562 layout, version 5 bits) from the sha256 of `parts`: the same image
/// always gets the same document identifier, and different images different ones.
pub(crate) fn uuid_from(parts: &[&str]) -> String {
    let digest = Digest::of(parts.join("\n").as_bytes());
    let hex = digest.hex();
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `Name <email>` as cargo writes authors: the name and the email, when it looks like one.
pub(crate) fn split_author(author: &str) -> (String, Option<String>) {
    let clean = crate::util::sanitize::outside(author, 200);
    match clean.split_once('<') {
        Some((name, rest)) => {
            let email = rest.trim_end_matches('>').trim();
            let looks_valid = email.contains('@')
                && !email.contains(char::is_whitespace)
                && !email.starts_with('@')
                && !email.ends_with('@');
            (
                name.trim().to_owned(),
                looks_valid.then(|| email.to_owned()),
            )
        }
        None => (clean.trim().to_owned(), None),
    }
}

/// Makes each of `bases` unique, in order, by suffixing `{separator}{n}` (n = 2, 3, ...) to a
/// repeat; `reserved` are taken already. Each base remembers the next suffix to try, so n repeats
/// cost O(n), not O(n^2).
pub(crate) fn unique_ids(
    bases: impl Iterator<Item = String>,
    separator: &str,
    reserved: &[&str],
) -> Vec<String> {
    let mut used: HashSet<String> = reserved.iter().map(|s| (*s).to_owned()).collect();
    let mut next: HashMap<String, usize> = HashMap::new();
    bases
        .map(|base| {
            if !used.contains(&base) {
                used.insert(base.clone());
                return base;
            }
            let n = next.entry(base.clone()).or_insert(2);
            loop {
                let id = format!("{base}{separator}{n}");
                *n += 1;
                if !used.contains(&id) {
                    used.insert(id.clone());
                    return id;
                }
            }
        })
        .collect()
}

/// A JSON array written from an iterator of values while the document is serialized, so that a
/// document with `gobuild::MAX_MODULES` components is never held as a tree of values beside its
/// bytes. Each value is rendered by serde_json's own `Display` (compiled once, optimized, rather than
/// for our serializer in every build profile) and written as it is.
pub(crate) struct Streamed<I>(Cell<Option<I>>);

impl<I> Streamed<I> {
    pub(crate) fn new(items: I) -> Streamed<I> {
        Streamed(Cell::new(Some(items)))
    }
}

impl<I> serde::Serialize for Streamed<I>
where
    I: Iterator<Item = serde_json::Value>,
{
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        let items = self
            .0
            .take()
            .ok_or_else(|| S::Error::custom("a streamed list is written once"))?;
        let mut seq = serializer.serialize_seq(None)?;
        for value in items {
            let raw = serde_json::value::RawValue::from_string(value.to_string())
                .map_err(S::Error::custom)?;
            seq.serialize_element(&raw)?;
        }
        seq.end()
    }
}

/// A document's bytes. The buffer grows by a quarter at a time instead of doubling, and keeps no
/// spare capacity: a document of `gobuild::MAX_MODULES` components has tens of MiB.
pub(crate) fn to_bytes(document: &impl serde::Serialize) -> Vec<u8> {
    struct Growing(Vec<u8>);
    impl std::io::Write for Growing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let spare = self.0.capacity() - self.0.len();
            if spare < bytes.len() {
                let step = (self.0.capacity() / 4).max(64 << 10);
                self.0.reserve_exact(bytes.len().max(step));
            }
            self.0.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Growing(Vec::new());
    // Our documents hold strings, numbers, booleans, lists and string-keyed maps, and each streamed
    // list is written once: serializing them cannot fail.
    serde_json::to_writer(&mut out, document)
        .unwrap_or_else(|e| unreachable!("serializing an SBOM: {e}"));
    out.0.shrink_to_fit();
    out.0
}

/// The zeroimage version that wrote a document.
pub(crate) const TOOL_NAME: &str = "cargo-zeroimage";
pub(crate) const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print_back() {
        for text in ["spdx", "cyclonedx", "both", "none"] {
            assert_eq!(text.parse::<SbomFormats>().unwrap().to_string(), text);
        }
        assert!("xml".parse::<SbomFormats>().is_err());
        assert_eq!(SbomFormats::default(), SbomFormats::DEFAULT);
    }

    #[test]
    fn authors_split_into_name_and_email() {
        assert_eq!(
            split_author("Ada <ada@example.com>"),
            ("Ada".to_owned(), Some("ada@example.com".to_owned()))
        );
        assert_eq!(split_author("The Team"), ("The Team".to_owned(), None));
        assert_eq!(split_author("X <not an email>"), ("X".to_owned(), None));
    }

    #[test]
    fn uuids_are_stable_and_versioned() {
        let a = uuid_from(&["sha256:aa", "spdx"]);
        assert_eq!(a, uuid_from(&["sha256:aa", "spdx"]));
        assert_ne!(a, uuid_from(&["sha256:ab", "spdx"]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn ids_are_made_unique_in_one_pass() {
        let ids = unique_ids(
            ["a", "a", "a-2", "a", "b", "image"]
                .map(str::to_owned)
                .into_iter(),
            "-",
            &["image"],
        );
        assert_eq!(ids, ["a", "a-2", "a-2-2", "a-3", "b", "image-2"]);
        // 100,000 repeats: each id is tried a bounded number of times.
        let ids = unique_ids(std::iter::repeat_n("x".to_owned(), 100_000), "#", &[]);
        assert_eq!(ids[99_999], "x#100000");
    }

    #[test]
    fn normalize_moves_components_into_their_order() {
        let mut inventory = Inventory::program_only("test");
        // A permutation of 1,000 names with cycles of every length.
        inventory.components = (0..1000)
            .map(|i| (i * 7919) % 1000)
            .map(|n| Component::new(Ecosystem::Go, &format!("m{n:04}"), "v1", Origin::GoModule))
            .collect();
        inventory.root = Some(0);
        inventory.edges = vec![Edge {
            from: 0,
            to: 1,
            build: false,
        }];
        inventory.normalize();
        let names: Vec<String> = inventory
            .components
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let sorted: Vec<String> = (0..1000).map(|n| format!("m{n:04}")).collect();
        assert_eq!(names, sorted);
        assert_eq!(inventory.root, Some(0));
        assert_eq!(inventory.edges[0].to, 919);
    }

    #[test]
    fn normalize_sorts_and_remaps_edges() {
        let mut inventory = Inventory::program_only("test");
        inventory.components = vec![
            Component::new(Ecosystem::Cargo, "zeta", "1.0.0", Origin::CratesIo),
            Component::new(Ecosystem::Cargo, "alpha", "1.0.0", Origin::CratesIo),
        ];
        inventory.root = Some(0);
        inventory.edges = vec![Edge {
            from: 0,
            to: 1,
            build: false,
        }];
        inventory.normalize();
        assert_eq!(inventory.components[0].name, "alpha");
        assert_eq!(inventory.root, Some(1));
        assert_eq!(
            inventory.edges,
            [Edge {
                from: 1,
                to: 0,
                build: false
            }]
        );
    }
}
