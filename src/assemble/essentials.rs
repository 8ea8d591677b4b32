//! The scratch essentials: CA certificates, a passwd/group with a non-root user, /tmp, the timezone
//! database and extra files, as one small deterministic layer under the program's.

use std::path::{Path, PathBuf};

use crate::assemble::layer::{LayerSpec, MODE_FILE};
use crate::assemble::rootfs::{Kind, RootFs};
use crate::error::{Error, Result};
use crate::util::sanitize;

/// Where the CA bundle goes in the image (Debian's path, which Go, OpenSSL and rustls-native-certs read).
pub(crate) const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the zoneinfo database goes.
pub(crate) const ZONEINFO_PATH: &str = "/usr/share/zoneinfo";
/// The non-root user distroless images use.
pub(crate) const NONROOT_ID: u64 = 65532;
/// Its name, as user and as group.
pub(crate) const NONROOT_NAME: &str = "nonroot";
/// The files of a base image that the essentials layer reads (users and groups): [`RootFs::scan`]
/// must keep them.
pub(crate) const BASE_FILES: &[&str] = &["/etc/passwd", "/etc/group"];

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
    /// The file or directory on the building machine.
    pub source: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
}

impl Include {
    /// Parses `SRC[:DEST]`; DEST defaults to `/<basename of SRC>`. On Windows the colon of a drive
    /// (`C:/www`) is the source's own.
    pub fn parse(input: &str) -> Result<Include> {
        let drive = |source: &str| {
            cfg!(windows) && source.len() == 1 && source.bytes().all(|b| b.is_ascii_alphabetic())
        };
        let (source, dest) = match input.rsplit_once(':') {
            Some((source, dest)) if dest.starts_with('/') && !drive(source) => (source, Some(dest)),
            _ => (input, None),
        };
        if source.is_empty() {
            return Err(Error::Invalid(format!(
                "--include `{input}` has no source path"
            )));
        }
        let dest = if let Some(dest) = dest {
            crate::assemble::options::parse_absolute_path("--include destination", dest)?
        } else {
            let name = Path::new(source)
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "--include `{input}`: cannot tell the name to use in the image; write SRC:/DEST"
                    ))
                })?;
            format!("/{name}")
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

/// Where the CA bundle or the zoneinfo database comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The host's own copy, found where distributions put it.
    Host,
    /// A file or directory of the user's.
    Path(PathBuf),
}

/// Which essentials to add; `None` for a source leaves it out (or, under [`Essentials::over`], to
/// the fallback).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Essentials {
    /// Where the CA certificate bundle comes from (host copy or a file); `None`: none added.
    pub ca_certs: Option<Source>,
    /// Add a `nonroot` user (65532) and run as it.
    pub nonroot: bool,
    /// Add a world-writable, sticky `/tmp`.
    pub tmp: bool,
    /// Where the time zone database comes from; `None`: none added.
    pub tzdata: Option<Source>,
    /// Further files and directories to copy in, in order.
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
    /// What the layer changes in the base image, for `-v` (e.g. a CA bundle it replaces).
    pub notes: Vec<String>,
}

impl Essentials {
    /// These essentials (the flags') over `fallback` (a Cargo.toml's): a choice made here wins, the
    /// switches add up, and the includes of both are kept, `fallback`'s first.
    pub fn over(self, fallback: Essentials) -> Essentials {
        let mut include = fallback.include;
        include.extend(self.include);
        Essentials {
            ca_certs: self.ca_certs.or(fallback.ca_certs),
            nonroot: self.nonroot || fallback.nonroot,
            tmp: self.tmp || fallback.tmp,
            tzdata: self.tzdata.or(fallback.tzdata),
            include,
        }
    }

    /// True when nothing is to be added, so no essentials layer is written.
    pub fn is_empty(&self) -> bool {
        *self == Essentials::default()
    }

    /// Gathers every requested piece into one layer spec, failing with the file and the fix when a
    /// source is missing. On `base` (scanned keeping [`BASE_FILES`]):
    /// `--nonroot` adds the `nonroot` user and group to the base's own `/etc/passwd` and `/etc/group`
    /// instead of replacing them (or leaves a file alone that already has them, with ids 65532), and
    /// refuses a base that gives the name or the id to another; `--ca-certs` over a bundle the base
    /// has is noted.
    pub(crate) fn layer_on(&self, base: Option<&RootFs>) -> Result<Option<EssentialsLayer>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut spec = LayerSpec::new("the scratch essentials");
        let mut parts = Vec::new();
        let mut env = Vec::new();
        let mut user = None;
        let mut notes = Vec::new();
        if let Some(source) = &self.ca_certs {
            let bundle = match source {
                Source::Path(path) => path.clone(),
                Source::Host => find_host(HOST_CA_BUNDLES).ok_or_else(|| {
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
            if let Some(base) = base.filter(|base| base.exists(CA_BUNDLE_PATH)) {
                notes.push(format!(
                    "--ca-certs replaces {CA_BUNDLE_PATH} of {}",
                    base.describe()
                ));
            }
        }
        if self.nonroot {
            let id = NONROOT_ID;
            let mut part = LayerSpec::new("--nonroot");
            for account in [Account::User, Account::Group] {
                let (content, note) = account.file_on(base)?;
                part.add_bytes(account.path(), content, MODE_FILE)?;
                notes.extend(note);
            }
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
                Source::Path(dir) => dir.clone(),
                Source::Host => find_host(HOST_ZONEINFO).ok_or_else(|| {
                    Error::Invalid(
                        "--tzdata: no zoneinfo database found on this machine (/usr/share/zoneinfo); \
                         install tzdata or pass --tzdata=DIR"
                            .to_owned(),
                    )
                })?,
            };
            // The database itself, not a link to it: macOS's /usr/share/zoneinfo is a link to
            // /var/db/timezone/zoneinfo, which would arrive in the image as a dangling link.
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
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
            notes,
        }))
    }
}

/// The two files `--nonroot` writes.
#[derive(Clone, Copy)]
enum Account {
    User,
    Group,
}

impl Account {
    fn path(self) -> &'static str {
        match self {
            Account::User => "/etc/passwd",
            Account::Group => "/etc/group",
        }
    }

    /// The file without a base: root's entry and ours.
    fn scratch(self) -> String {
        match self {
            Account::User => format!("root:x:0:0:root:/root:/sbin/nologin\n{}", self.line()),
            Account::Group => format!("root:x:0:\n{}", self.line()),
        }
    }

    fn line(self) -> String {
        let (id, name) = (NONROOT_ID, NONROOT_NAME);
        match self {
            Account::User => format!("{name}:x:{id}:{id}:{name}:/home/{name}:/sbin/nologin\n"),
            Account::Group => format!("{name}:x:{id}:\n"),
        }
    }

    /// The file the layer writes over `base`, and a note when it merges with the base's.
    fn file_on(self, base: Option<&RootFs>) -> Result<(Vec<u8>, Option<String>)> {
        let path = self.path();
        let Some((base, kind)) = base.and_then(|b| b.kind(path).map(|kind| (b, kind))) else {
            return Ok((self.scratch().into_bytes(), None));
        };
        let name = base.describe();
        let refuse = |what: String| {
            Error::Invalid(format!("--nonroot: {path} of the base image {name} {what}"))
        };
        if kind != Kind::File {
            return Err(refuse(
                "is not a regular file; drop --nonroot and set --user".to_owned(),
            ));
        }
        let content = base.file(path).ok_or_else(|| {
            let why = base
                .why_unread(path)
                .unwrap_or_else(|| "cannot be read".to_owned());
            refuse(format!("{why}; drop --nonroot and set --user"))
        })?;
        if let Some(clash) = self.clash(content) {
            return Err(refuse(clash));
        }
        if self.has_ours(content) {
            return Ok((
                content.to_vec(),
                Some(format!(
                    "--nonroot: {path} of {name} already has {NONROOT_NAME} ({NONROOT_ID})"
                )),
            ));
        }
        let mut merged = content.to_vec();
        if !merged.is_empty() && !merged.ends_with(b"\n") {
            merged.push(b'\n');
        }
        merged.extend(self.line().into_bytes());
        Ok((
            merged,
            Some(format!(
                "--nonroot: {NONROOT_NAME} ({NONROOT_ID}) added to {path} of {name}"
            )),
        ))
    }

    /// Name, id and (for a user) group id of each entry of a passwd or group file.
    fn entries(self, content: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], Option<&[u8]>)> {
        content.split(|&b| b == b'\n').filter_map(move |line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line.starts_with(b"#") {
                return None;
            }
            let mut fields = line.split(|&b| b == b':');
            let name = fields.next()?;
            let id = fields.nth(1)?;
            let group = match self {
                Account::User => Some(fields.next().unwrap_or_default()),
                Account::Group => None,
            };
            Some((name, id, group))
        })
    }

    /// True when the file already has our entry: the name with our ids.
    fn has_ours(self, content: &[u8]) -> bool {
        let id = NONROOT_ID.to_string();
        self.entries(content).any(|(name, uid, gid)| {
            name == NONROOT_NAME.as_bytes()
                && uid == id.as_bytes()
                && gid.is_none_or(|gid| gid == id.as_bytes())
        })
    }

    /// What in the file stops us from adding our entry: our name with other ids, or our id under
    /// another name.
    fn clash(self, content: &[u8]) -> Option<String> {
        let id = NONROOT_ID.to_string();
        let (what, fix) = match self {
            Account::User => ("user", "--user NAME or --user UID:GID of a user it has"),
            Account::Group => ("group", "--user UID:GID with a group it has"),
        };
        let shown = |bytes: &[u8]| sanitize::outside(&String::from_utf8_lossy(bytes), 64);
        self.entries(content).find_map(|(name, uid, gid)| {
            let ours = name == NONROOT_NAME.as_bytes();
            let same_ids = uid == id.as_bytes() && gid.is_none_or(|gid| gid == id.as_bytes());
            if ours && !same_ids {
                let ids = match gid {
                    Some(gid) => format!("uid {} and gid {}", shown(uid), shown(gid)),
                    None => format!("gid {}", shown(uid)),
                };
                Some(format!(
                    "already has {what} {NONROOT_NAME} with {ids}, not {id}; drop --nonroot and \
                     pass {fix}"
                ))
            } else if !ours && uid == id.as_bytes() {
                let label = if gid.is_some() { "uid" } else { "gid" };
                Some(format!(
                    "gives {label} {id} to {what} `{}`; drop --nonroot and pass {fix}",
                    shown(name)
                ))
            } else {
                None
            }
        })
    }
}

fn find_host(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_turn_essentials_on_and_includes_add_up() {
        let include = |s: &str| Include {
            source: PathBuf::from(s),
            dest: format!("/{s}"),
        };
        let file = Essentials {
            ca_certs: Some(Source::Path(PathBuf::from("file.pem"))),
            nonroot: true,
            tmp: false,
            tzdata: Some(Source::Host),
            include: vec![include("a")],
        };
        let cli = Essentials {
            ca_certs: Some(Source::Path(PathBuf::from("cli.pem"))),
            nonroot: false,
            tmp: true,
            tzdata: None,
            include: vec![include("b")],
        };
        let merged = cli.over(file);
        assert_eq!(
            merged.ca_certs,
            Some(Source::Path(PathBuf::from("cli.pem")))
        );
        assert!(merged.nonroot && merged.tmp);
        assert_eq!(merged.tzdata, Some(Source::Host));
        assert_eq!(merged.include, [include("a"), include("b")]);
    }

    use crate::assemble::rootfs::testing::{Layer, scan};

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
        assert!(Essentials::default().layer_on(None).unwrap().is_none());
    }

    #[test]
    fn missing_sources_name_the_file() {
        let e = Essentials {
            ca_certs: Some(Source::Path("/nonexistent/ca.pem".into())),
            ..Default::default()
        };
        let err = e.layer_on(None).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/ca.pem") && err.contains("--ca-certs=PATH"),
            "{err}"
        );
        let e = Essentials {
            tzdata: Some(Source::Path(std::env::temp_dir())),
            ..Default::default()
        };
        assert!(
            e.layer_on(None)
                .unwrap_err()
                .to_string()
                .contains("zoneinfo")
        );
    }

    /// The files `--nonroot` writes on `base`, read back from the layer.
    fn nonroot_on(base: Option<&RootFs>) -> Result<(String, String, Vec<String>)> {
        let e = Essentials {
            nonroot: true,
            ..Default::default()
        };
        let layer = e.layer_on(base)?.unwrap();
        let (bytes, written) = layer
            .spec
            .write(
                Vec::new(),
                crate::util::timestamp::Timestamp::EPOCH,
                &crate::codec::compress::CompressOptions::default(),
                &crate::util::cancel::CancelToken::new(),
            )
            .unwrap();
        let mut memory = crate::image::blobs::Memory::new();
        memory.insert(written.descriptor.digest.clone(), bytes);
        let files = RootFs::scan(
            &memory,
            &[written.descriptor],
            BASE_FILES,
            &crate::util::cancel::CancelToken::new(),
        )
        .unwrap();
        let text = |path| String::from_utf8(files.file(path).unwrap().to_vec()).unwrap();
        Ok((text("/etc/passwd"), text("/etc/group"), layer.notes))
    }

    fn base(passwd: &str, group: &str) -> RootFs {
        let mut layer = Layer::new().file("etc/hostname", "base\n");
        if !passwd.is_empty() {
            layer = layer.file("etc/passwd", passwd);
        }
        if !group.is_empty() {
            layer = layer.file("etc/group", group);
        }
        scan(&[layer], BASE_FILES).unwrap().named("base:1")
    }

    #[test]
    fn nonroot_merges_with_the_base_accounts() {
        let (passwd, group, notes) = nonroot_on(Some(&base(
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin",
            "root:x:0:\nwww-data:x:33:\n",
        )))
        .unwrap();
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n\
             nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
        );
        assert_eq!(group, "root:x:0:\nwww-data:x:33:\nnonroot:x:65532:\n");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("added to /etc/passwd of base:1"),
            "{notes:?}"
        );
    }

    #[test]
    fn nonroot_leaves_a_base_that_has_it_alone_and_fills_in_what_the_base_lacks() {
        let distroless_passwd = "root:x:0:0:root:/root:/sbin/nologin\n\
            nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
        let (passwd, group, notes) = nonroot_on(Some(&base(distroless_passwd, ""))).unwrap();
        assert_eq!(passwd, distroless_passwd);
        assert_eq!(group, "root:x:0:\nnonroot:x:65532:\n", "as on scratch");
        assert!(notes[0].contains("already has nonroot"), "{notes:?}");
        let (passwd, group, notes) = nonroot_on(Some(&base("", ""))).unwrap();
        let (scratch_passwd, scratch_group, _) = nonroot_on(None).unwrap();
        assert_eq!((&passwd, &group), (&scratch_passwd, &scratch_group));
        assert!(passwd.starts_with("root:x:0:0:") && notes.is_empty());
    }

    #[test]
    fn nonroot_refuses_a_base_that_gives_its_name_or_id_to_another() {
        let cases = [
            (
                base("nonroot:x:1000:1000::/home/nonroot:/bin/sh\n", ""),
                "/etc/passwd of the base image base:1 already has user nonroot with uid 1000 and \
                 gid 1000, not 65532",
            ),
            (
                base("app:x:65532:65532::/app:/bin/sh\n", ""),
                "/etc/passwd of the base image base:1 gives uid 65532 to user `app`",
            ),
            (
                base("", "nonroot:x:1000:\n"),
                "/etc/group of the base image base:1 already has group nonroot with gid 1000",
            ),
            (
                base("", "users:x:65532:\n"),
                "/etc/group of the base image base:1 gives gid 65532 to group `users`",
            ),
        ];
        for (base, expected) in cases {
            let err = nonroot_on(Some(&base)).unwrap_err().to_string();
            assert!(
                err.starts_with("--nonroot: ") && err.contains(expected) && !err.contains('\n'),
                "{err}"
            );
            assert!(err.contains("drop --nonroot"), "{err}");
        }
    }

    #[test]
    fn ca_certs_over_a_base_bundle_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let e = Essentials {
            ca_certs: Some(Source::Path(pem)),
            ..Default::default()
        };
        let with_bundle = scan(
            &[Layer::new().file("etc/ssl/certs/ca-certificates.crt", "")],
            &[],
        )
        .unwrap()
        .named("debian:12");
        let notes = e.layer_on(Some(&with_bundle)).unwrap().unwrap().notes;
        assert_eq!(
            notes,
            ["--ca-certs replaces /etc/ssl/certs/ca-certificates.crt of debian:12"]
        );
        let without = base("", "");
        assert!(
            e.layer_on(Some(&without))
                .unwrap()
                .unwrap()
                .notes
                .is_empty()
        );
        assert!(e.layer_on(None).unwrap().unwrap().notes.is_empty());
    }
}
