//! Writing tar, the one way images need it: deterministic ustar headers (every field from the entry,
//! nothing from the machine or the clock), a PAX extended header only for a path or link target ustar
//! cannot hold, zero padding to the block, and the two zero blocks that end an archive. Layers, the
//! image archive and the stream sent to a runtime all write their entries here, so the same entry
//! always gives the same bytes.
//!
//! Sizes and times are numbers as the `tar` crate writes them: octal, or GNU base-256 from 8 GiB on.

use std::io::{self, Write};

/// A tar block: headers take one, data is padded to a whole number of them.
pub(crate) const BLOCK: usize = 512;
/// ustar's name and prefix fields: longer paths and link targets go in a PAX extended header.
pub(crate) const NAME_LEN: usize = 100;
pub(crate) const PREFIX_LEN: usize = 155;
/// The mode of a PAX extended header entry.
const PAX_MODE: u32 = 0o644;
/// The end of an archive: two zero blocks.
const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0u8; 2 * BLOCK];

/// What an entry is, with what its kind needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    Directory,
    /// A regular file of this many bytes.
    File(u64),
    /// A symbolic link to this target, stored as written.
    Symlink(&'a str),
}

/// One entry's metadata, all of it given: nothing is read from the machine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'a> {
    /// The path in the archive, relative, without a trailing `/`.
    pub path: &'a str,
    pub kind: Kind<'a>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
}

/// Why an entry has no header: the `tar` crate refused its path or its link target.
#[derive(Debug)]
pub(crate) enum HeaderError {
    Path(io::Error),
    Link(io::Error),
}

impl<'a> Entry<'a> {
    /// A directory of root's with mode 0755.
    pub fn dir(path: &'a str, mtime: u64) -> Entry<'a> {
        Entry {
            path,
            kind: Kind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime,
        }
    }

    /// A file of root's with mode 0644 and `size` bytes.
    pub fn file(path: &'a str, size: u64, mtime: u64) -> Entry<'a> {
        Entry {
            path,
            kind: Kind::File(size),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime,
        }
    }

    /// How many bytes of data follow the header ([`pad`] completes them to the block).
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File(size) => size,
            Kind::Directory | Kind::Symlink(_) => 0,
        }
    }

    /// The header blocks that go before the data. A path or link target ustar cannot hold goes into a
    /// PAX extended header written first, and the ustar field keeps a truncated copy for readers that
    /// ignore PAX; an entry that fits gives exactly one ustar block.
    pub fn header(&self) -> Result<Header, HeaderError> {
        let mut header = ::tar::Header::new_ustar();
        header.set_mode(self.mode);
        header.set_uid(self.uid);
        header.set_gid(self.gid);
        header.set_mtime(self.mtime);
        header.set_entry_type(match self.kind {
            Kind::Directory => ::tar::EntryType::Directory,
            Kind::File(_) => ::tar::EntryType::Regular,
            Kind::Symlink(_) => ::tar::EntryType::Symlink,
        });
        header.set_size(self.size());
        let mut records = Vec::new();
        if fits_ustar(self.path) {
            header.set_path(self.path).map_err(HeaderError::Path)?;
        } else {
            set_name_bytes(
                &mut header,
                truncate(self.path, NAME_LEN).trim_end_matches('/'),
            );
            pax_record(&mut records, "path", self.path);
        }
        if let Kind::Symlink(target) = self.kind {
            let stored = if target.len() <= NAME_LEN {
                target
            } else {
                pax_record(&mut records, "linkpath", target);
                truncate(target, NAME_LEN)
            };
            header
                .set_link_name_literal(stored)
                .map_err(HeaderError::Link)?;
        }
        header.set_cksum();
        let mut blocks = Vec::with_capacity(BLOCK);
        if !records.is_empty() {
            blocks.extend_from_slice(self.pax_header(records.len() as u64).as_bytes());
            blocks.extend_from_slice(&records);
            blocks.resize(blocks.len().next_multiple_of(BLOCK), 0);
        }
        blocks.extend_from_slice(header.as_bytes());
        Ok(Header(blocks))
    }

    /// The header of the PAX extended header for this entry, `size` bytes of records. Named after the
    /// entry's file name only and stamped like the entry, so it is as reproducible as the rest (no
    /// process id or current time, unlike some tar programs).
    fn pax_header(&self, size: u64) -> ::tar::Header {
        let file_name = self.path.rsplit('/').next().unwrap_or(self.path);
        let mut pax = ::tar::Header::new_ustar();
        set_name_bytes(
            &mut pax,
            truncate(&format!("PaxHeaders/{file_name}"), NAME_LEN),
        );
        pax.set_mode(PAX_MODE);
        pax.set_uid(0);
        pax.set_gid(0);
        pax.set_mtime(self.mtime);
        pax.set_entry_type(::tar::EntryType::XHeader);
        pax.set_size(size);
        pax.set_cksum();
        pax
    }
}

/// An entry's header blocks, complete: one ustar block, or a PAX extended header and then it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header(Vec<u8>);

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes an entry: its `header`, its `data` and the padding after it.
pub(crate) fn write_entry(
    out: &mut (impl Write + ?Sized),
    header: &Header,
    data: &[u8],
) -> io::Result<()> {
    out.write_all(header.as_bytes())?;
    out.write_all(data)?;
    pad(out, data.len() as u64)
}

/// Writes the zeros that complete `size` bytes of entry data to a whole block.
pub(crate) fn pad(out: &mut (impl Write + ?Sized), size: u64) -> io::Result<()> {
    out.write_all(&[0u8; BLOCK][..padding(size)])
}

/// Writes the end of the archive: two zero blocks.
pub(crate) fn end(out: &mut (impl Write + ?Sized)) -> io::Result<()> {
    out.write_all(&END_OF_ARCHIVE)
}

/// How many zeros complete `size` bytes of entry data to a whole block.
pub(crate) fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// Whether ustar holds `path`: in the name field, or split at a `/` into prefix and name.
pub(crate) fn fits_ustar(path: &str) -> bool {
    path.len() <= NAME_LEN
        || path
            .match_indices('/')
            .any(|(i, _)| i <= PREFIX_LEN && path.len() - i - 1 <= NAME_LEN)
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Writes `bytes` (at most [`NAME_LEN`]) into the name field as they are: a truncated path may end in a
/// partial component such as `..`, which the checked setter would refuse.
fn set_name_bytes(header: &mut ::tar::Header, bytes: &str) {
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..bytes.len()].copy_from_slice(bytes.as_bytes());
}

/// Appends one PAX record, `LEN key=value\n`, where LEN counts the whole record, itself included.
fn pax_record(records: &mut Vec<u8>, key: &str, value: &str) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    records.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The entries a reader that knows PAX sees: (path, link target, mtime, data).
    fn read(bytes: &[u8]) -> Vec<(String, Option<String>, u64, Vec<u8>)> {
        let mut archive = ::tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap());
                let mtime = e.header().mtime().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, link, mtime, data)
            })
            .collect()
    }

    fn archive_of(entries: &[(Entry, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (entry, data) in entries {
            write_entry(&mut out, &entry.header().unwrap(), data).unwrap();
        }
        end(&mut out).unwrap();
        out
    }

    #[test]
    fn an_entry_that_fits_ustar_is_one_block_as_the_tar_crate_writes_it() {
        for (entry, kind) in [
            (Entry::dir("blobs/sha256", 9), ::tar::EntryType::Directory),
            (
                Entry::file("index.json", 1234, 9),
                ::tar::EntryType::Regular,
            ),
        ] {
            let ours = entry.header().unwrap();
            let mut theirs = ::tar::Header::new_ustar();
            theirs.set_path(entry.path).unwrap();
            theirs.set_entry_type(kind);
            theirs.set_mode(entry.mode);
            theirs.set_uid(0);
            theirs.set_gid(0);
            theirs.set_mtime(9);
            theirs.set_size(entry.size());
            theirs.set_cksum();
            assert_eq!(ours.as_bytes(), theirs.as_bytes(), "{}", entry.path);
        }
        // 120 bytes, split at a `/` into ustar's prefix and name: still one block.
        let path = format!("{}/{}", "a".repeat(60), "b".repeat(59));
        let header = Entry::file(&path, 0, 0).header().unwrap();
        assert_eq!(header.as_bytes().len(), BLOCK);
        assert_eq!(
            read(&archive_of(&[(Entry::file(&path, 0, 0), b"")]))[0].0,
            path
        );
    }

    #[test]
    fn data_is_padded_to_the_block_and_the_archive_ends_in_two_zero_blocks() {
        for (size, expected) in [(0, 0), (1, 511), (511, 1), (512, 0), (513, 511)] {
            assert_eq!(padding(size), expected, "{size}");
        }
        let data = vec![7u8; 700];
        let bytes = archive_of(&[(Entry::file("a", 700, 0), &data)]);
        assert_eq!(bytes.len(), BLOCK + 1024 + 2 * BLOCK);
        assert!(bytes[BLOCK + 700..].iter().all(|&b| b == 0));
        assert_eq!(read(&bytes), [("a".to_owned(), None, 0, data)]);
    }

    #[test]
    fn long_paths_and_link_targets_go_in_a_pax_header_stamped_like_the_entry() {
        let long = (0..10).fold(String::new(), |p, i| {
            format!("{p}{}x{}", if i > 0 { "/" } else { "" }, "é".repeat(50))
        });
        let target = format!("../{}", "u".repeat(197));
        let unsplittable = "z".repeat(101);
        let entries = [
            (Entry::file(&long, 3, 7), &b"one"[..]),
            (Entry::file(&unsplittable, 3, 7), &b"two"[..]),
            (
                Entry {
                    kind: Kind::Symlink(&target),
                    mode: 0o777,
                    ..Entry::file("link", 0, 7)
                },
                &b""[..],
            ),
        ];
        let bytes = archive_of(&entries);
        assert_eq!(bytes, archive_of(&entries), "same entries, same bytes");
        let entries = read(&bytes);
        assert_eq!(entries[0], (long.clone(), None, 7, b"one".to_vec()));
        assert_eq!(entries[1], (unsplittable.clone(), None, 7, b"two".to_vec()));
        assert_eq!(entries[2], ("link".to_owned(), Some(target), 7, vec![]));

        // A reader that ignores PAX sees the extended headers, named and stamped deterministically,
        // and each entry's name cut to the field on a character boundary.
        let mut raw = ::tar::Archive::new(&bytes[..]);
        let raw: Vec<_> = raw
            .entries()
            .unwrap()
            .raw(true)
            .map(|e| e.unwrap().header().clone())
            .collect();
        assert_eq!(raw.len(), 6);
        for pax in [&raw[0], &raw[2], &raw[4]] {
            assert_eq!(pax.entry_type(), ::tar::EntryType::XHeader);
            assert!(pax.path_bytes().starts_with(b"PaxHeaders/"));
            assert!(pax.path_bytes().len() <= NAME_LEN);
            assert_eq!((pax.mtime().unwrap(), pax.mode().unwrap()), (7, PAX_MODE));
        }
        let cut = String::from_utf8(raw[1].path_bytes().into_owned()).unwrap();
        assert!(long.starts_with(&cut) && cut.len() == 99, "{cut}");
        assert_eq!(raw[3].path_bytes().len(), NAME_LEN);
        assert_eq!(raw[5].link_name_bytes().unwrap().len(), NAME_LEN);
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for (value_len, expected) in [(1, 9), (90, 99), (91, 101), (92, 102), (994, 1005)] {
            let mut records = Vec::new();
            pax_record(&mut records, "path", &"v".repeat(value_len));
            assert_eq!(records.len(), expected, "{value_len}");
            assert!(records.starts_with(format!("{expected} path=").as_bytes()));
        }
    }

    #[test]
    fn sizes_from_8_gib_on_are_base_256_numbers_in_the_ustar_header() {
        let size = 8 << 30;
        let header = Entry::file("big", size, 0).header().unwrap();
        assert_eq!(header.as_bytes().len(), BLOCK, "no PAX header for a size");
        let parsed = ::tar::Header::from_byte_slice(header.as_bytes());
        assert_eq!(parsed.size().unwrap(), size);
        assert_eq!(parsed.as_old().size[0] & 0x80, 0x80);
        let below = Entry::file("big", size - 1, 0).header().unwrap();
        assert_eq!(&below.as_bytes()[124..136], b"77777777777\0");
    }
}
