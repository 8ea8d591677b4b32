//! Inspecting an executable before it goes into an image: is it an ELF executable, which machine is it
//! for, and is it statically linked.
//!
//! Only the headers, the program headers, the interpreter path, the dynamic section and the names it
//! refers to are read (through a read cache), never the whole file: the layer writer reads the content
//! once, later. Every read is bounded by the file size and by a constant, whatever the headers claim, so
//! a sparse file declaring gigabyte segments costs no memory.

use std::fs::File;
use std::path::Path;

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::read::{ReadCache, ReadRef};
use object::{Endianness, FileKind};

use crate::error::{Error, Result};
use crate::oci::platform::Platform;

/// The Linux loader refuses larger program header tables.
const MAX_PROGRAM_HEADERS: u64 = 64 << 10;
/// An interpreter is a path: PATH_MAX, terminating NUL included.
const MAX_INTERPRETER: u64 = 4096;
/// Real dynamic sections hold a few dozen entries; this allows thousands.
const MAX_DYNAMIC: u64 = 64 << 10;
/// One library name (a file name, not even a path).
const MAX_NAME: u64 = 4096;
/// All library names together; names past this budget are reported as `?`.
const MAX_NAMES_TOTAL: u64 = 256 << 10;
/// Only read for arm, to find `.ARM.attributes`.
const MAX_SECTION_HEADERS: u64 = 1 << 20;
/// Real `.ARM.attributes` sections are a few dozen bytes.
const MAX_ARM_ATTRIBUTES: u64 = 64 << 10;

/// How an executable is linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// No interpreter and no shared libraries: runs in an empty image.
    Static,
    /// Position-independent but self-contained (what Rust's musl targets produce): runs in an empty image.
    StaticPie,
    /// Needs a dynamic loader and/or shared libraries that an empty image does not have.
    Dynamic {
        /// The `PT_INTERP` loader path, when the program names one.
        interpreter: Option<String>,
        /// DT_NEEDED: file names (or paths, when they hold a `/`) of the libraries to load.
        needed: Vec<String>,
        /// DT_RPATH directories, as written (`$ORIGIN` and other tokens unexpanded).
        rpath: Vec<String>,
        /// DT_RUNPATH directories, as written; when present the loader ignores DT_RPATH.
        runpath: Vec<String>,
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
                ..
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
    /// Whether it runs in an empty image or needs a loader and libraries.
    pub linkage: Linkage,
}

/// Reads the headers of `path` and describes the executable.
///
/// Fails with a message naming the file when it is missing, not a regular file, empty, not ELF,
/// malformed, for a machine no container platform covers, or an ELF file that is not an executable.
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
    let file = File::open(path).map_err(Error::io("opening", path))?;
    let cache = ReadCache::new(file);
    inspect_data(&cache).map_err(|message| Error::input(path, message))
}

/// Describes an executable held in memory, with the same checks as [`inspect`]; errors say "the data"
/// where [`inspect`] names the file.
pub fn inspect_bytes(data: &[u8]) -> Result<ElfInfo> {
    inspect_data(data).map_err(|message| Error::Invalid(format!("the data {message}")))
}

/// The checks behind [`inspect`] and [`inspect_bytes`]. The error is the message that follows the
/// file's name.
pub(crate) fn inspect_data<'data, R: ReadRef<'data>>(data: R) -> Result<ElfInfo, String> {
    let len = data.len().map_err(|()| "could not be read".to_owned())?;
    if len == 0 {
        return Err("is empty (0 bytes), not an executable".to_owned());
    }
    let magic = data
        .read_bytes_at(0, len.min(4))
        .map_err(|()| "could not be read".to_owned())?;
    if magic != elf::ELFMAG {
        let what = if magic.starts_with(b"#!") {
            "a script; a FROM scratch image has no interpreter to run it"
        } else if magic.starts_with(b"MZ") {
            "a Windows executable"
        } else if magic == [0xcf, 0xfa, 0xed, 0xfe] || magic == [0xca, 0xfe, 0xba, 0xbe] {
            "a macOS executable"
        } else {
            "not an ELF file"
        };
        return Err(format!(
            "is not a Linux ELF executable ({what}); pass a statically linked Linux executable"
        ));
    }
    match FileKind::parse(data).map_err(malformed)? {
        FileKind::Elf32 => inspect_elf::<elf::FileHeader32<Endianness>, _>(data, len),
        FileKind::Elf64 => inspect_elf::<elf::FileHeader64<Endianness>, _>(data, len),
        _ => Err(malformed("unknown ELF class")),
    }
}

fn malformed(e: impl std::fmt::Display) -> String {
    format!(
        "is not a valid ELF executable ({e}); it is damaged or truncated: rebuild or copy it again"
    )
}

fn inspect_elf<'data, Elf, R>(data: R, file_len: u64) -> Result<ElfInfo, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let header = Elf::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let file_type = header.e_type(endian);
    if file_type != elf::ET_EXEC && file_type != elf::ET_DYN {
        let kind = match file_type {
            elf::ET_REL => "a relocatable object file (.o)",
            elf::ET_CORE => "a core dump",
            _ => "an ELF file of unknown type",
        };
        return Err(format!("is {kind}, not an executable"));
    }
    let platform = platform_of(header, endian, data, file_len)?;

    let segments = program_headers(header, endian, data, file_len)?;
    let mut interpreter = None;
    let mut dynamic = None;
    for segment in segments {
        let p_type = segment.p_type(endian);
        let offset: u64 = segment.p_offset(endian).into();
        let size: u64 = segment.p_filesz(endian).into();
        let name = segment_name(p_type);
        // An empty segment (a bss-only PT_LOAD) has nothing in the file, wherever its offset points.
        if size > 0 && offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(malformed(format_args!(
                "its {name} segment of {size} bytes at offset {offset} goes past the end of the \
                 {file_len}-byte file"
            )));
        }
        let slot = match p_type {
            elf::PT_INTERP => &mut interpreter,
            elf::PT_DYNAMIC => &mut dynamic,
            _ => continue,
        };
        if slot.is_some() {
            return Err(malformed(format_args!(
                "it has more than one {name} segment"
            )));
        }
        *slot = Some((offset, size));
    }
    let interpreter = interpreter
        .map(|(offset, size)| read_interpreter(data, offset, size))
        .transpose()?;
    let names = match dynamic {
        Some((offset, size)) => dynamic_names::<Elf, R>(segments, endian, data, offset, size)?,
        None => DynamicNames::default(),
    };
    let linkage = if interpreter.is_some() || !names.needed.is_empty() {
        Linkage::Dynamic {
            interpreter,
            needed: names.needed,
            rpath: names.rpath,
            runpath: names.runpath,
        }
    } else if file_type == elf::ET_DYN {
        // Static-pie: ET_DYN with a PT_DYNAMIC for its own relocations, but nothing to load.
        if header.e_entry(endian).into() == 0 {
            return Err(
                "is a shared library, not an executable (it has no entry point)".to_owned(),
            );
        }
        Linkage::StaticPie
    } else {
        Linkage::Static
    };
    Ok(ElfInfo { platform, linkage })
}

fn segment_name(p_type: elf::ProgramType) -> String {
    match p_type {
        elf::PT_LOAD => "PT_LOAD".to_owned(),
        elf::PT_DYNAMIC => "PT_DYNAMIC".to_owned(),
        elf::PT_INTERP => "PT_INTERP".to_owned(),
        other => format!("type {:#x}", other.0),
    }
}

/// The program header table, refused when larger than the Linux loader accepts or past the end of the
/// file.
fn program_headers<'data, Elf, R>(
    header: &Elf,
    endian: Endianness,
    data: R,
    file_len: u64,
) -> Result<&'data [Elf::ProgramHeader], String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let offset: u64 = header.e_phoff(endian).into();
    let count = u64::from(header.phnum(endian, data).map_err(malformed)?);
    if offset == 0 || count == 0 {
        return Ok(&[]);
    }
    let size = count * u64::from(header.e_phentsize(endian));
    if size > MAX_PROGRAM_HEADERS {
        return Err(malformed(format_args!(
            "its program header table claims {size} bytes; Linux loads at most {MAX_PROGRAM_HEADERS}"
        )));
    }
    if offset.checked_add(size).is_none_or(|end| end > file_len) {
        return Err(malformed(format_args!(
            "its program header table of {size} bytes at offset {offset} goes past the end of the \
             {file_len}-byte file"
        )));
    }
    header.program_headers(endian, data).map_err(malformed)
}

/// The PT_INTERP path, which must fit in [`MAX_INTERPRETER`] bytes and end with a NUL.
fn read_interpreter<'data, R: ReadRef<'data>>(
    data: R,
    offset: u64,
    size: u64,
) -> Result<String, String> {
    if size > MAX_INTERPRETER {
        return Err(malformed(format_args!(
            "its PT_INTERP segment claims {size} bytes; an interpreter path is at most \
             {MAX_INTERPRETER}"
        )));
    }
    let bytes = data
        .read_bytes_at(offset, size)
        .map_err(|()| malformed("its PT_INTERP segment cannot be read"))?;
    let path = bytes
        .split(|&b| b == 0)
        .next()
        .filter(|path| path.len() < bytes.len())
        .ok_or_else(|| malformed("its PT_INTERP path has no terminating NUL"))?;
    Ok(String::from_utf8_lossy(path).into_owned())
}

/// The names the dynamic section refers to.
#[derive(Default)]
struct DynamicNames {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

/// The libraries DT_NEEDED names and the DT_RPATH and DT_RUNPATH directories, resolved through
/// DT_STRTAB (mapped from its address to a file offset by the PT_LOAD segments). A library we cannot
/// name is still reported, as `?`; a search path we cannot read is left out.
fn dynamic_names<'data, Elf, R>(
    segments: &[Elf::ProgramHeader],
    endian: Endianness,
    data: R,
    offset: u64,
    size: u64,
) -> Result<DynamicNames, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    if size > MAX_DYNAMIC {
        return Err(malformed(format_args!(
            "its PT_DYNAMIC segment claims {size} bytes; at most {MAX_DYNAMIC} are plausible"
        )));
    }
    let count = size / size_of::<Elf::Dyn>() as u64;
    let entries = data
        .read_slice_at::<Elf::Dyn>(offset, count as usize)
        .map_err(|()| malformed("its PT_DYNAMIC segment cannot be read"))?;
    let mut name_offsets = Vec::new();
    let mut rpath_offsets = Vec::new();
    let mut runpath_offsets = Vec::new();
    let mut strtab_addr = None;
    for entry in entries {
        let tag = entry.d_tag(endian);
        if tag == elf::DT_NULL {
            break;
        }
        let value: u64 = entry.d_val(endian).into();
        if tag == elf::DT_NEEDED {
            name_offsets.push(value);
        } else if tag == elf::DT_RPATH {
            rpath_offsets.push(value);
        } else if tag == elf::DT_RUNPATH {
            runpath_offsets.push(value);
        } else if tag == elf::DT_STRTAB {
            strtab_addr = Some(value);
        }
    }
    let strtab = strtab_addr.and_then(|addr| {
        segments.iter().find_map(|s| {
            let vaddr: u64 = s.p_vaddr(endian).into();
            let filesz: u64 = s.p_filesz(endian).into();
            let offset: u64 = s.p_offset(endian).into();
            let inside = s.p_type(endian) == elf::PT_LOAD && addr >= vaddr && addr - vaddr < filesz;
            inside.then(|| offset + (addr - vaddr))
        })
    });
    let file_len = data.len().unwrap_or(0);
    let mut budget = MAX_NAMES_TOTAL;
    let mut string = |name_offset: u64| {
        let name = strtab
            .and_then(|base| base.checked_add(name_offset))
            .filter(|&start| start < file_len && budget > 0)
            .and_then(|start| {
                let end = file_len.min(start.saturating_add(MAX_NAME));
                data.read_bytes_at_until(start..end, 0).ok()
            })?;
        budget = budget.saturating_sub(name.len() as u64 + 1);
        Some(String::from_utf8_lossy(name).into_owned())
    };
    let needed = name_offsets
        .iter()
        .map(|&offset| string(offset).unwrap_or_else(|| "?".to_owned()))
        .collect();
    let mut search_path = |offsets: &[u64]| -> Vec<String> {
        offsets
            .iter()
            .filter_map(|&offset| string(offset))
            .flat_map(|path| {
                path.split(':')
                    .filter(|dir| !dir.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let rpath = search_path(&rpath_offsets);
    let runpath = search_path(&runpath_offsets);
    Ok(DynamicNames {
        needed,
        rpath,
        runpath,
    })
}

/// The platform of the machine code, from `e_machine`, the class and the byte order: only combinations
/// that exist and have an OCI architecture are accepted.
fn platform_of<'data, Elf, R>(
    header: &Elf,
    endian: Endianness,
    data: R,
    file_len: u64,
) -> Result<Platform, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let is64 = header.is_class_64();
    let little = header.is_little_endian();
    let machine = header.e_machine(endian);
    let arch = match (machine, is64, little) {
        (elf::EM_X86_64, true, true) => "amd64",
        (elf::EM_386, false, true) => "386",
        (elf::EM_AARCH64, true, true) => "arm64",
        (elf::EM_ARM, false, true) => "arm",
        (elf::EM_PPC64, true, true) => "ppc64le",
        (elf::EM_PPC64, true, false) => "ppc64",
        (elf::EM_S390, true, false) => "s390x",
        (elf::EM_RISCV, true, true) => "riscv64",
        (elf::EM_LOONGARCH, true, true) => "loong64",
        (elf::EM_MIPS, true, true) => "mips64le",
        (elf::EM_MIPS, true, false) => "mips64",
        (elf::EM_MIPS, false, true) => "mipsle",
        (elf::EM_MIPS, false, false) => "mips",
        _ => return Err(no_platform(machine, is64, little)),
    };
    let variant = if arch == "arm" {
        arm_variant(header, endian, data, file_len)
    } else {
        None
    };
    Platform::linux(arch, variant).map_err(|e| e.to_string())
}

/// Why no container platform matches what the header claims.
fn no_platform(machine: elf::Machine, is64: bool, little: bool) -> String {
    let name = match machine {
        elf::EM_X86_64 => "x86-64",
        elf::EM_386 => "i386",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_ARM => "arm",
        elf::EM_PPC64 => "ppc64",
        elf::EM_S390 => "s390",
        elf::EM_RISCV => "riscv",
        elf::EM_LOONGARCH => "loongarch",
        elf::EM_MIPS => "mips",
        _ => "",
    };
    let reason = match (machine, is64, little) {
        (elf::EM_X86_64, false, true) => "that is the x32 ABI, which has no OCI architecture",
        (elf::EM_AARCH64, true, false) => "that is aarch64_be, which has no OCI architecture",
        (elf::EM_AARCH64, false, _) => "that is aarch64 ILP32, which has no OCI architecture",
        (elf::EM_ARM, false, false) => "that is armeb, which has no OCI architecture",
        (elf::EM_S390, false, false) => {
            "that is 31-bit s390, which has no OCI architecture (only s390x)"
        }
        (elf::EM_RISCV, false, _) => {
            "that is riscv32, which has no OCI architecture (only riscv64)"
        }
        (elf::EM_LOONGARCH, false, _) => {
            "that is loongarch32, which has no OCI architecture (only loong64)"
        }
        _ if name.is_empty() => "no OCI architecture covers that machine",
        _ => "that combination does not exist",
    };
    let machine = if name.is_empty() {
        format!("e_machine {}", machine.0)
    } else {
        format!("{name} (e_machine {})", machine.0)
    };
    format!(
        "is an ELF executable whose header claims {machine}, {}-bit, {}-endian: {reason}; no \
         container platform matches",
        if is64 { 64 } else { 32 },
        if little { "little" } else { "big" },
    )
}

/// Reads `Tag_CPU_arch` from `.ARM.attributes` to tell arm v5, v6 and v7 apart. Best effort: a missing,
/// oversized or unreadable section leaves the variant unknown.
fn arm_variant<'data, Elf, R>(
    header: &Elf,
    endian: Endianness,
    data: R,
    file_len: u64,
) -> Option<&'static str>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    const TAG_CPU_ARCH: u64 = 6;
    let fits = |offset: u64, size: u64, max: u64| {
        size <= max && offset.checked_add(size).is_some_and(|end| end <= file_len)
    };
    let table_offset: u64 = header.e_shoff(endian).into();
    let count = u64::from(header.shnum(endian, data).ok()?);
    if !fits(
        table_offset,
        count * u64::from(header.e_shentsize(endian)),
        MAX_SECTION_HEADERS,
    ) {
        return None;
    }
    let section = header
        .section_headers(endian, data)
        .ok()?
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_ARM_ATTRIBUTES)?;
    if !fits(
        section.sh_offset(endian).into(),
        section.sh_size(endian).into(),
        MAX_ARM_ATTRIBUTES,
    ) {
        return None;
    }
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
