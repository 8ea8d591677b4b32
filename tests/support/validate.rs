//! The conformance check every archive the tests write goes through: an OCI image layout in a tar
//! (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`, Docker's `manifest.json`, `referrers.json`) whose
//! every blob matches its name and every descriptor naming it (digest and size), whose manifests'
//! configs and layers are all there, whose layers are tars hashing to the config's `rootfs.diff_ids`
//! once decompressed, whose indexes' platforms are their images' own, whose `manifest.json` names
//! an image of the layout, and whose attached documents are about an image in it. Each image's
//! layers are then applied in order, as a runtime unpacks them (see [`Rootfs`]): every hard link must
//! name a file an earlier entry or a lower layer put there, no path may climb above the root or go
//! through a file, and no entry may be placed through a link that leads nowhere or loops (docker and
//! podman unpack in a chroot, where such a link fails). Symbolic links themselves may dangle, as in
//! any image (`--include` keeps a link pointing outside its tree as written). It is written from the
//! specifications, apart from the library (tar, flate2, zstd, sha2 and serde_json only), so that a
//! bug there cannot hide here.
//!
//! [`archive`] panics with every problem found, one per line; [`check_archive`] returns them, for the
//! validator's own tests. [`archives_checked`] counts the archives that passed, so that a test can
//! tell the harness did check what a run wrote; with `ZI_VALIDATE_LOG=FILE` set, each check (and each
//! successful run that wrote no archive file) is also appended to FILE, one line each.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sha2::Digest as _;

/// Entries up to this size are kept in memory as possible JSON documents; larger ones are hashed only.
const MAX_DOCUMENT: u64 = 4 << 20;
/// Problems reported at most: past that, the archive is broken enough.
const MAX_PROBLEMS: usize = 50;
/// Paths one image's filesystem may hold here: test images hold a few thousand; a larger one is
/// reported rather than checked slowly.
const MAX_ROOTFS_PATHS: usize = 1_000_000;
/// Symbolic links followed in one lookup: Linux's limit.
const MAX_LINK_HOPS: usize = 40;
/// The environment variable naming a file each check is appended to, for counting what the tests
/// checked.
pub const LOG_VAR: &str = "ZI_VALIDATE_LOG";

/// Archives that passed [`archive`] or [`archive_bytes`] in this process.
static CHECKED: AtomicUsize = AtomicUsize::new(0);

/// How many archives passed the check in this test process so far.
pub fn archives_checked() -> usize {
    CHECKED.load(Ordering::SeqCst)
}

/// Appends `line` to the file [`LOG_VAR`] names, when it is set, prefixed with the running test.
pub fn log(line: &str) {
    let Some(file) = std::env::var_os(LOG_VAR) else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut f| f.write_all(format!("{test}\t{line}\n").as_bytes()));
    if let Err(e) = written {
        panic!("{LOG_VAR}={}: {e}", Path::new(&file).display());
    }
}

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
    /// Images whose layers were applied in order, links and all.
    pub filesystems: usize,
    /// Hard links found naming a file of their image.
    pub hard_links: usize,
    /// Symbolic links in the layers.
    pub symlinks: usize,
}

impl Checked {
    fn done(self, what: &str) -> Checked {
        CHECKED.fetch_add(1, Ordering::SeqCst);
        log(&format!(
            "{what}\t{} images, {} layers, {} blobs, {} referrers, {} hard links, {} symlinks",
            self.images, self.layers, self.blobs, self.referrers, self.hard_links, self.symlinks
        ));
        self
    }
}

/// Checks the archive at `path`, failing the test with every problem found.
pub fn archive(path: &Path) -> Checked {
    check_archive(path)
        .unwrap_or_else(|problems| {
            panic!(
                "{} is not a sound image archive:\n  {}",
                path.display(),
                problems.join("\n  ")
            )
        })
        .done(&path.display().to_string())
}

/// Checks an archive held in memory (e.g. written to standard output), failing the test with every
/// problem found.
pub fn archive_bytes(bytes: &[u8]) -> Checked {
    check_bytes(bytes)
        .unwrap_or_else(|problems| {
            panic!(
                "the archive ({} bytes) is not a sound image archive:\n  {}",
                bytes.len(),
                problems.join("\n  ")
            )
        })
        .done("standard output")
}

/// Checks the OCI layout directory at `path` (`--oci-layout`) as an archive of it would be checked,
/// except that blobs nothing names are allowed (a layout keeps those of the images an entry of the
/// same name replaced); a temporary file left in it is a problem. Fails the test with every problem
/// found.
pub fn layout_dir(path: &Path) -> Checked {
    check_layout_dir(path)
        .unwrap_or_else(|problems| {
            panic!(
                "{} is not a sound OCI layout directory:\n  {}",
                path.display(),
                problems.join("\n  ")
            )
        })
        .done(&path.display().to_string())
}

/// Checks the layout directory at `path`: what was checked, or every problem found. Its files are
/// put in a tar first (links followed), so that the one reader of the check reads both forms.
pub fn check_layout_dir(path: &Path) -> Result<Checked, Vec<String>> {
    let mut leftovers = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                leftovers.push(format!("{} is left in the layout", entry.path().display()));
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    if !leftovers.is_empty() {
        return Err(leftovers);
    }
    let tar = tempfile::NamedTempFile::new().expect("temporary tar");
    {
        let mut builder = tar::Builder::new(std::fs::File::create(tar.path()).expect("tar file"));
        builder.follow_symlinks(true);
        builder
            .append_dir_all(".", path)
            .and_then(|()| builder.finish())
            .map_err(|e| vec![format!("cannot read the layout directory: {e}")])?;
    }
    let open = || -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(std::io::BufReader::new(std::fs::File::open(
            tar.path(),
        )?)))
    };
    let mut validator = Validator::new(&open);
    validator.unreferenced_allowed = true;
    validator.run()
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
    /// The entries of each layer blob read (blob path), for [`Validator::check_filesystems`].
    layer_entries: BTreeMap<String, Vec<LayerEntry>>,
    /// A blob no descriptor names is fine (a layout directory).
    unreferenced_allowed: bool,
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
            layer_entries: BTreeMap::new(),
            unreferenced_allowed: false,
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
        if !self.unreferenced_allowed {
            self.check_unreferenced();
        }
        self.check_layers();
        self.check_filesystems();
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
        if let (Some(declared), Some(expected)) = (index["mediaType"].as_str(), media_type)
            && declared != expected
        {
            self.problem(format!(
                "{place} says its mediaType is {declared}, its descriptor says {expected}"
            ));
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
                .map(|layer| read_layer(&bytes[..], layer.compression))
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
                        let result = read_layer(entry, layer.compression);
                        self.compare_diff_id(layer, result);
                    }
                    _ => {
                        // Listed by several images: read it once.
                        let mut bytes = Vec::new();
                        let mut entry = entry;
                        entry.read_to_end(&mut bytes)?;
                        for layer in layers {
                            let result = read_layer(&bytes[..], layer.compression);
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

    fn compare_diff_id(&mut self, layer: &PendingLayer, result: Result<LayerRead, String>) {
        self.checked.layers += 1;
        match result {
            Ok(read) => {
                if read.diff_id != layer.diff_id {
                    self.problem(format!(
                        "{}: {} decompressed ({:?}) hashes to {}, the config's diff_id is {}",
                        layer.place, layer.blob, layer.compression, read.diff_id, layer.diff_id
                    ));
                }
                self.layer_entries.insert(layer.blob.clone(), read.entries);
            }
            Err(e) => self.problem(format!(
                "{}: {} as {:?}: {e}",
                layer.place, layer.blob, layer.compression
            )),
        }
    }

    /// Third pass: each image's layers applied in order, as a runtime unpacks them.
    fn check_filesystems(&mut self) {
        let images: Vec<(String, Vec<String>)> = self
            .images
            .iter()
            .map(|(digest, (_, layers))| (digest.clone(), layers.clone()))
            .collect();
        for (digest, layers) in images {
            let mut rootfs = Rootfs::default();
            let mut problems = Vec::new();
            let mut complete = true;
            for (i, layer) in layers.iter().enumerate() {
                // A layer that could not be read is reported already.
                let Some(entries) = blob_path(layer).and_then(|p| self.layer_entries.get(&p))
                else {
                    complete = false;
                    break;
                };
                let place = format!("image {digest} layers[{i}]");
                for entry in entries {
                    if let Err(why) = rootfs.apply(entry, i) {
                        problems.push(format!("{place}: `{}` {why}", entry.path));
                    }
                }
            }
            if complete {
                self.checked.filesystems += 1;
                self.checked.hard_links += rootfs.hard_links;
                self.checked.symlinks += rootfs.symlinks;
            }
            for p in problems {
                self.problem(p);
            }
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

/// One entry of a layer's tar, as unpacking it needs it.
#[derive(Clone, Debug)]
struct LayerEntry {
    path: String,
    kind: EntryKind,
    /// The target of a symbolic or hard link.
    link: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Dir,
    File,
    Symlink,
    HardLink,
    /// Devices, FIFOs and the like: not directories, nothing to follow.
    Other,
}

/// What reading a layer blob found: its diff id and its entries.
struct LayerRead {
    diff_id: String,
    entries: Vec<LayerEntry>,
}

/// A layer blob read: its tar hashed whole (the diff id) and its entries listed. The tar is walked,
/// so it must be one with every entry complete; a tar that ends right after its last entry (no
/// padding, no end-of-archive blocks, as umoci 0.4's `insert` writes them and consumers accept) is
/// let through.
fn read_layer(blob: impl Read, compression: Compression) -> Result<LayerRead, String> {
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
    let mut entries = Vec::new();
    {
        let mut tar = tar::Archive::new(&mut hashing);
        let walk = tar.entries().map_err(|e| format!("not a tar: {e}"))?;
        for entry in walk {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    header_error = Some(e);
                    break;
                }
            };
            let path = entry
                .path()
                .map_err(|e| format!("an entry without a readable path: {e}"))?
                .to_string_lossy()
                .into_owned();
            let link = entry
                .link_name()
                .map_err(|e| format!("the tar entry {path} has no readable link target: {e}"))?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kind = match entry.header().entry_type() {
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::HardLink,
                _ => EntryKind::Other,
            };
            std::io::copy(&mut entry, &mut std::io::sink())
                .map_err(|e| format!("the tar entry {path} is cut short: {e}"))?;
            entries.push(LayerEntry { path, kind, link });
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
    Ok(LayerRead {
        diff_id: format!("sha256:{}", hex(&hashing.hasher.finalize())),
        entries,
    })
}

/// An image's filesystem while its layers are applied, by the rules of the OCI image spec's
/// changesets as containerd and umoci apply them: a path is relative to the root (a leading `/` or
/// `./` dropped, `..` applied lexically and never above the root); its parent directories are reached
/// through the links already there (absolute targets from the root, relative ones from the link's
/// directory, `..` stopping at the root), and created when missing; a later entry replaces an earlier
/// one, a directory over a directory only updates it; `.wh.NAME` removes NAME (and what is below it)
/// from the lower layers, `.wh..wh..opq` what the lower layers had below its directory, and other
/// `.wh..wh.` names are ignored.
#[derive(Default)]
struct Rootfs {
    /// Every path but the root, by its real path (no link on the way): its kind, link target and the
    /// layer that last wrote it.
    paths: BTreeMap<String, Node>,
    hard_links: usize,
    symlinks: usize,
}

#[derive(Clone, Debug)]
struct Node {
    kind: EntryKind,
    link: String,
    layer: usize,
}

/// Where a walk through the filesystem ended.
enum Walked {
    /// The real path reached.
    Found(String),
    /// The real path of the last directory reached, the components below it that are missing, and
    /// whether they come from a link's target (a link that leads nowhere).
    Missing {
        at: String,
        missing: Vec<String>,
        dangling: bool,
    },
}

impl Rootfs {
    fn apply(&mut self, entry: &LayerEntry, layer: usize) -> Result<(), String> {
        let components = lexical(&entry.path).ok_or("climbs above the image root")?;
        let Some((name, parent)) = components.split_last() else {
            // The root itself.
            return Ok(());
        };
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = match self.walk(parent, true)? {
                Walked::Found(dir) => dir,
                Walked::Missing { .. } => return Ok(()),
            };
            if hidden == ".wh..opq" {
                self.remove_lower(&dir, false, layer);
            } else if !hidden.starts_with(".wh.") && !matches!(hidden, "" | "." | "..") {
                self.remove_lower(&join(&dir, hidden), true, layer);
            }
            return Ok(());
        }
        let dir = self.parent_for_write(parent, layer)?;
        let path = join(&dir, name);
        let mut node = Node {
            kind: entry.kind,
            link: entry.link.clone(),
            layer,
        };
        match entry.kind {
            EntryKind::HardLink => {
                let target = lexical(&entry.link).ok_or_else(|| {
                    format!("is a hard link to `{}`, above the image root", entry.link)
                })?;
                let linked = match self.walk(&target, false)? {
                    Walked::Found(real) => real,
                    Walked::Missing { .. } => {
                        return Err(format!(
                            "is a hard link to `{}`, which no entry before it put there",
                            entry.link
                        ));
                    }
                };
                let kind = self.paths.get(&linked).map_or(EntryKind::Dir, |n| n.kind);
                if kind == EntryKind::Dir {
                    return Err(format!("is a hard link to `{}`, a directory", entry.link));
                }
                self.hard_links += 1;
                node.kind = kind;
                node.link = self.paths[&linked].link.clone();
            }
            EntryKind::Symlink => {
                if entry.link.is_empty() {
                    return Err("is a symbolic link to nothing (an empty target)".to_owned());
                }
                self.symlinks += 1;
            }
            _ => {}
        }
        match self.paths.get_mut(&path) {
            Some(old) if old.kind == EntryKind::Dir && node.kind == EntryKind::Dir => {
                old.layer = layer;
            }
            Some(_) => {
                self.remove_below(&path);
                self.paths.insert(path, node);
            }
            None => self.insert(path, node)?,
        }
        Ok(())
    }

    fn insert(&mut self, path: String, node: Node) -> Result<(), String> {
        if self.paths.len() >= MAX_ROOTFS_PATHS {
            return Err(format!(
                "is past {MAX_ROOTFS_PATHS} paths, more than the conformance check follows"
            ));
        }
        self.paths.insert(path, node);
        Ok(())
    }

    /// The real path of the directory `parent` (components from the root), creating the missing
    /// directories as unpacking does.
    fn parent_for_write(&mut self, parent: &[String], layer: usize) -> Result<String, String> {
        match self.walk(parent, true)? {
            Walked::Found(dir) => match self.paths.get(&dir) {
                None => Ok(dir),
                Some(node) if node.kind == EntryKind::Dir => Ok(dir),
                Some(_) => Err(format!(
                    "is placed below `/{dir}`, which is not a directory"
                )),
            },
            Walked::Missing {
                at,
                missing,
                dangling,
            } => {
                if dangling {
                    return Err(format!(
                        "is placed through a symbolic link that leads nowhere (`/{}` is missing)",
                        join(&at, &missing[0])
                    ));
                }
                let mut dir = at;
                for name in missing {
                    dir = join(&dir, &name);
                    let node = Node {
                        kind: EntryKind::Dir,
                        link: String::new(),
                        layer,
                    };
                    self.insert(dir.clone(), node)?;
                }
                Ok(dir)
            }
        }
    }

    /// Walks `components` from the root, following the links on the way (and the last one when
    /// `follow_last`).
    fn walk(&self, components: &[String], follow_last: bool) -> Result<Walked, String> {
        // Each pending component, and whether it comes from a link's target.
        let mut pending: VecDeque<(String, bool)> =
            components.iter().map(|c| (c.clone(), false)).collect();
        let mut at = String::new();
        let mut hops = 0;
        while let Some((name, from_link)) = pending.pop_front() {
            match name.as_str() {
                "" | "." => continue,
                ".." => {
                    at = at.rsplit_once('/').map_or("", |(up, _)| up).to_owned();
                    continue;
                }
                _ => {}
            }
            let next = join(&at, &name);
            let Some(node) = self.paths.get(&next) else {
                let mut missing = vec![name];
                let mut dangling = from_link;
                for (rest, from_link) in pending {
                    dangling |= from_link;
                    missing.push(rest);
                }
                // `..` after a missing directory: nothing to create; the path is missing as written.
                missing.retain(|c| !matches!(c.as_str(), "" | "."));
                if missing.iter().any(|c| c == "..") {
                    return Err(format!(
                        "goes up (`..`) from `/{next}`, which does not exist"
                    ));
                }
                return Ok(Walked::Missing {
                    at,
                    missing,
                    dangling,
                });
            };
            match node.kind {
                EntryKind::Dir => at = next,
                EntryKind::Symlink if follow_last || !pending.is_empty() => {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Err(format!(
                            "is reached through more than {MAX_LINK_HOPS} symbolic links (a loop)"
                        ));
                    }
                    if node.link.starts_with('/') {
                        at = String::new();
                    }
                    for part in node.link.split('/').rev() {
                        pending.push_front((part.to_owned(), true));
                    }
                }
                _ if pending.is_empty() => return Ok(Walked::Found(next)),
                _ => {
                    return Err(format!(
                        "is placed below `/{next}`, which is not a directory"
                    ));
                }
            }
            if pending.is_empty() {
                return Ok(Walked::Found(at));
            }
        }
        Ok(Walked::Found(at))
    }

    /// Removes what lower layers put at `path` (when `include_self`) and below it, keeping what
    /// `layer` wrote and the directories leading to it.
    fn remove_lower(&mut self, path: &str, include_self: bool, layer: usize) {
        let subtree: Vec<String> = if path.is_empty() {
            self.paths.keys().cloned().collect()
        } else {
            let mut subtree = self.below(path);
            if self.paths.contains_key(path) {
                subtree.push(path.to_owned());
            }
            subtree
        };
        let kept: BTreeSet<String> = subtree
            .iter()
            .filter(|p| self.paths[*p].layer == layer)
            .flat_map(|p| ancestors(p))
            .collect();
        for p in subtree {
            if !include_self && p == path {
                continue;
            }
            if kept.contains(&p) {
                if let Some(node) = self.paths.get_mut(&p) {
                    node.layer = layer;
                }
            } else {
                self.paths.remove(&p);
            }
        }
    }

    /// Every path below `path` (not the root).
    fn below(&self, path: &str) -> Vec<String> {
        let below = format!("{path}/");
        self.paths
            .range(below.clone()..)
            .take_while(|(p, _)| p.starts_with(&below))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Removes everything below `path` (what an entry replacing a directory removes).
    fn remove_below(&mut self, path: &str) {
        for p in self.below(path) {
            self.paths.remove(&p);
        }
    }
}

/// The components of an entry path or hard link target taken from the root: a leading `/` or `./`
/// dropped, `.` skipped, `..` applied; `None` when it climbs above the root.
fn lexical(path: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            _ => out.push(part.to_owned()),
        }
    }
    Some(out)
}

/// `dir/name`, where `dir` is empty for the root.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `path` and each directory above it, the root left out.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = vec![path.to_owned()];
    let mut rest = path;
    while let Some((up, _)) = rest.rsplit_once('/') {
        out.push(up.to_owned());
        rest = up;
    }
    out
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
