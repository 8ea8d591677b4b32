//! Inspecting an executable before it goes into an image: is it an ELF executable, which machine is it
//! for, and is it statically linked.
//!
//! Only the headers, the program headers and the dynamic section are read (through a read cache), never
//! the whole file: the layer writer reads the content once, later.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::read::{ReadCache, ReadRef};
use object::{Endianness, FileKind};

use crate::error::{Error, Result};
use crate::platform::Platform;

/// How an executable is linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// No interpreter and no shared libraries: runs in an empty image.
    Static,
    /// Position-independent but self-contained (what Rust's musl targets produce): runs in an empty image.
    StaticPie,
    /// Needs a dynamic loader and/or shared libraries that an empty image does not have.
    Dynamic {
        interpreter: Option<String>,
        needed: Vec<String>,
    },
}

impl Linkage {
    /// True for the two kinds that run in a FROM scratch image.
    pub fn is_static(&self) -> bool {
        !matches!(self, Linkage::Dynamic { .. })
    }

    /// Human description of what a dynamic executable needs, e.g. `interpreter /lib/ld.so; needs libc.so.6`.
    pub fn describe_needs(&self) -> String {
        match self {
            Linkage::Dynamic {
                interpreter,
                needed,
            } => {
                let mut parts = Vec::new();
                if let Some(interp) = interpreter {
                    parts.push(format!("interpreter {interp}"));
                }
                if !needed.is_empty() {
                    parts.push(format!("needs {}", needed.join(", ")));
                }
                parts.join("; ")
            }
            _ => "nothing".to_owned(),
        }
    }
}

/// What the ELF headers tell about an executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// The platform the machine code is for (architecture, arm variant when recorded).
    pub platform: Platform,
    pub linkage: Linkage,
}

/// Reads the headers of `path` and describes the executable.
///
/// Fails with a message naming the file when it is missing, not a regular file, empty, not ELF,
/// or an ELF file that is not an executable.
pub fn inspect(path: &Path) -> Result<ElfInfo> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::input(
            path,
            "no such file; pass the path of a statically linked Linux executable",
        ),
        _ => Error::io("reading", path)(e),
    })?;
    if meta.is_dir() {
        return Err(Error::input(
            path,
            "is a directory, not an executable; pass the program file itself",
        ));
    }
    if !meta.is_file() {
        return Err(Error::input(
            path,
            "is not a regular file (device, socket or pipe); pass a program file",
        ));
    }
    if meta.len() == 0 {
        return Err(Error::input(path, "is empty (0 bytes), not an executable"));
    }
    let mut file = File::open(path).map_err(Error::io("opening", path))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(Error::io("reading", path))?;
    if magic[..n] != elf::ELFMAG[..n] || n < 4 {
        let what = if magic.starts_with(b"#!") {
            "a script; a FROM scratch image has no interpreter to run it"
        } else if magic.starts_with(b"MZ") {
            "a Windows executable"
        } else if magic == [0xcf, 0xfa, 0xed, 0xfe] || magic == [0xca, 0xfe, 0xba, 0xbe] {
            "a macOS executable"
        } else {
            "not an ELF file"
        };
        return Err(Error::input(
            path,
            format!(
                "is not a Linux ELF executable ({what}); pass a statically linked Linux executable"
            ),
        ));
    }
    let cache = ReadCache::new(file);
    let malformed =
        |e: object::read::Error| Error::input(path, format!("is not a valid ELF executable ({e})"));
    match FileKind::parse(&cache).map_err(malformed)? {
        FileKind::Elf32 => inspect_elf::<elf::FileHeader32<Endianness>, _>(path, &cache),
        FileKind::Elf64 => inspect_elf::<elf::FileHeader64<Endianness>, _>(path, &cache),
        _ => Err(Error::input(path, "is not a valid ELF executable")),
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn inspect_elf<'data, Elf, R>(path: &Path, data: R) -> Result<ElfInfo>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let malformed =
        |e: object::read::Error| Error::input(path, format!("is not a valid ELF executable ({e})"));
    let header = Elf::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let file_type = header.e_type(endian);
    if file_type != elf::ET_EXEC && file_type != elf::ET_DYN {
        let kind = match file_type {
            elf::ET_REL => "a relocatable object file (.o)",
            elf::ET_CORE => "a core dump",
            _ => "an ELF file of unknown type",
        };
        return Err(Error::input(path, format!("is {kind}, not an executable")));
    }
    let platform = platform_of::<Elf, R>(path, header, endian, data)?;

    let segments = header.program_headers(endian, data).map_err(malformed)?;
    let mut interpreter = None;
    let mut needed_offsets = Vec::new();
    let mut strtab_addr = None;
    for segment in segments {
        if let Some(interp) = segment.interpreter(endian, data).map_err(malformed)? {
            interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
        if let Some(entries) = segment.dynamic(endian, data).map_err(malformed)? {
            for entry in entries {
                let tag = entry.d_tag(endian);
                if tag == elf::DT_NULL {
                    break;
                }
                let value: u64 = entry.d_val(endian).into();
                if tag == elf::DT_NEEDED {
                    needed_offsets.push(value);
                } else if tag == elf::DT_STRTAB {
                    strtab_addr = Some(value);
                }
            }
        }
    }
    let needed = needed_names::<Elf, R>(segments, endian, data, strtab_addr, &needed_offsets);
    let linkage = if interpreter.is_some() || !needed.is_empty() {
        Linkage::Dynamic {
            interpreter,
            needed,
        }
    } else if file_type == elf::ET_DYN {
        // Static-pie: ET_DYN with a PT_DYNAMIC for its own relocations, but nothing to load.
        if header.e_entry(endian).into() == 0 {
            return Err(Error::input(
                path,
                "is a shared library, not an executable (it has no entry point)",
            ));
        }
        Linkage::StaticPie
    } else {
        Linkage::Static
    };
    Ok(ElfInfo { platform, linkage })
}

/// Resolves DT_NEEDED string offsets through DT_STRTAB, mapped from its address to a file offset by the
/// PT_LOAD segments. A library we cannot name is still reported, as `?`.
fn needed_names<'data, Elf, R>(
    segments: &[Elf::ProgramHeader],
    endian: Endianness,
    data: R,
    strtab_addr: Option<u64>,
    offsets: &[u64],
) -> Vec<String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let strtab_offset = strtab_addr.and_then(|addr| {
        segments.iter().find_map(|s| {
            let vaddr: u64 = s.p_vaddr(endian).into();
            let filesz: u64 = s.p_filesz(endian).into();
            let offset: u64 = s.p_offset(endian).into();
            (s.p_type(endian) == elf::PT_LOAD && addr >= vaddr && addr < vaddr + filesz)
                .then(|| offset + (addr - vaddr))
        })
    });
    let file_len = data.len().unwrap_or(0);
    offsets
        .iter()
        .map(|name_offset| {
            strtab_offset
                .map(|base| base + name_offset)
                .filter(|&start| start < file_len)
                .and_then(|start| data.read_bytes_at_until(start..file_len, 0).ok())
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .unwrap_or_else(|| "?".to_owned())
        })
        .collect()
}

fn platform_of<'data, Elf, R>(
    path: &Path,
    header: &Elf,
    endian: Endianness,
    data: R,
) -> Result<Platform>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let is64 = header.is_class_64();
    let little = header.is_little_endian();
    let machine = header.e_machine(endian);
    let arch = match machine {
        elf::EM_X86_64 if is64 => "amd64",
        elf::EM_AARCH64 if is64 => "arm64",
        elf::EM_386 => "386",
        elf::EM_ARM => "arm",
        elf::EM_PPC64 if little => "ppc64le",
        elf::EM_PPC64 => "ppc64",
        elf::EM_S390 if is64 => "s390x",
        elf::EM_RISCV if is64 => "riscv64",
        elf::EM_LOONGARCH if is64 => "loong64",
        elf::EM_MIPS if is64 && little => "mips64le",
        elf::EM_MIPS if is64 => "mips64",
        elf::EM_MIPS if little => "mipsle",
        elf::EM_MIPS => "mips",
        other => {
            return Err(Error::input(
                path,
                format!(
                    "is an ELF executable for a machine no container platform covers (e_machine {}, {}-bit)",
                    other.0,
                    if is64 { 64 } else { 32 }
                ),
            ));
        }
    };
    let variant = if arch == "arm" {
        arm_variant::<Elf, R>(header, endian, data)
    } else {
        None
    };
    Platform::linux(arch, variant)
}

/// Reads `Tag_CPU_arch` from `.ARM.attributes` to tell arm v5, v6 and v7 apart.
fn arm_variant<'data, Elf, R>(header: &Elf, endian: Endianness, data: R) -> Option<&'static str>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    const TAG_CPU_ARCH: u64 = 6;
    let sections = header.sections(endian, data).ok()?;
    let section = sections
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_ARM_ATTRIBUTES)?;
    let attributes = section.attributes(endian, data).ok()?;
    let mut subsections = attributes.subsections().ok()?;
    while let Ok(Some(subsection)) = subsections.next() {
        if subsection.vendor() != b"aeabi" {
            continue;
        }
        let mut subsubsections = subsection.subsubsections();
        while let Ok(Some(subsub)) = subsubsections.next() {
            if subsub.tag() != elf::Tag_File {
                continue;
            }
            let mut reader = subsub.attributes();
            while let Ok(Some(tag)) = reader.read_tag() {
                // ARM ABI addenda: tags 4, 5, 67 and odd tags >= 32 are strings; 32 is int + string.
                match tag {
                    TAG_CPU_ARCH => {
                        return match reader.read_integer().ok()? {
                            1..=5 => Some("v5"),
                            6..=9 | 11 | 12 => Some("v6"),
                            10 | 13 => Some("v7"),
                            14.. => Some("v8"),
                            _ => None,
                        };
                    }
                    4 | 5 | 67 => {
                        reader.read_string().ok()?;
                    }
                    32 => {
                        reader.read_integer().ok()?;
                        reader.read_string().ok()?;
                    }
                    t if t > 32 && t % 2 == 1 => {
                        reader.read_string().ok()?;
                    }
                    _ => {
                        reader.read_integer().ok()?;
                    }
                }
            }
        }
    }
    None
}
