//! The OCI platform an image is labelled with: from a Rust target triple, from an ELF header, or from
//! docker's `os/arch[/variant]` syntax.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use target_lexicon::{
    Aarch64Architecture, Architecture, ArmArchitecture, Mips32Architecture, Mips64Architecture,
    OperatingSystem, Riscv64Architecture, Triple,
};

use crate::error::{Error, Result};

/// OCI / Go architecture names we can label an image with.
pub(crate) const ARCHITECTURES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x",
];

/// An image platform: `os`, `architecture` and, for arm, the `variant`. Read from a document it is taken
/// as written (an index may list `unknown/unknown` attestations); made by us it is validated.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, Go's name (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU variant, e.g. `v7` for arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version, e.g. for Windows images.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}

impl Platform {
    /// True when `offered` (from a base, an index) is this platform: same OS and architecture, and
    /// the same variant once the defaults are filled in (arm64 = v8, arm = v7, amd64 = v1), as
    /// containerd compares.
    pub fn matches(&self, offered: &Platform) -> bool {
        let default_variant = |arch: &str| match arch {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            "amd64" => Some("v1"),
            _ => None,
        };
        let variant = |p: &Platform| {
            p.variant
                .as_deref()
                .filter(|v| !v.is_empty())
                .or(default_variant(&p.architecture))
                .map(str::to_owned)
        };
        self.os == offered.os
            && self.architecture == offered.architecture
            && variant(self) == variant(offered)
    }

    /// A Linux platform; the architecture is normalized (`x86_64` -> `amd64`) and checked.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Result<Platform> {
        Platform::new("linux", architecture, variant)
    }

    /// Builds and validates a platform. Only Linux is accepted: there is no other OS a FROM scratch
    /// image of one static executable can run on.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Result<Platform> {
        let os = normalize_os(os)?;
        let (architecture, implied_variant) = normalize_arch(architecture)?;
        let variant = match variant.filter(|v| !v.is_empty()) {
            Some(v) => Some(normalize_variant(&architecture, v)?),
            None => implied_variant.map(str::to_owned),
        };
        let variant = match (architecture.as_str(), variant) {
            // An empty arm variant means v7 to containerd; say so explicitly so v6/v5 are never ambiguous.
            ("arm", None) => Some("v7".to_owned()),
            (_, v) => v,
        };
        Ok(Platform {
            architecture,
            os,
            variant,
            os_version: None,
            os_features: Vec::new(),
        })
    }

    /// Maps a Rust target triple (`aarch64-unknown-linux-musl`) to its OCI platform.
    pub fn from_target_triple(triple: &str) -> Result<Platform> {
        let parsed = Triple::from_str(triple)
            .map_err(|e| Error::Platform(format!("cannot parse target triple `{triple}`: {e}")))?;
        Platform::from_parsed_triple(triple, &parsed)
    }

    /// The platform of `parsed`, the target triple `triple` (named in errors) as target-lexicon
    /// read it.
    pub fn from_parsed_triple(triple: &str, parsed: &Triple) -> Result<Platform> {
        if parsed.operating_system != OperatingSystem::Linux {
            return Err(Error::Platform(format!(
                "target `{triple}` is not a Linux target; container images need a Linux executable \
                 (for example `x86_64-unknown-linux-musl`)"
            )));
        }
        let (arch, variant) = oci_arch_of(parsed.architecture).ok_or_else(|| {
            Error::Platform(format!(
                "target `{triple}` has an architecture with no OCI equivalent ({})",
                parsed.architecture
            ))
        })?;
        Platform::linux(arch, variant)
    }

    /// True when an executable built for `self` runs on an image labelled `other`.
    ///
    /// Only the architecture must agree: the ELF header cannot tell arm64 v8 from v9 or
    /// amd64 v1 from v3, so the variant the user chose is trusted.
    pub fn runs_as(&self, other: &Platform) -> bool {
        self.os == other.os && self.architecture == other.architecture
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// Parses docker's `os/arch[/variant]`.
    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Platform::new(os, arch, None),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Platform::new(os, arch, Some(variant))
            }
            _ => Err(Error::Platform(format!(
                "invalid platform `{s}`: expected OS/ARCH[/VARIANT], for example linux/arm64 or linux/arm/v7"
            ))),
        }
    }
}

/// Platform overrides from the command line (`--os`, `--arch`, `--variant`, or `--platform`), applied on
/// top of what the executable's ELF header says.
#[derive(Clone, Debug, Default)]
pub struct PlatformOverride {
    /// Operating system to record instead of the ELF header's.
    pub os: Option<String>,
    /// Architecture to record instead of the ELF header's.
    pub architecture: Option<String>,
    /// CPU variant to record, e.g. `v7`.
    pub variant: Option<String>,
}

impl PlatformOverride {
    /// From docker's `os/arch[/variant]` syntax.
    pub fn from_platform(platform: &Platform) -> PlatformOverride {
        PlatformOverride {
            os: Some(platform.os.clone()),
            architecture: Some(platform.architecture.clone()),
            variant: Some(platform.variant.clone().unwrap_or_default()),
        }
    }

    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.os.is_none() && self.architecture.is_none() && self.variant.is_none()
    }

    /// The platform to label the image with, given the one `detected` from the executable.
    /// The variant detected is kept unless the architecture changes or a variant is given.
    pub fn apply(&self, detected: &Platform) -> Result<Platform> {
        let os = self.os.as_deref().unwrap_or(&detected.os);
        let arch = self
            .architecture
            .as_deref()
            .unwrap_or(&detected.architecture);
        let same_arch = normalize_arch(arch)?.0 == detected.architecture;
        let variant = match &self.variant {
            Some(v) => Some(v.as_str()),
            None if same_arch => detected.variant.as_deref(),
            None => None,
        };
        Platform::new(os, arch, variant)
    }
}

fn normalize_os(os: &str) -> Result<String> {
    match os.to_ascii_lowercase().as_str() {
        "linux" => Ok("linux".to_owned()),
        other => Err(Error::Platform(format!(
            "unsupported OS `{other}`: only `linux` images can be built from a static executable"
        ))),
    }
}

/// Normalizes an architecture name, returning any variant the alias implies (`armv6l` -> arm/v6).
fn normalize_arch(arch: &str) -> Result<(String, Option<&'static str>)> {
    let lower = arch.to_ascii_lowercase();
    let (name, variant) = match lower.as_str() {
        "x86_64" | "x86-64" | "x64" => ("amd64", None),
        "aarch64" => ("arm64", None),
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386", None),
        "armhf" | "armv7" | "armv7l" => ("arm", Some("v7")),
        "armv6" | "armv6l" => ("arm", Some("v6")),
        "armel" | "armv5" | "armv5l" | "armv5te" => ("arm", Some("v5")),
        "ppc64el" => ("ppc64le", None),
        "loongarch64" => ("loong64", None),
        "riscv64gc" => ("riscv64", None),
        other => match ARCHITECTURES.iter().find(|known| **known == other) {
            Some(known) => (*known, None),
            None => {
                return Err(Error::Platform(format!(
                    "unknown architecture `{arch}`; expected one of: {}",
                    ARCHITECTURES.join(", ")
                )));
            }
        },
    };
    Ok((name.to_owned(), variant))
}

fn normalize_variant(arch: &str, variant: &str) -> Result<String> {
    let variant = variant.to_ascii_lowercase();
    let allowed: &[&str] = match arch {
        "arm" => &["v5", "v6", "v7", "v8"],
        "arm64" => &[
            "v8", "v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v8.6", "v8.7", "v8.8", "v8.9", "v9",
            "v9.1", "v9.2", "v9.3", "v9.4", "v9.5",
        ],
        "amd64" => &["v1", "v2", "v3", "v4"],
        _ => &[],
    };
    if allowed.contains(&variant.as_str()) {
        Ok(variant)
    } else if allowed.is_empty() {
        Err(Error::Platform(format!(
            "architecture `{arch}` has no variants, but `{variant}` was given"
        )))
    } else {
        Err(Error::Platform(format!(
            "unknown variant `{variant}` for architecture `{arch}`; expected one of: {}",
            allowed.join(", ")
        )))
    }
}

/// The OCI architecture (and arm variant) of a Rust target architecture; DESIGN table.
fn oci_arch_of(arch: Architecture) -> Option<(&'static str, Option<&'static str>)> {
    use ArmArchitecture as Arm;
    Some(match arch {
        Architecture::X86_64 | Architecture::X86_64h => ("amd64", None),
        Architecture::Aarch64(Aarch64Architecture::Aarch64) => ("arm64", None),
        Architecture::X86_32(_) => ("386", None),
        Architecture::Arm(arm) => match arm {
            Arm::Armv7
            | Arm::Armv7a
            | Arm::Armv7k
            | Arm::Armv7r
            | Arm::Armv7s
            | Arm::Thumbv7a
            | Arm::Thumbv7neon => ("arm", Some("v7")),
            Arm::Arm | Arm::Armv6 | Arm::Armv6k | Arm::Thumbv6m => ("arm", Some("v6")),
            Arm::Armv5te | Arm::Armv4t | Arm::Thumbv4t | Arm::Thumbv5te => ("arm", Some("v5")),
            Arm::Armv8a | Arm::Armv8r => ("arm", Some("v8")),
            _ => return None,
        },
        Architecture::Powerpc64le => ("ppc64le", None),
        Architecture::Powerpc64 => ("ppc64", None),
        Architecture::S390x => ("s390x", None),
        Architecture::Riscv64(Riscv64Architecture::Riscv64 | Riscv64Architecture::Riscv64gc) => {
            ("riscv64", None)
        }
        Architecture::LoongArch64 => ("loong64", None),
        Architecture::Mips64(Mips64Architecture::Mips64el | Mips64Architecture::Mipsisa64r6el) => {
            ("mips64le", None)
        }
        Architecture::Mips64(Mips64Architecture::Mips64 | Mips64Architecture::Mipsisa64r6) => {
            ("mips64", None)
        }
        Architecture::Mips32(Mips32Architecture::Mipsel | Mips32Architecture::Mipsisa32r6el) => {
            ("mipsle", None)
        }
        Architecture::Mips32(Mips32Architecture::Mips | Mips32Architecture::Mipsisa32r6) => {
            ("mips", None)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: arch.to_owned(),
            os: os.to_owned(),
            variant: variant.map(str::to_owned),
            os_version: None,
            os_features: Vec::new(),
        }
    }

    #[test]
    fn variants_match_with_containerd_defaults() {
        let arm64 = platform("linux", "arm64", None);
        assert!(arm64.matches(&platform("linux", "arm64", Some("v8"))));
        assert!(!arm64.matches(&platform("linux", "arm64", Some("v9"))));
        let armv7 = platform("linux", "arm", Some("v7"));
        assert!(armv7.matches(&platform("linux", "arm", None)));
        assert!(!armv7.matches(&platform("linux", "arm", Some("v6"))));
        assert!(!platform("linux", "amd64", None).matches(&platform("linux", "arm64", None)));
        assert!(!platform("linux", "amd64", None).matches(&platform("windows", "amd64", None)));
    }

    #[test]
    fn triples_map_to_the_design_table() {
        let cases = [
            ("x86_64-unknown-linux-musl", "linux/amd64"),
            ("x86_64-unknown-linux-gnu", "linux/amd64"),
            ("aarch64-unknown-linux-musl", "linux/arm64"),
            ("armv7-unknown-linux-musleabihf", "linux/arm/v7"),
            ("thumbv7neon-unknown-linux-musleabihf", "linux/arm/v7"),
            ("arm-unknown-linux-musleabihf", "linux/arm/v6"),
            ("arm-unknown-linux-musleabi", "linux/arm/v6"),
            ("armv5te-unknown-linux-musleabi", "linux/arm/v5"),
            ("i686-unknown-linux-musl", "linux/386"),
            ("i586-unknown-linux-musl", "linux/386"),
            ("powerpc64le-unknown-linux-musl", "linux/ppc64le"),
            ("powerpc64-unknown-linux-musl", "linux/ppc64"),
            ("s390x-unknown-linux-musl", "linux/s390x"),
            ("riscv64gc-unknown-linux-musl", "linux/riscv64"),
            ("loongarch64-unknown-linux-musl", "linux/loong64"),
            ("mips64el-unknown-linux-muslabi64", "linux/mips64le"),
            ("mips64-unknown-linux-muslabi64", "linux/mips64"),
            ("mipsel-unknown-linux-musl", "linux/mipsle"),
            ("mips-unknown-linux-musl", "linux/mips"),
        ];
        for (triple, expected) in cases {
            let platform =
                Platform::from_target_triple(triple).unwrap_or_else(|e| panic!("{triple}: {e}"));
            assert_eq!(platform.to_string(), expected, "{triple}");
        }
    }

    #[test]
    fn non_linux_triples_are_refused() {
        for triple in [
            "x86_64-apple-darwin",
            "x86_64-pc-windows-msvc",
            "wasm32-wasip1",
        ] {
            let err = Platform::from_target_triple(triple)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a Linux target"), "{triple}: {err}");
        }
    }

    #[test]
    fn docker_platform_syntax_parses_and_normalizes() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            "linux/x86_64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            "linux/aarch64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/arm".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "linux/arm/v6".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            "Linux/ARMv6l".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v6"
        );
    }

    #[test]
    fn bad_platforms_are_refused_with_a_reason() {
        let cases = [
            ("windows/amd64", "only `linux`"),
            ("linux", "expected OS/ARCH"),
            ("linux/", "expected OS/ARCH"),
            ("linux/amd64/v2/x", "expected OS/ARCH"),
            ("linux/sparc", "unknown architecture"),
            ("linux/arm/v9", "unknown variant"),
            ("linux/s390x/v2", "has no variants"),
        ];
        for (input, needle) in cases {
            let err = input.parse::<Platform>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn runs_as_ignores_variant_but_not_architecture() {
        let arm64 = Platform::linux("arm64", None).unwrap();
        let arm64_v8 = Platform::linux("arm64", Some("v8")).unwrap();
        let amd64 = Platform::linux("amd64", None).unwrap();
        assert!(arm64.runs_as(&arm64_v8));
        assert!(!arm64.runs_as(&amd64));
    }

    #[test]
    fn overrides_apply_on_top_of_the_detected_platform() {
        let arm6 = Platform::linux("arm", Some("v6")).unwrap();
        let none = PlatformOverride::default();
        assert!(none.is_empty());
        assert_eq!(none.apply(&arm6).unwrap(), arm6);
        let arch_only = PlatformOverride {
            architecture: Some("arm64".into()),
            ..Default::default()
        };
        assert_eq!(arch_only.apply(&arm6).unwrap().to_string(), "linux/arm64");
        let variant_only = PlatformOverride {
            variant: Some("v7".into()),
            ..Default::default()
        };
        assert_eq!(
            variant_only.apply(&arm6).unwrap().to_string(),
            "linux/arm/v7"
        );
        let os_only = PlatformOverride {
            os: Some("darwin".into()),
            ..Default::default()
        };
        assert!(
            os_only
                .apply(&arm6)
                .unwrap_err()
                .to_string()
                .contains("only `linux`")
        );
        let from_platform = PlatformOverride::from_platform(&"linux/amd64".parse().unwrap());
        assert_eq!(
            from_platform.apply(&arm6).unwrap().to_string(),
            "linux/amd64"
        );
    }

    #[test]
    fn platform_json_omits_missing_variant() {
        let amd64 = Platform::linux("amd64", None).unwrap();
        assert_eq!(
            serde_json::to_string(&amd64).unwrap(),
            r#"{"architecture":"amd64","os":"linux"}"#
        );
    }
}
