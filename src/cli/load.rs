//! `--load`: the local runtimes an image goes into, on both commands.

use clap::Args;

use ::zeroimage::load::{LoadOptions, LoadPlatform, LoadTarget};

/// Where the image is loaded once built.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Loading into local runtimes")]
pub struct LoadArgs {
    /// Load the image into docker, podman or containerd, or every node of a kind or k3d cluster, once
    /// built (repeatable)
    #[arg(long = "load", value_name = "RUNTIME|kind[:CLUSTER]|k3d[:CLUSTER]", value_parser = parse_target)]
    pub load: Vec<LoadTarget>,

    /// Platform of a multi-platform image to load, or `all` (podman, containerd) [default: this machine's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]|all", value_parser = parse_platform)]
    pub load_platform: Option<LoadPlatform>,

    /// containerd namespace to import into (k3s and kind: k8s.io) [default: $CONTAINERD_NAMESPACE, else default]
    #[arg(long, value_name = "NAME")]
    pub containerd_namespace: Option<String>,
}

impl LoadArgs {
    /// The load options as the library takes them.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            targets: self.load.clone(),
            platform: self.load_platform.clone().unwrap_or_default(),
            containerd_namespace: self.containerd_namespace.clone(),
        }
    }
}

fn parse_target(s: &str) -> Result<LoadTarget, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}

fn parse_platform(s: &str) -> Result<LoadPlatform, String> {
    s.parse().map_err(|e: ::zeroimage::Error| e.to_string())
}
