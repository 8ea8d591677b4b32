//! Loading a built image into a local container runtime, the inner loop's last step: docker (its
//! Engine API on a unix socket, or the docker CLI for remote daemons and contexts), podman (`podman
//! load`) and containerd (`ctr images import`). The image goes to the runtime as a tar stream made from
//! the archive or the spool as it is sent, never held in memory. A multi-platform image gives the
//! runtime the machine's platform unless [`LoadPlatform`] says otherwise. kind and k3d clusters get it
//! in every node, through `docker exec` ([`Cluster`]).

mod cluster;
mod command;
mod containerd;
mod docker;
mod http;
mod podman;
mod stream;
#[cfg(windows)]
mod windows;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::reference::Reference;
use crate::image::{ImageTree, Stored};
use crate::oci::platform::Platform;
use crate::util::cancel::CancelToken;

pub use cluster::{Cluster, ClusterKind};

/// A local container runtime to load images into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Docker, through `docker load`.
    Docker,
    /// Podman, through `podman load`.
    Podman,
    /// containerd, through `ctr images import`.
    Containerd,
}

impl Runtime {
    /// Every runtime, for messages.
    pub const ALL: [Runtime; 3] = [Runtime::Docker, Runtime::Podman, Runtime::Containerd];

    /// The runtime's name as flags and messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Runtime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Runtime> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "`{}` is not a runtime to load into; use docker, podman or containerd",
                    crate::util::sanitize::outside(s, 100)
                ))
            })
    }
}

/// Where `--load` puts an image: a runtime of this machine, or every node of a local cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoadTarget {
    /// docker, podman or containerd.
    Runtime(Runtime),
    /// A kind or k3d cluster.
    Cluster(Cluster),
}

impl fmt::Display for LoadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadTarget::Runtime(runtime) => runtime.fmt(f),
            LoadTarget::Cluster(cluster) => cluster.fmt(f),
        }
    }
}

impl FromStr for LoadTarget {
    type Err = Error;

    /// `docker`, `podman`, `containerd`, `kind[:CLUSTER]` or `k3d[:CLUSTER]`.
    fn from_str(s: &str) -> Result<LoadTarget> {
        if let Some(cluster) = Cluster::parse(s) {
            return cluster.map(LoadTarget::Cluster);
        }
        Runtime::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .map(LoadTarget::Runtime)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "`{}` is not a runtime to load into; use docker, podman, containerd, \
                     kind[:CLUSTER] or k3d[:CLUSTER]",
                    crate::util::sanitize::outside(s, 100)
                ))
            })
    }
}

/// Which platform of a multi-platform image is loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LoadPlatform {
    /// The machine's own (a single-platform image is loaded whatever its platform).
    #[default]
    Host,
    /// This one; the image must have it.
    Platform(Platform),
    /// The whole image index (podman and containerd; docker keeps one platform per name).
    All,
}

impl FromStr for LoadPlatform {
    type Err = Error;

    /// `all`, or a platform in docker's syntax.
    fn from_str(s: &str) -> Result<LoadPlatform> {
        if s == "all" {
            Ok(LoadPlatform::All)
        } else {
            s.parse().map(LoadPlatform::Platform)
        }
    }
}

/// Where and how to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The runtimes and clusters, each loaded in turn; none: nothing is loaded.
    pub targets: Vec<LoadTarget>,
    /// Which platform's image to load from a multi-platform archive.
    pub platform: LoadPlatform,
    /// containerd's namespace; `None`: `$CONTAINERD_NAMESPACE`, else `default` (k3s and kind use
    /// `k8s.io`).
    pub containerd_namespace: Option<String>,
}

impl LoadOptions {
    /// True when no runtime is to be loaded into.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// An image loaded into a runtime.
#[derive(Clone, Debug, Serialize)]
pub struct Loaded {
    /// The runtime loaded into (`docker`, `podman`, `containerd`), or the cluster's tool (`kind`,
    /// `k3d`).
    pub runtime: String,
    /// The name the runtime lists it under.
    pub name: String,
    /// The runtime's ID for it: docker's and podman's image ID, containerd's (and a node's) target
    /// digest.
    pub id: String,
    /// The platform loaded, or the platforms joined by `,`.
    pub platform: String,
    /// The cluster, for a kind or k3d load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The cluster's node container the image went into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Checks that each runtime can be reached (its socket or its client program), so that a build is not
/// wasted on an image that cannot be loaded.
pub(crate) fn preflight(targets: &[LoadTarget], cancel: &CancelToken) -> Result<()> {
    for target in targets {
        match target {
            LoadTarget::Runtime(Runtime::Docker) => docker::preflight()?,
            LoadTarget::Runtime(Runtime::Podman) => podman::preflight()?,
            LoadTarget::Runtime(Runtime::Containerd) => containerd::preflight()?,
            LoadTarget::Cluster(cluster) => cluster::preflight(cluster, cancel)?,
        }
    }
    Ok(())
}

/// What one runtime gets: the tree to send and the platforms it holds.
struct Selection {
    tree: ImageTree,
    platform: String,
    all: bool,
}

/// The machine's platform, as an image would be labelled for it.
pub(crate) fn host_platform() -> Result<Platform> {
    Platform::linux(std::env::consts::ARCH, None)
}

/// Chooses what `runtime` gets from `tree`, named `name` in messages.
fn select(
    tree: &ImageTree,
    name: &Reference,
    platform: &LoadPlatform,
    runtime: Runtime,
) -> Result<Selection> {
    let one = |tree: ImageTree| {
        let platform = stream::describe_platforms(&tree);
        Selection {
            tree,
            platform,
            all: false,
        }
    };
    let lacks = |what: String| {
        Error::Invalid(format!(
            "{} has no {what} image (it has {}); choose one with --load-platform OS/ARCH",
            name.familiar(),
            stream::describe_platforms(tree)
        ))
    };
    match platform {
        LoadPlatform::All if tree.manifests.len() == 1 => Ok(one(stream::single(tree, 0))),
        LoadPlatform::All if runtime == Runtime::Docker => Err(Error::Invalid(format!(
            "docker keeps one platform per image name, so --load-platform all cannot load {} into \
             it; load one platform (--load-platform OS/ARCH), or load all into podman or containerd",
            name.familiar()
        ))),
        LoadPlatform::All => Ok(Selection {
            tree: tree.clone(),
            platform: stream::describe_platforms(tree).replace(", ", ","),
            all: true,
        }),
        LoadPlatform::Platform(wanted) => stream::for_platform(tree, wanted)
            .map(one)
            .ok_or_else(|| lacks(wanted.to_string())),
        LoadPlatform::Host if tree.manifests.len() == 1 => Ok(one(stream::single(tree, 0))),
        LoadPlatform::Host => {
            let host = host_platform()?;
            stream::for_platform(tree, &host)
                .map(one)
                .ok_or_else(|| lacks(format!("{host} (this machine's)")))
        }
    }
}

/// Loads `image` into every runtime of `options`, named `name`.
pub fn load(
    image: &Stored,
    name: &Reference,
    options: &LoadOptions,
    cx: &Context,
) -> Result<Vec<Loaded>> {
    let listener = cx.listener();
    let (tree, blobs) = (&image.tree, image.blobs.as_ref());
    let mut loaded = Vec::new();
    for target in &options.targets {
        let runtime = match target {
            LoadTarget::Runtime(runtime) => *runtime,
            LoadTarget::Cluster(cluster) => {
                // A node's containerd takes what containerd does.
                let selection = select(tree, name, &options.platform, Runtime::Containerd)?;
                listener.status(
                    "Loading",
                    &format!(
                        "{} into {} cluster `{}` ({})",
                        name.familiar(),
                        cluster.kind.name(),
                        cluster.cluster_name(),
                        selection.platform
                    ),
                );
                loaded.extend(cluster::load(cluster, &selection, blobs, name, cx)?);
                continue;
            }
        };
        let selection = select(tree, name, &options.platform, runtime)?;
        listener.status(
            "Loading",
            &format!(
                "{} into {runtime} ({})",
                name.familiar(),
                selection.platform
            ),
        );
        let (shown, id) = match runtime {
            Runtime::Docker => docker::load(&selection, blobs, name, cx)?,
            Runtime::Podman => podman::load(&selection, blobs, name, cx)?,
            Runtime::Containerd => containerd::load(
                &selection,
                blobs,
                name,
                options.containerd_namespace.as_deref(),
                cx,
            )?,
        };
        listener.status("Loaded", &format!("{shown} into {runtime} (image {id})"));
        loaded.push(Loaded {
            runtime: runtime.name().to_owned(),
            name: shown,
            id,
            platform: selection.platform,
            cluster: None,
            node: None,
        });
    }
    Ok(loaded)
}

/// A runtime's socket could not be reached: one line naming it and the fix. Connecting to something
/// that is not a socket (a directory, `/dev/null`) is refused like a socket nobody listens on: that is
/// told apart by looking at what is there.
fn socket_error(
    runtime: &str,
    variable: &str,
    socket: &Path,
    origin: &str,
    error: &std::io::Error,
    start: &str,
    permission: &str,
) -> Error {
    #[cfg(windows)]
    use self::windows::FileTypeExt;
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;
    let found = std::fs::metadata(socket).ok().map(|m| m.file_type());
    let socket = socket.display();
    if let Some(kind) = found.filter(|kind| !kind.is_socket()) {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return Error::Invalid(format!(
            "{socket} ({origin}) is {what}, not {runtime}'s socket; point {variable} at the socket \
             {runtime} listens on"
        ));
    }
    Error::Invalid(match error.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{runtime} is not running here: no socket at {socket} ({origin}); {start}")
        }
        std::io::ErrorKind::ConnectionRefused => {
            format!("{runtime} is not running: nothing listens on {socket} ({origin}); {start}")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("permission denied on {runtime}'s socket {socket} ({origin}); {permission}")
        }
        _ => format!("cannot connect to {runtime} at {socket} ({origin}): {error}; {start}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Image;
    use crate::oci::{Document, ImageConfig, Manifest, MediaType};

    fn tree(platforms: &[&str]) -> ImageTree {
        let images: Vec<Image> = platforms
            .iter()
            .map(|p| {
                let platform: Platform = p.parse().unwrap();
                let config = Document::new(ImageConfig {
                    architecture: platform.architecture.clone(),
                    ..ImageConfig::default()
                });
                let manifest = Document::new(Manifest {
                    schema_version: 2,
                    media_type: Some(MediaType::OciManifest),
                    artifact_type: None,
                    config: config.descriptor(MediaType::OciConfig),
                    layers: Vec::new(),
                    subject: None,
                    annotations: std::collections::BTreeMap::default(),
                    extra: std::collections::BTreeMap::default(),
                });
                Image {
                    platform,
                    config,
                    manifest,
                }
            })
            .collect();
        ImageTree::of_images(&images).unwrap()
    }

    #[test]
    fn the_hosts_platform_is_chosen_not_the_first() {
        let host = host_platform().unwrap();
        let other = if host.architecture == "arm64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        let both = tree(&[other, &host.to_string()]);
        let name: Reference = "app:1".parse().unwrap();
        let chosen = select(&both, &name, &LoadPlatform::Host, Runtime::Docker).unwrap();
        assert_eq!(chosen.tree.manifests.len(), 1);
        assert_eq!(chosen.platform, host.to_string());
        assert_eq!(chosen.tree.top.digest, both.manifests[1].descriptor.digest);
        let asked: Platform = other.parse().unwrap();
        let chosen = select(
            &both,
            &name,
            &LoadPlatform::Platform(asked.clone()),
            Runtime::Podman,
        )
        .unwrap();
        assert_eq!(chosen.platform, asked.to_string());
    }

    #[test]
    fn a_missing_platform_and_all_into_docker_are_one_line_errors() {
        let name: Reference = "app:1".parse().unwrap();
        let both = tree(&["linux/arm64", "linux/riscv64"]);
        let s390x = LoadPlatform::Platform("linux/s390x".parse().unwrap());
        let err = select(&both, &name, &s390x, Runtime::Docker)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("app:1 has no linux/s390x image (it has linux/arm64, linux/riscv64)"),
            "{err}"
        );
        let err = select(&both, &name, &LoadPlatform::All, Runtime::Docker)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("docker keeps one platform"), "{err}");
        let all = select(&both, &name, &LoadPlatform::All, Runtime::Containerd).unwrap();
        assert!(all.all && all.tree.index.is_some());
        // A single-platform image is loaded whatever its platform.
        let single = tree(&["linux/riscv64"]);
        assert!(select(&single, &name, &LoadPlatform::Host, Runtime::Docker).is_ok());
        assert!(!err.contains('\n'));
    }

    #[test]
    fn runtimes_and_platforms_parse() {
        assert_eq!("podman".parse::<Runtime>().unwrap(), Runtime::Podman);
        assert!("kubernetes".parse::<Runtime>().is_err());
        assert_eq!(
            "podman".parse::<LoadTarget>().unwrap(),
            LoadTarget::Runtime(Runtime::Podman)
        );
        assert_eq!(
            "kind:dev".parse::<LoadTarget>().unwrap().to_string(),
            "kind:dev"
        );
        let err = "kubernetes".parse::<LoadTarget>().unwrap_err().to_string();
        assert!(err.contains("kind[:CLUSTER] or k3d[:CLUSTER]"), "{err}");
        assert_eq!("all".parse::<LoadPlatform>().unwrap(), LoadPlatform::All);
        assert!("linux/arm64".parse::<LoadPlatform>().is_ok());
        assert!("everything".parse::<LoadPlatform>().is_err());
    }
}
