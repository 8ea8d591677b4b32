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
//!
//! One job a module: `scan` reads the layers (each blob checked, decompressed and walked), `apply`
//! places each entry, `whiteout` applies the deletions, `tree` holds the nodes within their caps,
//! `lookup` follows paths through links as the kernel does, `kept` keeps the content of the files
//! asked for, `paths` splits entry paths, and `limits` holds the bounds of it all.

use std::collections::BTreeMap;

mod apply;
mod kept;
mod limits;
mod lookup;
mod paths;
mod scan;
/// Layers built in memory, for the tests of this module and of those that read a base.
#[cfg(test)]
pub(crate) mod testing;
mod tree;
mod whiteout;

pub(crate) use kept::path_matches;
pub use limits::{
    MAX_ENTRIES, MAX_EXPANDED, MAX_EXPANDED_VAR, MAX_KEPT_FILE, MAX_KEPT_TOTAL, MAX_LINK_HOPS,
    MAX_NAME_BYTES, MAX_PATH, MAX_SCANS, max_expanded,
};
pub use lookup::Unplaceable;

use kept::Unread;
use limits::Limits;
use tree::{Id, Node};

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A regular file (or a hard link to one).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// An entry type no runtime creates a file for (GNU volume labels and the like).
    Other,
}

/// One path of the image, as [`RootFs::lookup`] and [`RootFs::resolve`] find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The real path: absolute, through no symbolic link (`/` for the root).
    pub path: String,
    /// File, directory, link or other entry type.
    pub kind: Kind,
    /// Permission bits as the layer stored them (setuid, setgid and sticky included).
    pub mode: u32,
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// The target as stored, for a symbolic link ([`RootFs::lookup`] only: `resolve` follows it).
    pub link: Option<String>,
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

    /// Bytes the layers decompressed to: the image's unpacked size.
    pub fn expanded(&self) -> u64 {
        self.expanded
    }

    /// True for an image with no path but its root.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}
