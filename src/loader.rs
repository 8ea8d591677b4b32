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

use std::fmt;

use crate::elf::Linkage;
use crate::platform::Platform;
use crate::rootfs::{Kind, RootFs, path_matches};

/// The files [`RootFs::scan`] must keep for [`check_dynamic`] to read the loader's configuration.
pub const LOADER_FILES: &[&str] = &[
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/*",
    "/etc/ld-musl-*.path",
];

/// Nested `include`s followed in `ld.so.conf`.
const MAX_INCLUDE_DEPTH: usize = 8;

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
            write!(f, " (searched {})", self.searched.join(", "))?;
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
    let searched = search_path(linkage, program, library_path, rootfs, platform);
    let libraries: Vec<String> = needed
        .iter()
        .filter(|name| !has_library(rootfs, &searched, name))
        .cloned()
        .collect();
    if interpreter.is_none() && libraries.is_empty() {
        return Ok(());
    }
    Err(Missing {
        image: rootfs.describe().to_owned(),
        interpreter,
        libraries,
        searched,
    })
}

/// The directories the loader searches for the libraries of a program with `linkage` at `program`, in
/// its order, without repeats: for glibc DT_RPATH (unless there is a DT_RUNPATH), `LD_LIBRARY_PATH`,
/// DT_RUNPATH, the `ld.so.conf` directories, then the defaults; for musl (an interpreter named
/// `ld-musl-*`) `LD_LIBRARY_PATH`, DT_RUNPATH or else DT_RPATH, then `/etc/ld-musl-ARCH.path` or the
/// defaults. `$ORIGIN` is the program's directory; `$LIB` and `$PLATFORM` take the values distributions
/// use for `platform`.
pub fn search_path(
    linkage: &Linkage,
    program: &str,
    library_path: Option<&str>,
    rootfs: &RootFs,
    platform: &Platform,
) -> Vec<String> {
    let Linkage::Dynamic {
        interpreter,
        rpath,
        runpath,
        ..
    } = linkage
    else {
        return Vec::new();
    };
    let tokens = Tokens::new(program, rootfs, platform);
    let env: Vec<String> = library_path
        .unwrap_or_default()
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(str::to_owned)
        .collect();
    let elf_path = if runpath.is_empty() { rpath } else { runpath };
    let musl_arch = interpreter
        .as_deref()
        .and_then(|path| path.rsplit('/').next())
        .and_then(|name| name.strip_prefix("ld-musl-"))
        .map(|rest| rest.split('.').next().unwrap_or(rest));
    let mut dirs: Vec<String> = Vec::new();
    match musl_arch {
        Some(arch) => {
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
            }
        }
        None => {
            if runpath.is_empty() {
                dirs.extend(rpath.iter().flat_map(|dir| tokens.expand(dir)));
            }
            dirs.extend(env);
            dirs.extend(runpath.iter().flat_map(|dir| tokens.expand(dir)));
            read_ld_so_conf(rootfs, "/etc/ld.so.conf", 0, &mut dirs);
            dirs.extend(glibc_defaults(platform));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    dirs.retain(|dir| seen.insert(dir.clone()));
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

/// The directories `path` (an `ld.so.conf`) lists, and those of the kept files its `include` lines
/// name (relative patterns are relative to the including file's directory, as ldconfig reads them).
fn read_ld_so_conf(rootfs: &RootFs, path: &str, depth: usize, dirs: &mut Vec<String>) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    let Some(content) = rootfs.file(path) else {
        return;
    };
    let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    for line in String::from_utf8_lossy(content).lines() {
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
                let included: Vec<String> = rootfs
                    .kept_files()
                    .map(|(file, _)| file)
                    .filter(|file| path_matches(&pattern, file))
                    .collect();
                for file in included {
                    read_ld_so_conf(rootfs, &file, depth + 1, dirs);
                }
            }
        } else if !line.starts_with("hwcap") {
            dirs.extend(
                line.split([' ', '\t', ':', ','])
                    .filter(|dir| dir.starts_with('/'))
                    .map(|dir| dir.trim_end_matches('/').to_owned()),
            );
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
    use crate::rootfs::testing::{Layer, scan};

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
