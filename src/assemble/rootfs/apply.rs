//! Applying one tar entry of a layer as a runtime unpacks it: its path checked and normalized, its
//! parent directories reached through the links already in the image (missing ones created), a hard
//! link pointed at the file it names, and the entry placed over what was there.

use crate::tar::read::{EntryHead, TarSource, Walker};

use super::limits::MAX_PATH;
use super::lookup::Walk;
use super::paths::{Split, WHITEOUT, normalize, shown};
use super::tree::{Id, Meta, ROOT};
use super::{Kind, RootFs};

/// Why an entry could not be applied.
pub(super) enum Problem {
    Io(std::io::Error),
    Layer(String),
}

/// What an entry puts at its path, as [`RootFs::placed`] finds it.
struct Placed {
    meta: Meta,
    /// For a hard link: the node whose content it shares.
    hard_link_to: Option<Id>,
}

/// The parent components and name of the entry `head` (shown as `path` in messages), `None` for the
/// root itself; a path or link target longer than [`MAX_PATH`] or climbing above the root is refused.
fn entry_path(head: &EntryHead, path: &str) -> Result<Option<Split>, Problem> {
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
    normalize(&head.path)
        .ok_or_else(|| Problem::Layer(format!("`{path}` climbs above the image root")))
}

impl RootFs {
    /// Applies one entry of layer `layer` as unpacking does: a whiteout deletes, anything else is
    /// placed over what its path held, and a regular file's content is kept when it is wanted.
    pub(super) fn apply_entry<R: TarSource>(
        &mut self,
        walker: &mut Walker<R>,
        head: &EntryHead,
        layer: u32,
    ) -> Result<(), Problem> {
        let path = shown(&head.path);
        let Some((parent, name)) = entry_path(head, &path)? else {
            // The root itself (`./`): it stays what it is.
            return Ok(());
        };
        if name.starts_with(WHITEOUT) {
            return self.apply_whiteout(&parent, &name, layer);
        }
        let dir = self
            .parent_for_write(&parent, layer)
            .map_err(|what| Problem::Layer(format!("`{path}` cannot be placed: {what}")))?;
        let Some(Placed { meta, hard_link_to }) = self.placed(head, dir, &name, &path)? else {
            return Ok(());
        };
        let is_file = meta.kind == Kind::File;
        let id = self
            .insert(dir, &name, meta, layer)
            .map_err(Problem::Layer)?;
        if !is_file || !self.wanted(id) {
            return Ok(());
        }
        self.keep_content(walker, head, id, hard_link_to)
    }

    /// What the entry `head`, named `name` in the directory `dir`, puts there: its metadata, or for a
    /// hard link its target's, and the node the hard link shares. `None` for a hard link to the very
    /// node it would replace, which stays as it is.
    fn placed(
        &mut self,
        head: &EntryHead,
        dir: Id,
        name: &[u8],
        path: &str,
    ) -> Result<Option<Placed>, Problem> {
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
                if self.node(dir).children.get(name) == Some(&linked) {
                    return Ok(None);
                }
                meta = self.node(linked).meta.clone();
                hard_link_to = Some(linked);
            }
            tar::EntryType::Char => meta.kind = Kind::CharDevice,
            tar::EntryType::Block => meta.kind = Kind::BlockDevice,
            tar::EntryType::Fifo => meta.kind = Kind::Fifo,
            _ => meta.kind = Kind::Other,
        }
        Ok(Some(Placed { meta, hard_link_to }))
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
    pub(super) fn existing_dir(&mut self, parent: &[Vec<u8>]) -> Result<Option<Id>, Problem> {
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
}

#[cfg(test)]
mod tests {
    use super::super::limits::{LIMITS, Limits};
    use super::super::testing::{Layer, image, image_of, kind, scan, scan_limited};
    use super::*;
    use crate::oci::Compression;
    use crate::util::cancel::CancelToken;

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
        let err = RootFs::scan(&memory, &descriptors, &[], &CancelToken::new())
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
        let rootfs = RootFs::scan(&memory, &descriptors, &[], &CancelToken::new()).unwrap();
        assert_eq!(rootfs.kind(&format!("/{deep}f19")), Some(Kind::File));
    }
}
