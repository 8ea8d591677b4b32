//! Will a dynamically linked program start on a base image? Its ELF interpreter must be a file in the
//! image and each library it names in DT_NEEDED must be found where the loader looks.
//!
//! This is a best-effort approximation of what glibc's and musl's loaders do, from the base's file
//! index alone:
//! - glibc reads `/etc/ld.so.cache`, which `ldconfig` builds from `/etc/ld.so.conf`; the cache is not
//!   parsed here, the directories of `/etc/ld.so.conf` (and the files it `include`s, when they were
//!   kept by the scan, see [`LOADER_FILES`]) stand for it. A stale cache, `hwcap` lines and the
//!   `glibc-hwcaps` subdirectories are not taken into account.
//! - the default directories are the union of those distributions build their loaders with (Debian's
//!   multiarch directories, `/lib64` and `/usr/lib64`, `/lib` and `/usr/lib`), not those of the base's
//!   own loader; musl's are `/lib`, `/usr/local/lib` and `/usr/lib`, or `/etc/ld-musl-ARCH.path`.
//! - only the program's own DT_NEEDED are checked, not what those libraries need in turn, and a file
//!   with the right name counts as found whatever its machine or class (its content is not read).
//! - relative directories and library paths are taken from the root, the working directory of a
//!   container without `WorkingDir`.

use std::collections::HashSet;
use std::fmt;

use crate::assemble::elf::Linkage;
use crate::assemble::rootfs::{Kind, RootFs, path_matches};
use crate::oci::platform::Platform;

/// The files [`RootFs::scan`] must keep for [`check_dynamic`] to read the loader's configuration.
pub const LOADER_FILES: &[&str] = &[
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/*",
    "/etc/ld-musl-*.path",
];

/// Nested `include`s followed in `ld.so.conf`.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Files of the `ld.so.conf` tree read, each once: distributions ship one `ld.so.conf` and a dozen or
/// so files in `ld.so.conf.d`.
const MAX_CONF_FILES: usize = 256;
/// Lines read from all those files together: real ones hold a few dozen.
const MAX_CONF_LINES: usize = 10_000;
/// Distinct `include` patterns expanded: real configurations have one (`ld.so.conf.d/*.conf`), and
/// each costs a pass over the kept files.
const MAX_INCLUDE_PATTERNS: usize = 64;
/// Directories searched, all sources together and without repeats: real systems search a few dozen,
/// and each costs a lookup per needed library.
const MAX_SEARCH_DIRS: usize = 1_000;
/// Directories named in a message; the rest are counted.
const SHOWN_DIRS: usize = 32;

/// What the base image lacks for a program to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The base image, as [`RootFs::describe`] names it.
    pub image: String,
    /// The interpreter (PT_INTERP), when it is not a file in the image.
    pub interpreter: Option<String>,
    /// The DT_NEEDED libraries found in none of `searched`.
    pub libraries: Vec<String>,
    /// The directories searched for libraries, in the loader's order.
    pub searched: Vec<String>,
    /// The loader's configuration (or the search path) went past a limit and was read only in part:
    /// a library may be in a directory that was not searched.
    pub partial: bool,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<&str> = self.interpreter.iter().map(String::as_str).collect();
        items.extend(self.libraries.iter().map(String::as_str));
        let list = match items.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => "nothing".to_owned(),
        };
        write!(f, "{} lacks {list}", self.image)?;
        if !self.libraries.is_empty() {
            let shown = &self.searched[..self.searched.len().min(SHOWN_DIRS)];
            write!(f, " (searched {}", shown.join(", "))?;
            if self.searched.len() > shown.len() {
                write!(f, " and {} more", self.searched.len() - shown.len())?;
            }
            if self.partial {
                write!(
                    f,
                    "; the loader's configuration was read only up to this tool's limits"
                )?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for Missing {}

/// Checks that `rootfs` has what a program with `linkage`, placed at `program` (absolute, in the
/// image), needs to start: the interpreter as a file (links followed), and every DT_NEEDED library in
/// the directories of [`search_path`]. `library_path` is the image's `LD_LIBRARY_PATH`, if its
/// environment sets one. A static program needs nothing. Everything missing is reported at once.
pub fn check_dynamic(
    linkage: &Linkage,
    program: &str,
    library_path: Option<&str>,
    rootfs: &RootFs,
    platform: &Platform,
) -> Result<(), Missing> {
    let Linkage::Dynamic {
        interpreter,
        needed,
        ..
    } = linkage
    else {
        return Ok(());
    };
    let interpreter = interpreter
        .as_ref()
        .filter(|path| rootfs.kind(path) != Some(Kind::File))
        .cloned();
    let searched = search_dirs(linkage, program, library_path, rootfs, platform);
    let libraries: Vec<String> = needed
        .iter()
        .filter(|name| !has_library(rootfs, &searched.dirs, name))
        .cloned()
        .collect();
    if interpreter.is_none() && libraries.is_empty() {
        return Ok(());
    }
    Err(Missing {
        image: rootfs.describe().to_owned(),
        interpreter,
        libraries,
        searched: searched.dirs,
        partial: searched.cut,
    })
}

/// The directories the loader searches for the libraries of a program with `linkage` at `program`, in
/// its order, without repeats: for glibc DT_RPATH (unless there is a DT_RUNPATH), `LD_LIBRARY_PATH`,
/// DT_RUNPATH, the `ld.so.conf` directories, then the defaults; for musl (an interpreter named
/// `ld-musl-*`) `LD_LIBRARY_PATH`, DT_RUNPATH or else DT_RPATH, then `/etc/ld-musl-ARCH.path` or the
/// defaults. `$ORIGIN` is the program's directory; `$LIB` and `$PLATFORM` take the values distributions
/// use for `platform`. The `ld.so.conf` tree and the list are read within fixed limits (at most
/// `MAX_SEARCH_DIRS` directories), whatever the base holds.
pub fn search_path(
    linkage: &Linkage,
    program: &str,
    library_path: Option<&str>,
    rootfs: &RootFs,
    platform: &Platform,
) -> Vec<String> {
    search_dirs(linkage, program, library_path, rootfs, platform).dirs
}

/// The directories searched, in order and without repeats, and whether a limit cut them short.
#[derive(Debug, Default)]
struct SearchDirs {
    dirs: Vec<String>,
    seen: HashSet<String>,
    cut: bool,
}

impl SearchDirs {
    /// Adds `dir` unless it is there already; false when it is new but [`MAX_SEARCH_DIRS`] are
    /// there (the search is then cut short).
    fn push(&mut self, dir: String) -> bool {
        if self.seen.contains(&dir) {
            return true;
        }
        if self.dirs.len() >= MAX_SEARCH_DIRS {
            self.cut = true;
            return false;
        }
        self.seen.insert(dir.clone());
        self.dirs.push(dir);
        true
    }

    /// Adds each of `dirs` until one does not fit.
    fn extend(&mut self, dirs: impl IntoIterator<Item = String>) -> bool {
        dirs.into_iter().all(|dir| self.push(dir))
    }
}

/// [`search_path`], and whether it is complete.
fn search_dirs(
    linkage: &Linkage,
    program: &str,
    library_path: Option<&str>,
    rootfs: &RootFs,
    platform: &Platform,
) -> SearchDirs {
    let mut dirs = SearchDirs::default();
    let Linkage::Dynamic {
        interpreter,
        rpath,
        runpath,
        ..
    } = linkage
    else {
        return dirs;
    };
    let tokens = Tokens::new(program, rootfs, platform);
    let env = library_path
        .unwrap_or_default()
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(str::to_owned);
    let elf_path = if runpath.is_empty() { rpath } else { runpath };
    let musl_arch = interpreter
        .as_deref()
        .and_then(|path| path.rsplit('/').next())
        .and_then(|name| name.strip_prefix("ld-musl-"))
        .map(|rest| rest.split('.').next().unwrap_or(rest));
    if let Some(arch) = musl_arch {
        dirs.extend(env);
        dirs.extend(elf_path.iter().flat_map(|dir| tokens.expand(dir)));
        match rootfs.file(&format!("/etc/ld-musl-{arch}.path")) {
            Some(content) => dirs.extend(
                String::from_utf8_lossy(content)
                    .split(['\n', ':'])
                    .map(str::trim)
                    .filter(|dir| !dir.is_empty())
                    .map(str::to_owned),
            ),
            None => dirs.extend(["/lib", "/usr/local/lib", "/usr/lib"].map(str::to_owned)),
        };
    } else {
        if runpath.is_empty() {
            dirs.extend(rpath.iter().flat_map(|dir| tokens.expand(dir)));
        }
        dirs.extend(env);
        dirs.extend(runpath.iter().flat_map(|dir| tokens.expand(dir)));
        let mut conf = LdSoConf::new(rootfs);
        conf.read("/etc/ld.so.conf", 0, &mut dirs);
        dirs.cut |= conf.stopped;
        dirs.extend(glibc_defaults(platform));
    }
    dirs
}

/// True when `name` (a file name, or a path when it holds a `/`) is a file in one of `dirs`.
fn has_library(rootfs: &RootFs, dirs: &[String], name: &str) -> bool {
    if name.contains('/') {
        return rootfs.kind(name) == Some(Kind::File);
    }
    dirs.iter()
        .any(|dir| rootfs.kind(&format!("{dir}/{name}")) == Some(Kind::File))
}

/// A reading of `/etc/ld.so.conf` and the files it `include`s, as ldconfig reads them: each file at
/// most once (a file included again adds nothing new, since directories are kept once, in the order
/// first seen), each distinct `include` pattern expanded once, within the limits above.
struct LdSoConf<'a> {
    rootfs: &'a RootFs,
    /// The kept files' paths, listed on the first `include`.
    kept: Option<Vec<String>>,
    /// The files read (or being read, up the include chain).
    read: HashSet<String>,
    patterns: HashSet<String>,
    lines: usize,
    /// A limit was reached: nothing more is read.
    stopped: bool,
}

impl<'a> LdSoConf<'a> {
    fn new(rootfs: &'a RootFs) -> LdSoConf<'a> {
        LdSoConf {
            rootfs,
            kept: None,
            read: HashSet::new(),
            patterns: HashSet::new(),
            lines: 0,
            stopped: false,
        }
    }

    /// Adds the directories `path` lists to `dirs`, and those of the kept files its `include` lines
    /// name (relative patterns are relative to the including file's directory). A limit reached
    /// stops the reading.
    fn read(&mut self, path: &str, depth: usize, dirs: &mut SearchDirs) {
        if self.stopped || depth > MAX_INCLUDE_DEPTH || self.read.contains(path) {
            return;
        }
        let Some(content) = self.rootfs.file(path) else {
            return;
        };
        if self.read.len() >= MAX_CONF_FILES {
            self.stopped = true;
            return;
        }
        self.read.insert(path.to_owned());
        let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        for line in String::from_utf8_lossy(content).lines() {
            if self.stopped {
                return;
            }
            self.lines += 1;
            if self.lines > MAX_CONF_LINES {
                self.stopped = true;
                return;
            }
            let line = line.split('#').next().unwrap_or_default().trim();
            if let Some(patterns) = line.strip_prefix("include")
                && patterns.starts_with([' ', '\t'])
            {
                for pattern in patterns.split_whitespace() {
                    let pattern = if pattern.starts_with('/') {
                        pattern.to_owned()
                    } else {
                        format!("{base}/{pattern}")
                    };
                    if self.patterns.contains(&pattern) {
                        continue;
                    }
                    if self.patterns.len() >= MAX_INCLUDE_PATTERNS {
                        self.stopped = true;
                        return;
                    }
                    let rootfs = self.rootfs;
                    let kept = self
                        .kept
                        .get_or_insert_with(|| rootfs.kept_files().map(|(file, _)| file).collect());
                    let included: Vec<String> = kept
                        .iter()
                        .filter(|file| path_matches(&pattern, file))
                        .cloned()
                        .collect();
                    self.patterns.insert(pattern);
                    for file in included {
                        self.read(&file, depth + 1, dirs);
                    }
                }
            } else if !line.starts_with("hwcap") {
                let listed = line
                    .split([' ', '\t', ':', ','])
                    .filter(|dir| dir.starts_with('/'))
                    .map(|dir| dir.trim_end_matches('/').to_owned());
                if !dirs.extend(listed) {
                    self.stopped = true;
                }
            }
        }
    }
}

/// Where glibc loaders look when nothing else says: Debian's multiarch directories, then the
/// `lib64` directories of Fedora and SUSE on 64-bit machines, then `/lib` and `/usr/lib`.
fn glibc_defaults(platform: &Platform) -> Vec<String> {
    let mut dirs = Vec::new();
    if let Some(triplet) = multiarch(platform) {
        dirs.push(format!("/lib/{triplet}"));
        dirs.push(format!("/usr/lib/{triplet}"));
    }
    if is_64bit(platform) {
        dirs.extend(["/lib64", "/usr/lib64"].map(str::to_owned));
        if platform.architecture == "riscv64" {
            dirs.extend(["/lib64/lp64d", "/usr/lib64/lp64d"].map(str::to_owned));
        }
    }
    dirs.extend(["/lib", "/usr/lib"].map(str::to_owned));
    dirs
}

/// Debian's multiarch tuple for a platform.
fn multiarch(platform: &Platform) -> Option<&'static str> {
    Some(match platform.architecture.as_str() {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "arm" if platform.variant.as_deref() == Some("v5") => "arm-linux-gnueabi",
        "arm" => "arm-linux-gnueabihf",
        "386" => "i386-linux-gnu",
        "ppc64le" => "powerpc64le-linux-gnu",
        "ppc64" => "powerpc64-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "loong64" => "loongarch64-linux-gnu",
        "mips64le" => "mips64el-linux-gnuabi64",
        "mips64" => "mips64-linux-gnuabi64",
        "mipsle" => "mipsel-linux-gnu",
        "mips" => "mips-linux-gnu",
        _ => return None,
    })
}

fn is_64bit(platform: &Platform) -> bool {
    matches!(
        platform.architecture.as_str(),
        "amd64"
            | "arm64"
            | "ppc64le"
            | "ppc64"
            | "s390x"
            | "riscv64"
            | "loong64"
            | "mips64le"
            | "mips64"
    )
}

/// The values of the dynamic string tokens in DT_RPATH and DT_RUNPATH.
struct Tokens {
    origin: String,
    lib: Vec<String>,
    platform: &'static str,
}

impl Tokens {
    fn new(program: &str, rootfs: &RootFs, platform: &Platform) -> Tokens {
        // The loader takes $ORIGIN from the program's real path. Its directory may not be in the
        // base yet (the program's layer creates it): the part that is comes through its links.
        let dir = program.rsplit_once('/').map_or("", |(dir, _)| dir);
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        let origin = (0..=parts.len())
            .rev()
            .find_map(|n| {
                let real = rootfs.resolve(&format!("/{}", parts[..n].join("/")))?;
                (real.kind == Kind::Dir).then(|| {
                    let mut path = real.path.trim_end_matches('/').to_owned();
                    for part in &parts[n..] {
                        path.push('/');
                        path.push_str(part);
                    }
                    path
                })
            })
            .unwrap_or_default();
        let mut lib = vec!["lib".to_owned()];
        if is_64bit(platform) {
            lib.push("lib64".to_owned());
        }
        if let Some(triplet) = multiarch(platform) {
            lib.push(format!("lib/{triplet}"));
        }
        // AT_PLATFORM as the kernel reports it; only a few libraries put it in their paths.
        let machine = match platform.architecture.as_str() {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            "386" => "i686",
            "arm" => "v7l",
            "ppc64le" => "powerpc64le",
            "ppc64" => "powerpc64",
            "loong64" => "loongarch64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64le" | "mips64" => "mips64",
            _ => "mips",
        };
        Tokens {
            origin: origin.trim_end_matches('/').to_owned(),
            lib,
            platform: machine,
        }
    }

    /// `dir` with its tokens replaced (`$LIB` gives one directory per value it may have). `..` right
    /// after a leading `$ORIGIN` is applied to the text: the origin is a real path, so its parent is
    /// too (and the program's directory may not be in the base yet to be walked through).
    fn expand(&self, dir: &str) -> Vec<String> {
        let from_origin = dir.starts_with("$ORIGIN") || dir.starts_with("${ORIGIN}");
        let dir = dir
            .replace("${ORIGIN}", &self.origin)
            .replace("$ORIGIN", &self.origin)
            .replace("${PLATFORM}", self.platform)
            .replace("$PLATFORM", self.platform);
        let dirs = if dir.contains("$LIB") || dir.contains("${LIB}") {
            self.lib
                .iter()
                .map(|lib| dir.replace("${LIB}", lib).replace("$LIB", lib))
                .collect()
        } else {
            vec![dir]
        };
        dirs.into_iter()
            .map(|dir| {
                let (mut parts, rest) = match dir.strip_prefix(&self.origin) {
                    Some(rest) if from_origin => (components(&self.origin), rest),
                    _ => (Vec::new(), dir.as_str()),
                };
                let mut rest = components(rest).into_iter().peekable();
                while rest.next_if_eq(&"..").is_some() {
                    parts.pop();
                }
                parts.extend(rest);
                format!("/{}", parts.join("/"))
            })
            .collect()
    }
}

fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::rootfs::testing::{Layer, scan};

    fn amd64() -> Platform {
        Platform::linux("amd64", None).unwrap()
    }

    fn glibc(needed: &[&str]) -> Linkage {
        Linkage::Dynamic {
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".to_owned()),
            needed: needed.iter().map(|n| (*n).to_owned()).collect(),
            rpath: Vec::new(),
            runpath: Vec::new(),
        }
    }

    fn keep() -> Vec<&'static str> {
        LOADER_FILES.to_vec()
    }

    #[test]
    fn a_debian_like_base_has_what_a_glibc_program_needs() {
        let base = scan(
            &[Layer::new()
                .file("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "")
                .file("usr/lib/x86_64-linux-gnu/libc.so.6", "")
                .symlink("lib", "usr/lib")
                .symlink(
                    "lib64/ld-linux-x86-64.so.2",
                    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                )],
            &keep(),
        )
        .unwrap();
        assert_eq!(
            check_dynamic(&glibc(&["libc.so.6"]), "/app", None, &base, &amd64()),
            Ok(())
        );
        assert_eq!(
            check_dynamic(&Linkage::StaticPie, "/app", None, &base, &amd64()),
            Ok(())
        );
    }

    #[test]
    fn everything_missing_is_named_at_once() {
        let base = scan(&[Layer::new().file("etc/hostname", "")], &keep()).unwrap();
        let missing = check_dynamic(
            &glibc(&["libc.so.6", "libm.so.6"]),
            "/app",
            None,
            &base,
            &amd64(),
        )
        .unwrap_err();
        assert_eq!(
            missing.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(missing.libraries, ["libc.so.6", "libm.so.6"]);
        let message = missing.to_string();
        assert!(
            message.contains(
                "lacks /lib64/ld-linux-x86-64.so.2, libc.so.6 and libm.so.6 (searched \
                 /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib, \
                 /usr/lib)"
            ),
            "{message}"
        );
        // An interpreter that is a directory or a dangling link is not there either.
        let base = scan(
            &[Layer::new()
                .dir("lib64/ld-linux-x86-64.so.2/")
                .file("lib/libc.so.6", "")],
            &keep(),
        )
        .unwrap();
        let missing =
            check_dynamic(&glibc(&["libc.so.6"]), "/app", None, &base, &amd64()).unwrap_err();
        assert!(missing.libraries.is_empty());
        assert!(!missing.to_string().contains("searched"), "{missing}");
    }

    #[test]
    fn ld_so_conf_and_its_includes_add_directories() {
        let base = scan(
            &[Layer::new()
                .file("lib64/ld-linux-x86-64.so.2", "")
                .file(
                    "etc/ld.so.conf",
                    "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/opt/one\n",
                )
                .file(
                    "etc/ld.so.conf.d/two.conf",
                    "/opt/two:/opt/three # trailing\n",
                )
                .file("etc/ld.so.conf.d/ignored.txt", "/opt/four\n")
                .file("opt/one/libone.so", "")
                .file("opt/three/libthree.so", "")
                .file("opt/four/libfour.so", "")],
            &keep(),
        )
        .unwrap();
        let linkage = glibc(&["libone.so", "libthree.so", "libfour.so"]);
        let missing = check_dynamic(&linkage, "/app", None, &base, &amd64()).unwrap_err();
        assert_eq!(missing.libraries, ["libfour.so"]);
        assert_eq!(
            &missing.searched[..3],
            ["/opt/two", "/opt/three", "/opt/one"]
        );
    }

    #[test]
    fn ld_so_conf_includes_are_read_once_whatever_their_fan_out() {
        // Every file includes every file (itself too): ldconfig's result is each directory once, in
        // the order first seen; reading each file once gives it without the exponential walk.
        let mut layer = Layer::new().file(
            "etc/ld.so.conf",
            "include /etc/ld.so.conf.d/*.conf\ninclude ld.so.conf\n/opt/top\n",
        );
        for i in 0..30 {
            layer = layer.file(
                &format!("etc/ld.so.conf.d/{i:02}.conf"),
                &format!("include /etc/ld.so.conf.d/*.conf\n/opt/lib{i:02}\n"),
            );
        }
        let base = scan(&[layer.file("opt/lib29/libz.so", "")], &keep()).unwrap();
        let mut dirs = SearchDirs::default();
        let mut conf = LdSoConf::new(&base);
        conf.read("/etc/ld.so.conf", 0, &mut dirs);
        assert_eq!(conf.read.len(), 31, "each file is read once");
        assert_eq!(conf.patterns.len(), 2, "each pattern is expanded once");
        assert!(!conf.stopped && !dirs.cut);
        // 00.conf is read first; what it includes again is being read or was, so it adds nothing.
        let expected: Vec<String> = (0..30)
            .map(|i| format!("/opt/lib{i:02}"))
            .chain(["/opt/top".to_owned()])
            .collect();
        assert_eq!(dirs.dirs, expected);
        let linkage = glibc(&["libz.so"]);
        let missing = check_dynamic(&linkage, "/app", None, &base, &amd64()).unwrap_err();
        assert!(missing.libraries.is_empty() && !missing.partial);
    }

    #[test]
    fn a_loader_configuration_past_the_limits_is_read_in_part_and_says_so() {
        // More directories than are searched: the first ones count, the message says the rest were not.
        let many: String = (0..MAX_SEARCH_DIRS + 10)
            .map(|i| format!("/opt/{i}\n"))
            .collect();
        let base = scan(
            &[Layer::new()
                .file("lib64/ld-linux-x86-64.so.2", "")
                .file("etc/ld.so.conf", &many)
                .file(&format!("opt/{}/libfar.so", MAX_SEARCH_DIRS + 5), "")],
            &keep(),
        )
        .unwrap();
        let missing =
            check_dynamic(&glibc(&["libfar.so"]), "/app", None, &base, &amd64()).unwrap_err();
        assert_eq!(missing.searched.len(), MAX_SEARCH_DIRS);
        assert!(missing.partial);
        let message = missing.to_string();
        assert!(
            message.contains(&format!("and {} more", MAX_SEARCH_DIRS - SHOWN_DIRS))
                && message.contains("read only up to this tool's limits"),
            "{message}"
        );
        // More lines than are read: a directory after them is not seen, but the defaults still are.
        let mut long = "# padding\n".repeat(MAX_CONF_LINES);
        long.push_str("/opt/late\n");
        let base = scan(
            &[Layer::new()
                .file("etc/ld.so.conf", &long)
                .file("opt/late/liblate.so", "")],
            &keep(),
        )
        .unwrap();
        let linkage = glibc(&["liblate.so"]);
        let dirs = search_dirs(&linkage, "/app", None, &base, &amd64());
        assert!(dirs.cut);
        assert!(!dirs.dirs.contains(&"/opt/late".to_owned()));
        assert_eq!(dirs.dirs.last().map(String::as_str), Some("/usr/lib"));
    }

    #[test]
    fn rpath_runpath_origin_and_library_path_are_searched() {
        let base = scan(
            &[Layer::new()
                .file("lib64/ld-linux-x86-64.so.2", "")
                .file("srv/app/lib/libapp.so", "")
                .file("srv/rpath/librpath.so", "")
                .file("env/libenv.so", "")
                .file("srv/app/plugins/libplug.so", "")
                .symlink("app", "srv/app")],
            &keep(),
        )
        .unwrap();
        let mut linkage = Linkage::Dynamic {
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".to_owned()),
            needed: [
                "libapp.so",
                "librpath.so",
                "libenv.so",
                "plugins/libplug.so",
            ]
            .map(str::to_owned)
            .to_vec(),
            rpath: vec!["/srv/rpath".to_owned()],
            runpath: vec!["$ORIGIN/../lib".to_owned()],
        };
        // $ORIGIN is the program's real directory: /app/bin is /srv/app/bin.
        let missing =
            check_dynamic(&linkage, "/app/bin/prog", Some("/env"), &base, &amd64()).unwrap_err();
        assert_eq!(
            missing.libraries,
            ["librpath.so", "plugins/libplug.so"],
            "DT_RPATH is ignored beside DT_RUNPATH, and a relative path is from the root"
        );
        if let Linkage::Dynamic {
            runpath, needed, ..
        } = &mut linkage
        {
            runpath.clear();
            needed.truncate(3);
        }
        let missing = check_dynamic(&linkage, "/app/bin/prog", None, &base, &amd64()).unwrap_err();
        assert_eq!(missing.libraries, ["libapp.so", "libenv.so"]);
        assert_eq!(missing.searched[0], "/srv/rpath");
    }

    #[test]
    fn musl_searches_its_own_directories_or_its_path_file() {
        let musl = Linkage::Dynamic {
            interpreter: Some("/lib/ld-musl-x86_64.so.1".to_owned()),
            needed: vec!["libc.musl-x86_64.so.1".to_owned(), "libz.so.1".to_owned()],
            rpath: Vec::new(),
            runpath: Vec::new(),
        };
        let alpine = Layer::new()
            .file("lib/ld-musl-x86_64.so.1", "")
            .symlink("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
            .file("usr/local/lib/libz.so.1", "");
        let base = scan(&[alpine], &keep()).unwrap();
        assert_eq!(check_dynamic(&musl, "/app", None, &base, &amd64()), Ok(()));
        let with_path_file = [
            Layer::new()
                .file("lib/ld-musl-x86_64.so.1", "")
                .symlink("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
                .file("usr/local/lib/libz.so.1", ""),
            Layer::new().file("etc/ld-musl-x86_64.path", "/lib\n/opt/lib\n"),
        ];
        let base = scan(&with_path_file, &keep()).unwrap();
        let missing = check_dynamic(&musl, "/app", None, &base, &amd64()).unwrap_err();
        assert_eq!(missing.libraries, ["libz.so.1"]);
        assert_eq!(missing.searched, ["/lib", "/opt/lib"]);
    }

    #[test]
    fn default_directories_follow_the_platform() {
        let arm64 = Platform::linux("arm64", None).unwrap();
        let dirs = glibc_defaults(&arm64);
        assert_eq!(
            dirs[..2],
            ["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
        );
        let armv7 = Platform::linux("arm", Some("v7")).unwrap();
        let dirs = glibc_defaults(&armv7);
        assert_eq!(
            dirs,
            [
                "/lib/arm-linux-gnueabihf",
                "/usr/lib/arm-linux-gnueabihf",
                "/lib",
                "/usr/lib"
            ]
        );
    }
}
