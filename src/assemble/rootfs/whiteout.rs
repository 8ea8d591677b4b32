//! Whiteouts, as the OCI layer rules define them: `.wh.NAME` deletes NAME and everything below it from
//! the lower layers, `.wh..wh..opq` hides what the lower layers had below its directory, and other
//! `.wh..wh.*` names (aufs bookkeeping) are ignored. What the entry's own layer wrote stays.

use std::collections::BTreeSet;

use super::RootFs;
use super::apply::Problem;
use super::paths::WHITEOUT;
use super::tree::Id;

/// The whiteout that hides everything lower layers had in its directory.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Names aufs keeps for itself, which hide nothing.
const AUFS_META: &[u8] = b".wh..wh.";

impl RootFs {
    /// Applies the whiteout `name` of layer `layer`, found in the directory `parent` (components as
    /// written in the layer): it deletes from the lower layers, and creates nothing.
    pub(super) fn apply_whiteout(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        layer: u32,
    ) -> Result<(), Problem> {
        if name == OPAQUE {
            if let Some(dir) = self.existing_dir(parent)? {
                self.remove_lower(dir, false, layer);
            }
        } else if !name.starts_with(AUFS_META) {
            let hidden = &name[WHITEOUT.len()..];
            if !matches!(hidden, b"" | b"." | b"..")
                && let Some(dir) = self.existing_dir(parent)?
                && let Some(&target) = self.node(dir).children.get(hidden)
            {
                self.remove_lower(target, true, layer);
            }
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::testing::{Layer, kind, scan};

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
}
