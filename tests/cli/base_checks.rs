//! A base image is hostile input, checked the same way whatever the options: bases written byte by byte
//! (tests/support/crafted.rs) with a damaged config, mislabelled or escaping layers, links our files
//! cannot go through, and decompression bombs are refused with one line naming the base and the
//! problem, and nothing written; sound ones give an image `umoci unpack` accepts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use support::crafted::{self, GZIP, Layer, PLAIN, Tar, ZSTD};
use support::tiny_elf::{self, Machine, Shape};
use support::zeroimage;

/// Option sets that once decided whether the base's layers were read at all.
const OPTIONS: &[&[&str]] = &[
    &[],
    &["--nonroot"],
    &["--entrypoint-path", "/usr/local/bin/app"],
];

fn program(dir: &Path) -> PathBuf {
    tiny_elf::write(
        dir,
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    )
}

/// Packages `program` on the crafted layout `base` into `out`, tagged `app:checked`.
fn build(program: &Path, base: &Path, out: &Path, extra: &[&str]) -> Output {
    zeroimage()
        .arg(program)
        .args(["-t", "app:checked", "--sbom", "none", "--from-archive"])
        .arg(crafted::from(base))
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// The run failed with exit 1, one `error:` line holding every piece of `expected`, and wrote nothing.
fn assert_refused(output: &Output, out: &Path, expected: &[&str], case: &str) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{case}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{case}: one error line: {err}");
    for piece in expected {
        assert!(errors[0].contains(piece), "{case}: `{piece}` in {err}");
    }
    assert!(!out.exists(), "{case}: nothing written");
}

/// A sound base: gzip and uncompressed layers (umoci 0.4 unpacks no zstd), plus a zstd one when
/// `with_zstd`.
fn sound_layers(with_zstd: bool) -> Vec<Layer> {
    let mut layers = vec![
        Layer::gzip(
            &Tar::new()
                .dir("etc/")
                .file("etc/base-marker", "from the base")
                .dir("usr/")
                .dir("usr/bin/")
                .symlink("bin", "usr/bin"),
        ),
        Layer::plain(&Tar::new().file("usr/bin/tool", "tool")),
    ];
    if with_zstd {
        layers.push(Layer::zstd(&Tar::new().file("etc/motd", "hello")));
    }
    layers
}

/// A damaged base: what it is, its layers, the diff ids its config lists (`None`: the layers' own) and
/// what the error must say.
type Damaged = (
    &'static str,
    Vec<Layer>,
    Option<Vec<String>>,
    Vec<&'static str>,
);

#[test]
fn a_damaged_base_is_refused_whatever_the_options_and_a_sound_one_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    let escaping = Tar::new().file("../../etc/evil", "x");
    let tar = Tar::new().dir("etc/").file("etc/motd", "hello");
    let cases: Vec<Damaged> = vec![
        (
            "a config listing another diff id",
            vec![Layer::gzip(&tar).with_diff_id(&crafted::sha256(b"other content"))],
            None,
            vec![
                "layer 1 of 1",
                "its content decompresses to sha256:",
                "but the config lists diff_id sha256:",
            ],
        ),
        (
            "a zstd blob labelled gzip",
            vec![Layer::zstd(&tar).labelled(GZIP)],
            None,
            vec!["its content is zstd, but its media type says gzip"],
        ),
        (
            "a gzip blob labelled zstd",
            vec![Layer::gzip(&tar).labelled(ZSTD)],
            None,
            vec!["its content is gzip, but its media type says zstd"],
        ),
        (
            "a gzip blob labelled uncompressed",
            vec![Layer::gzip(&tar).labelled(PLAIN)],
            None,
            vec!["its content is gzip, but its media type says an uncompressed tar"],
        ),
        (
            "a path climbing out of the root",
            vec![Layer::gzip(&tar), Layer::gzip(&escaping)],
            None,
            vec![
                "layer 2 of 2",
                "`../../etc/evil` climbs above the image root",
            ],
        ),
        (
            "fewer diff ids than layers",
            vec![Layer::gzip(&tar)],
            Some(Vec::new()),
            vec!["its config lists 0 layer diff ids for 1 layers"],
        ),
    ];
    for (index, (case, layers, diff_ids, expected)) in cases.into_iter().enumerate() {
        let base = crafted::layout_with(&dir.path().join(format!("bad{index}")), &layers, diff_ids);
        let named = format!("error: base {}: ", crafted::from(&base));
        for options in OPTIONS {
            let out = dir.path().join("never.tar");
            let output = build(&program, &base, &out, options);
            let mut expected = expected.clone();
            expected.push(&named);
            assert_refused(&output, &out, &expected, &format!("{case} {options:?}"));
        }
    }

    // The same kinds of layers, sound: accepted with every option, and umoci unpacks the result.
    let zstd = crafted::layout(&dir.path().join("sound-zstd"), &sound_layers(true));
    for (index, options) in OPTIONS.iter().enumerate() {
        let out = dir.path().join(format!("zstd{index}.tar"));
        let output = build(&program, &zstd, &out, options);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{options:?}: {err}");
    }
    let base = crafted::layout(&dir.path().join("sound"), &sound_layers(false));
    for (index, options) in OPTIONS.iter().enumerate() {
        let out = dir.path().join(format!("sound{index}.tar"));
        let output = build(&program, &base, &out, options);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{options:?}: {err}");
        let Some((_unpacked, root)) = support::unpack_with_umoci(&out, "checked") else {
            return;
        };
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        assert_eq!(read("etc/base-marker"), "from the base");
        assert_eq!(read("bin/tool"), "tool", "through the base's link");
        let entrypoint = options
            .iter()
            .skip_while(|o| **o != "--entrypoint-path")
            .nth(1)
            .map_or("app", |path| path.trim_start_matches('/'));
        assert!(root.join(entrypoint).is_file(), "{options:?}");
    }
}

#[test]
fn our_files_below_a_base_link_that_loops_leads_nowhere_or_to_a_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    let cases: Vec<(&str, Tar, Vec<&str>, Vec<&str>)> = vec![
        (
            "a link to itself",
            Tar::new().symlink("usr", "usr"),
            vec!["--entrypoint-path", "/usr/local/bin/app"],
            vec![
                "/usr is a symbolic link to `usr`, which loops",
                "/usr/local/bin/app (the program) cannot be written below it",
            ],
        ),
        (
            "two links to each other",
            Tar::new().symlink("a", "/b").symlink("b", "/a"),
            vec!["--entrypoint-path", "/a/app"],
            vec!["/a is a symbolic link to `/b`, which loops"],
        ),
        (
            "a dangling link",
            Tar::new().symlink("opt", "/nowhere"),
            vec!["--entrypoint-path", "/opt/app"],
            vec![
                "/opt is a symbolic link to `/nowhere`, which leads to `/nowhere`, which the base does not have",
            ],
        ),
        (
            "a link to a file",
            Tar::new()
                .dir("etc/")
                .file("etc/motd", "hello")
                .symlink("opt", "etc/motd"),
            vec!["--entrypoint-path", "/opt/app"],
            vec![
                "/opt is a symbolic link to `etc/motd`, which leads to `/etc/motd`, not a directory",
            ],
        ),
        (
            "the essentials' directory looping",
            Tar::new().symlink("etc", "etc"),
            vec!["--nonroot"],
            vec![
                "/etc is a symbolic link to `etc`, which loops",
                "(--nonroot) cannot be written below it",
            ],
        ),
    ];
    for (index, (case, tar, options, expected)) in cases.into_iter().enumerate() {
        let base = crafted::layout(
            &dir.path().join(format!("link{index}")),
            &[Layer::gzip(&tar)],
        );
        let out = dir.path().join("never.tar");
        let output = build(&program, &base, &out, &options);
        let mut expected = expected.clone();
        let named = format!("error: base {}: ", crafted::from(&base));
        expected.push(&named);
        assert_refused(&output, &out, &expected, case);
    }

    // A link to a directory the base has: our files go through it, as umoci unpacks them.
    let base = crafted::layout(&dir.path().join("good"), &sound_layers(false));
    for (index, path) in ["/bin/app", "/bin/sub/app"].iter().enumerate() {
        let out = dir.path().join(format!("good{index}.tar"));
        let output = build(&program, &base, &out, &["--entrypoint-path", path]);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{path}: {err}");
        let Some((_unpacked, root)) = support::unpack_with_umoci(&out, "checked") else {
            return;
        };
        assert!(root.join("bin").is_symlink(), "the base's link stays");
        let real = format!("usr{path}");
        assert!(root.join(&real).is_file(), "{path} is at /{real}");
    }
}

/// `zeroimage` under `prlimit --as` (its address space, which bounds what it can allocate), when
/// prlimit is there.
fn limited(bytes: u64) -> support::Zeroimage {
    match support::which("prlimit") {
        Some(prlimit) => support::zeroimage_via(prlimit, &[&format!("--as={bytes}")]),
        None => {
            eprintln!("prlimit not found: running without an address-space limit");
            zeroimage()
        }
    }
}

#[test]
fn a_decompression_bomb_is_refused_at_the_limit_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    // Each 512 MiB of zeros, from a blob of a few hundred KB (gzip) or a few KB (zstd).
    for media_type in [ZSTD, GZIP] {
        let bomb = crafted::bomb(media_type, 8, false);
        assert!(bomb.blob.len() < 1 << 20, "{}", bomb.blob.len());
        let base = crafted::layout(&dir.path().join(media_type.replace('/', "_")), &[bomb]);
        let out = dir.path().join("never.tar");
        let started = Instant::now();
        let output = limited(256 << 20)
            .arg(&program)
            .args(["--sbom", "none", "--from-archive"])
            .arg(crafted::from(&base))
            .arg("-o")
            .arg(&out)
            .env("ZEROIMAGE_MAX_BASE_SIZE", "128MiB")
            .output()
            .unwrap();
        assert_refused(
            &output,
            &out,
            &[
                &format!("error: base {}: layer 1 of 1", crafted::from(&base)),
                "the layers decompress to more than 128 MiB together",
                "raise the limit with ZEROIMAGE_MAX_BASE_SIZE=SIZE",
            ],
            media_type,
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{media_type}");
    }

    // Under the default limit, a layer that large is a base like any other.
    let layer = crafted::bomb(ZSTD, 8, true);
    let base = crafted::layout(&dir.path().join("large"), &[layer]);
    let out = dir.path().join("large.tar");
    let output = limited(256 << 20)
        .arg(&program)
        .args(["--sbom", "none", "--from-archive"])
        .arg(crafted::from(&base))
        .arg("-o")
        .arg(&out)
        .env_remove("ZEROIMAGE_MAX_BASE_SIZE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");

    // A limit that is not a size.
    let out = dir.path().join("never.tar");
    let output = zeroimage()
        .arg(&program)
        .args(["--from-archive"])
        .arg(crafted::from(&base))
        .arg("-o")
        .arg(&out)
        .env("ZEROIMAGE_MAX_BASE_SIZE", "lots")
        .output()
        .unwrap();
    assert_refused(
        &output,
        &out,
        &["ZEROIMAGE_MAX_BASE_SIZE=`lots` is not a size"],
        "a bad limit",
    );
}

#[test]
fn ctrl_c_stops_reading_a_huge_base_layer_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path());
    // 16 GiB of zeros in one entry: minutes of decompression, within a raised limit.
    let base = crafted::layout(&dir.path().join("huge"), &[crafted::bomb(ZSTD, 256, false)]);
    let out = dir.path().join("never.tar");
    let mut child = zeroimage()
        .arg(&program)
        // Before, only some options made the base's layers read; this one did.
        .args(["--nonroot", "-v", "--from-archive"])
        .arg(crafted::from(&base))
        .arg("-o")
        .arg(&out)
        .env("ZEROIMAGE_MAX_BASE_SIZE", "1TiB")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("reading the filesystem of") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    // Well inside the one entry's data.
    std::thread::sleep(Duration::from_millis(700));
    assert!(child.try_wait().unwrap().is_none(), "still reading");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    // Ended by the signal, as cargo is: a shell shows 130.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGINT),
        "{seen}{rest}"
    );
    assert!(rest.contains("interrupted"), "{rest}");
    // The Ctrl-C handler ends a run that does not stop on its own after 600 ms; this one stops itself.
    assert!(
        took < Duration::from_millis(500),
        "took {took:?} to stop after Ctrl-C"
    );
    assert!(!out.exists());
}
