//! The ELF checks against precise hand-built shapes and real binaries.

mod support;

use std::path::Path;
use std::process::Command;

use support::tiny_elf::{self, Machine, Shape};
use zeroimage::elf::{Linkage, inspect};

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
