//! AWS Lambda's rules for container images, checked on the image about to be built, before anything
//! is written or pushed: Lambda refuses an image index, layers that are not gzip-compressed tar, a
//! platform other than linux/amd64 or linux/arm64, an entrypoint that is relative, a symbolic link or
//! reached through one, files its non-root user cannot read, and images over 10 GiB unpacked. Each
//! of these otherwise shows up only when the function is created or first invoked. `--lambda` makes
//! them errors; a push to an ECR registry without it makes them warnings.

use crate::assemble::layer::LayerSpec;
use crate::assemble::rootfs::{Kind, RootFs};
use crate::error::{Error, Result};
use crate::oci::platform::Platform;
use crate::oci::{Compression, Descriptor, MediaType};
use crate::report::{Listener, human_size};
use crate::util::sanitize;

/// Lambda's limit on an image's unpacked size, all layers together (its quotas say 10 GB).
pub const MAX_UNPACKED: u64 = 10 << 30;

/// What is done about Lambda's rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LambdaCheck {
    /// Nothing: the image is not known to be meant for Lambda.
    #[default]
    Off,
    /// Each broken rule is a warning (a push to ECR without `--lambda`).
    Warn,
    /// Each broken rule is an error, before anything is written (`--lambda`).
    Refuse,
}

impl LambdaCheck {
    /// `--lambda` (or its setting) refuses; else a push to an ECR `hosts` entry warns.
    pub fn choose<'h>(lambda: bool, mut hosts: impl Iterator<Item = &'h str>) -> LambdaCheck {
        if lambda {
            LambdaCheck::Refuse
        } else if hosts.any(is_ecr_host) {
            LambdaCheck::Warn
        } else {
            LambdaCheck::Off
        }
    }
}

/// True for an Amazon ECR private registry host, `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`
/// (a port allowed), where Lambda functions' images live.
pub fn is_ecr_host(host: &str) -> bool {
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let host = host.to_ascii_lowercase();
    let Some(rest) = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    matches!(
        labels.as_slice(),
        [account, "dkr", "ecr" | "ecr-fips", region]
            if !account.is_empty() && account.chars().all(|c| c.is_ascii_digit()) && !region.is_empty()
    )
}

/// One platform's image as it will be built.
pub(crate) struct Planned<'a> {
    /// Its platform.
    pub platform: &'a Platform,
    /// The program's path, the config's entrypoint.
    pub entrypoint: &'a str,
    /// The base's layers, bottom first (none FROM scratch).
    pub base_layers: &'a [Descriptor],
    /// The base's filesystem, when there is a base.
    pub base: Option<&'a RootFs>,
    /// The layers we add, top first.
    pub own: Vec<&'a LayerSpec>,
    /// The media type our layers get.
    pub own_media_type: MediaType,
}

/// Applies `check` to the images of one run: warnings through `listener`, or one error naming every
/// rule broken.
pub(crate) fn enforce(
    check: LambdaCheck,
    images: &[Planned],
    listener: &dyn Listener,
) -> Result<()> {
    if check == LambdaCheck::Off {
        return Ok(());
    }
    let found = problems(images);
    if found.is_empty() {
        return Ok(());
    }
    if check == LambdaCheck::Refuse {
        return Err(Error::Invalid(format!(
            "AWS Lambda cannot run this image (--lambda): {}",
            found.join("; ")
        )));
    }
    for problem in &found {
        listener.warning(&format!(
            "AWS Lambda cannot run this image (pushed to ECR): {problem}; --lambda makes this an \
             error"
        ));
    }
    Ok(())
}

/// Every rule of Lambda's the images break, one sentence each.
pub(crate) fn problems(images: &[Planned]) -> Vec<String> {
    let mut found = Vec::new();
    if images.len() > 1 {
        found.push(format!(
            "it is an image index of {} platforms, and Lambda takes one platform's manifest; build \
             one target",
            images.len()
        ));
    }
    for image in images {
        let prefix = if images.len() > 1 {
            format!("{}: ", image.platform)
        } else {
            String::new()
        };
        let mut add = |problem: String| found.push(format!("{prefix}{problem}"));
        if image.platform.os != "linux"
            || !matches!(image.platform.architecture.as_str(), "amd64" | "arm64")
        {
            add(format!(
                "its platform is {}, and Lambda runs linux/amd64 and linux/arm64",
                image.platform
            ));
        }
        if let Some(problem) = layer_problem(image) {
            add(problem);
        }
        if let Some(problem) = entrypoint_problem(image) {
            add(problem);
        }
        if let Some(problem) = unreadable_problem(image) {
            add(problem);
        }
        let unpacked = image.base.map_or(0, RootFs::expanded)
            + image.own.iter().map(|spec| spec.content_len()).sum::<u64>();
        if unpacked > MAX_UNPACKED {
            add(format!(
                "it unpacks to {}, and Lambda takes at most {}",
                human_size(unpacked),
                human_size(MAX_UNPACKED)
            ));
        }
    }
    found
}

/// Layers Lambda cannot read: uncompressed, zstd (not documented to work) or of another type.
fn layer_problem(image: &Planned) -> Option<String> {
    let layers = image.base_layers.len() + image.own.len();
    let mut bad: Vec<(usize, String)> = Vec::new();
    let own = std::iter::repeat_n(&image.own_media_type, image.own.len());
    for (n, media_type) in image
        .base_layers
        .iter()
        .map(|d| &d.media_type)
        .chain(own)
        .enumerate()
    {
        let what = match media_type {
            MediaType::OciLayer(Compression::Gzip) | MediaType::DockerLayer => continue,
            MediaType::OciLayer(Compression::None) => "uncompressed".to_owned(),
            MediaType::OciLayer(Compression::Zstd) => "zstd-compressed".to_owned(),
            other => format!("of type {}", sanitize::outside(other.as_str(), 100)),
        };
        bad.push((n + 1, what));
    }
    let (first, what) = bad.first()?;
    let from = if *first <= image.base_layers.len() {
        "the base's layers must be recompressed (e.g. `skopeo copy --dest-compress-format gzip`)"
    } else {
        "use --compression gzip"
    };
    let numbers: Vec<String> = bad.iter().map(|(n, _)| n.to_string()).collect();
    Some(format!(
        "layer{} {} of {layers} {} {what}, and Lambda reads gzip-compressed layers; {from}",
        if bad.len() > 1 { "s" } else { "" },
        numbers.join(", "),
        if bad.len() > 1 { "are" } else { "is" },
    ))
}

/// What a path of the image is once our layers are on the base: kind and mode.
fn find(image: &Planned, path: &str) -> Option<(Kind, u32)> {
    image
        .own
        .iter()
        .find_map(|spec| spec.kind_and_mode(path))
        .or_else(|| {
            image
                .base
                .and_then(|base| base.lookup(path))
                .map(|found| (found.kind, found.mode))
        })
}

/// The entrypoint must be an absolute path to a regular file that Lambda's user can read and run,
/// through directories it can enter and no symbolic link.
fn entrypoint_problem(image: &Planned) -> Option<String> {
    let path = image.entrypoint;
    if !path.starts_with('/') {
        return Some(format!(
            "its entrypoint `{path}` is relative, and Lambda runs an absolute path"
        ));
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut walked = String::new();
    for (n, component) in components.iter().enumerate() {
        walked.push('/');
        walked.push_str(component);
        let last = n + 1 == components.len();
        let problem = match find(image, &walked) {
            None => format!("its entrypoint {path} is not in the image"),
            Some((Kind::Symlink, _)) if last => format!(
                "its entrypoint {path} is a symbolic link, and Lambda needs the program itself \
                 there; use --entrypoint-path with the link's target"
            ),
            Some((Kind::Symlink, _)) => format!(
                "its entrypoint {path} is reached through the symbolic link {walked} of the base; \
                 use --entrypoint-path with a path through directories"
            ),
            Some((Kind::Dir, mode)) if !last && mode & 0o001 == 0 => format!(
                "the directory {walked} (mode {:04o}) holding its entrypoint cannot be entered by \
                 Lambda's user, which is not its owner",
                mode & 0o7777
            ),
            Some((Kind::Dir, _)) if !last => continue,
            Some((Kind::File, mode)) if last && mode & 0o005 != 0o005 => format!(
                "its entrypoint {path} (mode {:04o}) cannot be read and run by Lambda's user, \
                 which is not its owner",
                mode & 0o7777
            ),
            Some((Kind::File, _)) if last => continue,
            Some(_) => format!("its entrypoint {path} is not a regular file in the image"),
        };
        return Some(problem);
    }
    None
}

/// Files we add that Lambda's user (not their owner) cannot read.
fn unreadable_problem(image: &Planned) -> Option<String> {
    let unreadable: Vec<String> = image
        .own
        .iter()
        .flat_map(|spec| spec.file_modes())
        .filter(|(_, mode)| mode & 0o004 == 0)
        .map(|(path, mode)| format!("{path} (mode {:04o})", mode & 0o7777))
        .collect();
    let first = unreadable.first()?;
    let more = match unreadable.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    Some(format!(
        "{first}{more} cannot be read by Lambda's user, which is not the files' owner; make them \
         readable by others"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::rootfs::testing::{Layer as TestLayer, scan};

    fn amd64() -> Platform {
        "linux/amd64".parse().unwrap()
    }

    fn program(path: &str) -> LayerSpec {
        let mut spec = LayerSpec::new("the program");
        spec.add_bytes(path, b"\x7fELF".to_vec(), 0o755).unwrap();
        spec
    }

    fn planned<'a>(platform: &'a Platform, own: Vec<&'a LayerSpec>) -> Planned<'a> {
        Planned {
            platform,
            entrypoint: "/app",
            base_layers: &[],
            base: None,
            own,
            own_media_type: MediaType::OciLayer(Compression::Gzip),
        }
    }

    #[test]
    fn a_single_gzip_image_of_an_absolute_program_passes() {
        let platform = amd64();
        let spec = program("/app");
        assert!(problems(&[planned(&platform, vec![&spec])]).is_empty());
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert!(problems(&[planned(&arm, vec![&spec])]).is_empty());
    }

    #[test]
    fn an_index_another_platform_and_zstd_layers_are_named() {
        let (amd, arm7): (Platform, Platform) = (amd64(), "linux/arm/v7".parse().unwrap());
        let spec = program("/app");
        let mut zstd = planned(&amd, vec![&spec]);
        zstd.own_media_type = MediaType::OciLayer(Compression::Zstd);
        let found = problems(&[zstd, planned(&arm7, vec![&spec])]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("image index of 2 platforms"), "{found:?}");
        assert!(found[1].starts_with("linux/amd64: layer 1 of 1 is zstd-compressed"));
        assert!(found[1].contains("--compression gzip"));
        assert!(
            found[2].contains("its platform is linux/arm/v7"),
            "{found:?}"
        );
    }

    #[test]
    fn uncompressed_base_layers_ask_for_recompression() {
        let platform = amd64();
        let spec = program("/app");
        let base_layers = vec![Descriptor::new(
            MediaType::OciLayer(Compression::None),
            crate::oci::Digest::of(b"layer"),
            5,
        )];
        let mut image = planned(&platform, vec![&spec]);
        image.base_layers = &base_layers;
        let found = problems(&[image]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("layer 1 of 2 is uncompressed"),
            "{found:?}"
        );
        assert!(found[0].contains("skopeo copy"), "{found:?}");
    }

    #[test]
    fn entrypoints_through_links_locked_directories_or_unreadable_files_are_named() {
        let platform = amd64();
        let base = scan(
            &[TestLayer::new()
                .dir("srv")
                .symlink("app", "srv")
                .dir_owned("locked", 0o700, 0)
                .dir("bin")
                .file_mode("bin/tool", "x", 0o700)
                .symlink("bin/link", "tool")],
            &[],
        )
        .unwrap();
        let cases = [
            ("/app/fn", "reached through the symbolic link /app"),
            ("/locked/fn", "directory /locked (mode 0700)"),
            ("/bin/tool", "/bin/tool (mode 0700) cannot be read and run"),
            ("/bin/link", "is a symbolic link"),
            ("/nowhere/fn", "is not in the image"),
            ("fn", "is relative"),
        ];
        for (entrypoint, expected) in cases {
            let image = Planned {
                entrypoint,
                base: Some(&base),
                ..planned(&platform, Vec::new())
            };
            let found = problems(&[image]);
            assert_eq!(found.len(), 1, "{entrypoint}: {found:?}");
            assert!(found[0].contains(expected), "{entrypoint}: {found:?}");
        }
        let spec = program("/srv/fn");
        let fine = Planned {
            entrypoint: "/srv/fn",
            base: Some(&base),
            ..planned(&platform, vec![&spec])
        };
        assert!(problems(&[fine]).is_empty());
    }

    #[test]
    fn files_we_add_must_be_readable_by_others() {
        let platform = amd64();
        let mut spec = program("/app");
        spec.add_bytes("/etc/secret", b"s".to_vec(), 0o600).unwrap();
        spec.add_bytes("/etc/other", b"s".to_vec(), 0o640).unwrap();
        let found = problems(&[planned(&platform, vec![&spec])]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("/etc/other (mode 0640) and 1 more"),
            "{found:?}"
        );
    }

    #[test]
    fn images_over_ten_gib_unpacked_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        // A sparse file: its length counts, its blocks are never written.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_UNPACKED + 1)
            .unwrap();
        let platform = amd64();
        let mut spec = program("/app");
        spec.add_file("/data", &big, 0o644).unwrap();
        let found = problems(&[planned(&platform, vec![&spec])]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("Lambda takes at most 10.0 GiB"),
            "{found:?}"
        );
    }

    #[test]
    fn ecr_hosts_are_recognised() {
        for host in [
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            "123456789012.DKR.ECR.eu-west-1.amazonaws.com:443",
        ] {
            assert!(is_ecr_host(host), "{host}");
        }
        for host in [
            "public.ecr.aws",
            "ghcr.io",
            "dkr.ecr.eu-west-1.amazonaws.com",
            "x.dkr.ecr.eu-west-1.amazonaws.com",
            "123.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
            "localhost:5000",
        ] {
            assert!(!is_ecr_host(host), "{host}");
        }
        assert_eq!(
            LambdaCheck::choose(false, ["ghcr.io", "1.dkr.ecr.x.amazonaws.com"].into_iter()),
            LambdaCheck::Warn
        );
        assert_eq!(
            LambdaCheck::choose(false, std::iter::empty()),
            LambdaCheck::Off
        );
        assert_eq!(
            LambdaCheck::choose(true, std::iter::empty()),
            LambdaCheck::Refuse
        );
    }
}
