//! The content of the few files a scan is asked to keep (`/etc/passwd`, `/etc/ld.so.conf.d/*` ...):
//! which files are wanted, their content within [`MAX_KEPT_FILE`](super::MAX_KEPT_FILE) and
//! [`MAX_KEPT_TOTAL`](super::MAX_KEPT_TOTAL), the real paths of those reached through links, and why
//! a file has none.

use std::io::Read;

use crate::error::{Error, Result};
use crate::tar::read::{EntryHead, TarSource, Walker};

use super::apply::Problem;
use super::limits::amount;
use super::lookup::Walk;
use super::paths::{components, shown};
use super::tree::{Id, ROOT};
use super::{Kind, RootFs};

/// Why the content of a file to keep was not kept.
#[derive(Clone, Debug)]
pub(super) enum Unread {
    /// Larger than a kept file may be: its size.
    TooLarge(u64),
    /// A hard link to a file not kept then: that file's path.
    LinkedTo(String),
}

impl RootFs {
    /// The content of `path` (links followed), when it is a regular file that was asked to be kept and
    /// its content could be: a file larger than [`MAX_KEPT_FILE`](super::MAX_KEPT_FILE) has none ([`RootFs::why_unread`]
    /// says why one has none).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        let id = self.find(path, true)?;
        self.kept.get(&id).map(Vec::as_slice)
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

    /// Keeps the content of the wanted file `id`, placed by the entry `head`: read from the layer, or
    /// for a hard link (to `hard_link_to`) its target's; or notes why it has none.
    pub(super) fn keep_content<R: TarSource>(
        &mut self,
        walker: &mut Walker<R>,
        head: &EntryHead,
        id: Id,
        hard_link_to: Option<Id>,
    ) -> Result<(), Problem> {
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
                    "the files kept from the image (the last `{}`) exceed {}",
                    shown(&head.path),
                    amount(self.limits.kept_total as u64)
                )));
            }
            self.kept.insert(id, content);
        }
        Ok(())
    }

    /// True when the content of the file `id` is to be kept.
    pub(super) fn wanted(&self, id: Id) -> bool {
        let depth = self.node(id).depth as usize;
        if !self.keep.iter().any(|pattern| pattern.len() == depth) {
            return false;
        }
        let names = self.names_of(id);
        self.keep.iter().any(|pattern| matches(pattern, &names))
    }

    /// The real paths of the files to keep that were reached through links, as patterns, when not
    /// kept already: a kept pattern's literal directories (or whole path) resolved, and the files hard
    /// links to be kept point at.
    pub(super) fn real_paths_to_keep(&self) -> Vec<Vec<Vec<u8>>> {
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
}

/// The files to keep, `keep`, as patterns split in components; each must be an absolute path.
pub(super) fn patterns(keep: &[&str]) -> Result<Vec<Vec<Vec<u8>>>> {
    keep.iter()
        .map(|pattern| {
            if !pattern.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "a file to keep from a base image must be an absolute path, not `{pattern}`"
                )));
            }
            Ok(components(pattern.as_bytes()).map(<[u8]>::to_vec).collect())
        })
        .collect()
}

/// True when the absolute `path` matches `pattern`, component by component, with `*` (any run of
/// characters but `/`) and `?` (one character), as the files to keep are written.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<Vec<u8>> = components(pattern.as_bytes()).map(<[u8]>::to_vec).collect();
    let names: Vec<&[u8]> = components(path.as_bytes()).collect();
    matches(&pattern, &names)
}

/// True when `names`, a path's components, match `pattern` one by one.
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

#[cfg(test)]
mod tests {
    use super::super::limits::{LIMITS, Limits};
    use super::super::testing::{Layer, image, kind, scan, scan_limited};
    use super::*;
    use crate::util::cancel::CancelToken;

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
        assert!(
            RootFs::scan(
                &crate::image::blobs::Memory::new(),
                &[],
                &["etc/passwd"],
                &CancelToken::new()
            )
            .is_err()
        );
    }
}
