//! `[package.metadata.zeroimage]` and `[workspace.metadata.zeroimage]`: what users set once in Cargo.toml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::assemble::essentials::{Essentials, Include, Source};
use crate::assemble::options::{self, ImageOptions};
use crate::codec::compress::{Choice, CompressOptions};
use crate::error::{Error, Result};
use crate::job::base::BaseRef;
use crate::job::naming::{NamePattern, Repository};
use crate::load::LoadTarget;

/// `true` for the host's copy, or a path.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum HostOrPath {
    /// `true`: the host's copy; `false`: none.
    Host(bool),
    /// A file on the building machine.
    Path(PathBuf),
}

/// Settings from Cargo.toml. Every key is optional; command-line flags win over them. Unknown keys are
/// an error so that a typo does not pass silently. Relative paths are resolved against the directory
/// of the Cargo.toml that sets them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Image name, `NAME[:TAG]`.
    pub tag: Option<String>,
    /// Rust target triple to build for.
    pub target: Option<String>,
    /// Several targets: one multi-platform image; `"all"`: every platform of the base.
    #[serde(default, deserialize_with = "targets_or_all")]
    pub targets: Option<Vec<String>>,
    /// Archive path.
    pub output: Option<PathBuf>,
    /// OCI image layout directory the image is added to.
    pub oci_layout: Option<PathBuf>,
    /// Creation time: `now`, `@SECONDS` or RFC 3339.
    pub created: Option<String>,
    /// Package a dynamically linked executable anyway.
    pub allow_dynamic: Option<bool>,
    /// Base image in a registry.
    pub from: Option<String>,
    /// Base image archive or OCI layout directory, `PATH[:TAG]`.
    pub from_archive: Option<String>,
    /// Environment variables for the program, `KEY = "VALUE"`.
    pub env: Option<BTreeMap<String, String>>,
    /// Image config labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Manifest annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// User to run as, `UID[:GID]` or `NAME[:GROUP]`.
    pub user: Option<String>,
    /// Absolute working directory.
    pub workdir: Option<String>,
    /// Ports to declare, `PORT[/PROTOCOL]`.
    pub expose: Option<Vec<String>>,
    /// Signal that stops the container, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
    /// Default arguments after the program (the config's `Cmd`).
    pub args: Option<Vec<String>>,
    /// Path of the program in the image.
    pub entrypoint_path: Option<String>,
    /// CA certificates to add: the host's, or a bundle file.
    pub ca_certs: Option<HostOrPath>,
    /// Add a `nonroot` user and run as it.
    pub nonroot: Option<bool>,
    /// Add a writable `/tmp`.
    pub tmp: Option<bool>,
    /// Time zone database to add: the host's, or a zoneinfo directory.
    pub tzdata: Option<HostOrPath>,
    /// Files and directories to copy in, `SRC[:DEST]`.
    pub include: Option<Vec<String>>,
    /// References to push the image to (`{bin}` is the binary's name).
    pub push: Option<Vec<String>>,
    /// Build musl targets with zig (`true`), never (`false`); unset: when C code needs it.
    pub zig: Option<bool>,
    /// Where to load the image: `docker`, `podman`, `containerd`, `kind[:CLUSTER]`, `k3d[:CLUSTER]`.
    pub load: Option<Vec<String>>,
    /// Where `cargo zeroimage resolve` pushes: `REGISTRY/PATH`, each image as `REGISTRY/PATH/<bin>`.
    pub repository: Option<String>,
    /// SBOM formats: `spdx`, `cyclonedx`, `both` or `none`.
    pub sbom: Option<String>,
    /// Attach a SLSA provenance statement.
    pub provenance: Option<bool>,
    /// A document that cannot be attached in a registry fails the push (before any tag is set).
    pub require_attachments: Option<bool>,
    /// Build through `cargo auditable` when it is installed.
    pub auditable: Option<bool>,
    /// Layer compression, `gzip[:LEVEL]` or `zstd[:LEVEL]`.
    pub compression: Option<String>,
    /// Compression level, for whichever format.
    pub compression_level: Option<u32>,
    /// Check AWS Lambda's rules for images, refusing an image Lambda cannot run.
    pub lambda: Option<bool>,
    /// A private key that signs every push (cosign's format or PKCS#8 PEM).
    pub sign_key: Option<PathBuf>,
    /// The form of the signatures: `cosign`, `bundle` or `both`.
    pub signature_format: Option<String>,
    /// A public key whose signature a registry base image must carry.
    pub from_verify_key: Option<PathBuf>,
    /// Ask clouds for registry credentials when no login has them (`false`: never).
    pub cloud_credentials: Option<bool>,
    /// The Cargo.toml these came from, for error messages.
    #[serde(skip)]
    pub manifest: Option<PathBuf>,
}

/// The target that stands for every Linux platform of the base image (`--target all`,
/// `targets = "all"`), as ko's `--platform=all`.
pub(crate) const ALL_TARGETS: &str = "all";

/// `targets` is a list of triples, or `"all"` (every platform of the base), kept as `["all"]`.
fn targets_or_all<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Targets {
        One(String),
        List(Vec<String>),
    }
    match Option::<Targets>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Targets::List(list)) => Ok(Some(list)),
        Some(Targets::One(all)) if all == ALL_TARGETS => Ok(Some(vec![all])),
        Some(Targets::One(other)) => Err(serde::de::Error::custom(format!(
            "`targets` is a list of target triples or \"all\", not \"{}\" (use `target` for one)",
            crate::util::sanitize::outside(&other, 100)
        ))),
    }
}

impl Settings {
    /// Every key `[package.metadata.zeroimage]` and `[workspace.metadata.zeroimage]` accept, in the
    /// order of the fields above: the one list the `cargo zeroimage --help` text and the settings table
    /// of the manual are made from and checked against (a unit test checks it against serde's own list).
    pub const KEYS: &[&str] = &[
        "tag",
        "target",
        "targets",
        "output",
        "oci-layout",
        "created",
        "allow-dynamic",
        "from",
        "from-archive",
        "env",
        "labels",
        "annotations",
        "user",
        "workdir",
        "expose",
        "stop-signal",
        "args",
        "entrypoint-path",
        "ca-certs",
        "nonroot",
        "tmp",
        "tzdata",
        "include",
        "push",
        "zig",
        "load",
        "repository",
        "sbom",
        "provenance",
        "require-attachments",
        "auditable",
        "compression",
        "compression-level",
        "lambda",
        "sign-key",
        "signature-format",
        "from-verify-key",
        "cloud-credentials",
    ];

    /// Reads the `zeroimage` table of a `metadata` value from `manifest` (named in errors).
    /// `section` is `package` or `workspace`, for the message.
    pub fn from_metadata(
        metadata: &serde_json::Value,
        manifest: &Path,
        section: &str,
    ) -> Result<Settings> {
        let Some(table) = metadata.get("zeroimage") else {
            return Ok(Settings::default());
        };
        let mut settings: Settings = serde_json::from_value(table.clone()).map_err(|e| {
            Error::input(
                manifest,
                format!("[{section}.metadata.zeroimage]: {e}; fix or remove that key"),
            )
        })?;
        let base = manifest.parent().unwrap_or(Path::new("."));
        if let Some(output) = &settings.output {
            settings.output = Some(base.join(output));
        }
        if let Some(layout) = &settings.oci_layout {
            settings.oci_layout = Some(base.join(layout));
        }
        if let Some(key) = &settings.sign_key {
            settings.sign_key = Some(base.join(key));
        }
        if let Some(key) = &settings.from_verify_key {
            settings.from_verify_key = Some(base.join(key));
        }
        if let Some(archive) = &settings.from_archive
            && !archive.starts_with('/')
        {
            settings.from_archive = Some(base.join(archive).display().to_string());
        }
        for source in [&mut settings.ca_certs, &mut settings.tzdata]
            .into_iter()
            .flatten()
        {
            if let HostOrPath::Path(path) = source {
                *path = base.join(&*path);
            }
        }
        if let Some(includes) = &mut settings.include {
            for include in includes.iter_mut() {
                if !include.starts_with('/') {
                    *include = base.join(&*include).display().to_string();
                }
            }
        }
        settings.manifest = Some(manifest.to_owned());
        Ok(settings)
    }

    /// These settings, with any key they leave unset taken from `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            tag: self.tag.or(fallback.tag),
            target: self.target.or(fallback.target),
            targets: self.targets.or(fallback.targets),
            output: self.output.or(fallback.output),
            oci_layout: self.oci_layout.or(fallback.oci_layout),
            created: self.created.or(fallback.created),
            allow_dynamic: self.allow_dynamic.or(fallback.allow_dynamic),
            // `from` and `from-archive` are one choice: a package's choice replaces the workspace's.
            from: self.from.clone().or(if self.from_archive.is_some() {
                None
            } else {
                fallback.from.clone()
            }),
            from_archive: self.from_archive.clone().or(if self.from.is_some() {
                None
            } else {
                fallback.from_archive
            }),
            env: self.env.or(fallback.env),
            labels: self.labels.or(fallback.labels),
            annotations: self.annotations.or(fallback.annotations),
            user: self.user.or(fallback.user),
            workdir: self.workdir.or(fallback.workdir),
            expose: self.expose.or(fallback.expose),
            stop_signal: self.stop_signal.or(fallback.stop_signal),
            args: self.args.or(fallback.args),
            entrypoint_path: self.entrypoint_path.or(fallback.entrypoint_path),
            ca_certs: self.ca_certs.or(fallback.ca_certs),
            nonroot: self.nonroot.or(fallback.nonroot),
            tmp: self.tmp.or(fallback.tmp),
            tzdata: self.tzdata.or(fallback.tzdata),
            include: self.include.or(fallback.include),
            push: self.push.or(fallback.push),
            zig: self.zig.or(fallback.zig),
            load: self.load.or(fallback.load),
            repository: self.repository.or(fallback.repository),
            sbom: self.sbom.or(fallback.sbom),
            provenance: self.provenance.or(fallback.provenance),
            require_attachments: self.require_attachments.or(fallback.require_attachments),
            auditable: self.auditable.or(fallback.auditable),
            compression: self.compression.or(fallback.compression),
            compression_level: self.compression_level.or(fallback.compression_level),
            lambda: self.lambda.or(fallback.lambda),
            sign_key: self.sign_key.or(fallback.sign_key),
            signature_format: self.signature_format.or(fallback.signature_format),
            from_verify_key: self.from_verify_key.or(fallback.from_verify_key),
            cloud_credentials: self.cloud_credentials.or(fallback.cloud_credentials),
            manifest: self.manifest.or(fallback.manifest),
        }
    }

    fn invalid(&self, error: Error) -> Error {
        match &self.manifest {
            Some(manifest) => {
                Error::input(manifest, format!("[package.metadata.zeroimage]: {error}"))
            }
            None => error,
        }
    }

    /// The image configuration these settings ask for, validated like the command-line options.
    pub fn image_options(&self) -> Result<ImageOptions> {
        let check = |r: Result<String>| r.map_err(|e| self.invalid(e));
        let mut env = Vec::new();
        for (key, value) in self.env.iter().flatten() {
            let pair = options::env_pair(key, value)
                .map_err(|e| self.invalid(Error::Invalid(format!("env: {e}"))))?;
            env.push(pair);
        }
        let map = |what: &str, entries: &Option<BTreeMap<String, String>>| {
            entries
                .iter()
                .flatten()
                .map(|(k, v)| options::key_value_pair(what, k, v).map_err(|e| self.invalid(e)))
                .collect::<Result<BTreeMap<_, _>>>()
        };
        Ok(ImageOptions {
            env,
            labels: map("labels", &self.labels)?,
            annotations: map("annotations", &self.annotations)?,
            user: self
                .user
                .as_deref()
                .map(options::parse_user)
                .transpose()
                .map_err(|e| self.invalid(e))?,
            workdir: self
                .workdir
                .as_deref()
                .map(|w| check(options::parse_absolute_path("workdir", w)))
                .transpose()?,
            expose: self
                .expose
                .iter()
                .flatten()
                .map(|p| check(options::parse_port(p)))
                .collect::<Result<_>>()?,
            stop_signal: self
                .stop_signal
                .as_deref()
                .map(|s| check(options::parse_signal(s)))
                .transpose()?,
            args: self.args.clone().unwrap_or_default(),
            entrypoint_path: self
                .entrypoint_path
                .as_deref()
                .map(|p| check(options::parse_absolute_path("entrypoint-path", p)))
                .transpose()?,
        })
    }

    /// The image name from `tag` (`{bin}` is the binary's name), validated.
    pub fn tag_pattern(&self) -> Result<Option<NamePattern>> {
        self.tag
            .as_deref()
            .map(|t| {
                t.parse::<NamePattern>()
                    .map_err(|e| self.invalid(Error::Invalid(format!("tag: {e}"))))
            })
            .transpose()
    }

    /// The base image `from` or `from-archive` names, validated.
    pub fn base_ref(&self) -> Result<Option<BaseRef>> {
        match (&self.from, &self.from_archive) {
            (Some(_), Some(_)) => Err(self.invalid(Error::Invalid(
                "from and from-archive are both set; keep one".to_owned(),
            ))),
            (Some(reference), None) => BaseRef::registry(reference)
                .map(Some)
                .map_err(|e| self.invalid(Error::Invalid(format!("from: {e}")))),
            (None, Some(archive)) => BaseRef::archive(archive)
                .map(Some)
                .map_err(|e| self.invalid(Error::Invalid(format!("from-archive: {e}")))),
            (None, None) => Ok(None),
        }
    }

    /// The references of `push` (`{bin}` is the binary's name), validated.
    pub fn push_patterns(&self) -> Result<Vec<NamePattern>> {
        self.push
            .iter()
            .flatten()
            .map(|r| {
                r.parse::<NamePattern>()
                    .map_err(|e| self.invalid(Error::Invalid(format!("push: {e}"))))
            })
            .collect()
    }

    /// The runtimes and clusters of `load`, validated.
    pub fn load_targets(&self) -> Result<Vec<LoadTarget>> {
        self.load
            .iter()
            .flatten()
            .map(|r| {
                r.parse::<LoadTarget>()
                    .map_err(|e| self.invalid(Error::Invalid(format!("load: {e}"))))
            })
            .collect()
    }

    /// `repository`, validated.
    pub fn repository(&self) -> Result<Option<Repository>> {
        self.repository
            .as_deref()
            .map(|r| {
                r.parse::<Repository>()
                    .map_err(|e| self.invalid(Error::Invalid(format!("repository: {e}"))))
            })
            .transpose()
    }

    /// The SBOM formats `sbom` names, validated.
    pub fn sbom_formats(&self) -> Result<Option<crate::sbom::SbomFormats>> {
        self.sbom
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|e: Error| self.invalid(Error::Invalid(format!("sbom: {e}"))))
            })
            .transpose()
    }

    /// How a registry base is pulled: `pull`, with the settings' `from-verify-key` when it names
    /// none.
    pub fn pull_options(
        &self,
        pull: &crate::registry::pull::PullOptions,
    ) -> Result<crate::registry::pull::PullOptions> {
        let mut pull = pull.clone();
        if self.cloud_credentials == Some(false) {
            pull.client.cloud_credentials = false;
        }
        if pull.verify_key.is_none()
            && let Some(path) = &self.from_verify_key
        {
            pull.verify_key = Some(crate::sign::PublicKey::load(path)?);
        }
        Ok(pull)
    }

    /// The signature format these settings ask for, when they ask.
    pub fn signature_format(&self) -> Result<Option<crate::image::signatures::SignatureFormat>> {
        self.signature_format
            .as_deref()
            .map(|s| {
                crate::image::signatures::SignatureFormat::parse(s).ok_or_else(|| {
                    self.invalid(Error::Invalid(format!(
                        "signature-format: `{}` is not cosign, bundle or both",
                        crate::util::sanitize::outside(s, 100)
                    )))
                })
            })
            .transpose()
    }

    /// The layer compression these settings ask for, when they ask.
    pub fn compression(&self) -> Result<Option<CompressOptions>> {
        if self.compression.is_none() && self.compression_level.is_none() {
            return Ok(None);
        }
        let choice = self.compression.as_deref().map(str::parse::<Choice>);
        choice
            .transpose()
            .and_then(|choice| CompressOptions::resolve(choice, self.compression_level))
            .map(Some)
            .map_err(|e| self.invalid(e))
    }

    /// The essentials these settings ask for.
    pub fn essentials(&self) -> Result<Essentials> {
        let source = |s: &Option<HostOrPath>| match s {
            None | Some(HostOrPath::Host(false)) => None,
            Some(HostOrPath::Host(true)) => Some(Source::Host),
            Some(HostOrPath::Path(p)) => Some(Source::Path(p.clone())),
        };
        Ok(Essentials {
            ca_certs: source(&self.ca_certs),
            nonroot: self.nonroot.unwrap_or(false),
            tmp: self.tmp.unwrap_or(false),
            tzdata: source(&self.tzdata),
            include: self
                .include
                .iter()
                .flatten()
                .map(|i| Include::parse(i).map_err(|e| self.invalid(e)))
                .collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_known_keys_and_resolves_paths_against_the_manifest() {
        let metadata = json!({"zeroimage": {"tag": "app:1", "target": "aarch64-unknown-linux-musl",
            "output": "dist/app.tar", "oci-layout": "dist/oci", "allow-dynamic": true, "zig": false, "ca-certs": "certs/ca.pem", "tzdata": true,
            "include": ["static:/srv/static", "/etc/hosts:/etc/hosts"], "env": {"A": "1"}, "expose": ["80"]}});
        let s =
            Settings::from_metadata(&metadata, Path::new("/ws/app/Cargo.toml"), "package").unwrap();
        assert_eq!(s.tag.as_deref(), Some("app:1"));
        assert_eq!(s.output, Some(PathBuf::from("/ws/app/dist/app.tar")));
        assert_eq!(s.oci_layout, Some(PathBuf::from("/ws/app/dist/oci")));
        assert_eq!(s.allow_dynamic, Some(true));
        assert_eq!(s.zig, Some(false));
        let essentials = s.essentials().unwrap();
        assert_eq!(
            essentials.ca_certs,
            Some(Source::Path(PathBuf::from("/ws/app/certs/ca.pem")))
        );
        assert_eq!(essentials.tzdata, Some(Source::Host));
        assert_eq!(
            essentials.include[0].source,
            PathBuf::from("/ws/app/static")
        );
        assert_eq!(essentials.include[1].source, PathBuf::from("/etc/hosts"));
        let options = s.image_options().unwrap();
        assert_eq!(options.expose, ["80/tcp"]);
        assert_eq!(options.env, [("A".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn env_names_with_equals_and_bad_references_are_refused() {
        let metadata =
            json!({"zeroimage": {"env": {"A=B": "1"}, "push": ["Bad Ref"], "tag": "x:"}});
        let s = Settings::from_metadata(&metadata, Path::new("/ws/Cargo.toml"), "package").unwrap();
        let err = s.image_options().unwrap_err().to_string();
        assert!(
            err.contains("/ws/Cargo.toml") && err.contains("`A=B`"),
            "{err}"
        );
        let err = s.push_patterns().unwrap_err().to_string();
        assert!(
            err.contains("/ws/Cargo.toml") && err.contains("push"),
            "{err}"
        );
        assert!(s.tag_pattern().is_err());
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let metadata = json!({"zeroimage": {"tagg": "x"}});
        let err = Settings::from_metadata(&metadata, Path::new("/ws/Cargo.toml"), "workspace")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/ws/Cargo.toml"), "{err}");
        assert!(err.contains("[workspace.metadata.zeroimage]"), "{err}");
        assert!(err.contains("unknown field `tagg`"), "{err}");
    }

    #[test]
    fn targets_is_a_list_or_all() {
        let read = |value: serde_json::Value| {
            Settings::from_metadata(
                &json!({"zeroimage": {"targets": value}}),
                Path::new("/ws/Cargo.toml"),
                "package",
            )
        };
        assert_eq!(
            read(json!("all")).unwrap().targets,
            Some(vec!["all".to_owned()])
        );
        assert_eq!(
            read(json!(["a", "b"])).unwrap().targets,
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        let err = read(json!("x86_64-unknown-linux-musl"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/ws/Cargo.toml") && err.contains("use `target` for one"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_the_file() {
        let metadata = json!({"zeroimage": {"expose": ["http"]}});
        let s = Settings::from_metadata(&metadata, Path::new("/ws/Cargo.toml"), "package").unwrap();
        let err = s.image_options().unwrap_err().to_string();
        assert!(
            err.contains("/ws/Cargo.toml") && err.contains("port"),
            "{err}"
        );
    }

    #[test]
    fn package_settings_win_over_workspace_settings() {
        let package = Settings {
            tag: Some("p".into()),
            ..Default::default()
        };
        let workspace = Settings {
            tag: Some("w".into()),
            target: Some("t".into()),
            ..Default::default()
        };
        let merged = package.or(workspace);
        assert_eq!(merged.tag.as_deref(), Some("p"));
        assert_eq!(merged.target.as_deref(), Some("t"));
    }

    #[test]
    fn load_and_repository_are_checked() {
        let metadata = json!({"zeroimage": {"load": ["docker", "podman", "kind:dev"], "repository": "registry.example.com/team", "tag": "r/{bin}:1"}});
        let s =
            Settings::from_metadata(&metadata, Path::new("/ws/Cargo.toml"), "workspace").unwrap();
        let targets: Vec<String> = s
            .load_targets()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(targets, ["docker", "podman", "kind:dev"]);
        assert_eq!(
            s.repository()
                .unwrap()
                .unwrap()
                .for_image("api", "1.0")
                .unwrap()
                .full(),
            "registry.example.com/team/api:1.0"
        );
        assert!(s.tag_pattern().unwrap().unwrap().has_bin());
        let metadata = json!({"zeroimage": {"load": ["kubernetes"], "repository": "Bad Repo"}});
        let s =
            Settings::from_metadata(&metadata, Path::new("/ws/Cargo.toml"), "workspace").unwrap();
        let err = s.load_targets().unwrap_err().to_string();
        assert!(
            err.contains("/ws/Cargo.toml") && err.contains("kubernetes"),
            "{err}"
        );
        assert!(s.repository().is_err());
    }

    #[test]
    fn sbom_formats_are_validated() {
        let manifest = Path::new("/w/Cargo.toml");
        let settings = Settings::from_metadata(
            &json!({"zeroimage": {"sbom": "both", "provenance": true, "auditable": true,
                "require-attachments": true}}),
            manifest,
            "package",
        )
        .unwrap();
        assert_eq!(
            settings.sbom_formats().unwrap(),
            Some(crate::sbom::SbomFormats {
                spdx: true,
                cyclonedx: true
            })
        );
        assert_eq!(settings.provenance, Some(true));
        assert_eq!(settings.require_attachments, Some(true));
        let bad =
            Settings::from_metadata(&json!({"zeroimage": {"sbom": "xml"}}), manifest, "package")
                .unwrap();
        let err = bad.sbom_formats().unwrap_err().to_string();
        assert!(
            err.contains("/w/Cargo.toml") && err.contains("sbom"),
            "{err}"
        );
    }

    #[test]
    fn compression_and_its_level_are_read_and_checked() {
        let read = |value: serde_json::Value| {
            Settings::from_metadata(
                &json!({ "zeroimage": value }),
                Path::new("/ws/Cargo.toml"),
                "package",
            )
            .unwrap()
            .compression()
        };
        assert_eq!(read(json!({})).unwrap(), None);
        let zstd = read(json!({"compression": "zstd"})).unwrap().unwrap();
        assert_eq!(zstd.to_string(), "zstd:3");
        let gzip = read(json!({"compression-level": 9})).unwrap().unwrap();
        assert_eq!(gzip.to_string(), "gzip:9");
        let err = read(json!({"compression": "lz4"})).unwrap_err().to_string();
        assert!(
            err.contains("/ws/Cargo.toml") && err.contains("lz4"),
            "{err}"
        );
    }

    #[test]
    fn keys_are_exactly_the_keys_serde_accepts() {
        // serde names every field it knows in its "expected one of `a`, `b`" message, in field order.
        let error = Settings::from_metadata(
            &json!({"zeroimage": {"no-such-setting": true}}),
            Path::new("Cargo.toml"),
            "package",
        )
        .unwrap_err()
        .to_string();
        let known: Vec<&str> = error
            .split("expected one of")
            .nth(1)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        assert_eq!(known, Settings::KEYS, "{error}");
        for key in Settings::KEYS {
            let table = json!({"zeroimage": {*key: null}});
            Settings::from_metadata(&table, Path::new("Cargo.toml"), "package")
                .unwrap_or_else(|e| panic!("`{key}` is refused: {e}"));
        }
    }

    #[test]
    fn missing_table_is_empty_settings() {
        let s = Settings::from_metadata(&json!(null), Path::new("Cargo.toml"), "package").unwrap();
        assert_eq!(s, Settings::default());
    }
}
