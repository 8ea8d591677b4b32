//! Option groups shared by both commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use ::zeroimage::assemble::essentials::{Essentials, Include, Source};
use ::zeroimage::assemble::options::{self, ImageOptions};
use ::zeroimage::codec::compress::Choice;
use ::zeroimage::error::Result;
use ::zeroimage::image::signatures::SignatureFormat;
use ::zeroimage::job::base::BaseRef;
use ::zeroimage::job::naming::NamePattern;
use ::zeroimage::job::signing::SigningOptions;
use ::zeroimage::oci::platform::{Platform, PlatformOverride};
use ::zeroimage::registry::cache::CacheMode;
use ::zeroimage::registry::client::ClientOptions;
use ::zeroimage::registry::pull::PullOptions;
use ::zeroimage::registry::push::PushOptions;
use ::zeroimage::sbom::SbomFormats;
use ::zeroimage::util::timestamp::Timestamp;

/// What the image is called and when it was made.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Image options")]
pub struct ImageArgs {
    /// Image name, e.g. `app`, `app:1.2`, `registry.example.com/team/app:1.2` (`{bin}`: the binary's name)
    #[arg(short, long, value_name = "NAME[:TAG]", value_parser = parse_pattern)]
    pub tag: Option<NamePattern>,

    /// Creation time: `now`, `@SECONDS` or RFC 3339 [default: $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z]
    #[arg(long, value_name = "TIME")]
    pub created: Option<String>,

    /// Package a dynamically linked executable anyway (it will not start without its libraries)
    #[arg(long)]
    pub allow_dynamic: bool,

    /// Layer compression: gzip or zstd, with an optional level (zstd:19). A zstd archive has no manifest.json, as
    /// `docker load` before Docker 23 cannot read zstd: load it with podman, containerd or skopeo [default: gzip]
    #[arg(long, value_name = "FORMAT[:LEVEL]", value_parser = compression)]
    pub compression: Option<Choice>,

    /// Compression level: gzip 1 (fastest) to 9 (smallest), zstd 1 to 19 [default: gzip 3, zstd 3]
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,

    /// Refuse an image AWS Lambda cannot run (an index, layers not gzip, a platform other than amd64 or
    /// arm64, an unusable entrypoint, files others cannot read, over 10 GiB), before anything is written;
    /// without it, a push to ECR warns
    #[arg(long)]
    pub lambda: bool,

    #[command(flatten)]
    pub supply_chain: SupplyChainArgs,

    #[command(flatten)]
    pub signing: SigningArgs,
}

/// Signing what is pushed.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Signing")]
pub struct SigningArgs {
    /// Sign every push with this private key: cosign's encrypted format or a PKCS#8 PEM, ECDSA P-256
    /// (repeatable; the password from $COSIGN_PASSWORD, else the terminal)
    #[arg(long = "sign", value_name = "KEY", env = "ZEROIMAGE_SIGNING_KEY")]
    pub sign: Vec<PathBuf>,

    /// How signatures are stored: cosign (the .sig and .att tags), bundle (Sigstore bundles as OCI
    /// 1.1 referrers) or both [default: cosign]
    #[arg(long, value_name = "FORMAT", value_parser = signature_format)]
    pub signature_format: Option<SignatureFormat>,
}

impl SigningArgs {
    /// The signing options these flags give.
    pub fn options(&self) -> SigningOptions {
        SigningOptions {
            keys: self.sign.clone(),
            format: self.signature_format,
            ..SigningOptions::default()
        }
    }
}

fn signature_format(s: &str) -> std::result::Result<SignatureFormat, String> {
    SignatureFormat::parse(s).ok_or_else(|| format!("`{s}` is not cosign, bundle or both"))
}

/// SBOM and provenance attached to the image.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Supply chain")]
pub struct SupplyChainArgs {
    /// SBOM documents to attach: spdx, cyclonedx, both or none [default: spdx]
    #[arg(long, value_name = "FORMAT", value_parser = parse_sbom)]
    pub sbom: Option<SbomFormats>,

    /// Attach a SLSA v1 provenance statement (in-toto)
    #[arg(long)]
    pub provenance: bool,

    /// Fail a push when a registry refuses an attached document (no tag is set then); without it,
    /// that is a warning and the image is pushed without the document
    #[arg(long)]
    pub require_attachments: bool,
}

fn parse_sbom(s: &str) -> std::result::Result<SbomFormats, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}

impl ImageArgs {
    /// The creation time this option gives, if any.
    pub fn created(&self) -> Result<Option<Timestamp>> {
        self.created.as_deref().map(str::parse).transpose()
    }
}

/// Which platform the image is labelled with, when not the one the executable's ELF header says.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Platform options")]
pub struct PlatformArgs {
    /// Image platform in docker syntax, overriding what the executable's ELF header says
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform,
          conflicts_with_all = ["os", "arch", "variant"])]
    pub platform: Option<Platform>,

    /// Image OS (only `linux` is supported) [default: from the executable]
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,

    /// Image architecture, e.g. amd64, arm64, arm, 386 [default: from the executable]
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,

    /// Architecture variant, e.g. v7 for arm [default: from the executable]
    #[arg(long, value_name = "VARIANT")]
    pub variant: Option<String>,
}

impl PlatformArgs {
    /// The platform overrides given on the command line.
    pub fn platform_override(&self) -> PlatformOverride {
        match &self.platform {
            Some(platform) => PlatformOverride::from_platform(platform),
            None => PlatformOverride {
                os: self.os.clone(),
                architecture: self.arch.clone(),
                variant: self.variant.clone(),
            },
        }
    }
}

/// Where the result goes and how the run reports.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Output options")]
pub struct OutputArgs {
    /// Write the archive here [default: PROGRAM.tar beside the program]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Also add the image to the OCI image layout directory DIR (created when missing; other images
    /// kept, an image of the same name replaced), listed under its name, e.g. `oci:DIR:app:1.0` for
    /// skopeo. Without -o (or an `output` setting), no archive is written
    #[arg(long, value_name = "DIR")]
    pub oci_layout: Option<PathBuf>,

    /// After a successful run, write each image made, pinned by digest (REPOSITORY@sha256:...), then
    /// each document attached to it, one per line, to FILE
    #[arg(long, value_name = "FILE")]
    pub image_refs: Option<PathBuf>,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// `--message-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

fn parse_pattern(s: &str) -> std::result::Result<NamePattern, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}

fn parse_platform(s: &str) -> std::result::Result<Platform, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}

/// Image configuration, the same on both commands.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Image configuration")]
pub struct ConfigArgs {
    /// Set an environment variable (repeatable; a later value for the same key wins)
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = env_entry)]
    pub env: Vec<(String, String)>,

    /// Add a config label (repeatable; overrides labels taken from Cargo.toml)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label_entry)]
    pub label: Vec<(String, String)>,

    /// Add a manifest annotation (repeatable; overrides annotations taken from Cargo.toml)
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = annotation_entry)]
    pub annotation: Vec<(String, String)>,

    /// User to run as
    #[arg(long, value_name = "UID[:GID]|NAME", value_parser = user)]
    pub user: Option<String>,

    /// Working directory of the container (absolute)
    #[arg(long, value_name = "DIR", value_parser = workdir)]
    pub workdir: Option<String>,

    /// Document a port the program listens on (repeatable)
    #[arg(long, value_name = "PORT[/tcp|udp]", value_parser = port)]
    pub expose: Vec<String>,

    /// Signal that stops the container, e.g. SIGINT
    #[arg(long, value_name = "SIGNAL", value_parser = signal)]
    pub stop_signal: Option<String>,

    /// Default argument after the entrypoint (repeatable; the config's Cmd)
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// Where the executable lives in the image [default: /NAME]
    #[arg(long, value_name = "PATH", value_parser = entrypoint_path)]
    pub entrypoint_path: Option<String>,
}

impl ConfigArgs {
    /// The options as the library takes them.
    pub fn options(&self) -> ImageOptions {
        ImageOptions {
            env: self.env.clone(),
            labels: self.label.iter().cloned().collect(),
            annotations: self.annotation.iter().cloned().collect(),
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            expose: self.expose.clone(),
            stop_signal: self.stop_signal.clone(),
            args: self.args.clone(),
            entrypoint_path: self.entrypoint_path.clone(),
        }
    }
}

/// The optional essentials layer.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Scratch essentials (one extra layer)")]
pub struct EssentialsArgs {
    /// Add CA certificates at /etc/ssl/certs/ca-certificates.crt and set SSL_CERT_FILE [default: the host's bundle]
    #[arg(long, value_name = "PATH", num_args = 0..=1, require_equals = true, default_missing_value = "",
          value_parser = source)]
    pub ca_certs: Option<Source>,

    /// Add /etc/passwd and /etc/group with root and nonroot (65532), and run as 65532:65532
    #[arg(long)]
    pub nonroot: bool,

    /// Add an empty /tmp (mode 1777)
    #[arg(long)]
    pub tmp: bool,

    /// Add the zoneinfo database at /usr/share/zoneinfo [default: the host's]
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true, default_missing_value = "",
          value_parser = source)]
    pub tzdata: Option<Source>,

    /// Copy a file or directory into the image (repeatable; DEST defaults to /NAME)
    #[arg(long, value_name = "SRC[:DEST]", value_parser = include)]
    pub include: Vec<Include>,
}

impl EssentialsArgs {
    /// The essentials as the library takes them.
    pub fn essentials(&self) -> Essentials {
        Essentials {
            ca_certs: self.ca_certs.clone(),
            nonroot: self.nonroot,
            tmp: self.tmp,
            tzdata: self.tzdata.clone(),
            include: self.include.clone(),
        }
    }
}

fn text(e: ::zeroimage::Error) -> String {
    e.to_string()
}

fn compression(s: &str) -> std::result::Result<Choice, String> {
    s.parse().map_err(text)
}

/// `--ca-certs` or `--tzdata` alone (an empty value) means the host's copy; with a value, the user's.
#[allow(clippy::unnecessary_wraps)] // the signature clap's value_parser takes
fn source(s: &str) -> std::result::Result<Source, String> {
    Ok(match s {
        "" => Source::Host,
        path => Source::Path(PathBuf::from(path)),
    })
}

fn env_entry(s: &str) -> std::result::Result<(String, String), String> {
    options::parse_env(s).map_err(text)
}

fn label_entry(s: &str) -> std::result::Result<(String, String), String> {
    options::parse_key_value("--label", s).map_err(text)
}

fn annotation_entry(s: &str) -> std::result::Result<(String, String), String> {
    options::parse_key_value("--annotation", s).map_err(text)
}

fn user(s: &str) -> std::result::Result<String, String> {
    options::parse_user(s).map_err(text)
}

fn workdir(s: &str) -> std::result::Result<String, String> {
    options::parse_absolute_path("--workdir", s).map_err(text)
}

fn entrypoint_path(s: &str) -> std::result::Result<String, String> {
    options::parse_absolute_path("--entrypoint-path", s).map_err(text)
}

fn port(s: &str) -> std::result::Result<String, String> {
    options::parse_port(s).map_err(text)
}

fn signal(s: &str) -> std::result::Result<String, String> {
    options::parse_signal(s).map_err(text)
}

fn include(s: &str) -> std::result::Result<Include, String> {
    Include::parse(s).map_err(text)
}

/// The base image (both commands).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Base image")]
pub struct BaseArgs {
    /// Build on a registry image instead of FROM scratch, e.g. gcr.io/distroless/cc-debian12:nonroot or
    /// NAME@sha256:DIGEST
    #[arg(long, value_name = "REF", conflicts_with = "from_archive")]
    pub from: Option<String>,

    /// Build on an image from an oci-archive, a docker-archive or an OCI layout directory (TAG picks one
    /// of several)
    #[arg(long, value_name = "PATH[:TAG]")]
    pub from_archive: Option<String>,

    /// Neither read nor fill the blob cache; pulled blobs go to a temporary directory for this run
    #[arg(long)]
    pub no_cache: bool,

    /// Refuse a registry base image that carries no signature by this public key (PEM) over its
    /// digest and repository, before anything is built
    #[arg(long, value_name = "PUB")]
    pub from_verify_key: Option<PathBuf>,
}

impl BaseArgs {
    /// How to pull a registry base: the registry options, and the cache unless `--no-cache`.
    pub fn pull_options(&self, client: &ClientOptions) -> Result<PullOptions> {
        Ok(PullOptions {
            client: client.clone(),
            cache: if self.no_cache {
                CacheMode::Private
            } else {
                CacheMode::User
            },
            verify_key: self
                .from_verify_key
                .as_deref()
                .map(::zeroimage::sign::PublicKey::load)
                .transpose()?,
        })
    }

    /// The base these flags name, if any.
    pub fn base_ref(&self) -> Result<Option<BaseRef>> {
        match (&self.from, &self.from_archive) {
            (Some(reference), _) => BaseRef::registry(reference).map(Some),
            (None, Some(archive)) => BaseRef::archive(archive).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// How to reach registries (for `--push`, `push`, `login`).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Allow plain HTTP for this registry host (repeatable; loopback registries always may)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// Trust this PEM CA certificate too, for registries with a private CA
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Fail a registry transfer that makes no progress for this many seconds (connections get at most 10)
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub registry_timeout: u64,

    /// Extra attempts after a refused or reset connection, a 5xx or a 429 answer
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub retries: u32,

    /// Never ask a cloud for registry credentials (an ECR token from the AWS credentials, GITHUB_TOKEN
    /// in GitHub Actions, Google's application default credentials); only docker's and podman's
    /// logins are used
    #[arg(long)]
    pub no_cloud_credentials: bool,
}

impl RegistryArgs {
    /// The client options these flags describe.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            insecure_registries: self.insecure_registries.clone(),
            ca_file: self.ca_file.clone(),
            retries: self.retries,
            cloud_credentials: !self.no_cloud_credentials,
            ..ClientOptions::with_timeout(std::time::Duration::from_secs(self.registry_timeout))
        }
    }

    /// Push options with these client options.
    pub fn push_options(&self) -> PushOptions {
        PushOptions {
            client: self.client_options(),
            ..PushOptions::default()
        }
    }

    /// How a run that pulls a base and pushes reaches registries: one set of client options, so
    /// that a cloud's token is asked for once.
    pub fn pull_and_push(&self, base: &BaseArgs) -> Result<(PullOptions, PushOptions)> {
        let push = self.push_options();
        Ok((base.pull_options(&push.client)?, push))
    }
}

/// `--push REF`, on both commands.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Registry options")]
pub struct PushArgs {
    /// Push the image to this reference after building it (repeatable; `{bin}`: the binary's name)
    #[arg(long = "push", value_name = "REF", value_parser = parse_pattern)]
    pub push: Vec<NamePattern>,
}

/// How a run reports: on both commands and their subcommands.
#[derive(Args, Clone, Debug, Default)]
pub struct ReportArgs {
    /// `json` prints one JSON object describing the result on stdout
    #[arg(long, value_name = "FMT", value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,

    /// Print nothing but errors
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more about each step
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Coloring of status lines
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}
