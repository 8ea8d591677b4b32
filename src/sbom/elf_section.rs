//! Reading one named section of an ELF file, bounded: the section header table and the section's
//! bytes are read only when they lie inside the file and below fixed sizes, whatever the headers claim.

use object::elf;
use object::read::ReadRef;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind};

/// Real section header tables hold a few dozen entries.
const MAX_SECTION_HEADERS: u64 = 1 << 20;
/// Section names are short.
const MAX_SECTION_NAMES: u64 = 1 << 20;

/// A section found: its file offset, its size, and its address when loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub offset: u64,
    pub size: u64,
    pub address: u64,
}

/// How to read addresses of the file: the loaded segments.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// PT_LOAD segments: (address, file offset, size in the file, writable).
    pub segments: Vec<(u64, u64, u64, bool)>,
}

impl Layout {
    /// The file offset of `address`, when a segment maps it from the file.
    pub fn offset_of(&self, address: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(vaddr, _, size, _)| address >= *vaddr && address - vaddr < *size)
            .map(|(vaddr, offset, _, _)| offset + (address - vaddr))
    }
}

/// The section named `name` of the ELF file `data`, and the file's layout; `Ok(None)` when the file
/// has no such section. Errors say why the file could not be read.
pub(crate) fn find<'data, R: ReadRef<'data>>(
    data: R,
    name: &[u8],
) -> Result<(Option<Found>, Layout), String> {
    match FileKind::parse(data).map_err(|e| e.to_string())? {
        FileKind::Elf32 => find_in::<elf::FileHeader32<Endianness>, R>(data, name),
        FileKind::Elf64 => find_in::<elf::FileHeader64<Endianness>, R>(data, name),
        _ => Err("not an ELF file".to_owned()),
    }
}

fn find_in<'data, Elf, R>(data: R, name: &[u8]) -> Result<(Option<Found>, Layout), String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let file_len = data.len().map_err(|()| "cannot be read".to_owned())?;
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let fits = |offset: u64, size: u64, max: u64| {
        size <= max && offset.checked_add(size).is_some_and(|end| end <= file_len)
    };
    let mut layout = Layout {
        segments: Vec::new(),
    };
    let ph_offset: u64 = header.e_phoff(endian).into();
    let ph_count = u64::from(header.phnum(endian, data).map_err(|e| e.to_string())?);
    if ph_offset != 0
        && ph_count != 0
        && fits(
            ph_offset,
            ph_count * u64::from(header.e_phentsize(endian)),
            MAX_SECTION_HEADERS,
        )
    {
        for segment in header
            .program_headers(endian, data)
            .map_err(|e| e.to_string())?
        {
            if segment.p_type(endian) == elf::PT_LOAD {
                layout.segments.push((
                    segment.p_vaddr(endian).into(),
                    segment.p_offset(endian).into(),
                    segment.p_filesz(endian).into(),
                    segment.p_flags(endian).0 & elf::PF_W.0 != 0,
                ));
            }
        }
    }
    let table_offset: u64 = header.e_shoff(endian).into();
    let count = u64::from(header.shnum(endian, data).map_err(|e| e.to_string())?);
    if table_offset == 0 || count == 0 {
        return Ok((None, layout));
    }
    if !fits(
        table_offset,
        count * u64::from(header.e_shentsize(endian)),
        MAX_SECTION_HEADERS,
    ) {
        return Err("its section header table is larger than plausible or past its end".to_owned());
    }
    let sections = header
        .section_headers(endian, data)
        .map_err(|e| e.to_string())?;
    let names_index = header.shstrndx(endian, data).map_err(|e| e.to_string())? as usize;
    let Some(names) = sections.get(names_index) else {
        return Ok((None, layout));
    };
    let (names_offset, names_size) = (names.sh_offset(endian).into(), names.sh_size(endian).into());
    if !fits(names_offset, names_size, MAX_SECTION_NAMES) {
        return Err("its section name table is larger than plausible or past its end".to_owned());
    }
    let names = data
        .read_bytes_at(names_offset, names_size)
        .map_err(|()| "its section names cannot be read".to_owned())?;
    for section in sections {
        let start = section.sh_name(endian) as usize;
        let Some(rest) = names.get(start..) else {
            continue;
        };
        let found_name = rest.split(|&b| b == 0).next().unwrap_or_default();
        if found_name != name || section.sh_type(endian) == elf::SHT_NOBITS {
            continue;
        }
        let found = Found {
            offset: section.sh_offset(endian).into(),
            size: section.sh_size(endian).into(),
            address: section.sh_addr(endian).into(),
        };
        if found
            .offset
            .checked_add(found.size)
            .is_none_or(|end| end > file_len)
        {
            return Err(format!(
                "its {} section goes past the end of the file",
                String::from_utf8_lossy(name)
            ));
        }
        return Ok((Some(found), layout));
    }
    Ok((None, layout))
}
