//! The build information the Go toolchain embeds in every binary (what `go version -m` prints): the
//! Go version, the main module, each dependency with its `h1:` sum, and the build settings. It lives
//! in the `.go.buildinfo` section (else at the start of the first writable segment), behind the magic
//! `\xff Go buildinf:`. Since Go 1.18 the two strings follow the 32-byte header, each with a varint
//! length; before, the header holds pointers to Go string headers. Outside input: every read is bounded.

use object::read::ReadRef;

use super::elf_section::{self, Layout};
use super::{Component, Ecosystem, Edge, Inventory, Origin, Source, Tool, Vcs};

const SECTION: &[u8] = b".go.buildinfo";
const MAGIC: &[u8] = b"\xff Go buildinf:";
/// How far into the section (or segment) the header is looked for, as Go's own reader does.
const SEARCH: u64 = 64 << 10;
/// Longest version or module information string read.
const MAX_STRING: u64 = 4 << 20;
/// Most modules accepted, the main module and its dependencies together, each `mod` and `dep` line
/// counted as it is read: the largest real Go programs list a few thousand.
pub(crate) const MAX_MODULES: usize = 100_000;
/// Most `build` settings kept: the toolchain writes about twenty.
const MAX_SETTINGS: usize = 1_000;

/// The inventory in `data`'s Go build information: `Ok(None)` when it is not a Go binary.
pub(crate) fn read<'data, R: ReadRef<'data>>(data: R) -> Result<Option<Inventory>, String> {
    let (found, layout) = elf_section::find(data, SECTION)?;
    let file_len = data.len().map_err(|()| "cannot be read".to_owned())?;
    let (start, size) = match found {
        Some(found) => (found.offset, found.size),
        None => match layout.segments.iter().find(|s| s.3) {
            Some(&(_, offset, size, _)) => (offset, size),
            None => return Ok(None),
        },
    };
    let size = size.min(SEARCH).min(file_len.saturating_sub(start));
    let window = data
        .read_bytes_at(start, size)
        .map_err(|()| "its Go build information cannot be read".to_owned())?;
    let Some(at) = (0..window.len())
        .step_by(16)
        .find(|&i| window[i..].starts_with(MAGIC))
    else {
        return Ok(None);
    };
    let header = &window[at..];
    if header.len() < 32 {
        return Err("its Go build information is cut short".to_owned());
    }
    let ptr_size = header[14] as usize;
    let flags = header[15];
    let (version, modinfo) = if flags & 2 != 0 {
        let mut rest = &header[32..];
        let version = varint_string(data, start + at as u64 + 32, &mut rest)?;
        let modinfo = varint_string(
            data,
            start + at as u64 + 32 + consumed(header, rest),
            &mut rest,
        )?;
        (version, modinfo)
    } else {
        let big = flags & 1 != 0;
        if ptr_size != 4 && ptr_size != 8 {
            return Err("its Go build information has an unknown pointer size".to_owned());
        }
        let version = pointed_string(data, &layout, header, 16, ptr_size, big)?;
        let modinfo = pointed_string(data, &layout, header, 16 + ptr_size, ptr_size, big)?;
        (version, modinfo)
    };
    let version = String::from_utf8_lossy(&version);
    let modinfo = String::from_utf8_lossy(strip_sentinels(&modinfo));
    Ok(Some(parse(&version, &modinfo)?))
}

fn consumed(header: &[u8], rest: &[u8]) -> u64 {
    (header.len() - 32 - rest.len()) as u64
}

/// A string with a varint length, read from `rest` when it holds all of it, else from the file at
/// `offset` (the module information can be longer than the search window).
fn varint_string<'data, R: ReadRef<'data>>(
    data: R,
    offset: u64,
    rest: &mut &[u8],
) -> Result<Vec<u8>, String> {
    let mut length: u64 = 0;
    let mut shift = 0;
    let mut used = 0;
    loop {
        let byte = *rest
            .get(used)
            .ok_or_else(|| "its Go build information is cut short".to_owned())?;
        used += 1;
        length |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err("its Go build information has a malformed length".to_owned());
        }
    }
    if length > MAX_STRING {
        return Err(format!(
            "its Go build information claims a string of {length} bytes"
        ));
    }
    let bytes = data
        .read_bytes_at(offset + used as u64, length)
        .map_err(|()| "its Go build information goes past the end of the file".to_owned())?;
    *rest = rest.get(used + length as usize..).unwrap_or_default();
    Ok(bytes.to_vec())
}

/// A Go string whose header (pointer, length) is at the address stored at `header[at..]`.
fn pointed_string<'data, R: ReadRef<'data>>(
    data: R,
    layout: &Layout,
    header: &[u8],
    at: usize,
    ptr_size: usize,
    big: bool,
) -> Result<Vec<u8>, String> {
    let read_ptr = |bytes: &[u8]| -> Option<u64> {
        let bytes = bytes.get(..ptr_size)?;
        let mut value = 0u64;
        for i in 0..ptr_size {
            let byte = if big {
                bytes[i]
            } else {
                bytes[ptr_size - 1 - i]
            };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    let cut = || "its Go build information points outside the file".to_owned();
    let address = read_ptr(header.get(at..).ok_or_else(cut)?).ok_or_else(cut)?;
    let string_header_at = layout.offset_of(address).ok_or_else(cut)?;
    let string_header = data
        .read_bytes_at(string_header_at, 2 * ptr_size as u64)
        .map_err(|()| cut())?;
    let pointer = read_ptr(string_header).ok_or_else(cut)?;
    let length = read_ptr(&string_header[ptr_size..]).ok_or_else(cut)?;
    if length == 0 {
        return Ok(Vec::new());
    }
    if length > MAX_STRING {
        return Err(format!(
            "its Go build information claims a string of {length} bytes"
        ));
    }
    let offset = layout.offset_of(pointer).ok_or_else(cut)?;
    let bytes = data.read_bytes_at(offset, length).map_err(|()| cut())?;
    Ok(bytes.to_vec())
}

/// The module information is framed by 16 bytes on each side.
fn strip_sentinels(bytes: &[u8]) -> &[u8] {
    if bytes.len() >= 33 && bytes[bytes.len() - 17] == b'\n' {
        &bytes[16..bytes.len() - 16]
    } else {
        bytes
    }
}

/// Parses `go version -m`'s lines: `path`, `mod`, `dep`, `=>` and `build`.
fn parse(version: &str, modinfo: &str) -> Result<Inventory, String> {
    let mut inventory = Inventory {
        source: Source::GoBuildInfo,
        root: None,
        components: Vec::new(),
        edges: Vec::new(),
        tools: Vec::new(),
    };
    let clean = |s: &str| crate::util::sanitize::outside(s, 300);
    if let Some(go) = version.strip_prefix("go") {
        inventory.tools.push(Tool {
            name: "go".to_owned(),
            version: clean(go),
            details: std::collections::BTreeMap::default(),
        });
    }
    let mut path = None;
    let mut settings = std::collections::BTreeMap::new();
    let too_many = || format!("its Go build information lists more than {MAX_MODULES} modules");
    for line in modinfo.lines() {
        // Go's lines have at most four fields; past six none is read (a line may hold millions).
        let mut fields = [""; 6];
        let mut count = 0;
        for (slot, field) in fields.iter_mut().zip(line.split('\t')) {
            *slot = field;
            count += 1;
        }
        match &fields[..count] {
            ["path", p, ..] => path = Some(clean(p)),
            ["mod", p, v, rest @ ..] => {
                if inventory.components.len() >= MAX_MODULES {
                    return Err(too_many());
                }
                let mut main = Component::new(Ecosystem::Go, &clean(p), &clean(v), Origin::Local);
                main.go_sum = rest.first().filter(|s| !s.is_empty()).map(|s| clean(s));
                inventory.root = Some(inventory.components.len());
                inventory.components.push(main);
            }
            ["dep", p, v, rest @ ..] => {
                if inventory.components.len() >= MAX_MODULES {
                    return Err(too_many());
                }
                let mut dep = Component::new(Ecosystem::Go, &clean(p), &clean(v), Origin::GoModule);
                dep.go_sum = rest.first().filter(|s| !s.is_empty()).map(|s| clean(s));
                inventory.components.push(dep);
            }
            ["=>", p, rest @ ..] => {
                if let Some(last) = inventory.components.last_mut() {
                    replace(last, p, rest);
                }
            }
            ["build", setting] => {
                if let Some((key, value)) = setting.split_once('=') {
                    if settings.len() >= MAX_SETTINGS {
                        return Err(format!(
                            "its Go build information lists more than {MAX_SETTINGS} build settings"
                        ));
                    }
                    settings.insert(clean(key), clean(value));
                }
            }
            _ => {}
        }
    }
    complete(&mut inventory, path, settings);
    inventory.normalize();
    Ok(inventory)
}

/// Applies a `=>` line to the module above it: replaced by the local directory `path`, or by the
/// module `path` at the version `rest` starts with (and its go.sum hash after).
fn replace(module: &mut Component, path: &str, rest: &[&str]) {
    let clean = |s: &str| crate::util::sanitize::outside(s, 300);
    let version = rest.first().copied().unwrap_or_default();
    module.replaced_by = Some(if version.is_empty() {
        clean(path)
    } else {
        format!("{} {}", clean(path), clean(version))
    });
    if version.is_empty() {
        module.origin = Origin::Local;
    } else {
        module.name = clean(path);
        module.version = clean(version);
    }
    module.go_sum = rest.get(1).filter(|s| !s.is_empty()).map(|s| clean(s));
}

/// What the lines say only together: the root package (from the `path` line alone outside module
/// mode), its commit and its edges to every other module, and the build `settings` as the Go tool's
/// details.
fn complete(
    inventory: &mut Inventory,
    path: Option<String>,
    settings: std::collections::BTreeMap<String, String>,
) {
    if inventory.root.is_none() {
        // Built outside module mode (GOPATH, as distributions often do): only the package path.
        if let Some(path) = path {
            inventory.root = Some(inventory.components.len());
            inventory
                .components
                .push(Component::new(Ecosystem::Go, &path, "", Origin::Local));
        }
    }
    if let Some(root) = inventory.root {
        if let Some(commit) = settings.get("vcs.revision") {
            inventory.components[root].vcs = Some(Vcs {
                commit: commit.clone(),
                dirty: settings.get("vcs.modified").is_some_and(|m| m == "true"),
            });
        }
        for to in 0..inventory.components.len() {
            if to != root {
                inventory.edges.push(Edge {
                    from: root,
                    to,
                    build: false,
                });
            }
        }
    }
    if let Some(tool) = inventory.tools.first_mut() {
        tool.details = settings
            .into_iter()
            .filter(|(k, _)| !k.starts_with("vcs."))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODINFO: &str = "path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\n\
        dep\texample.com/greeting\tv1.2.3\th1:abc=\n\
        dep\texample.com/old\tv0.1.0\n=>\t../old\t\t\n\
        build\tCGO_ENABLED=0\nbuild\tvcs.revision=0123456789abcdef\nbuild\tvcs.modified=true\n";

    #[test]
    fn parses_modules_replacements_and_settings() {
        let inventory = parse("go1.22.1", MODINFO).unwrap();
        let names: Vec<&str> = inventory
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "example.com/greeting",
                "example.com/hello",
                "example.com/old"
            ]
        );
        let greeting = &inventory.components[0];
        assert_eq!(greeting.go_sum.as_deref(), Some("h1:abc="));
        assert_eq!(
            greeting.purl().as_deref(),
            Some("pkg:golang/example.com/greeting@v1.2.3")
        );
        let old = &inventory.components[2];
        assert_eq!(old.replaced_by.as_deref(), Some("../old"));
        assert_eq!(old.purl(), None);
        let root = &inventory.components[inventory.root.unwrap()];
        assert_eq!(root.vcs.as_ref().unwrap().commit, "0123456789abcdef");
        assert!(root.vcs.as_ref().unwrap().dirty);
        assert_eq!(inventory.tools[0].version, "1.22.1");
        assert_eq!(inventory.tools[0].details["CGO_ENABLED"], "0");
        assert_eq!(inventory.edges.len(), 2);
    }

    #[test]
    fn every_module_line_counts_against_the_limit() {
        let mods = "mod\ta\tv\n".repeat(MAX_MODULES + 1);
        assert!(
            parse("go1.22", &mods)
                .unwrap_err()
                .contains("more than 100000 modules")
        );
        let deps = format!("mod\ta\tv\n{}", "dep\tb\tv\n".repeat(MAX_MODULES));
        assert!(parse("go1.22", &deps).is_err());
        let deps = format!("mod\ta\tv\n{}", "dep\tb\tv\n".repeat(MAX_MODULES - 1));
        assert_eq!(
            parse("go1.22", &deps).unwrap().components.len(),
            MAX_MODULES
        );
        let settings: String = (0..=MAX_SETTINGS)
            .map(|i| format!("build\tk{i}=v\n"))
            .collect();
        assert!(
            parse("go1.22", &settings)
                .unwrap_err()
                .contains("build settings")
        );
        // A line of a million tabs is read as the fields it starts with.
        let wide = format!("dep\tb\tv1{}\n", "\t".repeat(1_000_000));
        assert_eq!(parse("go1.22", &wide).unwrap().components.len(), 1);
    }

    #[test]
    fn follows_pointers_in_the_old_format() {
        // The file is loaded at 0x1000; the header points at two Go string headers (pointer, length).
        let layout = Layout {
            segments: vec![(0x1000, 0, 0x200, true)],
        };
        let mut data = vec![0u8; 0x200];
        data[..14].copy_from_slice(MAGIC);
        data[14] = 8;
        let put = |data: &mut Vec<u8>, at: usize, value: u64| {
            data[at..at + 8].copy_from_slice(&value.to_le_bytes());
        };
        put(&mut data, 16, 0x1040);
        put(&mut data, 24, 0x1050);
        put(&mut data, 0x40, 0x1100);
        put(&mut data, 0x48, 8);
        put(&mut data, 0x50, 0x1180);
        put(&mut data, 0x58, 0x2000);
        data[0x100..0x108].copy_from_slice(b"go1.16.5");
        let header = data.clone();
        let version = pointed_string(data.as_slice(), &layout, &header, 16, 8, false).unwrap();
        assert_eq!(version, b"go1.16.5");
        // A string running past every segment is refused, not read.
        assert!(pointed_string(data.as_slice(), &layout, &header, 24, 8, false).is_err());
    }

    #[test]
    fn finds_inline_strings_after_the_header() {
        let mut section = Vec::new();
        section.extend_from_slice(MAGIC);
        section.extend_from_slice(&[8, 2]);
        section.resize(32, 0);
        let mut framed = vec![0xaf_u8; 16];
        framed.extend_from_slice(MODINFO.as_bytes());
        framed.extend_from_slice(&[0xf9; 16]);
        for text in [b"go1.22.1".as_slice(), framed.as_slice()] {
            section.push(text.len() as u8 & 0x7f | 0x80);
            section.push((text.len() >> 7) as u8);
            section.extend_from_slice(text);
        }
        let mut rest = &section[32..];
        let version = varint_string(section.as_slice(), 32, &mut rest).unwrap();
        assert_eq!(version, b"go1.22.1");
        let offset = 32 + consumed(&section, rest);
        let modinfo = varint_string(section.as_slice(), offset, &mut rest).unwrap();
        assert_eq!(strip_sentinels(&modinfo), MODINFO.as_bytes());
    }
}
