//! The ELF checks against precise hand-built shapes and real binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;
use support::tiny_elf::{self, Machine, Segment, Shape};
use zeroimage::assemble::elf::{Linkage, inspect, inspect_bytes};

const ELF64: bool = true;
const ELF32: bool = false;
const LITTLE: bool = true;
const BIG: bool = false;

#[test]
fn tiny_static_programs_really_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_elf::write(
        dir.path(),
        "tiny",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "tiny says hi\n"),
    );
    let output = Command::new(&path).output().expect("run tiny ELF");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "tiny says hi\n");
    assert!(output.status.success());
}

#[test]
fn static_executable_is_static_with_its_machine() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_elf::write(
        dir.path(),
        "s",
        &tiny_elf::build(Machine::X86_64, Shape::Static, "x"),
    );
    let info = inspect(&path).unwrap();
    assert_eq!(info.linkage, Linkage::Static);
    assert_eq!(info.platform.to_string(), "linux/amd64");
}

#[test]
fn static_pie_counts_as_static() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_elf::write(
        dir.path(),
        "p",
        &tiny_elf::build(Machine::X86_64, Shape::StaticPie, "x"),
    );
    let info = inspect(&path).unwrap();
    assert_eq!(info.linkage, Linkage::StaticPie);
    assert!(info.linkage.is_static());
}

#[test]
fn dynamic_executable_names_interpreter_and_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_elf::write(
        dir.path(),
        "d",
        &tiny_elf::build(Machine::X86_64, Shape::Dynamic, "x"),
    );
    let info = inspect(&path).unwrap();
    assert_eq!(
        info.linkage,
        Linkage::Dynamic {
            interpreter: Some("/lib/ld-musl-x86_64.so.1".to_owned()),
            needed: vec!["libc.so".to_owned()],
            rpath: Vec::new(),
            runpath: Vec::new(),
        }
    );
    assert!(!info.linkage.is_static());
}

#[test]
fn foreign_machine_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_elf::write(
        dir.path(),
        "a",
        &tiny_elf::build(Machine::Aarch64, Shape::Static, "x"),
    );
    assert_eq!(inspect(&path).unwrap().platform.to_string(), "linux/arm64");
}

#[test]
fn real_system_binary_is_dynamic() {
    let ls = Path::new("/bin/ls");
    if !ls.exists() {
        eprintln!("SKIPPED: /bin/ls not present");
        return;
    }
    let info = inspect(ls).unwrap();
    match &info.linkage {
        Linkage::Dynamic {
            interpreter,
            needed,
            ..
        } => {
            assert!(
                interpreter.as_deref().is_some_and(|i| i.contains("ld-")),
                "{interpreter:?}"
            );
            assert!(
                needed.iter().any(|n| n.starts_with("libc.so")),
                "{needed:?}"
            );
        }
        other => panic!("/bin/ls should be dynamic, got {other:?}"),
    }
}

#[test]
fn real_musl_builds_are_static_pie_for_their_target() {
    for (target, platform) in [
        (support::X86_64_MUSL, "linux/amd64"),
        (support::AARCH64_MUSL, "linux/arm64"),
    ] {
        let Some(binary) = support::hello_fixture(target) else {
            continue;
        };
        let info = inspect(&binary).unwrap();
        assert!(info.linkage.is_static(), "{target}: {:?}", info.linkage);
        assert_eq!(info.platform.to_string(), platform, "{target}");
    }
}

#[test]
fn non_executables_are_refused_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty", b"", "is empty"),
        ("script", b"#!/bin/sh\necho hi\n", "a script"),
        ("text", b"just some text\n", "not an ELF file"),
        ("short", b"\x7fEL", "not an ELF file"),
    ];
    for (name, content, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = inspect(&path).unwrap_err().to_string();
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
    }
    let mut truncated = tiny_elf::build(Machine::X86_64, Shape::Static, "x");
    truncated.truncate(80);
    let path = tiny_elf::write(dir.path(), "truncated", &truncated);
    assert!(
        inspect(&path)
            .unwrap_err()
            .to_string()
            .contains("not a valid ELF")
    );
    assert!(
        inspect(dir.path())
            .unwrap_err()
            .to_string()
            .contains("is a directory")
    );
    assert!(
        inspect(&dir.path().join("missing"))
            .unwrap_err()
            .to_string()
            .contains("no such file")
    );
}

/// Runs `zeroimage INPUT -o OUT` with its address space limited to 512 MiB, or `None` (skipped) when
/// prlimit is missing.
fn zeroimage_within_512_mib(input: &Path, out: &Path) -> Option<Output> {
    let prlimit = support::peer("prlimit")?;
    let limit = format!("--as={}", 512u64 << 20);
    let output = support::zeroimage_via(prlimit, &[&limit])
        .arg(input)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    Some(output)
}

/// Asserts a clean refusal: exit 1, one `error:` line naming `input` and containing `needles`.
fn assert_refused(output: &Output, input: &Path, needles: &[&str]) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(&input.display().to_string()), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing `{needle}` in: {err}");
    }
}

/// A sparse file of 2 GiB and 4 KiB whose x86-64 headers claim one segment.
fn sparse_claiming(dir: &Path, name: &str, claim: Segment) -> PathBuf {
    let bytes = tiny_elf::headers(tiny_elf::EM_X86_64, ELF64, LITTLE, &[claim]);
    let path = tiny_elf::write(dir, name, &bytes);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len((2 << 30) + 4096).unwrap();
    path
}

/// Set in the child process [`huge_declared_segments_are_refused_without_reading_them`] runs itself
/// in: the peak resident memory it checks is the whole process's, so no other test may run beside it.
const ALONE: &str = "ZI_ELF_CHECKS_ALONE";

#[test]
fn huge_declared_segments_are_refused_without_reading_them() {
    if std::env::var_os(ALONE).is_none() {
        let output = support::this_test_in_child(
            module_path!(),
            "huge_declared_segments_are_refused_without_reading_them",
        )
        .env(ALONE, "1")
        .output()
        .unwrap();
        support::assert_child_passed(&output);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tar");
    let cases = [
        (
            "interp",
            segment(tiny_elf::PT_INTERP, 4096, 2 << 30),
            "PT_INTERP segment claims 2147483648 bytes",
        ),
        (
            "dynamic",
            segment(tiny_elf::PT_DYNAMIC, 4096, 2 << 30),
            "PT_DYNAMIC segment claims 2147483648 bytes",
        ),
        (
            "past-end",
            segment(tiny_elf::PT_INTERP, 4096, 8 << 30),
            "goes past the end of the 2147487744-byte file",
        ),
    ];
    for (name, claim, needle) in cases {
        let input = sparse_claiming(dir.path(), name, claim);
        let result = inspect(&input);
        let peak = peak_resident_bytes();
        assert!(
            peak < 256 << 20,
            "{name}: peak resident memory {peak} bytes"
        );
        let err = result.unwrap_err().to_string();
        assert!(err.contains(needle), "{name}: {err}");
        if let Some(output) = zeroimage_within_512_mib(&input, &out) {
            assert_refused(&output, &input, &["not a valid ELF executable", needle]);
            assert!(!out.exists(), "{name}: no archive on failure");
        }
    }
}

/// This test process's peak resident memory (VmHWM).
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// `headers` for x86-64 with the given segments, padded with zeros to `len` bytes.
fn amd64_claiming(segments: &[Segment], len: usize) -> Vec<u8> {
    let mut bytes = tiny_elf::headers(tiny_elf::EM_X86_64, ELF64, LITTLE, segments);
    assert!(bytes.len() <= len);
    bytes.resize(len, 0);
    bytes
}

fn segment(p_type: u32, offset: u64, filesz: u64) -> Segment {
    Segment {
        p_type,
        offset,
        filesz,
    }
}

#[test]
fn implausible_claims_are_refused_as_malformed() {
    let cases = [
        (
            "interpreter longer than a path",
            amd64_claiming(&[segment(tiny_elf::PT_INTERP, 4096, 8192)], 12 << 10),
            "PT_INTERP segment claims 8192 bytes",
        ),
        (
            "dynamic section of 128 KiB",
            amd64_claiming(&[segment(tiny_elf::PT_DYNAMIC, 4096, 128 << 10)], 132 << 10),
            "PT_DYNAMIC segment claims 131072 bytes",
        ),
        (
            "segment past the end of the file",
            amd64_claiming(&[segment(tiny_elf::PT_LOAD, 0, 1 << 20)], 4096),
            "PT_LOAD segment of 1048576 bytes at offset 0 goes past the end of the 4096-byte file",
        ),
        (
            "two interpreters",
            amd64_claiming(
                &[
                    segment(tiny_elf::PT_INTERP, 4096, 8),
                    segment(tiny_elf::PT_INTERP, 4104, 8),
                ],
                8192,
            ),
            "more than one PT_INTERP segment",
        ),
        (
            "program header table over 64 KiB",
            amd64_claiming(&[segment(0, 0, 0); 1200], 80 << 10),
            "program header table claims 67200 bytes",
        ),
    ];
    for (what, bytes, needle) in cases {
        let err = inspect_bytes(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("is not a valid ELF executable"),
            "{what}: {err}"
        );
        assert!(err.contains(needle), "{what}: {err}");
    }
}

#[test]
fn bytes_in_memory_are_inspected_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [Shape::Static, Shape::StaticPie, Shape::Dynamic] {
        let bytes = tiny_elf::build(Machine::X86_64, shape, "x");
        let path = tiny_elf::write(dir.path(), "p", &bytes);
        assert_eq!(inspect_bytes(&bytes).unwrap(), inspect(&path).unwrap());
    }
    let err = inspect_bytes(b"#!/bin/sh\n").unwrap_err().to_string();
    assert!(
        err.starts_with("the data is not a Linux ELF executable (a script"),
        "{err}"
    );
    let err = inspect_bytes(b"").unwrap_err().to_string();
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn every_container_machine_keeps_its_label() {
    use tiny_elf::{
        EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_MIPS, EM_PPC64, EM_RISCV, EM_S390,
    };
    let cases = [
        (tiny_elf::EM_X86_64, ELF64, LITTLE, "linux/amd64"),
        (EM_386, ELF32, LITTLE, "linux/386"),
        (EM_AARCH64, ELF64, LITTLE, "linux/arm64"),
        (EM_ARM, ELF32, LITTLE, "linux/arm/v7"),
        (EM_PPC64, ELF64, LITTLE, "linux/ppc64le"),
        (EM_PPC64, ELF64, BIG, "linux/ppc64"),
        (EM_S390, ELF64, BIG, "linux/s390x"),
        (EM_RISCV, ELF64, LITTLE, "linux/riscv64"),
        (EM_LOONGARCH, ELF64, LITTLE, "linux/loong64"),
        (EM_MIPS, ELF64, LITTLE, "linux/mips64le"),
        (EM_MIPS, ELF64, BIG, "linux/mips64"),
        (EM_MIPS, ELF32, LITTLE, "linux/mipsle"),
        (EM_MIPS, ELF32, BIG, "linux/mips"),
    ];
    for (machine, class64, little, platform) in cases {
        let bytes = tiny_elf::headers(machine, class64, little, &[]);
        let info = inspect_bytes(&bytes).unwrap();
        assert_eq!(info.platform.to_string(), platform);
        assert_eq!(info.linkage, Linkage::Static, "{platform}");
    }
}

#[test]
fn impossible_machine_class_and_byte_order_are_refused() {
    use tiny_elf::{EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_PPC64, EM_RISCV, EM_S390};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tar");
    let cases = [
        (
            tiny_elf::EM_X86_64,
            ELF64,
            BIG,
            "x86-64 (e_machine 62), 64-bit, big-endian",
        ),
        (
            tiny_elf::EM_X86_64,
            ELF32,
            LITTLE,
            "x86-64 (e_machine 62), 32-bit, little-endian",
        ),
        (
            EM_386,
            ELF64,
            LITTLE,
            "i386 (e_machine 3), 64-bit, little-endian",
        ),
        (EM_386, ELF32, BIG, "i386 (e_machine 3), 32-bit, big-endian"),
        (
            EM_AARCH64,
            ELF64,
            BIG,
            "aarch64 (e_machine 183), 64-bit, big-endian",
        ),
        (
            EM_AARCH64,
            ELF32,
            LITTLE,
            "aarch64 (e_machine 183), 32-bit, little-endian",
        ),
        (
            EM_ARM,
            ELF64,
            LITTLE,
            "arm (e_machine 40), 64-bit, little-endian",
        ),
        (EM_ARM, ELF32, BIG, "arm (e_machine 40), 32-bit, big-endian"),
        (
            EM_PPC64,
            ELF32,
            BIG,
            "ppc64 (e_machine 21), 32-bit, big-endian",
        ),
        (
            EM_S390,
            ELF32,
            BIG,
            "s390 (e_machine 22), 32-bit, big-endian",
        ),
        (
            EM_S390,
            ELF64,
            LITTLE,
            "s390 (e_machine 22), 64-bit, little-endian",
        ),
        (
            EM_RISCV,
            ELF32,
            LITTLE,
            "riscv (e_machine 243), 32-bit, little-endian",
        ),
        (
            EM_RISCV,
            ELF64,
            BIG,
            "riscv (e_machine 243), 64-bit, big-endian",
        ),
        (
            EM_LOONGARCH,
            ELF32,
            LITTLE,
            "loongarch (e_machine 258), 32-bit",
        ),
        (
            tiny_elf::EM_SPARC,
            ELF32,
            BIG,
            "e_machine 2, 32-bit, big-endian",
        ),
    ];
    for (i, (machine, class64, little, claims)) in cases.into_iter().enumerate() {
        let bytes = tiny_elf::headers(machine, class64, little, &[]);
        let input = tiny_elf::write(dir.path(), &format!("case{i}"), &bytes);
        let output = support::zeroimage()
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let header_claims = format!("whose header claims {claims}");
        assert_refused(
            &output,
            &input,
            &[&header_claims, "no container platform matches"],
        );
        assert!(!out.exists(), "{claims}: no archive on failure");
    }
    let bytes = tiny_elf::headers(EM_AARCH64, ELF64, BIG, &[]);
    let err = inspect_bytes(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("aarch64_be, which has no OCI architecture"),
        "{err}"
    );
    let bytes = tiny_elf::headers(EM_ARM, ELF64, LITTLE, &[]);
    let err = inspect_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("that combination does not exist"), "{err}");
}

#[test]
fn arm_variant_comes_from_the_attributes_section() {
    for (cpu_arch, platform) in [
        (5, "linux/arm/v5"),
        (6, "linux/arm/v6"),
        (10, "linux/arm/v7"),
    ] {
        let info = inspect_bytes(&tiny_elf::arm_with_cpu_arch(cpu_arch)).unwrap();
        assert_eq!(
            info.platform.to_string(),
            platform,
            "Tag_CPU_arch {cpu_arch}"
        );
    }
}
