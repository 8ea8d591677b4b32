//! The conformance check every archive the tests write goes through: an OCI image layout in a tar
//! (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`, Docker's `manifest.json`, `referrers.json`) whose
//! every blob matches its name and every descriptor naming it (digest and size), whose manifests'
//! configs and layers are all there, whose layers are tars hashing to the config's `rootfs.diff_ids`
//! once decompressed, whose indexes' platforms are their images' own, whose `manifest.json` names
//! an image of the layout, and whose attached documents are about an image in it. It is written
//! from the specifications, apart from the library, so that a bug there cannot hide here.
//!
//! [`archive`] panics with every problem found, one per line; [`check_archive`] returns them, for the
//! validator's own tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sha2::Digest as _;

/// Entries up to this size are kept in memory as possible JSON documents; larger ones are hashed only.
const MAX_DOCUMENT: u64 = 4 << 20;
/// Problems reported at most: past that, the archive is broken enough.
const MAX_PROBLEMS: usize = 50;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What a check went through, so a test can tell it did check something.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Blobs hashed.
    pub blobs: usize,
    /// Image manifests (with an image config) followed.
    pub images: usize,
    /// Layers decompressed and hashed against their diff id.
    pub layers: usize,
    /// Artifact manifests listed in `referrers.json`.
    pub referrers: usize,
    /// Entries of `manifest.json`.
    pub docker_entries: usize,
}

/// Checks the archive at `path`, failing the test with every problem found.
pub fn archive(path: &Path) -> Checked {
    check_archive(path).unwrap_or_else(|problems| {
        panic!(
            "{} is not a sound image archive:\n  {}",
            path.display(),
            problems.join("\n  ")
        )
    })
}

/// Checks an archive held in memory (e.g. written to standard output), failing the test with every
/// problem found.
pub fn archive_bytes(bytes: &[u8]) -> Checked {
    check_bytes(bytes).unwrap_or_else(|problems| {
        panic!(
            "the archive ({} bytes) is not a sound image archive:\n  {}",
            bytes.len(),
            problems.join("\n  ")
        )
    })
}

/// Checks the archive at `path`: what was checked, or every problem found.
pub fn check_archive(path: &Path) -> Result<Checked, Vec<String>> {
    let open = || -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(std::io::BufReader::new(std::fs::File::open(
            path,
        )?)))
    };
    Validator::new(&open).run()
}

/// Checks an archive held in memory: what was checked, or every problem found.
pub fn check_bytes(bytes: &[u8]) -> Result<Checked, Vec<String>> {
    let open = || -> std::io::Result<Box<dyn Read + '_>> { Ok(Box::new(bytes)) };
    Validator::new(&open).run()
}

/// One regular entry of the tar.
struct Entry {
    size: u64,
    /// `sha256:<hex>` of the content (and `sha512:<hex>` for a blob named so).
    digests: Vec<String>,
    /// The content, when small enough to be a document.
    bytes: Option<Vec<u8>>,
}

/// How a layer blob is to be decompressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn of_layer(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }
}

/// A layer whose diff id is to be computed: its blob, how it is compressed, the diff id its config
/// lists, and where it was found (for the message).
struct PendingLayer {
    blob: String,
    compression: Compression,
    diff_id: String,
    place: String,
}

struct Validator<'a> {
    open: &'a dyn Fn() -> std::io::Result<Box<dyn Read + 'a>>,
    entries: BTreeMap<String, Entry>,
    problems: Vec<String>,
    checked: Checked,
    /// Blob paths some descriptor names.
    referenced: BTreeSet<String>,
    /// Documents already followed (blob path), so a shared one is checked once.
    followed: BTreeSet<String>,
    /// Image manifests of the layout (from index.json): digest -> (config digest, layer digests).
    images: BTreeMap<String, (String, Vec<String>)>,
    /// Every manifest or index reached from index.json: digest -> (media type, size).
    reachable: BTreeMap<String, (String, u64)>,
    layers: Vec<PendingLayer>,
}

impl<'a> Validator<'a> {
    fn new(open: &'a dyn Fn() -> std::io::Result<Box<dyn Read + 'a>>) -> Validator<'a> {
        Validator {
            open,
            entries: BTreeMap::new(),
            problems: Vec::new(),
            checked: Checked::default(),
            referenced: BTreeSet::new(),
            followed: BTreeSet::new(),
            images: BTreeMap::new(),
            reachable: BTreeMap::new(),
            layers: Vec::new(),
        }
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        }
    }

    fn run(mut self) -> Result<Checked, Vec<String>> {
        if let Err(e) = self.read_entries() {
            self.problem(format!("not a readable tar: {e}"));
            return Err(self.problems);
        }
        self.check_blob_names();
        self.check_oci_layout();
        self.check_index_json();
        self.check_docker_manifest();
        self.check_referrers();
        self.check_unreferenced();
        self.check_layers();
        if self.problems.is_empty() {
            Ok(self.checked)
        } else {
            Err(self.problems)
        }
    }

    /// First pass: every entry's name, size and digest; documents kept.
    fn read_entries(&mut self) -> std::io::Result<()> {
        let mut tar = tar::Archive::new((self.open)()?);
        for entry in tar.entries()? {
            let mut entry = entry?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let name = raw.trim_start_matches("./").to_owned();
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                self.problem(format!("entry {name} is a {kind:?}, not a regular file"));
                continue;
            }
            let size = entry.header().size()?;
            let sha512 = name.starts_with("blobs/sha512/");
            let mut sha256_hasher = sha2::Sha256::new();
            let mut sha512_hasher = sha2::Sha512::new();
            let mut kept = (size <= MAX_DOCUMENT).then(Vec::new);
            let mut buffer = vec![0u8; 1 << 16];
            let mut read = 0u64;
            loop {
                let n = entry.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                sha256_hasher.update(&buffer[..n]);
                if sha512 {
                    sha512_hasher.update(&buffer[..n]);
                }
                if let Some(kept) = &mut kept {
                    kept.extend_from_slice(&buffer[..n]);
                }
            }
            if read != size {
                self.problem(format!(
                    "entry {name} holds {read} bytes, its header says {size}"
                ));
            }
            let mut digests = vec![format!("sha256:{}", hex(&sha256_hasher.finalize()))];
            if sha512 {
                digests.push(format!("sha512:{}", hex(&sha512_hasher.finalize())));
            }
            let entry = Entry {
                size,
                digests,
                bytes: kept,
            };
            if self.entries.insert(name.clone(), entry).is_some() {
                self.problem(format!("entry {name} appears twice in the tar"));
            }
        }
        Ok(())
    }

    /// Every `blobs/<alg>/<hex>` entry hashes to its name.
    fn check_blob_names(&mut self) {
        let mut problems = Vec::new();
        for (name, entry) in &self.entries {
            if !name.starts_with("blobs/") {
                continue;
            }
            let Some(digest) = digest_of_blob_path(name) else {
                problems.push(format!(
                    "entry {name} is under blobs/ but is not named blobs/<algorithm>/<hex>"
                ));
                continue;
            };
            if !entry.digests.contains(&digest) {
                problems.push(format!(
                    "blob {name} does not match its name: its content is {}",
                    entry.digests.last().map_or("?", String::as_str)
                ));
            }
        }
        self.checked.blobs = self
            .entries
            .keys()
            .filter(|name| name.starts_with("blobs/"))
            .count();
        for p in problems {
            self.problem(p);
        }
    }

    fn check_oci_layout(&mut self) {
        match self.document("oci-layout") {
            Ok(layout) if layout["imageLayoutVersion"] == "1.0.0" => {}
            Ok(layout) => self.problem(format!(
                "oci-layout has imageLayoutVersion {}, not \"1.0.0\"",
                layout["imageLayoutVersion"]
            )),
            Err(e) => self.problem(e),
        }
    }

    /// A JSON document that is an entry of the tar (not a blob).
    fn document(&self, name: &str) -> Result<Value, String> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| format!("{name} is missing"))?;
        let bytes = entry
            .bytes
            .as_ref()
            .ok_or_else(|| format!("{name} is {} bytes, too large for a document", entry.size))?;
        serde_json::from_slice(bytes).map_err(|e| format!("{name} is not JSON: {e}"))
    }

    fn check_index_json(&mut self) {
        let index = match self.document("index.json") {
            Ok(index) => index,
            Err(e) => return self.problem(e),
        };
        self.check_index_document(&index, "index.json", None);
    }

    /// An image index (index.json, a nested index or a Docker manifest list): its manifests.
    fn check_index_document(&mut self, index: &Value, place: &str, media_type: Option<&str>) {
        if index["schemaVersion"] != 2 {
            self.problem(format!(
                "{place} has schemaVersion {}, not 2",
                index["schemaVersion"]
            ));
        }
        if let (Some(declared), Some(expected)) = (index["mediaType"].as_str(), media_type) {
            if declared != expected {
                self.problem(format!(
                    "{place} says its mediaType is {declared}, its descriptor says {expected}"
                ));
            }
        }
        let Some(manifests) = index["manifests"].as_array() else {
            return self.problem(format!("{place} has no manifests array"));
        };
        if manifests.is_empty() && place == "index.json" {
            self.problem("index.json lists no image".to_owned());
        }
        for (i, descriptor) in manifests.iter().enumerate() {
            let place = format!("{place} manifests[{i}]");
            self.follow(descriptor, &place);
        }
    }

    /// Checks a descriptor against the blob it names; returns the blob path when it is there and
    /// matches.
    fn blob(&mut self, descriptor: &Value, place: &str) -> Option<String> {
        let Some(digest) = descriptor["digest"].as_str() else {
            self.problem(format!("{place}: the descriptor has no digest"));
            return None;
        };
        if descriptor["mediaType"].as_str().is_none() {
            self.problem(format!(
                "{place}: the descriptor of {digest} has no mediaType"
            ));
        }
        let Some(path) = blob_path(digest) else {
            self.problem(format!(
                "{place}: {digest} is not a sha256 or sha512 digest"
            ));
            return None;
        };
        self.referenced.insert(path.clone());
        let Some(entry) = self.entries.get(&path) else {
            self.problem(format!("{place}: blob {path} is missing from the archive"));
            return None;
        };
        let actual_size = entry.size;
        let matches = entry.digests.iter().any(|d| d == digest);
        match descriptor["size"].as_u64() {
            Some(size) if size == actual_size => {}
            Some(size) => self.problem(format!(
                "{place}: the descriptor of {digest} says size {size}, the blob is {actual_size} bytes"
            )),
            None => self.problem(format!("{place}: the descriptor of {digest} has no size")),
        }
        if !matches {
            // Already reported by the name check; say where it is used too.
            self.problem(format!("{place}: blob {path} does not hash to {digest}"));
            return None;
        }
        Some(path)
    }

    /// The JSON document a descriptor names.
    fn blob_document(&mut self, path: &str, place: &str) -> Option<Value> {
        let entry = &self.entries[path];
        let Some(bytes) = &entry.bytes else {
            let size = entry.size;
            self.problem(format!(
                "{place}: {path} is {size} bytes, too large for a document"
            ));
            return None;
        };
        match serde_json::from_slice(bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                self.problem(format!("{place}: {path} is not JSON: {e}"));
                None
            }
        }
    }

    /// A descriptor of an index or a manifest (from an index, or a subject).
    fn follow(&mut self, descriptor: &Value, place: &str) {
        let Some(path) = self.blob(descriptor, place) else {
            return;
        };
        let media_type = descriptor["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let digest = descriptor["digest"].as_str().unwrap_or_default().to_owned();
        self.reachable.insert(
            digest.clone(),
            (media_type.clone(), self.entries[&path].size),
        );
        let Some(document) = self.blob_document(&path, place) else {
            return;
        };
        let place = format!("{place} ({digest})");
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                if self.followed.insert(path) {
                    self.check_index_document(&document, &place, Some(&media_type));
                }
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                if self.followed.insert(path) {
                    self.check_manifest(&document, &digest, &place, &media_type);
                }
                if let Some(config) = self.images.get(&digest).map(|(c, _)| c.clone()) {
                    self.check_platform(descriptor, &config, &place);
                }
            }
            other => self.problem(format!(
                "{place}: an index lists a {other}, neither a manifest nor an index"
            )),
        }
    }

    fn check_manifest(&mut self, manifest: &Value, digest: &str, place: &str, media_type: &str) {
        if manifest["schemaVersion"] != 2 {
            self.problem(format!(
                "{place}: schemaVersion {}, not 2",
                manifest["schemaVersion"]
            ));
        }
        if let Some(declared) = manifest["mediaType"].as_str() {
            if declared != media_type {
                self.problem(format!(
                    "{place}: the manifest says its mediaType is {declared}, its descriptor says {media_type}"
                ));
            }
        } else if media_type == DOCKER_MANIFEST {
            self.problem(format!("{place}: a Docker manifest without mediaType"));
        }
        let config_place = format!("{place} config");
        let config_path = self.blob(&manifest["config"], &config_place);
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        if !manifest["layers"].is_array() {
            self.problem(format!("{place}: no layers array"));
        }
        let mut layer_paths = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            layer_paths.push(self.blob(layer, &format!("{place} layers[{i}]")));
        }
        if let Some(subject) = manifest.get("subject") {
            self.check_subject(subject, place);
        }
        let config_type = manifest["config"]["mediaType"].as_str().unwrap_or_default();
        if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
            // An artifact (an attached document): no image config, no diff ids.
            return;
        }
        let Some(config_path) = config_path else {
            return;
        };
        let Some(config) = self.blob_document(&config_path, &config_place) else {
            return;
        };
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.images.insert(
            digest.to_owned(),
            (
                config_digest,
                layers
                    .iter()
                    .map(|l| l["digest"].as_str().unwrap_or_default().to_owned())
                    .collect(),
            ),
        );
        self.checked.images += 1;
        if config["rootfs"]["type"] != "layers" {
            self.problem(format!(
                "{config_place}: rootfs.type is {}, not \"layers\"",
                config["rootfs"]["type"]
            ));
        }
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|d| d.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != layers.len() {
            self.problem(format!(
                "{config_place}: rootfs.diff_ids lists {} layers, the manifest {}",
                diff_ids.len(),
                layers.len()
            ));
            return;
        }
        for (i, ((layer, path), diff_id)) in
            layers.iter().zip(layer_paths).zip(diff_ids).enumerate()
        {
            let layer_type = layer["mediaType"].as_str().unwrap_or_default();
            let Some(compression) = Compression::of_layer(layer_type) else {
                self.problem(format!(
                    "{place} layers[{i}]: {layer_type:?} is not a layer media type"
                ));
                continue;
            };
            if let Some(blob) = path {
                self.layers.push(PendingLayer {
                    blob,
                    compression,
                    diff_id,
                    place: format!("{place} layers[{i}]"),
                });
            }
        }
    }

    /// The platform an index gives an image is the image config's own.
    fn check_platform(&mut self, descriptor: &Value, config_digest: &str, place: &str) {
        let Some(platform) = descriptor.get("platform") else {
            return;
        };
        let Some(path) = blob_path(config_digest) else {
            return;
        };
        if !self.entries.contains_key(&path) {
            return;
        }
        let Some(config) = self.blob_document(&path, place) else {
            return;
        };
        for field in ["os", "architecture", "variant", "os.version"] {
            let given = &platform[field];
            let own = &config[field];
            if given != own && !(given.is_null() && field != "os" && field != "architecture") {
                self.problem(format!(
                    "{place}: the index gives platform {field} {given}, the image config says {own}"
                ));
            }
        }
    }

    /// A `subject` (of an attached document) names a manifest of the archive.
    fn check_subject(&mut self, subject: &Value, place: &str) {
        // Whether it is an image of index.json is checked in `check_referrers`, once every image is
        // known.
        self.blob(subject, &format!("{place} subject"));
    }

    /// `manifest.json`: each entry's config and layers are an image of the layout's, in order.
    fn check_docker_manifest(&mut self) {
        if !self.entries.contains_key("manifest.json") {
            return;
        }
        let list = match self.document("manifest.json") {
            Ok(list) => list,
            Err(e) => return self.problem(e),
        };
        let Some(items) = list.as_array() else {
            return self.problem("manifest.json is not an array".to_owned());
        };
        if items.is_empty() {
            self.problem("manifest.json lists no image".to_owned());
        }
        self.checked.docker_entries = items.len();
        for (i, item) in items.iter().enumerate() {
            let place = format!("manifest.json[{i}]");
            let Some(config) = item["Config"].as_str() else {
                self.problem(format!("{place} has no Config"));
                continue;
            };
            let layers: Vec<&str> = item["Layers"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for path in std::iter::once(config).chain(layers.iter().copied()) {
                if !self.entries.contains_key(path) {
                    self.problem(format!("{place} names {path}, which is not in the archive"));
                }
                self.referenced.insert(path.to_owned());
            }
            let wanted_config = digest_of_blob_path(config);
            let wanted_layers: Vec<Option<String>> =
                layers.iter().map(|p| digest_of_blob_path(p)).collect();
            let found = self.images.values().any(|(c, l)| {
                Some(c) == wanted_config.as_ref()
                    && l.len() == wanted_layers.len()
                    && l.iter()
                        .zip(&wanted_layers)
                        .all(|(a, b)| Some(a) == b.as_ref())
            });
            if !found {
                self.problem(format!(
                    "{place} (Config {config}, {} layers) is no image of index.json",
                    layers.len()
                ));
            }
        }
    }

    /// `referrers.json`: an index of artifact manifests, each about an image of the archive.
    fn check_referrers(&mut self) {
        if !self.entries.contains_key("referrers.json") {
            return;
        }
        let index = match self.document("referrers.json") {
            Ok(index) => index,
            Err(e) => return self.problem(e),
        };
        if index["schemaVersion"] != 2 {
            self.problem(format!(
                "referrers.json has schemaVersion {}, not 2",
                index["schemaVersion"]
            ));
        }
        let Some(manifests) = index["manifests"].as_array() else {
            return self.problem("referrers.json has no manifests array".to_owned());
        };
        for (i, descriptor) in manifests.iter().enumerate() {
            let place = format!("referrers.json manifests[{i}]");
            let Some(path) = self.blob(descriptor, &place) else {
                continue;
            };
            let Some(manifest) = self.blob_document(&path, &place) else {
                continue;
            };
            let digest = descriptor["digest"].as_str().unwrap_or_default().to_owned();
            let media_type = descriptor["mediaType"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if media_type != OCI_MANIFEST {
                self.problem(format!(
                    "{place}: an attachment must be an OCI manifest, not {media_type}"
                ));
                continue;
            }
            self.checked.referrers += 1;
            let place = format!("{place} ({digest})");
            if descriptor["artifactType"] != manifest["artifactType"] {
                self.problem(format!(
                    "{place}: artifactType {} in referrers.json, {} in the manifest",
                    descriptor["artifactType"], manifest["artifactType"]
                ));
            }
            if self.followed.insert(path) {
                self.check_manifest(&manifest, &digest, &place, &media_type);
            }
            let Some(subject) = manifest["subject"]["digest"].as_str() else {
                self.problem(format!("{place}: an attachment without a subject"));
                continue;
            };
            match self.reachable.get(subject) {
                None => self.problem(format!(
                    "{place}: its subject {subject} is not an image of index.json"
                )),
                Some((media_type, size)) => {
                    if manifest["subject"]["mediaType"].as_str() != Some(media_type.as_str())
                        || manifest["subject"]["size"].as_u64() != Some(*size)
                    {
                        self.problem(format!(
                            "{place}: its subject says {} of {} bytes, the archive has {media_type} of {size}",
                            manifest["subject"]["mediaType"], manifest["subject"]["size"]
                        ));
                    }
                }
            }
        }
    }

    /// Every blob is named by some descriptor: nothing stored for nothing.
    fn check_unreferenced(&mut self) {
        let orphans: Vec<String> = self
            .entries
            .keys()
            .filter(|name| name.starts_with("blobs/") && !self.referenced.contains(*name))
            .cloned()
            .collect();
        for orphan in orphans {
            self.problem(format!("blob {orphan} is named by no descriptor"));
        }
    }

    /// Second pass: each layer decompressed as its media type says, read as a tar, and hashed.
    fn check_layers(&mut self) {
        let mut wanted: BTreeMap<String, Vec<PendingLayer>> = BTreeMap::new();
        for layer in std::mem::take(&mut self.layers) {
            wanted.entry(layer.blob.clone()).or_default().push(layer);
        }
        if wanted.is_empty() {
            return;
        }
        let mut done = BTreeSet::new();
        // Small layers are in memory already; the others are read again from the tar.
        for (blob, layers) in &wanted {
            let Some(bytes) = &self.entries[blob].bytes else {
                continue;
            };
            let results: Vec<_> = layers
                .iter()
                .map(|layer| diff_id(&bytes[..], layer.compression))
                .collect();
            for (layer, result) in layers.iter().zip(results) {
                self.compare_diff_id(layer, result);
            }
            done.insert(blob.clone());
        }
        if done.len() == wanted.len() {
            return;
        }
        let result = (|| -> std::io::Result<()> {
            let mut tar = tar::Archive::new((self.open)()?);
            for entry in tar.entries()? {
                let entry = entry?;
                let name = entry
                    .path()?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_owned();
                let Some(layers) = wanted.get(&name) else {
                    continue;
                };
                if !done.insert(name.clone()) {
                    continue;
                }
                match layers.as_slice() {
                    [layer] => {
                        let result = diff_id(entry, layer.compression);
                        self.compare_diff_id(layer, result);
                    }
                    _ => {
                        // Listed by several images: read it once.
                        let mut bytes = Vec::new();
                        let mut entry = entry;
                        entry.read_to_end(&mut bytes)?;
                        for layer in layers {
                            let result = diff_id(&bytes[..], layer.compression);
                            self.compare_diff_id(layer, result);
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.problem(format!("reading the layers again: {e}"));
        }
    }

    fn compare_diff_id(&mut self, layer: &PendingLayer, result: Result<String, String>) {
        self.checked.layers += 1;
        match result {
            Ok(actual) if actual == layer.diff_id => {}
            Ok(actual) => self.problem(format!(
                "{}: {} decompressed ({:?}) hashes to {actual}, the config's diff_id is {}",
                layer.place, layer.blob, layer.compression, layer.diff_id
            )),
            Err(e) => self.problem(format!(
                "{}: {} as {:?}: {e}",
                layer.place, layer.blob, layer.compression
            )),
        }
    }
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The diff id of a layer blob: its tar hashed whole. The tar is walked, so it must be one with every
/// entry complete; a tar that ends right after its last entry (no padding, no end-of-archive blocks,
/// as umoci 0.4's `insert` writes them and consumers accept) is let through.
fn diff_id(blob: impl Read, compression: Compression) -> Result<String, String> {
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(blob).map_err(|e| format!("not zstd: {e}"))?)
        }
    };
    let mut hashing = Hashing {
        inner: decoded,
        hasher: sha2::Sha256::new(),
    };
    let mut header_error = None;
    {
        let mut tar = tar::Archive::new(&mut hashing);
        let entries = tar.entries().map_err(|e| format!("not a tar: {e}"))?;
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    header_error = Some(e);
                    break;
                }
            };
            let name = entry.path().map(|p| p.display().to_string());
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| {
                format!(
                    "the tar entry {} is cut short: {e}",
                    name.unwrap_or_default()
                )
            })?;
        }
    }
    // What follows the end-of-archive blocks belongs to the diff id too.
    let rest = std::io::copy(&mut hashing, &mut std::io::sink())
        .map_err(|e| format!("reading past the tar's end: {e}"))?;
    if let Some(e) = header_error {
        // A header that cannot be read is only the missing end of a tar that stopped after its
        // last entry's data; anything after it is a damaged tar.
        if rest > 0 {
            return Err(format!("not a tar: {e}"));
        }
    }
    Ok(format!("sha256:{}", hex(&hashing.hasher.finalize())))
}

/// `blobs/<alg>/<hex>` for `<alg>:<hex>`, for sha256 and sha512 digests of the right form.
fn blob_path(digest: &str) -> Option<String> {
    let (algorithm, hex) = digest.split_once(':')?;
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return None,
    };
    (hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| format!("blobs/{algorithm}/{hex}"))
}

/// `<alg>:<hex>` for a well-formed `blobs/<alg>/<hex>`.
fn digest_of_blob_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    let digest = format!("{algorithm}:{hex}");
    (blob_path(&digest).as_deref() == Some(path)).then_some(digest)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
