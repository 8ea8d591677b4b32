//! Hand-assembled ELF files: byte-for-byte fixed inputs for golden tests, and precise shapes (static,
//! static-pie, dynamic, foreign machine) for the ELF checks. The x86-64 and aarch64 programs really run:
//! they write a message to stdout and exit 0.

pub const EM_386: u16 = 3;
pub const EM_SPARC: u16 = 2;
pub const EM_MIPS: u16 = 8;
pub const EM_PPC64: u16 = 21;
pub const EM_S390: u16 = 22;
pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;
pub const EM_LOONGARCH: u16 = 258;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// ET_EXEC, no PT_INTERP, no PT_DYNAMIC.
    Static,
    /// ET_DYN with a PT_DYNAMIC that needs nothing.
    StaticPie,
    /// PT_INTERP plus DT_NEEDED libc.so.
    Dynamic,
}

/// Machine code that writes `message` to fd 1 and exits 0.
fn code(machine: Machine, message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).expect("short message");
    let mut code = Vec::new();
    match machine {
        Machine::X86_64 => {
            code.extend([0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
            code.extend([0xbf, 1, 0, 0, 0]); // mov edi, 1
            code.extend([0x48, 0x8d, 0x35, 16, 0, 0, 0]); // lea rsi, [rip+16] -> message
            code.push(0xba); // mov edx, len
            code.extend(len.to_le_bytes());
            code.extend([0x0f, 0x05]); // syscall
            code.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
            code.extend([0x31, 0xff]); // xor edi, edi
            code.extend([0x0f, 0x05]); // syscall
            assert_eq!(code.len(), 33);
        }
        Machine::Aarch64 => {
            assert!(len < 1 << 16);
            let words: [u32; 8] = [
                0xd280_0020,              // mov x0, #1
                0x1000_00e1,              // adr x1, #28 -> message
                0xd280_0002 | (len << 5), // mov x2, #len
                0xd280_0808,              // mov x8, #64 (write)
                0xd400_0001,              // svc #0
                0xd280_0000,              // mov x0, #0
                0xd280_0ba8,              // mov x8, #93 (exit)
                0xd400_0001,              // svc #0
            ];
            for word in words {
                code.extend(word.to_le_bytes());
            }
        }
    }
    code.extend_from_slice(message);
    code
}

/// Builds a complete ELF64 little-endian file.
pub fn build(machine: Machine, shape: Shape, message: &str) -> Vec<u8> {
    let interp = b"/lib/ld-musl-x86_64.so.1\0";
    let strtab = b"\0libc.so\0";
    let phnum = match shape {
        Shape::Static => 1,
        Shape::StaticPie => 2,
        Shape::Dynamic => 3,
    };
    let code_off = EHDR + PHDR * phnum;
    let code = code(machine, message.as_bytes());
    let mut tail = code.clone();
    let interp_off = code_off + tail.len();
    if shape == Shape::Dynamic {
        tail.extend_from_slice(interp);
    }
    let strtab_off = code_off + tail.len();
    if shape == Shape::Dynamic {
        tail.extend_from_slice(strtab);
    }
    while !(code_off + tail.len()).is_multiple_of(8) {
        tail.push(0);
    }
    let dyn_off = code_off + tail.len();
    let mut dynamic: Vec<(u64, u64)> = Vec::new();
    if shape == Shape::Dynamic {
        dynamic.push((DT_NEEDED, 1));
        dynamic.push((DT_STRTAB, BASE + strtab_off as u64));
    }
    if shape != Shape::Static {
        dynamic.push((DT_NULL, 0));
    }
    for (tag, val) in &dynamic {
        tail.extend(tag.to_le_bytes());
        tail.extend(val.to_le_bytes());
    }
    let total = (code_off + tail.len()) as u64;

    let mut out = Vec::new();
    out.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let e_type = if shape == Shape::StaticPie {
        ET_DYN
    } else {
        ET_EXEC
    };
    out.extend(e_type.to_le_bytes());
    out.extend(
        match machine {
            Machine::X86_64 => EM_X86_64,
            Machine::Aarch64 => EM_AARCH64,
        }
        .to_le_bytes(),
    );
    out.extend(1u32.to_le_bytes()); // e_version
    out.extend((BASE + code_off as u64).to_le_bytes()); // e_entry
    out.extend((EHDR as u64).to_le_bytes()); // e_phoff
    out.extend(0u64.to_le_bytes()); // e_shoff
    out.extend(0u32.to_le_bytes()); // e_flags
    out.extend((EHDR as u16).to_le_bytes());
    out.extend((PHDR as u16).to_le_bytes());
    out.extend((phnum as u16).to_le_bytes());
    out.extend(64u16.to_le_bytes()); // e_shentsize
    out.extend(0u16.to_le_bytes()); // e_shnum
    out.extend(0u16.to_le_bytes()); // e_shstrndx
    let mut phdr = |p_type: u32, flags: u32, offset: u64, size: u64, align: u64| {
        out.extend(p_type.to_le_bytes());
        out.extend(flags.to_le_bytes());
        out.extend(offset.to_le_bytes());
        out.extend((BASE + offset).to_le_bytes()); // p_vaddr
        out.extend((BASE + offset).to_le_bytes()); // p_paddr
        out.extend(size.to_le_bytes()); // p_filesz
        out.extend(size.to_le_bytes()); // p_memsz
        out.extend(align.to_le_bytes());
    };
    phdr(PT_LOAD, 5, 0, total, 0x1000);
    if shape == Shape::Dynamic {
        phdr(PT_INTERP, 4, interp_off as u64, interp.len() as u64, 1);
    }
    if shape != Shape::Static {
        phdr(
            PT_DYNAMIC,
            6,
            dyn_off as u64,
            (dynamic.len() * 16) as u64,
            8,
        );
    }
    assert_eq!(out.len(), code_off);
    out.extend(tail);
    out
}

/// Writes an ELF to `dir/name` with mode 0755 and returns its path.
pub fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write ELF");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod ELF");
    path
}

/// A runnable static program followed by `extra` bytes of incompressible noise (a fixed xorshift
/// sequence): a large, valid input that compresses and uploads slowly enough to interrupt.
pub fn with_noise(machine: Machine, message: &str, extra: usize) -> Vec<u8> {
    let mut bytes = build(machine, Shape::Static, message);
    bytes.reserve(extra);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..extra / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes
}

/// `dir/amd64/app` and `dir/arm64/app`: the same program name for two platforms, printing `a` and `b`.
pub fn two_platform_programs(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let amd = dir.join("amd64");
    let arm = dir.join("arm64");
    std::fs::create_dir_all(&amd).expect("amd64 dir");
    std::fs::create_dir_all(&arm).expect("arm64 dir");
    (
        write(&amd, "app", &build(Machine::X86_64, Shape::Static, "a\n")),
        write(&arm, "app", &build(Machine::Aarch64, Shape::Static, "b\n")),
    )
}

/// One program header for [`headers`]: type, file offset, size in the file.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub p_type: u32,
    pub offset: u64,
    pub filesz: u64,
}

/// An ELF header and program header table, nothing else: `machine` (`e_machine`), 64- or 32-bit class
/// and byte order exactly as given, whether or not such a combination exists. For the machine and
/// bounds checks, which never look further.
pub fn headers(machine: u16, class64: bool, little: bool, segments: &[Segment]) -> Vec<u8> {
    let mut out = Vec::new();
    let u16b = |v: u16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u32b = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u64b = |v: u64| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    // A word is 8 bytes in the 64-bit class, 4 in the 32-bit one.
    let word = |out: &mut Vec<u8>, v: u64| {
        if class64 {
            out.extend(u64b(v));
        } else {
            out.extend(u32b(u32::try_from(v).expect("32-bit value")));
        }
    };
    let (ehdr, phdr) = if class64 { (64u16, 56u16) } else { (52, 32) };
    out.extend([0x7f, b'E', b'L', b'F']);
    out.extend([if class64 { 2 } else { 1 }, if little { 1 } else { 2 }, 1]);
    out.extend([0; 9]);
    out.extend(u16b(ET_EXEC));
    out.extend(u16b(machine));
    out.extend(u32b(1)); // e_version
    word(&mut out, 0x40_1000); // e_entry
    word(&mut out, if segments.is_empty() { 0 } else { ehdr.into() }); // e_phoff
    word(&mut out, 0); // e_shoff
    out.extend(u32b(0)); // e_flags
    out.extend(u16b(ehdr));
    out.extend(u16b(phdr));
    out.extend(u16b(u16::try_from(segments.len()).expect("few segments")));
    out.extend(u16b(if class64 { 64 } else { 40 })); // e_shentsize
    out.extend(u16b(0)); // e_shnum
    out.extend(u16b(0)); // e_shstrndx
    assert_eq!(out.len(), usize::from(ehdr));
    for s in segments {
        out.extend(u32b(s.p_type));
        if class64 {
            out.extend(u32b(4)); // p_flags
        }
        word(&mut out, s.offset);
        word(&mut out, BASE + s.offset); // p_vaddr
        word(&mut out, BASE + s.offset); // p_paddr
        word(&mut out, s.filesz);
        word(&mut out, s.filesz); // p_memsz
        if !class64 {
            out.extend(u32b(4)); // p_flags
        }
        word(&mut out, 1); // p_align
    }
    out
}

/// A 32-bit little-endian arm header with a section table whose `.ARM.attributes` records
/// `Tag_CPU_arch` = `cpu_arch` (5 is ARMv5TE, 6 ARMv6, 10 ARMv7).
pub fn arm_with_cpu_arch(cpu_arch: u8) -> Vec<u8> {
    const SHT_STRTAB: u32 = 3;
    const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
    let mut out = headers(EM_ARM, false, true, &[]);
    let names = b"\0.shstrtab\0.ARM.attributes\0";
    // Format version 'A'; one "aeabi" subsection (17 bytes) holding one Tag_File group (7 bytes).
    let attributes = [
        b'A', 17, 0, 0, 0, b'a', b'e', b'a', b'b', b'i', 0, 1, 7, 0, 0, 0, 6, cpu_arch,
    ];
    let names_off = out.len() as u32;
    out.extend(names);
    let attributes_off = out.len() as u32;
    out.extend(attributes);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    let shoff = out.len() as u32;
    let sections = [
        [0; 4],
        [1, SHT_STRTAB, names_off, names.len() as u32],
        [
            11,
            SHT_ARM_ATTRIBUTES,
            attributes_off,
            attributes.len() as u32,
        ],
    ];
    for [name, sh_type, offset, size] in sections {
        // sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign,
        // sh_entsize
        for value in [name, sh_type, 0, 0, offset, size, 0, 0, 1, 0] {
            out.extend(value.to_le_bytes());
        }
    }
    out[32..36].copy_from_slice(&shoff.to_le_bytes()); // e_shoff
    out[48..50].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    out[50..52].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx
    out
}
