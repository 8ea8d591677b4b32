//! Following a path through the tree as the kernel resolves it: symbolic links (absolute from the
//! image root, relative from their directory), `..` stopping at the root, at most
//! [`MAX_LINK_HOPS`] links; and what a path leads to.

use std::collections::VecDeque;

use super::limits::MAX_LINK_HOPS;
use super::paths::split;
use super::tree::{Id, ROOT};
use super::{Kind, Resolved, RootFs};

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
pub(super) enum Walk {
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

impl RootFs {
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

    /// The node `path` leads to, a link at its end followed when `follow`.
    pub(super) fn find(&self, path: &str, follow: bool) -> Option<Id> {
        let mut steps = 0;
        match self.walk(ROOT, split(path.as_bytes()), 0, follow, &mut steps) {
            Walk::Found(id) => Some(id),
            _ => None,
        }
    }

    /// The node `id`, as the public API describes a path.
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

    /// Walks `pending` from the directory `at` as the kernel resolves a path, following links (the last
    /// one only when `follow_last`); `steps` counts the components walked.
    pub(super) fn walk(
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Layer, scan};
    use super::*;

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
