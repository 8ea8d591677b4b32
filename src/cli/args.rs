//! Option groups shared by both commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::Result;
use crate::platform::{Platform, PlatformOverride};
use crate::reference::Reference;
use crate::timestamp::Timestamp;

/// What the image is called and when it was made.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Image options")]
pub struct ImageArgs {
    /// Image name, e.g. `app`, `app:1.2`, `registry.example.com/team/app:1.2`
    #[arg(short, long, value_name = "NAME[:TAG]", value_parser = parse_reference)]
    pub tag: Option<Reference>,

    /// Creation time: `now`, `@SECONDS` or RFC 3339 [default: $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z]
    #[arg(long, value_name = "TIME")]
    pub created: Option<String>,

    /// Package a dynamically linked executable anyway (it will not start without its libraries)
    #[arg(long)]
    pub allow_dynamic: bool,
}

impl ImageArgs {
    /// The creation time to record: this option, else `fallback` (a Cargo.toml setting), else the
    /// reproducible default.
    pub fn created(&self, fallback: Option<&str>) -> Result<Timestamp> {
        Timestamp::resolve(self.created.as_deref().or(fallback))
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

    /// `json` prints one JSON object describing the image on stdout
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

fn parse_reference(s: &str) -> std::result::Result<Reference, String> {
    s.parse().map_err(|e: crate::Error| e.to_string())
}

fn parse_platform(s: &str) -> std::result::Result<Platform, String> {
    s.parse().map_err(|e: crate::Error| e.to_string())
}
