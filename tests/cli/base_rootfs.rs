//! Base images made by real tools (umoci builds them, skopeo archives them): what `RootFs` reads of
//! their filesystem (checked against `umoci unpack`), whether a dynamically linked host program has its
//! loader and libraries there (checked by running it with runc), and `--nonroot` on a base with its
//! own accounts.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use zeroimage::assemble::elf::{self, Linkage};
use zeroimage::assemble::loader::{LOADER_FILES, check_dynamic};
use zeroimage::assemble::rootfs::{Kind, RootFs};
use zeroimage::image::ImageTree;
use zeroimage::layout::read::ArchiveSource;
use zeroimage::oci::platform::Platform;
use zeroimage::util::cancel::CancelToken;

/// An OCI layout being built with umoci, one image tagged `base`.
struct Umoci {
    tool: PathBuf,
    layout: PathBuf,
}

impl Umoci {
    /// A new empty image labelled with `platform`; `None` (skipped) without umoci.
    fn new(dir: &Path, platform: &Platform) -> Option<Umoci> {
        let umoci = Umoci {
            tool: support::peer("umoci")?,
            layout: dir.join("layout"),
        };
        umoci.run(&[
            "init".as_ref(),
            "--layout".as_ref(),
            umoci.layout.as_os_str(),
        ]);
        umoci.on_image(&["new"]);
        umoci.on_image(&[
            "config",
            "--os",
            "linux",
            "--architecture",
            &platform.architecture,
        ]);
        Some(umoci)
    }

    fn run(&self, args: &[&OsStr]) {
        support::run_ok(Command::new(&self.tool).args(args));
    }

    fn image(&self) -> String {
        format!("{}:base", self.layout.display())
    }

    /// Runs `umoci COMMAND --image LAYOUT:base ARGS...`.
    fn on_image(&self, args: &[&str]) {
        let image = self.image();
        let mut all: Vec<&OsStr> = vec![args[0].as_ref()];
        if !support::is_root() && args[0] == "insert" {
            all.push("--rootless".as_ref());
        }
        all.push("--image".as_ref());
        all.push(image.as_ref());
        all.extend(args[1..].iter().map(OsStr::new));
        self.run(&all);
    }

    /// Adds the content of the directory `stage` at the root, as one layer.
    fn insert(&self, stage: &Path) {
        self.on_image(&["insert", &stage.display().to_string(), "/"]);
    }

    fn raw_layer(&self, tar: &Path) {
        let image = self.image();
        self.run(&[
            "raw".as_ref(),
            "add-layer".as_ref(),
            "--image".as_ref(),
            image.as_ref(),
            tar.as_os_str(),
        ]);
    }

    /// The image as an OCI archive written by skopeo, its layers compressed as `format` says.
    fn archive(&self, dir: &Path, name: &str, format: &str) -> Option<PathBuf> {
        let skopeo = support::peer("skopeo")?;
        let archive = dir.join(name);
        support::run_ok(
            Command::new(skopeo)
                .args(["copy", "--quiet", "--dest-compress-format", format])
                .arg(format!("oci:{}", self.image()))
                .arg(format!("oci-archive:{}", archive.display())),
        );
        Some(archive)
    }

    /// The image's root filesystem as umoci unpacks it.
    fn unpack(&self, dir: &Path) -> PathBuf {
        let bundle = dir.join("bundle");
        let image = self.image();
        let mut args: Vec<&OsStr> = vec!["unpack".as_ref()];
        if !support::is_root() {
            args.push("--rootless".as_ref());
        }
        args.push("--image".as_ref());
        args.push(image.as_ref());
        args.push(bundle.as_os_str());
        self.run(&args);
        bundle.join("rootfs")
    }
}

/// Reads the one image of `archive` and scans its layers.
fn scan(archive: &Path, keep: &[&str]) -> zeroimage::Result<RootFs> {
    let source = ArchiveSource::open(archive, &CancelToken::new())?;
    let top = source.select(None)?.descriptor.clone();
    let tree = ImageTree::read(&source, &top)?;
    let layers = tree.manifests[0].manifest.value().layers.clone();
    RootFs::scan(&source, &layers, keep, &CancelToken::new())
}

/// The host paths `ldd` lists for `program`: its interpreter and libraries as the loader found them.
fn host_libraries(program: &Path) -> Option<Vec<PathBuf>> {
    let ldd = support::peer("ldd")?;
    let output = support::run_ok(Command::new(ldd).arg(program));
    let paths = support::stdout_of(&output)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = line.split_once("=> ").map_or(line, |(_, rest)| rest);
            path.starts_with('/')
                .then(|| PathBuf::from(path.split(" (").next().unwrap_or(path)))
        })
        .collect();
    Some(paths)
}

/// Copies each of `paths` into `stage` at its real path, with a symbolic link at the path as named
/// when that differs (`/lib64/ld-linux-x86-64.so.2` is a link on most distributions).
fn stage_host_files(stage: &Path, paths: &[PathBuf]) {
    for path in paths {
        let real = std::fs::canonicalize(path).unwrap();
        let copy = stage.join(real.strip_prefix("/").unwrap());
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&real, &copy).unwrap();
        if real != *path {
            let link = stage.join(path.strip_prefix("/").unwrap());
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(&real, &link).unwrap();
            }
        }
    }
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A dynamically linked host program: its path, linkage and platform. `None` (skipped) when the host's
/// programs are static.
fn host_program(path: &str) -> Option<(PathBuf, Linkage, Platform)> {
    let path = PathBuf::from(path);
    let info = elf::inspect(&path).ok()?;
    if info.linkage.is_static() {
        eprintln!("SKIPPED: {} is not dynamically linked here", path.display());
        return None;
    }
    Some((path, info.linkage, info.platform))
}

#[test]
fn a_host_program_is_accepted_on_a_base_with_its_loader_and_libraries_and_runs_there() {
    let Some((echo, linkage, platform)) = host_program("/bin/echo") else {
        return;
    };
    let Linkage::Dynamic {
        interpreter: Some(interpreter),
        needed,
        ..
    } = &linkage
    else {
        panic!("{linkage:?}");
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(libraries) = host_libraries(&echo) else {
        return;
    };
    let Some(umoci) = Umoci::new(dir.path(), &platform) else {
        return;
    };

    // A base with the loader only: the libraries are missing, named with where they were looked for.
    let stage = dir.path().join("loader");
    let (loader, libs): (Vec<PathBuf>, Vec<PathBuf>) = libraries
        .into_iter()
        .partition(|path| path == Path::new(interpreter));
    stage_host_files(&stage, &loader);
    write(&stage.join("etc/hostname"), "base\n");
    umoci.insert(&stage);
    let Some(archive) = umoci.archive(dir.path(), "loader.tar", "gzip") else {
        return;
    };
    let rootfs = scan(&archive, LOADER_FILES).unwrap();
    assert_eq!(rootfs.kind(interpreter), Some(Kind::File));
    let missing = check_dynamic(&linkage, "/echo", None, &rootfs, &platform).unwrap_err();
    assert_eq!(missing.interpreter, None);
    assert_eq!(&missing.libraries, needed);
    let message = missing.to_string();
    assert!(
        message.starts_with(&format!("{} lacks ", archive.display()))
            && message.contains("libc.so.6")
            && message.contains("(searched /lib/"),
        "{message}"
    );

    // With the libraries in a layer above: accepted, and runc runs it.
    let stage = dir.path().join("libs");
    stage_host_files(&stage, &libs);
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(&echo, stage.join("echo")).unwrap();
    umoci.insert(&stage);
    umoci.on_image(&["config", "--config.entrypoint", "/echo"]);
    let archive = umoci.archive(dir.path(), "full.tar", "gzip").unwrap();
    let rootfs = scan(&archive, LOADER_FILES).unwrap();
    assert_eq!(
        check_dynamic(&linkage, "/echo", None, &rootfs, &platform),
        Ok(())
    );
    if let Some(out) =
        support::run_layout_in_runc(&umoci.layout, "base", &["accepted", "and", "ran"], &[])
    {
        assert_eq!(out, "accepted and ran\n");
    }
}

#[test]
fn a_base_without_loader_or_libc_is_refused_naming_both() {
    let Some((_, linkage, platform)) = host_program("/bin/true") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(umoci) = Umoci::new(dir.path(), &platform) else {
        return;
    };
    let stage = dir.path().join("stage");
    write(&stage.join("etc/os-release"), "ID=empty\n");
    umoci.insert(&stage);
    let Some(archive) = umoci.archive(dir.path(), "empty.tar", "gzip") else {
        return;
    };
    let rootfs = scan(&archive, LOADER_FILES).unwrap();
    let missing = check_dynamic(&linkage, "/true", None, &rootfs, &platform).unwrap_err();
    let Linkage::Dynamic {
        interpreter,
        needed,
        ..
    } = &linkage
    else {
        unreachable!()
    };
    assert_eq!(&missing.interpreter, interpreter);
    assert_eq!(&missing.libraries, needed);
    let message = missing.to_string();
    assert!(
        message.contains(&format!(
            "lacks {} and {}",
            interpreter.as_deref().unwrap(),
            needed.join(", ")
        )),
        "{message}"
    );
}

#[test]
fn a_base_whose_ld_so_conf_files_include_each_other_is_checked_in_bounded_memory_and_time() {
    // Thirty files in /etc/ld.so.conf.d, each including all of them: read file by file down every
    // include chain, that is 30^8 readings. The check reads each file once; zeroimage runs under a
    // 512 MiB address-space limit and a 60 s CPU-time limit (the unbounded walk blew both).
    let Some((echo, _, platform)) = host_program("/bin/echo") else {
        return;
    };
    let Some(prlimit) = support::peer("prlimit") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(libraries) = host_libraries(&echo) else {
        return;
    };
    let Some(umoci) = Umoci::new(dir.path(), &platform) else {
        return;
    };
    let stage = dir.path().join("stage");
    stage_host_files(&stage, &libraries);
    write(
        &stage.join("etc/ld.so.conf"),
        "include /etc/ld.so.conf.d/*.conf\n",
    );
    for i in 0..30 {
        write(
            &stage.join(format!("etc/ld.so.conf.d/{i:02}.conf")),
            &format!("include /etc/ld.so.conf.d/*.conf\n/opt/lib{i:02}\n"),
        );
    }
    umoci.insert(&stage);
    let Some(archive) = umoci.archive(dir.path(), "fanout.tar", "gzip") else {
        return;
    };
    let out = dir.path().join("out.tar");
    let output = support::zeroimage_via(prlimit, &[&format!("--as={}", 512u64 << 20), "--cpu=60"])
        .arg(&echo)
        .arg("--from-archive")
        .arg(&archive)
        .arg("-o")
        .arg(&out)
        .arg("-v")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {err}", output.status);
    assert!(
        err.contains("the base has its loader and libraries"),
        "{err}"
    );
    assert!(out.is_file());
}

#[test]
fn runpath_with_origin_finds_the_programs_own_library() {
    let Some(gcc) = support::peer("gcc") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(
        &src.join("greet.c"),
        "#include <stdio.h>\nvoid greet(void) { puts(\"hello from libgreet\"); }\n",
    );
    write(
        &src.join("main.c"),
        "void greet(void);\nint main(void) { greet(); return 0; }\n",
    );
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::create_dir_all(app.join("bin")).unwrap();
    support::run_ok(
        Command::new(&gcc)
            .args(["-shared", "-fPIC", "-o"])
            .arg(app.join("lib/libgreet.so"))
            .arg(src.join("greet.c")),
    );
    support::run_ok(
        Command::new(&gcc)
            .arg("-o")
            .arg(app.join("bin/greet"))
            .arg(src.join("main.c"))
            .arg(format!("-L{}", app.join("lib").display()))
            .args(["-lgreet", "-Wl,-rpath,$ORIGIN/../lib"]),
    );
    let program = app.join("bin/greet");
    let info = elf::inspect(&program).unwrap();
    let Linkage::Dynamic {
        needed,
        rpath,
        runpath,
        ..
    } = &info.linkage
    else {
        panic!("{:?}", info.linkage);
    };
    assert!(needed.contains(&"libgreet.so".to_owned()), "{needed:?}");
    assert!(
        [rpath, runpath]
            .iter()
            .any(|dirs| dirs.as_slice() == ["$ORIGIN/../lib"]),
        "{rpath:?} {runpath:?}"
    );
    let Some(libraries) = host_libraries(&program) else {
        return;
    };
    let Some(umoci) = Umoci::new(dir.path(), &info.platform) else {
        return;
    };
    // The system libraries, and the program at /srv/app/bin/greet reached through a link /app.
    let stage = dir.path().join("system");
    let system: Vec<PathBuf> = libraries
        .into_iter()
        .filter(|path| !path.ends_with("libgreet.so"))
        .collect();
    stage_host_files(&stage, &system);
    std::fs::create_dir_all(stage.join("srv/app/bin")).unwrap();
    std::fs::copy(&program, stage.join("srv/app/bin/greet")).unwrap();
    std::os::unix::fs::symlink("srv/app", stage.join("app")).unwrap();
    umoci.insert(&stage);
    let Some(archive) = umoci.archive(dir.path(), "without.tar", "gzip") else {
        return;
    };
    let rootfs = scan(&archive, LOADER_FILES).unwrap();
    let missing = check_dynamic(
        &info.linkage,
        "/app/bin/greet",
        None,
        &rootfs,
        &info.platform,
    )
    .unwrap_err();
    assert_eq!(missing.libraries, ["libgreet.so"]);
    assert_eq!(missing.searched[0], "/srv/app/lib", "{missing}");

    let stage = dir.path().join("own");
    std::fs::create_dir_all(stage.join("srv/app/lib")).unwrap();
    std::fs::copy(
        app.join("lib/libgreet.so"),
        stage.join("srv/app/lib/libgreet.so"),
    )
    .unwrap();
    umoci.insert(&stage);
    umoci.on_image(&["config", "--config.entrypoint", "/app/bin/greet"]);
    let archive = umoci.archive(dir.path(), "with.tar", "gzip").unwrap();
    let rootfs = scan(&archive, LOADER_FILES).unwrap();
    assert_eq!(
        check_dynamic(
            &info.linkage,
            "/app/bin/greet",
            None,
            &rootfs,
            &info.platform
        ),
        Ok(())
    );
    if let Some(out) = support::run_layout_in_runc(&umoci.layout, "base", &[], &[]) {
        assert_eq!(out, "hello from libgreet\n");
    }
}

/// Every path under `root` with what it is, as `lstat` sees it.
fn unpacked(root: &Path) -> BTreeSet<(String, Kind)> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let file_type = entry.file_type().unwrap();
            let kind = if file_type.is_dir() {
                pending.push(entry.path());
                Kind::Dir
            } else if file_type.is_symlink() {
                Kind::Symlink
            } else if file_type.is_file() {
                Kind::File
            } else if file_type.is_fifo() {
                Kind::Fifo
            } else {
                Kind::Other
            };
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap();
            found.insert((format!("/{}", relative.display()), kind));
        }
    }
    found
}

/// A layer tar that names its paths through a link of a lower layer and has no parent entries.
fn through_link_layer(path: &Path) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "lib/extra/libextra.so", &b"elf"[..])
        .unwrap();
    std::fs::write(path, builder.into_inner().unwrap()).unwrap();
}

#[test]
fn scan_agrees_with_umoci_unpack_on_whiteouts_opaque_dirs_and_links_gzip_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::linux("amd64", None).unwrap();
    let Some(umoci) = Umoci::new(dir.path(), &platform) else {
        return;
    };
    let first = dir.path().join("first");
    write(&first.join("opt/a/one"), "1");
    write(&first.join("opt/a/two"), "2");
    write(&first.join("opt/b/three"), "3");
    write(&first.join("etc/conf.d/x"), "x");
    write(&first.join("etc/conf.d/y"), "y");
    write(&first.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    write(&first.join("usr/lib/libz.so.1"), "z");
    std::fs::hard_link(first.join("opt/a/one"), first.join("opt/a/one-again")).unwrap();
    std::os::unix::fs::symlink("usr/lib", first.join("lib")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", first.join("etc/passwd-link")).unwrap();
    let status = Command::new("mkfifo")
        .arg(first.join("opt/fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(first.join("opt/b"), std::fs::Permissions::from_mode(0o700)).unwrap();
    umoci.insert(&first);
    umoci.on_image(&["insert", "--whiteout", "/opt/a/two"]);
    let second = dir.path().join("second");
    write(&second.join("z"), "z");
    umoci.on_image(&[
        "insert",
        "--opaque",
        &second.display().to_string(),
        "/etc/conf.d",
    ]);
    umoci.on_image(&["insert", "--whiteout", "/opt/b"]);
    let raw = dir.path().join("raw.tar");
    through_link_layer(&raw);
    umoci.raw_layer(&raw);

    let rootfs_dir = umoci.unpack(dir.path());
    let expected = unpacked(&rootfs_dir);
    assert!(
        expected.contains(&("/usr/lib/extra/libextra.so".to_owned(), Kind::File)),
        "umoci placed the raw layer's file through the link: {expected:?}"
    );
    for format in ["gzip", "zstd"] {
        let Some(archive) = umoci.archive(dir.path(), &format!("{format}.tar"), format) else {
            return;
        };
        if format == "zstd" {
            let manifest = support::image_manifest(&archive);
            assert_eq!(
                manifest["layers"][0]["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+zstd"
            );
        }
        let rootfs = scan(&archive, &["/etc/passwd"]).unwrap();
        let scanned: BTreeSet<(String, Kind)> = rootfs
            .entries()
            .map(|entry| (entry.path, entry.kind))
            .collect();
        assert_eq!(scanned, expected, "{format}");
        assert_eq!(
            rootfs.file("/etc/passwd-link"),
            Some(
                std::fs::read(rootfs_dir.join("etc/passwd"))
                    .unwrap()
                    .as_slice()
            )
        );
    }
}

#[test]
fn nonroot_adds_to_the_accounts_of_a_base_and_refuses_a_clash() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::linux("amd64", None).unwrap();
    let Some(umoci) = Umoci::new(dir.path(), &platform) else {
        return;
    };
    let Some(probe) = support::fixture_binary("probe", support::X86_64_MUSL) else {
        return;
    };
    let stage = dir.path().join("accounts");
    let base_passwd =
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
    write(&stage.join("etc/passwd"), base_passwd);
    write(&stage.join("etc/group"), "root:x:0:\ndaemon:x:1:\n");
    umoci.insert(&stage);
    let Some(archive) = umoci.archive(dir.path(), "accounts.tar", "gzip") else {
        return;
    };
    let out = dir.path().join("nonroot.tar");
    let built = support::run_ok(
        support::zeroimage()
            .arg(&probe)
            .args(["--nonroot", "-v", "-t", "probe:nonroot", "--from-archive"])
            .arg(&archive)
            .arg("-o")
            .arg(&out),
    );
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(
        err.contains(&archive.display().to_string()),
        "-v names the base: {err}"
    );
    let Some((_unpacked, root)) = support::unpack_with_umoci(&out, "nonroot") else {
        return;
    };
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    assert_eq!(
        read("etc/passwd"),
        format!("{base_passwd}nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
        "the base's accounts are kept, nonroot is added"
    );
    assert_eq!(
        read("etc/group"),
        "root:x:0:\ndaemon:x:1:\nnonroot:x:65532:\n"
    );
    if let Some(stdout) = support::run_in_runc(&out, "nonroot", &[], &[]) {
        let report = support::probe_report(&stdout);
        assert_eq!(report["uid"], "65532");
        assert_eq!(report["user"], "nonroot");
    }

    // A base whose nonroot user has another uid.
    let other = tempfile::tempdir().unwrap();
    let Some(umoci) = Umoci::new(other.path(), &platform) else {
        return;
    };
    let stage = other.path().join("accounts");
    write(
        &stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnonroot:x:1000:1000::/home/nonroot:/bin/sh\n",
    );
    umoci.insert(&stage);
    let archive = umoci.archive(other.path(), "clash.tar", "gzip").unwrap();
    let output = support::zeroimage()
        .arg(&probe)
        .args(["--nonroot", "--from-archive"])
        .arg(&archive)
        .arg("-o")
        .arg(other.path().join("never.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: --nonroot: /etc/passwd of the base image {} already has user nonroot with uid \
             1000 and gid 1000, not 65532; drop --nonroot and pass --user NAME or --user UID:GID \
             of a user it has",
            archive.display()
        )),
        "{err}"
    );
    assert!(!other.path().join("never.tar").exists());
}
