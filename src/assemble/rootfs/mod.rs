//! What a base image's filesystem holds: its layers applied in order, as a runtime unpacks them, into
//! an index of paths (kind, link target, mode and owner) and the content of a few small files asked
//! for, in bounded memory and time, without writing anything to disk.
//!
//! Layers are applied with the OCI rules: a later entry replaces an earlier one (a directory over a
//! directory only updates its metadata; anything else over a directory removes what was below it),
//! `.wh.NAME` deletes NAME and everything below it from the lower layers, `.wh..wh..opq` hides what the
//! lower layers had below its directory, and other `.wh..wh.*` names (aufs bookkeeping) are ignored.
//! Entry paths are read as relative to the image root (a leading `/` or `./` is dropped) and `..` in
//! them is applied lexically; a path or hard link target that climbs above the root is refused, as
//! docker refuses to unpack it. As containerd and umoci do, the parent directories of an entry are
//! reached through the symbolic links already in the image (clamped at its root), and missing ones are
//! created, so `lib/x.so` lands in `usr/lib` when `lib` is a link to `usr/lib`.
//!
//! The index is a tree of directories, so that following a path costs one small lookup per component
//! however deep it is.
//!
//! A base image's layers are checked on the way: each blob's first bytes against its media type, its
//! decompressed stream against the diff_id its config lists, and all of them together against
//! [`MAX_EXPANDED`], so that a small hostile blob cannot expand into hours of work.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Read;

use crate::codec::decompress::{LayerReader, Mislabelled};
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::oci::{Descriptor, Digest};
use crate::tar::read::{EntryHead, Stream, TarSource, Walker};
use crate::util::cancel;
use crate::util::sanitize;

/// Paths one image may hold.
pub const MAX_ENTRIES: usize = 2_000_000;
/// Bytes of names and link targets kept in the index.
pub const MAX_NAME_BYTES: usize = 256 << 20;
/// Largest file whose content is kept; a larger one is indexed, but [`RootFs::file`] has no content
/// for it.
pub const MAX_KEPT_FILE: u64 = 1 << 20;
/// Content kept for all the files asked for together.
pub const MAX_KEPT_TOTAL: usize = 16 << 20;
/// Symbolic links followed in one lookup: Linux's limit.
pub const MAX_LINK_HOPS: usize = 40;
/// Longest entry path and link target: Linux's PATH_MAX, beyond which no runtime can create them.
pub const MAX_PATH: usize = 4096;
/// Path components walked while placing a whole image's entries (a bound on time: entries reached
/// through links to deep directories cost a walk each).
const MAX_STEPS: u64 = 200_000_000;
/// Reads of the layers in one scan: the first, then one more while files to keep turn out to be
/// reached through links (a link, then a hard link behind it, then one behind that).
pub const MAX_SCANS: usize = 4;
/// Bytes the layers of one image may decompress to, together: a bound on the time a scan takes
/// whatever the blobs' size (at this limit, 10 to 13 s of CPU on this project's machine for a 300
/// KB blob of zeros). The largest common bases expand to a few GiB; 8 GiB leaves room above them,
/// while a 300 KB zstd blob can claim terabytes. [`MAX_EXPANDED_VAR`] raises it for a base that
/// really is larger.
pub const MAX_EXPANDED: u64 = 8 << 30;
/// The environment variable that replaces [`MAX_EXPANDED`]: bytes, or a number with `KiB`, `MiB`,
/// `GiB` or `TiB`.
pub const MAX_EXPANDED_VAR: &str = "ZEROIMAGE_MAX_BASE_SIZE";

/// The bounds a scan keeps to; tests lower them.
#[derive(Clone, Copy, Debug)]
struct Limits {
    entries: usize,
    name_bytes: usize,
    kept_file: u64,
    kept_total: usize,
    steps: u64,
    expanded: u64,
}

const LIMITS: Limits = Limits {
    entries: MAX_ENTRIES,
    name_bytes: MAX_NAME_BYTES,
    kept_file: MAX_KEPT_FILE,
    kept_total: MAX_KEPT_TOTAL,
    steps: MAX_STEPS,
    expanded: MAX_EXPANDED,
};

/// The limit on what one image's layers decompress to: [`MAX_EXPANDED_VAR`] when it is set, else
/// [`MAX_EXPANDED`].
pub fn max_expanded() -> Result<u64> {
    match std::env::var(MAX_EXPANDED_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(MAX_EXPANDED),
        Ok(text) => parse_size(&text).ok_or_else(|| {
            Error::Invalid(format!(
                "{MAX_EXPANDED_VAR}=`{}` is not a size; write bytes or a number with KiB, MiB, \
                 GiB or TiB, e.g. {MAX_EXPANDED_VAR}=32GiB",
                sanitize::outside(&text, 100)
            ))
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Invalid(format!(
            "{MAX_EXPANDED_VAR} is not UTF-8; write bytes or a number with KiB, MiB, GiB or TiB"
        ))),
    }
}

/// `123`, `512MiB`, `16GiB` (also `K`, `M`, `G`, `T`, `KB` ... all binary), as a byte count.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const AUFS_META: &[u8] = b".wh..wh.";

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// An entry type no runtime creates a file for (GNU volume labels and the like).
    Other,
}

/// One path of the image, as [`RootFs::lookup`] and [`RootFs::resolve`] find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The real path: absolute, through no symbolic link (`/` for the root).
    pub path: String,
    pub kind: Kind,
    /// Permission bits as the layer stored them (setuid, setgid and sticky included).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The target as stored, for a symbolic link ([`RootFs::lookup`] only: `resolve` follows it).
    pub link: Option<String>,
}

/// A node of the tree: its index in [`RootFs::nodes`].
type Id = u32;

const ROOT: Id = 0;

/// What an entry says about its path.
#[derive(Clone, Debug)]
struct Meta {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    link: Option<Box<[u8]>>,
}

#[derive(Debug)]
struct Node {
    name: Box<[u8]>,
    parent: Id,
    /// Components from the root.
    depth: u32,
    /// Index of the layer that last wrote the node: whiteouts only delete what lower layers hold.
    layer: u32,
    meta: Meta,
    /// By name, for a directory.
    children: BTreeMap<Box<[u8]>, Id>,
}

/// Why an entry cannot be written below a path (see [`RootFs::placeable_dir`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplaceable {
    /// Following the links loops (or passes [`MAX_LINK_HOPS`], or meets an empty target).
    Loop,
    /// The path leads to, or through, something that is not a directory: its real path.
    NotDir(String),
    /// The path leads nowhere (a dangling link): where it leads, as far as it goes.
    Missing(String),
}

impl std::fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplaceable::Loop => write!(f, "which loops (more than {MAX_LINK_HOPS} links)"),
            Unplaceable::NotDir(path) => write!(f, "which leads to `{path}`, not a directory"),
            Unplaceable::Missing(path) => {
                write!(f, "which leads to `{path}`, which the base does not have")
            }
        }
    }
}

/// How a walk through the tree ended.
enum Walk {
    Found(Id),
    /// The component at the front of `pending` does not exist in the directory `at`.
    Missing {
        at: Id,
        pending: VecDeque<Vec<u8>>,
        hops: usize,
    },
    /// A component that should be a directory is not.
    NotDir(Id),
    /// More than [`MAX_LINK_HOPS`] links, or an empty link target.
    Broken,
}

/// Why the content of a file to keep was not kept.
#[derive(Clone, Debug)]
enum Unread {
    /// Larger than a kept file may be: its size.
    TooLarge(u64),
    /// A hard link to a file not kept then: that file's path.
    LinkedTo(String),
}

/// The merged filesystem of a base image's layers: an index of every path, and the content of the few
/// files [`RootFs::scan`] was asked to keep.
#[derive(Debug)]
pub struct RootFs {
    /// Names the image in messages.
    name: String,
    /// The tree; `nodes[ROOT]` is the root, freed slots are listed in `free`.
    nodes: Vec<Node>,
    free: Vec<Id>,
    live: usize,
    name_bytes: usize,
    /// Content of kept files.
    kept: BTreeMap<Id, Vec<u8>>,
    kept_bytes: usize,
    /// Why the content of a file to keep is not there.
    unread: BTreeMap<Id, Unread>,
    /// Which files to keep: absolute patterns split in components.
    keep: Vec<Vec<Vec<u8>>>,
    /// The last parent directory reached (as written in the layer): entries come grouped by directory.
    parent_cache: Option<(Vec<u8>, Id)>,
    steps: u64,
    /// Bytes the layers read so far decompressed to.
    expanded: u64,
    limits: Limits,
}

impl RootFs {
    /// Applies `layers` (bottom first), read from `source`, and keeps the content of the regular files
    /// whose real path matches one of `keep`: absolute paths whose components may hold `*` (any run of
    /// characters) and `?` (one), e.g. `/etc/passwd` or `/etc/ld.so.conf.d/*`. A kept file larger than
    /// [`MAX_KEPT_FILE`] is indexed without its content.
    ///
    /// Every blob is read to its end, so its digest is checked. Fails, naming the source and the layer,
    /// on a layer that cannot be read (unknown media type, corrupt data, a path escaping the root or
    /// longer than [`MAX_PATH`], a hard link to nothing), and beyond [`MAX_ENTRIES`],
    /// [`MAX_NAME_BYTES`] or [`MAX_KEPT_TOTAL`].
    ///
    /// A file to keep may be reached through links (`/etc` a link to `usr/etc`, `/etc/passwd` a link,
    /// a hard link to a file not kept): its content is kept by its real path, which is known only once
    /// every layer is applied, so the layers are read again keeping those real paths too (at most
    /// [`MAX_SCANS`] times in all, for hard links to hard links).
    ///
    /// Each blob's first bytes must be what its media type says, and the layers may decompress to at
    /// most [`max_expanded`] bytes together.
    pub fn scan(source: &dyn BlobSource, layers: &[Descriptor], keep: &[&str]) -> Result<RootFs> {
        let limits = Limits {
            expanded: max_expanded()?,
            ..LIMITS
        };
        let scan = Scan {
            label: source.describe(),
            layers,
            diff_ids: None,
        };
        RootFs::scan_within(&source.describe(), source, &scan, keep, limits)
    }

    /// [`RootFs::scan`] for the base image `name` (which messages give as `base NAME`), whose config
    /// lists `diff_ids`: each layer's decompressed stream must hash to its diff_id.
    pub fn scan_base(
        name: &str,
        source: &dyn BlobSource,
        layers: &[Descriptor],
        diff_ids: &[Digest],
        keep: &[&str],
    ) -> Result<RootFs> {
        let limits = Limits {
            expanded: max_expanded()?,
            ..LIMITS
        };
        let scan = Scan {
            label: format!("base {}", sanitize::outside(name, sanitize::EXCERPT)),
            layers,
            diff_ids: Some(diff_ids),
        };
        RootFs::scan_within(name, source, &scan, keep, limits)
    }

    fn scan_within(
        name: &str,
        source: &dyn BlobSource,
        scan: &Scan,
        keep: &[&str],
        limits: Limits,
    ) -> Result<RootFs> {
        if let Some(diff_ids) = scan.diff_ids
            && diff_ids.len() != scan.layers.len()
        {
            return Err(Error::Invalid(format!(
                "{}: its config lists {} layer diff ids for {} layers; the image is damaged",
                scan.label,
                diff_ids.len(),
                scan.layers.len()
            )));
        }
        let keep = keep
            .iter()
            .map(|pattern| {
                if !pattern.starts_with('/') {
                    return Err(Error::Invalid(format!(
                        "a file to keep from a base image must be an absolute path, not `{pattern}`"
                    )));
                }
                Ok(components(pattern.as_bytes()).map(<[u8]>::to_vec).collect())
            })
            .collect::<Result<Vec<_>>>()?;
        let apply = |keep: Vec<Vec<Vec<u8>>>| -> Result<RootFs> {
            let mut rootfs = RootFs::new(name, keep, limits);
            for index in 0..scan.layers.len() {
                rootfs.apply_layer(source, scan, index)?;
            }
            rootfs.parent_cache = None;
            Ok(rootfs)
        };
        let mut rootfs = apply(keep)?;
        for _ in 1..MAX_SCANS {
            let real = rootfs.real_paths_to_keep();
            if real.is_empty() {
                break;
            }
            let mut keep = rootfs.keep.clone();
            keep.extend(real);
            rootfs = apply(keep)?;
        }
        Ok(rootfs)
    }

    /// The real paths of the files to keep that were reached through links, as patterns, when not
    /// kept already: a kept pattern's literal directories (or whole path) resolved, and the files hard
    /// links to be kept point at.
    fn real_paths_to_keep(&self) -> Vec<Vec<Vec<u8>>> {
        let mut extra: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut add = |pattern: Vec<Vec<u8>>| {
            if !self.keep.contains(&pattern) && !extra.contains(&pattern) {
                extra.push(pattern);
            }
        };
        for pattern in &self.keep {
            let literal = pattern
                .iter()
                .take_while(|c| !c.contains(&b'*') && !c.contains(&b'?'))
                .count();
            if literal == 0 {
                continue;
            }
            let mut steps = 0;
            let prefix = pattern[..literal].iter().cloned().collect();
            if let Walk::Found(id) = self.walk(ROOT, prefix, 0, true, &mut steps) {
                let mut real: Vec<Vec<u8>> =
                    self.names_of(id).into_iter().map(<[u8]>::to_vec).collect();
                if real != pattern[..literal] {
                    real.extend(pattern[literal..].iter().cloned());
                    add(real);
                }
            }
        }
        for reason in self.unread.values() {
            if let Unread::LinkedTo(target) = reason {
                add(components(target.as_bytes()).map(<[u8]>::to_vec).collect());
            }
        }
        extra
    }

    /// Why the content of `path` (links followed) is not there, for a message: too large, a hard link
    /// to a file not read, not a regular file, or not a file asked to be kept; naming its real path
    /// when links lead elsewhere. `None` when it is there, or `path` does not exist.
    pub fn why_unread(&self, path: &str) -> Option<String> {
        let id = self.find(path, true)?;
        if self.kept.contains_key(&id) {
            return None;
        }
        let real = self.path_of(id);
        let at = if components(real.as_bytes()).eq(components(path.as_bytes())) {
            String::new()
        } else {
            format!(" (reached through a link: {real})")
        };
        Some(match self.unread.get(&id) {
            Some(Unread::TooLarge(size)) => format!(
                "is {size} bytes{at}, more than the {} read from a base image's file",
                amount(self.limits.kept_file)
            ),
            Some(Unread::LinkedTo(target)) => {
                format!("is a hard link{at} to {target}, whose content was not read")
            }
            None if self.node(id).meta.kind != Kind::File => {
                format!("is not a regular file{at}")
            }
            None => format!("was not read{at}"),
        })
    }

    fn new(name: &str, keep: Vec<Vec<Vec<u8>>>, limits: Limits) -> RootFs {
        let root = Node {
            name: Box::default(),
            parent: ROOT,
            depth: 0,
            layer: 0,
            meta: Meta {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                link: None,
            },
            children: BTreeMap::new(),
        };
        RootFs {
            name: name.to_owned(),
            nodes: vec![root],
            free: Vec::new(),
            live: 0,
            name_bytes: 0,
            kept: BTreeMap::new(),
            kept_bytes: 0,
            unread: BTreeMap::new(),
            keep,
            parent_cache: None,
            steps: 0,
            expanded: 0,
            limits,
        }
    }

    /// How messages name the image (the source it was read from, unless [`RootFs::named`] changed it).
    pub fn describe(&self) -> &str {
        &self.name
    }

    /// The same filesystem, named `name` in messages (e.g. the base image's reference).
    pub fn named(mut self, name: &str) -> RootFs {
        name.clone_into(&mut self.name);
        self
    }

    /// Paths in the image, the root not counted.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True for an image with no path but its root.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The path itself, as `lstat` sees it: links in its parent directories are followed, a link at the
    /// end is not. `None` when it does not exist.
    pub fn lookup(&self, path: &str) -> Option<Resolved> {
        self.find(path, false).map(|id| self.describe_node(id))
    }

    /// The path with every link followed, as `stat` sees it: absolute targets from the image root,
    /// relative ones from the link's directory, `..` stopping at the root, at most [`MAX_LINK_HOPS`]
    /// links. `None` when it does not exist, goes through something that is not a directory, or loops.
    pub fn resolve(&self, path: &str) -> Option<Resolved> {
        self.find(path, true).map(|id| self.describe_node(id))
    }

    /// True when `path` exists after following links.
    pub fn exists(&self, path: &str) -> bool {
        self.find(path, true).is_some()
    }

    /// What `path` is after following links.
    pub fn kind(&self, path: &str) -> Option<Kind> {
        self.find(path, true).map(|id| self.node(id).meta.kind)
    }

    /// The content of `path` (links followed), when it is a regular file that was asked to be kept and
    /// its content could be: a file larger than [`MAX_KEPT_FILE`] has none ([`RootFs::why_unread`]
    /// says why one has none).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        let id = self.find(path, true)?;
        self.kept.get(&id).map(Vec::as_slice)
    }

    /// Whether entries can be written below `path` by every unpacker: the path must lead, through the
    /// links on the way, to a directory the image has. umoci and containerd would create the
    /// directories a dangling link names, but docker and podman unpack in a chroot, where the link
    /// leads nowhere, and fail.
    pub fn placeable_dir(&self, path: &str) -> std::result::Result<(), Unplaceable> {
        let mut steps = 0;
        match self.walk(ROOT, split(path.as_bytes()), 0, true, &mut steps) {
            Walk::Found(id) if self.node(id).meta.kind == Kind::Dir => Ok(()),
            Walk::Found(id) | Walk::NotDir(id) => Err(Unplaceable::NotDir(self.path_of(id))),
            Walk::Missing { at, pending, .. } => {
                let mut missing = self.path_of(at);
                for component in pending {
                    if !missing.ends_with('/') {
                        missing.push('/');
                    }
                    missing.push_str(&String::from_utf8_lossy(&component));
                }
                Err(Unplaceable::Missing(missing))
            }
            Walk::Broken => Err(Unplaceable::Loop),
        }
    }

    /// Every path but the root, as [`RootFs::lookup`] describes it: each directory before what it
    /// holds, names in byte order.
    pub fn entries(&self) -> impl Iterator<Item = Resolved> + '_ {
        let mut stack: Vec<Id> = self.node(ROOT).children.values().rev().copied().collect();
        std::iter::from_fn(move || {
            let id = stack.pop()?;
            stack.extend(self.node(id).children.values().rev().copied());
            Some(self.describe_node(id))
        })
    }

    /// Every kept file: its real path and content, sorted by path.
    pub fn kept_files(&self) -> impl Iterator<Item = (String, &[u8])> {
        let mut files: Vec<(String, &[u8])> = self
            .kept
            .iter()
            .map(|(&id, content)| (self.path_of(id), content.as_slice()))
            .collect();
        files.sort();
        files.into_iter()
    }

    fn node(&self, id: Id) -> &Node {
        &self.nodes[id as usize]
    }

    fn node_mut(&mut self, id: Id) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    fn find(&self, path: &str, follow: bool) -> Option<Id> {
        let mut steps = 0;
        match self.walk(ROOT, split(path.as_bytes()), 0, follow, &mut steps) {
            Walk::Found(id) => Some(id),
            _ => None,
        }
    }

    fn describe_node(&self, id: Id) -> Resolved {
        let meta = &self.node(id).meta;
        Resolved {
            path: self.path_of(id),
            kind: meta.kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            link: meta
                .link
                .as_ref()
                .map(|l| String::from_utf8_lossy(l).into_owned()),
        }
    }

    /// The names from the root down to `id`.
    fn names_of(&self, mut id: Id) -> Vec<&[u8]> {
        let mut names = Vec::with_capacity(self.node(id).depth as usize);
        while id != ROOT {
            let node = self.node(id);
            names.push(&*node.name);
            id = node.parent;
        }
        names.reverse();
        names
    }

    /// The absolute real path of `id`.
    fn path_of(&self, id: Id) -> String {
        format!(
            "/{}",
            String::from_utf8_lossy(&self.names_of(id).join(&b'/'))
        )
    }

    /// Walks `pending` from the directory `at` as the kernel resolves a path, following links (the last
    /// one only when `follow_last`); `steps` counts the components walked.
    fn walk(
        &self,
        mut at: Id,
        mut pending: VecDeque<Vec<u8>>,
        mut hops: usize,
        follow_last: bool,
        steps: &mut u64,
    ) -> Walk {
        while let Some(component) = pending.pop_front() {
            *steps += 1;
            match component.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    at = self.node(at).parent;
                    continue;
                }
                _ => {}
            }
            let Some(&child) = self.node(at).children.get(component.as_slice()) else {
                pending.push_front(component);
                return Walk::Missing { at, pending, hops };
            };
            let last = pending.is_empty();
            let meta = &self.node(child).meta;
            match meta.kind {
                Kind::Symlink if !last || follow_last => {
                    hops += 1;
                    let target = meta.link.as_deref().unwrap_or_default();
                    if hops > MAX_LINK_HOPS || target.is_empty() {
                        return Walk::Broken;
                    }
                    if target.starts_with(b"/") {
                        at = ROOT;
                    }
                    for part in split(target).into_iter().rev() {
                        pending.push_front(part);
                    }
                }
                Kind::Dir => at = child,
                _ if last => at = child,
                _ => return Walk::NotDir(child),
            }
        }
        Walk::Found(at)
    }

    /// Applies layer `index`, decompressed on another thread while it is walked.
    fn apply_layer(&mut self, source: &dyn BlobSource, scan: &Scan, index: usize) -> Result<()> {
        std::thread::scope(|scope| self.apply_layer_in(scope, source, scan, index))
    }

    fn apply_layer_in<'scope, 's: 'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        source: &'s dyn BlobSource,
        scan: &Scan,
        index: usize,
    ) -> Result<()> {
        let layer = &scan.layers[index];
        let bad = |what: String| {
            Error::Invalid(format!(
                "{}: layer {} of {} ({}): {what}",
                scan.label,
                index + 1,
                scan.layers.len(),
                layer.digest
            ))
        };
        let compression = layer.media_type.layer_compression().ok_or_else(|| {
            bad(format!(
                "`{}` is not a layer type that can be read (foreign and non-distributable layers \
                 are not fetched); use a base image whose layers are all tar, tar+gzip or tar+zstd",
                sanitize::outside(layer.media_type.as_str(), 100)
            ))
        })?;
        let limit = self.limits.expanded;
        let io_error = |e: std::io::Error| {
            if cancel::is_requested() {
                return Error::Interrupted;
            }
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                return bad(format!(
                    "the layers decompress to more than {} together, more than common base \
                     images do (a decompression bomb?); if this base really is that large, raise \
                     the limit with {MAX_EXPANDED_VAR}=SIZE (e.g. {MAX_EXPANDED_VAR}=32GiB)",
                    amount(limit)
                ));
            }
            bad(sanitize::outside(&e.to_string(), sanitize::EXCERPT))
        };
        let diff_id = scan.diff_ids.and_then(|ids| ids.get(index));
        let mut reader = LayerReader::new(compression, source.open(layer)?)
            .map_err(
                |e| match e.get_ref().and_then(|e| e.downcast_ref::<Mislabelled>()) {
                    Some(mislabelled) => bad(format!(
                        "{mislabelled} (`{}`); the image is damaged",
                        sanitize::outside(layer.media_type.as_str(), 100)
                    )),
                    None => io_error(e),
                },
            )?
            .limited_to(limit.saturating_sub(self.expanded))
            .read_ahead(scope);
        if let Some(diff_id) = diff_id {
            reader = reader.hashing_as(diff_id);
        }
        self.parent_cache = None;
        let layer_index = u32::try_from(index).unwrap_or(u32::MAX);
        {
            let mut walker = Walker::new(Stream(&mut reader));
            while let Some(head) = walker.next_entry().map_err(io_error)? {
                cancel::check()?;
                self.apply_entry(&mut walker, &head, layer_index)
                    .map_err(|what| match what {
                        Problem::Io(e) => io_error(e),
                        Problem::Layer(what) => bad(what),
                    })?;
            }
        }
        let (actual, expanded) = reader.finish().map_err(io_error)?;
        self.expanded += expanded;
        if let (Some(expected), Some(actual)) = (diff_id, actual)
            && actual != *expected
        {
            return Err(bad(format!(
                "its content decompresses to {actual}, but the config lists diff_id {expected}; \
                 the image is damaged"
            )));
        }
        Ok(())
    }

    fn apply_entry<R: TarSource>(
        &mut self,
        walker: &mut Walker<R>,
        head: &EntryHead,
        layer: u32,
    ) -> Result<(), Problem> {
        let path = shown(&head.path);
        let too_long = |what: &str| {
            Problem::Layer(format!(
                "`{path}` has a {what} longer than {MAX_PATH} bytes, which Linux cannot create"
            ))
        };
        if head.path.len() > MAX_PATH {
            return Err(too_long("path"));
        }
        if head.link.as_ref().is_some_and(|l| l.len() > MAX_PATH) {
            return Err(too_long("link target"));
        }
        let Some((parent, name)) = normalize(&head.path)
            .ok_or_else(|| Problem::Layer(format!("`{path}` climbs above the image root")))?
        else {
            // The root itself (`./`): it stays what it is.
            return Ok(());
        };
        if name.starts_with(WHITEOUT) {
            if name == OPAQUE {
                if let Some(dir) = self.existing_dir(&parent)? {
                    self.remove_lower(dir, false, layer);
                }
            } else if !name.starts_with(AUFS_META) {
                let hidden = &name[WHITEOUT.len()..];
                if !matches!(hidden, b"" | b"." | b"..")
                    && let Some(dir) = self.existing_dir(&parent)?
                    && let Some(&target) = self.node(dir).children.get(hidden)
                {
                    self.remove_lower(target, true, layer);
                }
            }
            return Ok(());
        }
        let dir = self
            .parent_for_write(&parent, layer)
            .map_err(|what| Problem::Layer(format!("`{path}` cannot be placed: {what}")))?;
        let owner = |id: u64| u32::try_from(id).unwrap_or(u32::MAX);
        let mut meta = Meta {
            kind: Kind::File,
            mode: head.mode & 0o7777,
            uid: owner(head.uid),
            gid: owner(head.gid),
            link: None,
        };
        let mut hard_link_to = None;
        match head.kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => meta.kind = Kind::Dir,
            tar::EntryType::Symlink => {
                meta.kind = Kind::Symlink;
                meta.link = Some(head.link.clone().unwrap_or_default().into());
            }
            tar::EntryType::Link => {
                let target = head.link.as_deref().unwrap_or_default();
                let linked = self.hard_link_target(target).map_err(|what| {
                    Problem::Layer(format!(
                        "`{path}` is a hard link to `{}`, {what}",
                        shown(target)
                    ))
                })?;
                if self.node(dir).children.get(name.as_slice()) == Some(&linked) {
                    return Ok(());
                }
                meta = self.node(linked).meta.clone();
                hard_link_to = Some(linked);
            }
            tar::EntryType::Char => meta.kind = Kind::CharDevice,
            tar::EntryType::Block => meta.kind = Kind::BlockDevice,
            tar::EntryType::Fifo => meta.kind = Kind::Fifo,
            _ => meta.kind = Kind::Other,
        }
        let is_file = meta.kind == Kind::File;
        let id = self
            .insert(dir, &name, meta, layer)
            .map_err(Problem::Layer)?;
        if !is_file || !self.wanted(id) {
            return Ok(());
        }
        let content = match hard_link_to {
            Some(target) => {
                let content = self.kept.get(&target).cloned();
                if content.is_none() {
                    let why = match self.unread.get(&target) {
                        Some(Unread::TooLarge(size)) => Unread::TooLarge(*size),
                        _ => Unread::LinkedTo(self.path_of(target)),
                    };
                    self.unread.insert(id, why);
                }
                content
            }
            None if head.size <= self.limits.kept_file => {
                let mut content = Vec::with_capacity(head.size as usize);
                walker
                    .data(head)
                    .and_then(|mut data| data.read_to_end(&mut content))
                    .map_err(Problem::Io)?;
                Some(content)
            }
            None => {
                self.unread.insert(id, Unread::TooLarge(head.size));
                None
            }
        };
        if let Some(content) = content {
            self.kept_bytes += content.len();
            if self.kept_bytes > self.limits.kept_total {
                return Err(Problem::Layer(format!(
                    "the files kept from the image (the last `{path}`) exceed {}",
                    amount(self.limits.kept_total as u64)
                )));
            }
            self.kept.insert(id, content);
        }
        Ok(())
    }

    /// Places an entry named `name` in the directory `dir`, as unpacking does; returns its node.
    fn insert(&mut self, dir: Id, name: &[u8], meta: Meta, layer: u32) -> Result<Id, String> {
        if let Some(&old) = self.node(dir).children.get(name) {
            let node = self.node_mut(old);
            if node.meta.kind == Kind::Dir && meta.kind == Kind::Dir {
                node.meta = meta;
                node.layer = layer;
                return Ok(old);
            }
            self.remove(old);
        } else if self.live >= self.limits.entries {
            return Err(format!(
                "the image holds more than {} paths, more than a base image is expected to",
                self.limits.entries
            ));
        }
        self.name_bytes += name.len() + meta.link.as_ref().map_or(0, |l| l.len());
        if self.name_bytes > self.limits.name_bytes {
            return Err(format!(
                "the image's names and link targets take more than {}",
                amount(self.limits.name_bytes as u64)
            ));
        }
        let node = Node {
            name: name.into(),
            parent: dir,
            depth: self.node(dir).depth + 1,
            layer,
            meta,
            children: BTreeMap::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                *self.node_mut(id) = node;
                id
            }
            None => {
                let id = Id::try_from(self.nodes.len())
                    .map_err(|_| "the image holds too many paths".to_owned())?;
                self.nodes.push(node);
                id
            }
        };
        self.node_mut(dir).children.insert(name.into(), id);
        self.live += 1;
        Ok(id)
    }

    /// Removes `id` and everything below it.
    fn remove(&mut self, id: Id) {
        let parent = self.node(id).parent;
        let name = std::mem::take(&mut self.node_mut(id).name);
        self.node_mut(parent).children.remove(&name);
        self.node_mut(id).name = name;
        let mut doomed = vec![id];
        while let Some(id) = doomed.pop() {
            doomed.extend(std::mem::take(&mut self.node_mut(id).children).into_values());
            self.free(id);
        }
    }

    /// Frees the slot of a node already detached from its parent and without children.
    fn free(&mut self, id: Id) {
        self.parent_cache = None;
        if let Some(content) = self.kept.remove(&id) {
            self.kept_bytes -= content.len();
        }
        self.unread.remove(&id);
        let node = self.node_mut(id);
        let bytes = node.name.len() + node.meta.link.as_ref().map_or(0, |l| l.len());
        node.name = Box::default();
        node.meta.link = None;
        self.name_bytes -= bytes;
        self.live -= 1;
        self.free.push(id);
    }

    /// Removes what lower layers put at `id` (when `include_self`) and below it, keeping what layer
    /// `layer` wrote there and the directories leading to it.
    fn remove_lower(&mut self, id: Id, include_self: bool, layer: u32) {
        // Every node of the subtree, parents first; walked backwards, children come first.
        let mut order = vec![id];
        let mut next = 0;
        while next < order.len() {
            order.extend(self.node(order[next]).children.values().copied());
            next += 1;
        }
        let mut needed: BTreeSet<Id> = BTreeSet::new();
        for &node in order.iter().rev() {
            if node == id && !include_self {
                continue;
            }
            let current = self.node(node);
            let parent = current.parent;
            if current.layer >= layer || needed.contains(&node) {
                self.node_mut(node).layer = layer;
                needed.insert(parent);
            } else {
                let name = std::mem::take(&mut self.node_mut(node).name);
                self.node_mut(parent).children.remove(&name);
                self.node_mut(node).name = name;
                self.free(node);
            }
        }
    }

    /// The directory `parent` (components as written in the layer), creating what is missing as
    /// unpacking does (mode 0755, owned by root).
    fn parent_for_write(&mut self, parent: &[Vec<u8>], layer: u32) -> Result<Id, String> {
        let written = parent.join(&b'/');
        if let Some((cached, id)) = &self.parent_cache
            && *cached == written
        {
            return Ok(*id);
        }
        let mut steps = 0;
        let mut walk = self.walk(ROOT, parent.iter().cloned().collect(), 0, true, &mut steps);
        let dir = loop {
            match walk {
                Walk::Found(id) => break id,
                Walk::Missing {
                    at,
                    mut pending,
                    hops,
                } => {
                    let name = pending.pop_front().unwrap_or_default();
                    let meta = Meta {
                        kind: Kind::Dir,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        link: None,
                    };
                    let id = self.insert(at, &name, meta, layer)?;
                    walk = self.walk(id, pending, hops, true, &mut steps);
                }
                Walk::NotDir(id) => {
                    return Err(format!("`{}` is not a directory", self.path_of(id)));
                }
                Walk::Broken => {
                    return Err("its directory is reached through a link loop".to_owned());
                }
            }
        };
        self.count_steps(steps)?;
        if self.node(dir).meta.kind != Kind::Dir {
            return Err(format!("`{}` is not a directory", self.path_of(dir)));
        }
        self.parent_cache = Some((written, dir));
        Ok(dir)
    }

    fn count_steps(&mut self, steps: u64) -> Result<(), String> {
        self.steps += steps;
        if self.steps > self.limits.steps {
            return Err(format!(
                "placing the image's entries takes more than {} lookups (links to deep \
                 directories, used over and over)",
                self.limits.steps
            ));
        }
        Ok(())
    }

    /// An existing directory, or `None`: whiteouts under a missing directory have nothing to hide.
    fn existing_dir(&mut self, parent: &[Vec<u8>]) -> Result<Option<Id>, Problem> {
        let mut steps = 0;
        let walk = self.walk(ROOT, parent.iter().cloned().collect(), 0, true, &mut steps);
        self.count_steps(steps).map_err(Problem::Layer)?;
        Ok(match walk {
            Walk::Found(id) if self.node(id).meta.kind == Kind::Dir => Some(id),
            _ => None,
        })
    }

    /// The file a hard link names (links in its directories followed, not a link at its end, as
    /// `link(2)` does).
    fn hard_link_target(&mut self, target: &[u8]) -> Result<Id, String> {
        let (parent, name) = normalize(target)
            .ok_or("which climbs above the image root")?
            .ok_or("the image root")?;
        let dir = self
            .existing_dir(&parent)
            .map_err(|problem| match problem {
                Problem::Layer(what) => what,
                Problem::Io(e) => e.to_string(),
            })?;
        let found = dir.and_then(|dir| self.node(dir).children.get(name.as_slice()).copied());
        match found {
            Some(id) if self.node(id).meta.kind == Kind::Dir => Err("a directory".to_owned()),
            Some(id) => Ok(id),
            None => Err("which the image does not have".to_owned()),
        }
    }

    /// True when the content of the file `id` is to be kept.
    fn wanted(&self, id: Id) -> bool {
        let depth = self.node(id).depth as usize;
        if !self.keep.iter().any(|pattern| pattern.len() == depth) {
            return false;
        }
        let names = self.names_of(id);
        self.keep.iter().any(|pattern| matches(pattern, &names))
    }
}

/// The layers a scan reads, how messages name them, and what they must decompress to.
struct Scan<'a> {
    label: String,
    layers: &'a [Descriptor],
    diff_ids: Option<&'a [Digest]>,
}

/// Why an entry could not be applied.
enum Problem {
    Io(std::io::Error),
    Layer(String),
}

/// A path split into its parent's components and its name.
type Split = (Vec<Vec<u8>>, Vec<u8>);

/// An entry path's parent components and name, `..` applied lexically: `Some(None)` for the root,
/// `None` when it climbs above the root.
fn normalize(path: &[u8]) -> Option<Option<Split>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for component in components(path) {
        match component {
            b"." => {}
            b".." => {
                parts.pop()?;
            }
            name => parts.push(name.to_vec()),
        }
    }
    Some(parts.pop().map(|name| (parts, name)))
}

/// The non-empty components of a path.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    components(path).map(<[u8]>::to_vec).collect()
}

/// A byte count in GiB, MiB, or KiB below one MiB (rounded down).
fn amount(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes % (1 << 30) == 0 {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// A path from a layer, fit for a message.
fn shown(path: &[u8]) -> String {
    sanitize::outside(&String::from_utf8_lossy(path), 200)
}

/// True when the absolute `path` matches `pattern`, component by component, with `*` (any run of
/// characters but `/`) and `?` (one character), as the files to keep are written.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<Vec<u8>> = components(pattern.as_bytes()).map(<[u8]>::to_vec).collect();
    let names: Vec<&[u8]> = components(path.as_bytes()).collect();
    matches(&pattern, &names)
}

fn matches(pattern: &[Vec<u8>], names: &[&[u8]]) -> bool {
    pattern.len() == names.len() && pattern.iter().zip(names).all(|(p, n)| glob(p, n))
}

/// Matches one path component against a pattern component with `*` and `?`.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Layers built in memory, for the tests of this module and of those that read a base.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    use crate::image::blobs::Memory;
    use crate::oci::{Compression, Descriptor, Digest, MediaType};

    /// One layer's tar, entries written as given (no path checks, so tests can write hostile ones).
    #[derive(Default)]
    pub struct Layer {
        tar: Vec<u8>,
    }

    impl Layer {
        pub fn new() -> Layer {
            Layer::default()
        }

        fn entry(self, path: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Layer {
            let mode = if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            };
            self.owned(path, kind, link, data, (mode, 0))
        }

        fn owned(
            mut self,
            path: &str,
            kind: tar::EntryType,
            link: &str,
            data: &[u8],
            (mode, owner): (u32, u64),
        ) -> Layer {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_uid(owner);
            header.set_gid(owner);
            header.set_mtime(0);
            header.set_cksum();
            self.tar.extend_from_slice(header.as_bytes());
            self.tar.extend_from_slice(data);
            self.tar.resize(self.tar.len().div_ceil(512) * 512, 0);
            self
        }

        pub fn file(self, path: &str, data: &str) -> Layer {
            self.entry(path, tar::EntryType::Regular, "", data.as_bytes())
        }

        pub fn dir(self, path: &str) -> Layer {
            self.entry(path, tar::EntryType::Directory, "", b"")
        }

        /// A directory with another mode and owner.
        pub fn dir_owned(self, path: &str, mode: u32, uid: u64) -> Layer {
            self.owned(path, tar::EntryType::Directory, "", b"", (mode, uid))
        }

        pub fn symlink(self, path: &str, target: &str) -> Layer {
            self.entry(path, tar::EntryType::Symlink, target, b"")
        }

        pub fn hardlink(self, path: &str, target: &str) -> Layer {
            self.entry(path, tar::EntryType::Link, target, b"")
        }

        /// The tar, with its end-of-archive blocks.
        pub fn tar(&self) -> Vec<u8> {
            let mut tar = self.tar.clone();
            tar.extend_from_slice(&[0; 1024]);
            tar
        }
    }

    /// Compresses `tar` as `compression` does.
    pub fn compress(compression: Compression, tar: &[u8]) -> Vec<u8> {
        match compression {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(tar).unwrap();
                gz.finish().unwrap()
            }
            Compression::Zstd => {
                ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest)
            }
        }
    }

    /// Blobs and descriptors of `layers`, gzip-compressed.
    pub fn image(layers: &[Layer]) -> (Memory, Vec<Descriptor>) {
        let blobs: Vec<(Compression, Vec<u8>)> = layers
            .iter()
            .map(|l| (Compression::Gzip, compress(Compression::Gzip, &l.tar())))
            .collect();
        image_of(blobs)
    }

    /// Blobs already compressed, with their compression.
    pub fn image_of(blobs: Vec<(Compression, Vec<u8>)>) -> (Memory, Vec<Descriptor>) {
        let mut memory = Memory::new();
        let mut descriptors = Vec::new();
        for (compression, bytes) in blobs {
            let digest = Digest::of(&bytes);
            descriptors.push(Descriptor::new(
                MediaType::OciLayer(compression),
                digest.clone(),
                bytes.len() as u64,
            ));
            memory.insert(digest, bytes);
        }
        (memory, descriptors)
    }

    /// The filesystem of `layers`, keeping `keep`.
    pub fn scan(layers: &[Layer], keep: &[&str]) -> crate::Result<super::RootFs> {
        let (memory, descriptors) = image(layers);
        super::RootFs::scan(&memory, &descriptors, keep)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Layer, compress, image, image_of, scan};
    use super::*;
    use crate::oci::{Compression, Digest, MediaType};

    fn kind(rootfs: &RootFs, path: &str) -> Option<Kind> {
        rootfs.kind(path)
    }

    /// A scan of `layers` within `limits`.
    fn scan_limited(
        memory: &crate::image::blobs::Memory,
        layers: &[Descriptor],
        keep: &[&str],
        limits: Limits,
    ) -> Result<RootFs> {
        scan_checked(memory, layers, None, keep, limits)
    }

    /// A scan of `layers` within `limits`, checked against `diff_ids` when given.
    fn scan_checked(
        memory: &crate::image::blobs::Memory,
        layers: &[Descriptor],
        diff_ids: Option<&[Digest]>,
        keep: &[&str],
        limits: Limits,
    ) -> Result<RootFs> {
        let scan = Scan {
            label: "base test".to_owned(),
            layers,
            diff_ids,
        };
        RootFs::scan_within("test", memory, &scan, keep, limits)
    }

    #[test]
    fn later_layers_replace_earlier_entries() {
        let rootfs = scan(
            &[
                Layer::new()
                    .file("etc/motd", "one")
                    .file("srv/data/a", "a")
                    .dir_owned("home/user/", 0o700, 1000),
                Layer::new()
                    .file("etc/motd", "two")
                    // A file over a directory removes what was below it.
                    .file("srv/data", "now a file")
                    // A directory over a directory only changes its metadata.
                    .dir_owned("home/user", 0o750, 1001),
            ],
            &["/etc/motd"],
        )
        .unwrap();
        assert_eq!(rootfs.file("/etc/motd"), Some(&b"two"[..]));
        assert_eq!(kind(&rootfs, "/srv/data"), Some(Kind::File));
        assert!(!rootfs.exists("/srv/data/a"));
        let home = rootfs.resolve("/home/user").unwrap();
        assert_eq!((home.kind, home.mode, home.uid), (Kind::Dir, 0o750, 1001));
        // Parents nobody wrote are created as unpacking does.
        assert_eq!(kind(&rootfs, "/srv"), Some(Kind::Dir));
        assert_eq!(rootfs.len(), 6);
    }

    #[test]
    fn whiteouts_delete_files_and_whole_directories_of_lower_layers_only() {
        let rootfs = scan(
            &[
                Layer::new()
                    .file("etc/passwd", "x")
                    .file("etc/shadow", "x")
                    .file("opt/tool/bin/tool", "x")
                    .file("opt/tool/lib/libtool.so", "x"),
                Layer::new()
                    .file("etc/shadow", "same layer")
                    .file("etc/.wh.passwd", "")
                    .file("etc/.wh.shadow", "")
                    .file("opt/.wh.tool", "")
                    .file("opt/.wh.absent", "")
                    .file("nowhere/.wh.x", "")
                    .file(".wh..wh.plnk", ""),
            ],
            &[],
        )
        .unwrap();
        assert!(!rootfs.exists("/etc/passwd"));
        assert!(
            rootfs.exists("/etc/shadow"),
            "a whiteout does not hide what its own layer has"
        );
        assert!(!rootfs.exists("/opt/tool/bin/tool"));
        assert!(!rootfs.exists("/opt/tool"));
        assert_eq!(kind(&rootfs, "/opt"), Some(Kind::Dir));
        assert!(!rootfs.exists("/nowhere"), "a whiteout creates nothing");
        assert!(rootfs.lookup("/.wh..wh.plnk").is_none());
    }

    #[test]
    fn opaque_directories_hide_lower_content_but_keep_their_own() {
        let rootfs = scan(
            &[
                Layer::new()
                    .file("app/old", "x")
                    .file("app/sub/old", "x")
                    .file("other/kept", "x"),
                Layer::new()
                    // Before the marker, and in a directory the lower layer had: both stay.
                    .file("app/sub/new", "x")
                    .file("app/.wh..wh..opq", "")
                    .file("app/late", "x"),
            ],
            &[],
        )
        .unwrap();
        assert!(!rootfs.exists("/app/old"));
        assert!(!rootfs.exists("/app/sub/old"));
        assert!(rootfs.exists("/app/sub/new"));
        assert_eq!(kind(&rootfs, "/app/sub"), Some(Kind::Dir));
        assert!(rootfs.exists("/app/late"));
        assert!(rootfs.exists("/other/kept"));
        assert_eq!(rootfs.len(), 6);
    }

    #[test]
    fn symbolic_links_resolve_inside_the_image() {
        let rootfs = scan(
            &[Layer::new()
                .file("usr/lib/libc.so.6", "elf")
                .symlink("lib", "usr/lib")
                .symlink("lib64", "/lib")
                .symlink("usr/lib/libc.so", "libc.so.6")
                .symlink("usr/lib/up", "../../../../usr/lib/libc.so.6")
                .symlink("loop/a", "b")
                .symlink("loop/b", "/loop/a")
                .symlink("dangling", "/nowhere")
                .symlink("through-file", "usr/lib/libc.so.6/x")],
            &[],
        )
        .unwrap();
        let libc = rootfs.resolve("/lib64/libc.so").unwrap();
        assert_eq!(
            (libc.path.as_str(), libc.kind),
            ("/usr/lib/libc.so.6", Kind::File)
        );
        assert_eq!(
            rootfs.resolve("usr/lib/up").unwrap().path,
            "/usr/lib/libc.so.6",
            "`..` stops at the root"
        );
        // `..` after a link goes up from where the link led, as in the kernel: /lib/.. is /usr.
        assert_eq!(
            rootfs.resolve("/lib/../lib/libc.so").unwrap().path,
            "/usr/lib/libc.so.6"
        );
        assert!(rootfs.resolve("/lib/../lib64").is_none());
        let link = rootfs.lookup("/lib64").unwrap();
        assert_eq!(
            (link.kind, link.link.as_deref()),
            (Kind::Symlink, Some("/lib"))
        );
        assert!(rootfs.resolve("/loop/a").is_none(), "loops end");
        assert!(rootfs.resolve("/dangling").is_none());
        assert!(rootfs.lookup("/dangling").is_some());
        assert!(rootfs.resolve("/through-file").is_none());
        assert_eq!(rootfs.resolve("/").unwrap().kind, Kind::Dir);
    }

    #[test]
    fn entries_are_placed_through_the_links_already_in_the_image() {
        let rootfs = scan(
            &[
                Layer::new().dir("usr/lib/").symlink("lib", "usr/lib"),
                Layer::new()
                    .file("lib/x86_64-linux-gnu/libz.so.1", "z")
                    .symlink("lib/libz.so", "x86_64-linux-gnu/libz.so.1"),
            ],
            &["/usr/lib/x86_64-linux-gnu/*"],
        )
        .unwrap();
        assert_eq!(kind(&rootfs, "/lib"), Some(Kind::Dir));
        assert_eq!(rootfs.lookup("/lib").unwrap().kind, Kind::Symlink);
        assert!(
            rootfs
                .lookup("/usr/lib/x86_64-linux-gnu/libz.so.1")
                .is_some()
        );
        assert_eq!(
            rootfs.file("/lib/libz.so"),
            Some(&b"z"[..]),
            "kept by its real path, read through links"
        );
    }

    #[test]
    fn hard_links_share_their_target() {
        let rootfs = scan(
            &[
                Layer::new().file("etc/group", "root:x:0:\n"),
                Layer::new()
                    .hardlink("etc/group-", "./etc/group")
                    .hardlink("bin/copy", "/etc/group"),
            ],
            &["/etc/group*"],
        )
        .unwrap();
        assert_eq!(rootfs.file("/etc/group-"), Some(&b"root:x:0:\n"[..]));
        assert_eq!(kind(&rootfs, "/bin/copy"), Some(Kind::File));
        assert_eq!(rootfs.file("/bin/copy"), None, "not asked for");
        let err = scan(&[Layer::new().hardlink("a", "missing")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer 1 of 1") && err.contains("`a` is a hard link to `missing`"),
            "{err}"
        );
    }

    #[test]
    fn paths_climbing_above_the_root_are_refused() {
        for layer in [
            Layer::new().file("../etc/passwd", "x"),
            Layer::new().file("a/../../x", "x"),
            Layer::new().file("x", "x").hardlink("y", "../../x"),
        ] {
            let err = scan(&[layer], &[]).unwrap_err().to_string();
            assert!(err.contains("climbs above the image root"), "{err}");
        }
        // `..` inside the image and leading `/` or `./` are fine.
        let rootfs = scan(
            &[Layer::new()
                .file("/a/b/../c", "x")
                .file("./d", "x")
                .dir("./")],
            &[],
        )
        .unwrap();
        assert!(rootfs.exists("/a/c") && rootfs.exists("/d") && !rootfs.exists("/a/b"));
    }

    #[test]
    fn files_to_keep_reached_through_links_are_read_by_their_real_path() {
        let rootfs = scan(
            &[
                Layer::new()
                    .file("usr/etc/passwd", "root:x:0:0::/:/bin/sh\n")
                    .file("usr/etc/ld.so.conf.d/a.conf", "/opt/a\n")
                    .file("srv/hosts", "127.0.0.1 localhost\n")
                    .file("usr/share/group", "root:x:0:\n"),
                Layer::new()
                    .symlink("etc", "usr/etc")
                    // Written through the link: placed at /usr/etc/hosts.
                    .hardlink("etc/hosts", "srv/hosts")
                    .symlink("usr/etc/group", "/usr/share/group"),
            ],
            &[
                "/etc/passwd",
                "/etc/group",
                "/etc/hosts",
                "/etc/ld.so.conf.d/*",
            ],
        )
        .unwrap();
        assert_eq!(
            rootfs.file("/etc/passwd"),
            Some(&b"root:x:0:0::/:/bin/sh\n"[..])
        );
        assert_eq!(rootfs.file("/etc/group"), Some(&b"root:x:0:\n"[..]));
        assert_eq!(
            rootfs.file("/etc/hosts"),
            Some(&b"127.0.0.1 localhost\n"[..])
        );
        assert_eq!(
            rootfs.file("/etc/ld.so.conf.d/a.conf"),
            Some(&b"/opt/a\n"[..])
        );
        assert_eq!(rootfs.why_unread("/etc/passwd"), None);
    }

    #[test]
    fn why_a_file_was_not_read_names_its_size_and_real_path() {
        let big = "x".repeat(2048);
        let limits = Limits {
            kept_file: 1024,
            ..LIMITS
        };
        let layers = [Layer::new()
            .file("usr/etc/passwd", &big)
            .symlink("etc", "usr/etc")
            .file("usr/etc/shadow", "s")];
        let (memory, descriptors) = image(&layers);
        let rootfs = scan_limited(&memory, &descriptors, &["/etc/passwd"], limits).unwrap();
        assert_eq!(rootfs.file("/etc/passwd"), None);
        assert_eq!(
            rootfs.why_unread("/etc/passwd").unwrap(),
            "is 2048 bytes (reached through a link: /usr/etc/passwd), more than the 1 KiB read \
             from a base image's file"
        );
        assert_eq!(
            rootfs.why_unread("/usr/etc/passwd").unwrap(),
            "is 2048 bytes, more than the 1 KiB read from a base image's file"
        );
        assert_eq!(
            rootfs.why_unread("/etc/shadow").unwrap(),
            "was not read (reached through a link: /usr/etc/shadow)"
        );
        assert_eq!(rootfs.why_unread("/etc/missing"), None);
    }

    #[test]
    fn kept_files_are_capped() {
        let big = "x".repeat(2048);
        let limits = Limits {
            kept_file: 1024,
            kept_total: 3000,
            ..LIMITS
        };
        let layers = [Layer::new()
            .file("etc/big", &big)
            .file("etc/small", "ok")
            .file("etc/ld.so.conf.d/a.conf", "/opt/a")
            .file("etc/ld.so.conf.d/b.conf", "/opt/b")];
        let (memory, descriptors) = image(&layers);
        let keep = ["/etc/big", "/etc/small", "/etc/ld.so.conf.d/*.conf"];
        let rootfs = scan_limited(&memory, &descriptors, &keep, limits).unwrap();
        assert_eq!(
            rootfs.file("/etc/big"),
            None,
            "larger than a kept file may be"
        );
        assert_eq!(kind(&rootfs, "/etc/big"), Some(Kind::File));
        assert_eq!(rootfs.file("/etc/small"), Some(&b"ok"[..]));
        let kept: Vec<String> = rootfs.kept_files().map(|(path, _)| path).collect();
        assert_eq!(
            kept,
            [
                "/etc/ld.so.conf.d/a.conf",
                "/etc/ld.so.conf.d/b.conf",
                "/etc/small"
            ]
        );
        let many = (0..4).fold(Layer::new(), |layer, i| {
            layer.file(&format!("etc/f{i}"), &"y".repeat(1000))
        });
        let (memory, descriptors) = image(&[many]);
        let err = scan_limited(&memory, &descriptors, &["/etc/*"], limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exceed 2 KiB"), "{err}");
    }

    #[test]
    fn entries_and_names_are_capped() {
        let layer = (0..10).fold(Layer::new(), |layer, i| layer.file(&format!("f{i}"), ""));
        let (memory, descriptors) = image(&[layer]);
        let few = Limits {
            entries: 5,
            ..LIMITS
        };
        let err = scan_limited(&memory, &descriptors, &[], few)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 5 paths"), "{err}");
        let short = Limits {
            name_bytes: 1024,
            ..LIMITS
        };
        let long = (0..20).fold(Layer::new(), |layer, i| {
            layer.symlink(&format!("l{i}"), &"t".repeat(90))
        });
        let (memory, descriptors) = image(&[long]);
        let err = scan_limited(&memory, &descriptors, &[], short)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1 KiB"), "{err}");
        // Removed paths give their room back.
        let churn = [
            (0..4).fold(Layer::new(), |layer, i| layer.file(&format!("d/f{i}"), "")),
            Layer::new().file(".wh.d", ""),
            (0..4).fold(Layer::new(), |layer, i| layer.file(&format!("e/f{i}"), "")),
        ];
        let (memory, descriptors) = image(&churn);
        assert!(scan_limited(&memory, &descriptors, &[], few).is_ok());
    }

    #[test]
    fn long_paths_and_deep_link_walks_are_bounded() {
        // Longer than PATH_MAX: no runtime could create it. (PAX headers carry the long names.)
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("{}/f", "d".repeat(MAX_PATH));
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &long, &b""[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let (memory, descriptors) = image_of(vec![(Compression::None, tar)]);
        let err = RootFs::scan(&memory, &descriptors, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than 4096 bytes"), "{err}");
        // Every entry placed through a link to a deep directory costs a walk; the total is capped.
        let deep = "a/".repeat(50);
        let mut layer = Layer::new().dir(&deep).symlink("l", &deep);
        for i in 0..20 {
            layer = layer
                .file(&format!("l/f{i}"), "")
                .file(&format!("x{i}"), "");
        }
        let (memory, descriptors) = image(&[layer]);
        let few = Limits {
            steps: 500,
            ..LIMITS
        };
        let err = scan_limited(&memory, &descriptors, &[], few)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 500 lookups"), "{err}");
        let rootfs = RootFs::scan(&memory, &descriptors, &[]).unwrap();
        assert_eq!(rootfs.kind(&format!("/{deep}f19")), Some(Kind::File));
    }

    #[test]
    fn zstd_and_uncompressed_layers_are_read() {
        let lower = Layer::new()
            .file("etc/os-release", "ID=test\n")
            .file("bin/sh", "");
        let upper = Layer::new().file("bin/.wh.sh", "");
        let (memory, descriptors) = image_of(vec![
            (Compression::Zstd, compress(Compression::Zstd, &lower.tar())),
            (Compression::None, upper.tar()),
        ]);
        let rootfs = RootFs::scan(&memory, &descriptors, &["/etc/os-release"]).unwrap();
        assert_eq!(rootfs.file("/etc/os-release"), Some(&b"ID=test\n"[..]));
        assert!(!rootfs.exists("/bin/sh"));
    }

    #[test]
    fn every_blob_is_read_to_its_end_so_its_digest_is_checked() {
        // A plain layer with data after the end of its tar: the walker stops before it.
        let mut tar = Layer::new().file("a", "x").tar();
        tar.extend_from_slice(&[0; 4096]);
        let mut claimed = tar.clone();
        *claimed.last_mut().unwrap() = 1;
        let (mut memory, mut descriptors) = image_of(vec![(Compression::None, claimed)]);
        memory.insert(descriptors[0].digest.clone(), tar);
        let err = RootFs::scan(&memory, &descriptors, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 1 of 1"), "{err}");
        descriptors[0].media_type = MediaType::DockerForeignLayer;
        let err = RootFs::scan(&memory, &descriptors, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a layer type that can be read"), "{err}");
        descriptors[0].media_type = MediaType::OciLayer(Compression::Gzip);
        descriptors[0].digest = Digest::of(b"nothing");
        assert!(RootFs::scan(&memory, &descriptors, &[]).is_err());
    }

    #[test]
    fn patterns_match_whole_components() {
        assert!(path_matches(
            "/etc/ld.so.conf.d/*.conf",
            "/etc/ld.so.conf.d/libc.conf"
        ));
        assert!(!path_matches(
            "/etc/ld.so.conf.d/*.conf",
            "/etc/ld.so.conf.d/x/y.conf"
        ));
        assert!(path_matches(
            "/etc/ld-musl-*.path",
            "/etc/ld-musl-x86_64.path"
        ));
        assert!(path_matches("/etc/passw?", "/etc/passwd"));
        assert!(!path_matches("/etc/passwd", "/etc/passwd-"));
        assert!(path_matches("/a/*b*c", "/a/xxbyyc"));
        assert!(!path_matches("/a/*b*c", "/a/xxbyy"));
        assert!(RootFs::scan(&crate::image::blobs::Memory::new(), &[], &["etc/passwd"]).is_err());
    }

    #[test]
    fn each_layer_must_decompress_to_the_diff_id_its_config_lists() {
        let lower = Layer::new().file("etc/os-release", "ID=test\n").tar();
        // Data after the end of the tar is part of the layer's diff id too.
        let mut upper = Layer::new().file("etc/motd", "hi").tar();
        upper.extend_from_slice(&[0; 2048]);
        let plain = Layer::new().file("a", "x").tar();
        let (memory, descriptors) = image_of(vec![
            (Compression::Gzip, compress(Compression::Gzip, &lower)),
            (Compression::Zstd, compress(Compression::Zstd, &upper)),
            (Compression::None, plain.clone()),
        ]);
        let diff_ids = [Digest::of(&lower), Digest::of(&upper), Digest::of(&plain)];
        let rootfs =
            scan_checked(&memory, &descriptors, Some(&diff_ids), &["/etc/*"], LIMITS).unwrap();
        assert_eq!(rootfs.file("/etc/motd"), Some(&b"hi"[..]));

        let mut wrong = diff_ids.clone();
        wrong[1] = Digest::of(&upper[..upper.len() - 2048]);
        let err = scan_checked(&memory, &descriptors, Some(&wrong), &[], LIMITS)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("base test: layer 2 of 3")
                && err.contains(&format!(
                    "its content decompresses to {}, but the config lists diff_id {}",
                    diff_ids[1], wrong[1]
                )),
            "{err}"
        );
        let err = scan_checked(&memory, &descriptors, Some(&diff_ids[..2]), &[], LIMITS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its config lists 2 layer diff ids for 3 layers"),
            "{err}"
        );
    }

    #[test]
    fn a_layer_whose_first_bytes_are_another_compression_is_refused() {
        let tar = Layer::new().file("a", "x").tar();
        for (labelled, content, found) in [
            (Compression::Gzip, Compression::Zstd, "zstd"),
            (Compression::Zstd, Compression::Gzip, "gzip"),
            (Compression::None, Compression::Gzip, "gzip"),
            (Compression::Gzip, Compression::None, "an uncompressed tar"),
        ] {
            let (memory, mut descriptors) = image_of(vec![(content, compress(content, &tar))]);
            descriptors[0].media_type = MediaType::OciLayer(labelled);
            let err = RootFs::scan(&memory, &descriptors, &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("its content is {found}, but its media type says"))
                    && err.contains(descriptors[0].media_type.as_str()),
                "{err}"
            );
        }
        // A blob damaged in its first bytes is reported as damaged.
        let (mut memory, descriptors) =
            image_of(vec![(Compression::Gzip, compress(Compression::Gzip, &tar))]);
        let mut damaged = compress(Compression::Gzip, &tar);
        damaged[0] ^= 0xff;
        memory.insert(descriptors[0].digest.clone(), damaged);
        let err = RootFs::scan(&memory, &descriptors, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is corrupt"), "{err}");
    }

    #[test]
    fn the_layers_together_expand_to_the_limit_and_no_more() {
        let one = Layer::new().file("a", &"x".repeat(5000)).tar();
        let two = Layer::new().file("b", &"y".repeat(5000)).tar();
        let total = (one.len() + two.len()) as u64;
        let (memory, descriptors) = image_of(vec![
            (Compression::Zstd, compress(Compression::Zstd, &one)),
            (Compression::Gzip, compress(Compression::Gzip, &two)),
        ]);
        let exact = Limits {
            expanded: total,
            ..LIMITS
        };
        assert!(scan_limited(&memory, &descriptors, &[], exact).is_ok());
        let less = Limits {
            expanded: total - 1,
            ..LIMITS
        };
        let err = scan_limited(&memory, &descriptors, &[], less)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("base test: layer 2 of 2")
                && err.contains("the layers decompress to more than 12 KiB together")
                && err.contains(MAX_EXPANDED_VAR),
            "{err}"
        );
    }

    #[test]
    fn sizes_read_as_bytes_or_with_binary_units() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size(" 16 GiB "), Some(16 << 30));
        assert_eq!(parse_size("2t"), Some(2 << 40));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
        assert_eq!(parse_size("17179869184TiB"), None, "overflows");
        assert_eq!(amount(MAX_EXPANDED), "8 GiB");
    }

    #[test]
    fn only_directories_reached_through_working_links_take_entries() {
        let rootfs = scan(
            &[Layer::new()
                .dir("usr/bin/")
                .file("etc/motd", "hi")
                .symlink("bin", "usr/bin")
                .symlink("sbin", "/bin")
                .symlink("usr/self", "self")
                .symlink("a", "/b")
                .symlink("b", "a")
                .symlink("opt", "/nowhere/deeper")
                .symlink("motd", "etc/motd")
                .symlink("under-file", "/etc/motd/x")],
            &[],
        )
        .unwrap();
        for path in ["/usr", "/bin", "/sbin", "/sbin/", "/missing-but-plain"] {
            let expected = if path == "/missing-but-plain" {
                Err(Unplaceable::Missing("/missing-but-plain".to_owned()))
            } else {
                Ok(())
            };
            assert_eq!(rootfs.placeable_dir(path), expected, "{path}");
        }
        assert_eq!(rootfs.placeable_dir("/usr/self"), Err(Unplaceable::Loop));
        assert_eq!(rootfs.placeable_dir("/a"), Err(Unplaceable::Loop));
        assert_eq!(
            rootfs.placeable_dir("/opt"),
            Err(Unplaceable::Missing("/nowhere/deeper".to_owned()))
        );
        assert_eq!(
            rootfs.placeable_dir("/motd"),
            Err(Unplaceable::NotDir("/etc/motd".to_owned()))
        );
        assert_eq!(
            rootfs.placeable_dir("/under-file"),
            Err(Unplaceable::NotDir("/etc/motd".to_owned()))
        );
    }
}
