//! Names that depend on the binary packaged: `{bin}` in an image name (`--tag`, `--push`, `tag`,
//! `push`) or an archive path (`-o`, `output`), so that one setting can serve every binary of a
//! workspace.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::image::reference::Reference;

/// The placeholder replaced by the binary's name.
pub const BIN: &str = "{bin}";

/// An image name as given: a reference, or a pattern with `{bin}` that becomes one per binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    /// True when the name depends on the binary.
    pub fn has_bin(&self) -> bool {
        self.0.contains(BIN)
    }

    /// The reference for binary `bin` (its name made a valid repository name, as for the default tag).
    pub fn resolve(&self, bin: &str) -> Result<Reference> {
        self.0.replace(BIN, &repository_name(bin)).parse()
    }
}

impl FromStr for NamePattern {
    type Err = Error;

    /// Checks the name as a reference with a sample binary name in place of `{bin}`.
    fn from_str(s: &str) -> Result<NamePattern> {
        s.replace(BIN, "bin").parse::<Reference>()?;
        Ok(NamePattern(s.to_owned()))
    }
}

impl From<Reference> for NamePattern {
    fn from(reference: Reference) -> NamePattern {
        NamePattern(reference.to_string())
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository prefix, `REGISTRY/PATH`, that images are pushed under: each as `REGISTRY/PATH/<bin>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository(String);

impl Repository {
    /// The reference for binary `bin` with `tag` (`+` build metadata made `_`).
    pub fn for_image(&self, bin: &str, tag: &str) -> Result<Reference> {
        let tag: String = tag
            .chars()
            .map(|c| if c == '+' { '_' } else { c })
            .collect();
        Reference::with_tag(&format!("{}/{}", self.0, repository_name(bin)), &tag)
    }
}

impl FromStr for Repository {
    type Err = Error;

    /// `REGISTRY/PATH` without a tag or digest.
    fn from_str(s: &str) -> Result<Repository> {
        let trimmed = s.trim_end_matches('/');
        let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
        let fail = |reason: &str| Error::Reference {
            name: crate::util::sanitize::outside(s, 200),
            reason: reason.to_owned(),
        };
        if trimmed.contains('@') || (trimmed.contains('/') && last.contains(':')) {
            return Err(fail(
                "a repository takes no tag or digest; give REGISTRY/PATH, e.g. ghcr.io/me",
            ));
        }
        Reference::with_tag(&format!("{trimmed}/bin"), "1").map_err(|_| {
            fail("not a valid REGISTRY/PATH, e.g. ghcr.io/me or localhost:5000/team")
        })?;
        Ok(Repository(trimmed.to_owned()))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `path` with `{bin}` replaced by `bin`.
pub(crate) fn resolve_path(path: &Path, bin: &str) -> PathBuf {
    match path.to_str() {
        Some(text) if text.contains(BIN) => PathBuf::from(text.replace(BIN, bin)),
        _ => path.to_owned(),
    }
}

/// True when `path` holds `{bin}`.
pub fn path_has_bin(path: &Path) -> bool {
    path.to_str().is_some_and(|text| text.contains(BIN))
}

/// A binary's name as a repository name component: lowercase, other characters made `-`.
pub(crate) fn repository_name(bin: &str) -> String {
    let name: String = bin
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    name.trim_matches(['.', '-']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_is_replaced_in_names_and_paths() {
        let pattern: NamePattern = "registry.example.com/team/{bin}:1".parse().unwrap();
        assert!(pattern.has_bin());
        assert_eq!(
            pattern.resolve("My_Api").unwrap().full(),
            "registry.example.com/team/my-api:1"
        );
        let plain: NamePattern = "app:1".parse().unwrap();
        assert!(!plain.has_bin());
        assert_eq!(plain.resolve("x").unwrap().familiar(), "app:1");
        assert!("Bad Name/{bin}".parse::<NamePattern>().is_err());
        assert_eq!(
            resolve_path(Path::new("dist/{bin}.tar"), "api"),
            PathBuf::from("dist/api.tar")
        );
        assert!(path_has_bin(Path::new("{bin}.tar")));
        let repository: Repository = "localhost:5000/team/".parse().unwrap();
        assert_eq!(
            repository.for_image("My_Api", "1.0.0+git").unwrap().full(),
            "localhost:5000/team/my-api:1.0.0_git"
        );
        assert!("ghcr.io/me/app:1".parse::<Repository>().is_err());
        assert!("ghcr.io/me@sha256:00".parse::<Repository>().is_err());
        assert!("Not Valid".parse::<Repository>().is_err());
        assert!("ghcr.io".parse::<Repository>().is_ok());
        assert!(!path_has_bin(Path::new("app.tar")));
    }
}
