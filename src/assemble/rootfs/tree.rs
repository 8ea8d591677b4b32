//! The tree the layers are merged into: nodes by index, each directory's children by name, and the
//! insertions and removals that keep [`MAX_ENTRIES`](super::MAX_ENTRIES) and
//! [`MAX_NAME_BYTES`](super::MAX_NAME_BYTES).

use std::collections::BTreeMap;

use super::limits::{Limits, amount};
use super::{Kind, RootFs};

/// A node of the tree: its index in [`RootFs::nodes`].
pub(super) type Id = u32;

/// The root directory's node, which is never freed.
pub(super) const ROOT: Id = 0;

/// What an entry says about its path.
#[derive(Clone, Debug)]
pub(super) struct Meta {
    pub(super) kind: Kind,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) link: Option<Box<[u8]>>,
}

/// One path of the tree.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) name: Box<[u8]>,
    pub(super) parent: Id,
    /// Components from the root.
    pub(super) depth: u32,
    /// Index of the layer that last wrote the node: whiteouts only delete what lower layers hold.
    pub(super) layer: u32,
    pub(super) meta: Meta,
    /// By name, for a directory.
    pub(super) children: BTreeMap<Box<[u8]>, Id>,
}

impl RootFs {
    /// An empty filesystem: its root directory alone, to be filled keeping `keep` within `limits`.
    pub(super) fn new(name: &str, keep: Vec<Vec<Vec<u8>>>, limits: Limits) -> RootFs {
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

    /// The node `id`.
    pub(super) fn node(&self, id: Id) -> &Node {
        &self.nodes[id as usize]
    }

    /// The node `id`, to change it.
    pub(super) fn node_mut(&mut self, id: Id) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// The names from the root down to `id`.
    pub(super) fn names_of(&self, mut id: Id) -> Vec<&[u8]> {
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
    pub(super) fn path_of(&self, id: Id) -> String {
        format!(
            "/{}",
            String::from_utf8_lossy(&self.names_of(id).join(&b'/'))
        )
    }

    /// Places an entry named `name` in the directory `dir`, as unpacking does; returns its node.
    pub(super) fn insert(
        &mut self,
        dir: Id,
        name: &[u8],
        meta: Meta,
        layer: u32,
    ) -> Result<Id, String> {
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
        let id = if let Some(id) = self.free.pop() {
            *self.node_mut(id) = node;
            id
        } else {
            let id = Id::try_from(self.nodes.len())
                .map_err(|_| "the image holds too many paths".to_owned())?;
            self.nodes.push(node);
            id
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
    pub(super) fn free(&mut self, id: Id) {
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
}

#[cfg(test)]
mod tests {
    use super::super::limits::LIMITS;
    use super::super::testing::{Layer, image, scan_limited};
    use super::*;

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
}
