//! Local Kubernetes clusters whose nodes are docker containers: kind and k3d. A node's containerd
//! lives inside its container, so the host's containerd socket never reaches it. The nodes are found
//! by their labels (`docker ps`), and the image is streamed into each with `docker exec -i NODE ctr -n
//! k8s.io images import -`, where the cluster's kubelet looks for images, as ko does.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use super::command;
use super::stream::write_image;
use super::{Loaded, Selection};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::blobs::BlobSource;
use crate::image::reference::Reference;
use crate::report::Listener;
use crate::util::cancel::CancelToken;
use crate::util::sanitize;

const INSTALL: &str = "install the docker CLI: kind and k3d clusters run in docker";
/// A listing of containers answers at once; more than this is a daemon that is not answering.
const LIST_LIMIT: Duration = Duration::from_secs(60);
/// Node names kept from a listing: a cluster has a handful.
const MAX_NODES: usize = 64;

/// Which tool made the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClusterKind {
    /// kind: nodes labelled `io.x-k8s.kind.cluster=NAME`; default cluster `kind`, or
    /// `$KIND_CLUSTER_NAME` as kind itself reads it.
    Kind,
    /// k3d: nodes labelled `k3d.cluster=NAME` with the role `server` or `agent`; default cluster
    /// `k3s-default`.
    K3d,
}

impl ClusterKind {
    /// The name flags and messages use.
    pub fn name(self) -> &'static str {
        match self {
            ClusterKind::Kind => "kind",
            ClusterKind::K3d => "k3d",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ClusterKind::Kind => "io.x-k8s.kind.cluster",
            ClusterKind::K3d => "k3d.cluster",
        }
    }

    /// The cluster a bare `kind` or `k3d` means.
    fn default_cluster(self) -> String {
        match self {
            ClusterKind::Kind => std::env::var("KIND_CLUSTER_NAME")
                .ok()
                .filter(|n| valid_name(n))
                .unwrap_or_else(|| "kind".to_owned()),
            ClusterKind::K3d => "k3s-default".to_owned(),
        }
    }
}

/// A cluster to load into: `kind`, `kind:NAME`, `k3d`, `k3d:NAME`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cluster {
    /// kind or k3d.
    pub kind: ClusterKind,
    /// The cluster's name; `None`: the tool's default.
    pub name: Option<String>,
}

impl Cluster {
    /// The cluster's name: the one given, else the tool's default.
    pub fn cluster_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.default_cluster())
    }

    /// Parses `kind[:NAME]` or `k3d[:NAME]`; `None` when `text` names neither tool.
    pub(super) fn parse(text: &str) -> Option<Result<Cluster>> {
        let (tool, name) = match text.split_once(':') {
            Some((tool, name)) => (tool, Some(name)),
            None => (text, None),
        };
        let kind = match tool {
            "kind" => ClusterKind::Kind,
            "k3d" => ClusterKind::K3d,
            _ => return None,
        };
        Some(match name {
            None => Ok(Cluster { kind, name: None }),
            Some(name) if valid_name(name) => Ok(Cluster {
                kind,
                name: Some(name.to_owned()),
            }),
            Some(name) => Err(Error::Invalid(format!(
                "`{}` is not a {} cluster name: use lowercase letters, digits, `-` and `.` (at most \
                 63), as `{} get clusters` lists them",
                sanitize::outside(name, 100),
                kind.name(),
                kind.name()
            ))),
        })
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{name}", self.kind.name()),
            None => f.write_str(self.kind.name()),
        }
    }
}

/// What kind and k3d accept for a cluster's name, which ends up in container names and labels.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
}

/// The docker CLI is installed and the cluster has running nodes, so that a mistyped or stopped
/// cluster costs no build. `cancel` stops the listing.
pub(super) fn preflight(cluster: &Cluster, cancel: &CancelToken) -> Result<()> {
    command::installed("docker", INSTALL)?;
    nodes(cluster, &cluster.cluster_name(), cancel).map(drop)
}

/// `docker ps` of the containers labelled `label=value` (the value given or every one), formatted.
fn list(filter: &str, format: &str, cancel: &CancelToken) -> Result<Vec<String>> {
    let mut cmd = Command::new("docker");
    cmd.args(["ps", "--no-trunc", "--filter", filter, "--format", format]);
    let finished = command::run_within(&mut cmd, "docker", INSTALL, cancel, LIST_LIMIT)?;
    if !finished.success {
        return Err(Error::Invalid(format!(
            "`docker ps` could not list the cluster's nodes: {}",
            finished.message()
        )));
    }
    Ok(finished
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(MAX_NODES)
        .map(str::to_owned)
        .collect())
}

/// The running node containers of `cluster`, sorted; an error listing the clusters there are when
/// it has none.
fn nodes(cluster: &Cluster, name: &str, cancel: &CancelToken) -> Result<Vec<String>> {
    let label = cluster.kind.label();
    let format = match cluster.kind {
        ClusterKind::Kind => "{{.Names}}".to_owned(),
        ClusterKind::K3d => "{{.Names}}\t{{.Label \"k3d.role\"}}".to_owned(),
    };
    let mut found: Vec<String> = list(&format!("label={label}={name}"), &format, cancel)?
        .into_iter()
        .filter_map(|line| match cluster.kind {
            ClusterKind::Kind => Some(line),
            // The load balancer and tools containers run no kubelet.
            ClusterKind::K3d => line
                .split_once('\t')
                .filter(|(_, role)| matches!(role.trim(), "server" | "agent"))
                .map(|(node, _)| node.to_owned()),
        })
        .filter(|node| is_container_name(node))
        .collect();
    found.sort();
    found.dedup();
    if !found.is_empty() {
        return Ok(found);
    }
    let format = format!("{{{{.Label \"{label}\"}}}}");
    let mut clusters = list(&format!("label={label}"), &format, cancel)?;
    clusters.sort();
    clusters.dedup();
    let clusters: Vec<String> = clusters.iter().map(|c| sanitize::outside(c, 100)).collect();
    Err(Error::Invalid(format!(
        "no {} cluster `{name}` is running in docker ({}); create it (`{}`), or name one with \
         --load {}:NAME",
        cluster.kind.name(),
        if clusters.is_empty() {
            "no cluster is".to_owned()
        } else {
            format!("running: {}", clusters.join(", "))
        },
        match cluster.kind {
            ClusterKind::Kind => format!("kind create cluster --name {name}"),
            ClusterKind::K3d => format!("k3d cluster create {name}"),
        },
        cluster.kind.name()
    )))
}

/// A container name as docker prints it, which goes into `docker exec`'s arguments.
fn is_container_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Imports the selection into every node of `cluster`, one after the other; one entry per node.
pub(super) fn load(
    cluster: &Cluster,
    selection: &Selection,
    blobs: &dyn BlobSource,
    name: &Reference,
    cx: &Context,
) -> Result<Vec<Loaded>> {
    let listener: &dyn Listener = cx.listener();
    let cluster_name = cluster.cluster_name();
    let nodes = nodes(cluster, &cluster_name, cx.cancel())?;
    listener.detail(&format!(
        "{} cluster `{cluster_name}`: nodes {}",
        cluster.kind.name(),
        nodes.join(", ")
    ));
    let full = name.full();
    let mut loaded = Vec::new();
    for node in nodes {
        let mut cmd = Command::new("docker");
        cmd.args([
            "exec",
            "-i",
            &node,
            "ctr",
            "--namespace",
            "k8s.io",
            "images",
            "import",
        ]);
        if selection.all {
            cmd.arg("--all-platforms");
        } else if let Some(platform) = selection.tree.top.platform.as_ref() {
            cmd.args(["--platform", &platform.to_string()]);
        }
        cmd.arg("-");
        let finished = command::run_fed(&mut cmd, "docker", INSTALL, cx.cancel(), |w| {
            write_image(w, &selection.tree, blobs, Some(name), cx.cancel())
        })?;
        if !finished.success {
            return Err(Error::Invalid(format!(
                "`ctr images import` of {full} in node {node} of {} cluster `{cluster_name}` \
                 failed: {}",
                cluster.kind.name(),
                no_ctr_hint(&finished.message())
            )));
        }
        if !finished.stdout.contains(&full) {
            return Err(Error::Invalid(format!(
                "`ctr images import` in node {node} did not import {full}: {}",
                finished.message()
            )));
        }
        listener.status(
            "Loaded",
            &format!(
                "{} into node {node} of {} cluster `{cluster_name}`",
                name.familiar(),
                cluster.kind.name()
            ),
        );
        loaded.push(Loaded {
            runtime: cluster.kind.name().to_owned(),
            name: full.clone(),
            id: selection.tree.top.digest.to_string(),
            platform: selection.platform.clone(),
            cluster: Some(cluster_name.clone()),
            node: Some(node),
        });
    }
    Ok(loaded)
}

/// docker's message when the node has no `ctr`, with what it means.
fn no_ctr_hint(message: &str) -> String {
    if message.contains("executable file not found") || message.contains("\"ctr\"") {
        format!("{message} (the node has no containerd client `ctr`: is it a kind or k3d node?)")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_targets_parse_with_their_defaults_and_bad_names_are_refused() {
        let kind = Cluster::parse("kind").unwrap().unwrap();
        assert_eq!((kind.kind, kind.name.as_deref()), (ClusterKind::Kind, None));
        let dev = Cluster::parse("kind:dev-1.x").unwrap().unwrap();
        assert_eq!(dev.name.as_deref(), Some("dev-1.x"));
        assert_eq!(dev.to_string(), "kind:dev-1.x");
        let k3d = Cluster::parse("k3d").unwrap().unwrap();
        assert_eq!(k3d.cluster_name(), "k3s-default");
        assert_eq!(
            Cluster::parse("k3d:x").unwrap().unwrap().cluster_name(),
            "x"
        );
        assert!(Cluster::parse("docker").is_none());
        for bad in [
            "kind:", "kind:Dev", "kind:a b", "kind:-x", "k3d:a;rm", "kind:a/b",
        ] {
            let err = Cluster::parse(bad).unwrap().unwrap_err().to_string();
            assert!(err.contains("is not a"), "{bad}: {err}");
            assert!(!err.contains('\n'));
        }
        let long = format!("kind:{}", "a".repeat(64));
        assert!(Cluster::parse(&long).unwrap().is_err());
    }

    #[test]
    fn only_plain_container_names_reach_docker_exec() {
        assert!(is_container_name("kind-control-plane"));
        assert!(is_container_name("k3d-dev-agent-0"));
        assert!(!is_container_name("-it"));
        assert!(!is_container_name("a b"));
        assert!(!is_container_name(""));
    }
}
