//! Cargo.lock as the SBOM reads it: the sha256 of each registry package's `.crate` file, and of the lock
//! file itself.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::oci::Digest;

/// Largest Cargo.lock read (real ones are a few hundred KiB).
const MAX_LOCKFILE: u64 = 32 << 20;

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockedPackage>,
    /// Version 1 lock files kept checksums here: `"checksum NAME VERSION (SOURCE)" = "HEX"`.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// Checksums by (name, version, source).
#[derive(Debug, Default)]
pub(crate) struct Checksums {
    by_package: BTreeMap<(String, String, String), String>,
}

impl Checksums {
    /// Reads `path`; a missing file gives no checksums (a workspace never built with a lock file).
    pub(crate) fn read(path: &Path) -> Result<Checksums> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checksums::default()),
            Err(e) => return Err(Error::io("reading", path)(e)),
        };
        if bytes.len() as u64 > MAX_LOCKFILE {
            return Err(Error::input(
                path,
                format!(
                    "is larger than {} MiB; is it a Cargo.lock?",
                    MAX_LOCKFILE >> 20
                ),
            ));
        }
        Self::parse(&String::from_utf8_lossy(&bytes))
            .map_err(|e| Error::input(path, format!("cannot be read as a Cargo.lock ({e})")))
    }

    fn parse(text: &str) -> std::result::Result<Checksums, String> {
        let lock: LockFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut by_package = BTreeMap::new();
        for package in lock.package {
            if let (Some(source), Some(checksum)) = (package.source, package.checksum) {
                by_package.insert((package.name, package.version, source), checksum);
            }
        }
        for (key, checksum) in lock.metadata {
            let Some(rest) = key.strip_prefix("checksum ") else {
                continue;
            };
            let mut parts = rest.splitn(3, ' ');
            if let (Some(name), Some(version), Some(source)) =
                (parts.next(), parts.next(), parts.next())
            {
                let source = source.trim_start_matches('(').trim_end_matches(')');
                by_package.insert(
                    (name.to_owned(), version.to_owned(), source.to_owned()),
                    checksum,
                );
            }
        }
        Ok(Checksums { by_package })
    }

    /// The checksum of a package, when it is a well-formed sha256.
    pub(crate) fn get(&self, name: &str, version: &str, source: &str) -> Option<&str> {
        self.by_package
            .get(&(name.to_owned(), version.to_owned(), source.to_owned()))
            .map(String::as_str)
            .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// The sha256 of the lock file at `path`, when there is one.
pub(crate) fn lockfile_digest(path: &Path) -> Option<Digest> {
    std::fs::read(path).ok().map(|bytes| Digest::of(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_4_and_version_1_checksums() {
        let v4 = r#"
version = 4
[[package]]
name = "itoa"
version = "1.0.19"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4"
[[package]]
name = "local"
version = "0.1.0"
"#;
        let sums = Checksums::parse(v4).unwrap();
        let crates_io = "registry+https://github.com/rust-lang/crates.io-index";
        assert_eq!(
            sums.get("itoa", "1.0.19", crates_io),
            Some("3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4")
        );
        assert_eq!(sums.get("itoa", "1.0.18", crates_io), None);
        let v1 = format!(
            "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"{crates_io}\"\n\n[metadata]\n\
             \"checksum a 1.0.0 ({crates_io})\" = \"{}\"\n",
            "ab".repeat(32)
        );
        let sums = Checksums::parse(&v1).unwrap();
        assert_eq!(
            sums.get("a", "1.0.0", crates_io),
            Some("ab".repeat(32).as_str())
        );
        assert!(Checksums::parse("[[package]]\nname = 3").is_err());
    }
}
