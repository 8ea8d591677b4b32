//! Every seed in `fuzz/corpus/<target>/` and every input the fuzzers found a bug with in
//! `fuzz/regressions/<target>/`, through the same entry points as the fuzz targets: none may panic,
//! and each must finish within a time bound. The fuzzers themselves run with `scripts/fuzz`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support;
use support::tiny_elf::{self, Machine, Segment, Shape};
use zeroimage::fuzzing::{Entry, TARGETS};
use zeroimage::util::cancel::CancelToken;

/// Generous for a debug build on a busy machine: the fuzzers run each input in milliseconds.
const BOUND: Duration = Duration::from_secs(20);

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = support::root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

/// Runs `entry` on the file's bytes in its own thread: a panic or a run past [`BOUND`] is a failure
/// naming the file.
fn check(target: &str, entry: Entry, file: &Path) -> Option<String> {
    let data = std::fs::read(file).unwrap();
    let (done, finished) = mpsc::channel();
    let start = Instant::now();
    let worker = std::thread::spawn(move || {
        entry(&data);
        let _ = done.send(());
    });
    match finished.recv_timeout(BOUND) {
        Ok(()) => {
            worker.join().unwrap();
            None
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Some(format!("{target}: {} panicked", file.display()))
        }
        // The thread is left running; the test process ends with the failure.
        Err(mpsc::RecvTimeoutError::Timeout) => Some(format!(
            "{target}: {} still running after {:?}",
            file.display(),
            start.elapsed()
        )),
    }
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let mut failures = Vec::new();
    let mut counted = 0;
    for (target, entry) in TARGETS {
        let files = inputs(target);
        assert!(
            !files.is_empty(),
            "fuzz/corpus/{target}/ has no seeds; every target keeps a few"
        );
        for file in files {
            counted += 1;
            failures.extend(check(target, *entry, &file));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{counted} fuzz inputs passed");
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for (target, _) in TARGETS {
        let file = support::root().join(format!("fuzz/fuzz_targets/{target}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("zeroimage::fuzzing::{target}(")),
            "{} does not call zeroimage::fuzzing::{target}",
            file.display()
        );
    }
}

/// Writes the binary seeds (ELF files built byte by byte, archives made by `zeroimage`) into
/// `fuzz/corpus/`: `cargo test --test cli -- --ignored fuzz_regressions::write_binary_seeds`.
#[test]
#[ignore = "regenerates committed seed files"]
fn write_binary_seeds() {
    let corpus = support::root().join("fuzz/corpus");
    let elf_dir = corpus.join("elf");
    std::fs::create_dir_all(&elf_dir).unwrap();
    let load = |offset, filesz| Segment {
        p_type: tiny_elf::PT_LOAD,
        offset,
        filesz,
    };
    let elves: [(&str, Vec<u8>); 8] = [
        (
            "x86_64-static",
            tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
        ),
        (
            "x86_64-static-pie",
            tiny_elf::build(Machine::X86_64, Shape::StaticPie, "hi\n"),
        ),
        (
            "x86_64-dynamic",
            tiny_elf::build(Machine::X86_64, Shape::Dynamic, "hi\n"),
        ),
        (
            "aarch64-static",
            tiny_elf::build(Machine::Aarch64, Shape::Static, "hi\n"),
        ),
        ("armv7-attributes", tiny_elf::arm_with_cpu_arch(10)),
        (
            "i386-headers",
            tiny_elf::headers(tiny_elf::EM_386, false, true, &[load(0, 84)]),
        ),
        (
            "s390x-big-endian",
            tiny_elf::headers(tiny_elf::EM_S390, true, false, &[load(0, 120)]),
        ),
        (
            "riscv64-interp-out-of-bounds",
            tiny_elf::headers(
                tiny_elf::EM_RISCV,
                true,
                true,
                &[Segment {
                    p_type: tiny_elf::PT_INTERP,
                    offset: 1 << 40,
                    filesz: 1 << 20,
                }],
            ),
        ),
    ];
    for (name, bytes) in elves {
        std::fs::write(elf_dir.join(name), bytes).unwrap();
    }

    let archive_dir = corpus.join("archive");
    std::fs::create_dir_all(&archive_dir).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let program = tiny_elf::write(
        dir.path(),
        "app",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "hi\n"),
    );
    support::package(
        &program,
        &archive_dir.join("single-platform.tar"),
        &["--tag", "app:1"],
    );
    // Extension headers: a PAX path for index.json, a GNU long name for a blob.
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("path", b"index.json".as_slice())])
        .unwrap();
    let index = br#"{"manifests":[{"mediaType":"m","digest":"sha256:00","size":2}]}"#;
    let mut header = tar::Header::new_ustar();
    header.set_size(index.len() as u64);
    builder
        .append_data(&mut header, "PaxHeaders/x", &index[..])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    builder
        .append_data(
            &mut header,
            format!("./blobs/sha256/{}", "0".repeat(64)),
            &b"{}"[..],
        )
        .unwrap();
    std::fs::write(
        archive_dir.join("extension-headers.tar"),
        builder.into_inner().unwrap(),
    )
    .unwrap();
    let (amd, arm) = tiny_elf::two_platform_programs(dir.path());
    support::run_ok(
        support::zeroimage()
            .arg("-o")
            .arg(archive_dir.join("two-platforms.tar"))
            .args(["--tag", "app:2", "--platform-binary"])
            .arg(format!("linux/amd64={}", amd.display()))
            .arg("--platform-binary")
            .arg(format!("linux/arm64={}", arm.display())),
    );
}

/// The in-memory reader the archive target uses sees what the file reader sees, down to blob reads.
#[test]
fn archives_read_from_memory_like_from_their_file() {
    use std::io::Read;
    use zeroimage::image::ImageTree;
    use zeroimage::image::blobs::BlobSource;
    use zeroimage::layout::read::ArchiveSource;
    for name in ["single-platform.tar", "two-platforms.tar"] {
        let path = support::root().join("fuzz/corpus/archive").join(name);
        let from_file = ArchiveSource::open(&path, &CancelToken::new()).unwrap();
        let in_memory =
            ArchiveSource::from_bytes(&path, std::fs::read(&path).unwrap(), &CancelToken::new())
                .unwrap();
        let top = from_file.select(None).unwrap().descriptor.clone();
        assert_eq!(top, in_memory.select(None).unwrap().descriptor, "{name}");
        let a = ImageTree::read(&from_file, &top).unwrap();
        let b = ImageTree::read(&in_memory, &top).unwrap();
        assert_eq!(a.top_bytes(), b.top_bytes(), "{name}");
        assert_eq!(a.blobs(), b.blobs(), "{name}");
        for blob in a.blobs() {
            let mut x = Vec::new();
            let mut y = Vec::new();
            from_file.open(blob).unwrap().read_to_end(&mut x).unwrap();
            in_memory.open(blob).unwrap().read_to_end(&mut y).unwrap();
            assert_eq!(x, y, "{name}");
            assert_eq!(x.len() as u64, blob.size);
        }
    }
}
