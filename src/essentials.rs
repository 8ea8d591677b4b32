//! The scratch essentials: CA certificates, a passwd/group with a non-root user, /tmp, the timezone
//! database and extra files, as one small deterministic layer under the program's.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layer::{LayerSpec, MODE_FILE};

/// Where the CA bundle goes in the image (Debian's path, which Go, OpenSSL and rustls-native-certs read).
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the zoneinfo database goes.
pub const ZONEINFO_PATH: &str = "/usr/share/zoneinfo";
/// The non-root user distroless images use.
pub const NONROOT_ID: u64 = 65532;

/// Host CA bundles, in the order distributions put them: Debian/Ubuntu, Fedora/RHEL, Alpine and macOS,
/// openSUSE, and RHEL's extracted bundle.
const HOST_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];
const HOST_ZONEINFO: &[&str] = &[
    "/usr/share/zoneinfo",
    "/usr/lib/zoneinfo",
    "/usr/share/lib/zoneinfo",
];

/// A file or directory to copy into the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    pub source: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
}

impl Include {
    /// Parses `SRC[:DEST]`; DEST defaults to `/<basename of SRC>`.
    pub fn parse(input: &str) -> Result<Include> {
        let (source, dest) = match input.rsplit_once(':') {
            Some((source, dest)) if dest.starts_with('/') => (source, Some(dest)),
            _ => (input, None),
        };
        if source.is_empty() {
            return Err(Error::Invalid(format!(
                "--include `{input}` has no source path"
            )));
        }
        let dest = match dest {
            Some(dest) => crate::options::parse_absolute_path("--include destination", dest)?,
            None => {
                let name = Path::new(source)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "--include `{input}`: cannot tell the name to use in the image; write SRC:/DEST"
                        ))
                    })?;
                format!("/{name}")
            }
        };
        Ok(Include {
            source: PathBuf::from(source),
            dest,
        })
    }
}

/// As given on the command line, `--include SRC:DEST`: how errors name it.
impl std::fmt::Display for Include {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--include {}:{}", self.source.display(), self.dest)
    }
}

/// Which essentials to add. `Some(None)` for a source means "the host's".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Essentials {
    pub ca_certs: Option<Option<PathBuf>>,
    pub nonroot: bool,
    pub tmp: bool,
    pub tzdata: Option<Option<PathBuf>>,
    pub include: Vec<Include>,
}

/// The essentials layer's contents and what the image config must say about them.
#[derive(Debug)]
pub(crate) struct EssentialsLayer {
    pub spec: LayerSpec,
    /// For the history entry, e.g. `ADD ca-certs nonroot tmp`.
    pub created_by: String,
    /// Environment the essentials need (SSL_CERT_FILE).
    pub env: Vec<(String, String)>,
    /// The user to run as, when `--nonroot` asked for one.
    pub user: Option<String>,
}

impl Essentials {
    pub fn is_empty(&self) -> bool {
        *self == Essentials::default()
    }

    /// Gathers every requested piece into one layer spec, failing with the file and the fix when a
    /// source is missing.
    pub(crate) fn layer(&self) -> Result<Option<EssentialsLayer>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut spec = LayerSpec::new("the scratch essentials");
        let mut parts = Vec::new();
        let mut env = Vec::new();
        let mut user = None;
        if let Some(source) = &self.ca_certs {
            let bundle = match source {
                Some(path) => path.clone(),
                None => find_host(HOST_CA_BUNDLES).ok_or_else(|| {
                    Error::Invalid(format!(
                        "--ca-certs: no CA bundle found on this machine (looked in {}); install \
                         ca-certificates or pass --ca-certs=PATH",
                        HOST_CA_BUNDLES.join(", ")
                    ))
                })?,
            };
            let meta = std::fs::metadata(&bundle).map_err(|_| {
                Error::input(
                    &bundle,
                    "no such CA bundle; pass --ca-certs=PATH to a PEM file",
                )
            })?;
            if !meta.is_file() {
                return Err(Error::input(
                    &bundle,
                    "is not a file; --ca-certs takes a PEM bundle",
                ));
            }
            let mut part = LayerSpec::new("--ca-certs");
            part.add_file(CA_BUNDLE_PATH, &bundle, MODE_FILE)?;
            spec.merge(part)?;
            env.push(("SSL_CERT_FILE".to_owned(), CA_BUNDLE_PATH.to_owned()));
            parts.push("ca-certs".to_owned());
        }
        if self.nonroot {
            let id = NONROOT_ID;
            let mut part = LayerSpec::new("--nonroot");
            part.add_bytes(
                "/etc/passwd",
                format!(
                    "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{id}:{id}:nonroot:/home/nonroot:/sbin/nologin\n"
                ),
                MODE_FILE,
            )?;
            part.add_bytes(
                "/etc/group",
                format!("root:x:0:\nnonroot:x:{id}:\n"),
                MODE_FILE,
            )?;
            part.add_dir("/home/nonroot", 0o700, id, id)?;
            spec.merge(part)?;
            user = Some(format!("{id}:{id}"));
            parts.push("nonroot".to_owned());
        }
        if self.tmp {
            let mut part = LayerSpec::new("--tmp");
            part.add_dir("/tmp", 0o1777, 0, 0)?;
            spec.merge(part)?;
            parts.push("tmp".to_owned());
        }
        if let Some(source) = &self.tzdata {
            let dir = match source {
                Some(dir) => dir.clone(),
                None => find_host(HOST_ZONEINFO).ok_or_else(|| {
                    Error::Invalid(
                        "--tzdata: no zoneinfo database found on this machine (/usr/share/zoneinfo); \
                         install tzdata or pass --tzdata=DIR"
                            .to_owned(),
                    )
                })?,
            };
            if !dir.join("UTC").exists() && !dir.join("Etc/UTC").exists() {
                return Err(Error::input(
                    &dir,
                    "does not look like a zoneinfo database (no UTC or Etc/UTC); pass --tzdata=DIR",
                ));
            }
            let mut part = LayerSpec::new("--tzdata");
            part.add_path(ZONEINFO_PATH, &dir)?;
            spec.merge(part)?;
            parts.push("tzdata".to_owned());
        }
        for include in &self.include {
            let mut part = LayerSpec::new(&include.to_string());
            part.add_path(&include.dest, &include.source)?;
            spec.merge(part)?;
            // Only the destination: the source path differs between machines, the image must not.
            parts.push(include.dest.clone());
        }
        Ok(Some(EssentialsLayer {
            spec,
            created_by: format!("ADD {}", parts.join(" ")),
            env,
            user,
        }))
    }
}

fn find_host(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_syntax() {
        assert_eq!(
            Include::parse("static:/srv/static").unwrap(),
            Include {
                source: "static".into(),
                dest: "/srv/static".into()
            }
        );
        assert_eq!(Include::parse("./conf/app.toml").unwrap().dest, "/app.toml");
        assert_eq!(
            Include::parse("a:b").unwrap().dest,
            "/a:b",
            "a colon not followed by / is part of the name"
        );
        assert!(Include::parse(":/x").is_err());
        assert!(Include::parse("x:/a/../b").is_err());
    }

    #[test]
    fn nothing_requested_is_no_layer() {
        assert!(Essentials::default().layer().unwrap().is_none());
    }

    #[test]
    fn missing_sources_name_the_file() {
        let e = Essentials {
            ca_certs: Some(Some("/nonexistent/ca.pem".into())),
            ..Default::default()
        };
        let err = e.layer().unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/ca.pem") && err.contains("--ca-certs=PATH"),
            "{err}"
        );
        let e = Essentials {
            tzdata: Some(Some(std::env::temp_dir())),
            ..Default::default()
        };
        assert!(e.layer().unwrap_err().to_string().contains("zoneinfo"));
    }
}
