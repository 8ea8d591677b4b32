//! `--load kind[:CLUSTER]` and `--load k3d[:CLUSTER]`: a `docker` stand-in on PATH answers `docker ps`
//! with a cluster's node containers and runs `docker exec -i NODE ctr ...` against the containerd the
//! test starts, as a node's own containerd; the image lands in its `k8s.io` namespace and runs with
//! `ctr run`. No such cluster, a bad cluster name and a node without ctr are one-line errors.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support;
use support::containerd::Containerd;
use support::{X86_64_MUSL, run_ok, stderr_of, stdout_json, stdout_of, zeroimage};

/// The stand-in: kind cluster `dev` (one node), k3d cluster `lab` (a server, an agent and its load
/// balancer), kind cluster `broken` whose node has no ctr. Every call is logged.
const FAKE_DOCKER: &str = r#"#!/bin/bash
echo "$*" >> "$ZI_FAKE_DOCKER_LOG"
case "$1" in
  ps)
    case "$4" in
      label=io.x-k8s.kind.cluster=dev) printf 'dev-control-plane\n' ;;
      label=io.x-k8s.kind.cluster=broken) printf 'broken-control-plane\n' ;;
      label=io.x-k8s.kind.cluster) printf 'dev\nbroken\ndev\n' ;;
      label=k3d.cluster=lab) printf 'k3d-lab-server-0\tserver\nk3d-lab-agent-0\tagent\nk3d-lab-serverlb\tloadbalancer\n' ;;
      label=k3d.cluster) printf 'lab\nlab\nlab\n' ;;
    esac
    ;;
  exec)
    node=$3
    shift 3
    if [ "$node" = broken-control-plane ]; then
      cat > /dev/null
      echo 'OCI runtime exec failed: exec failed: unable to start container process: exec: "ctr": executable file not found in $PATH: unknown' >&2
      exit 126
    fi
    [ "$1" = ctr ] || exit 125
    shift
    exec ctr --address "$ZI_FAKE_CONTAINERD" "$@"
    ;;
  *) exit 125 ;;
esac
"#;

fn fake_docker(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let docker = bin.join("docker");
    std::fs::write(&docker, FAKE_DOCKER).unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn kind_and_k3d_nodes_get_the_image_in_k8s_io_and_run_it() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_docker(dir.path());
    let log = dir.path().join("docker.log");
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let load = |tag: &str, target: &str| {
        let mut cmd = zeroimage();
        cmd.arg(&hello)
            .args(["-t", tag, "--load", target, "--message-format", "json"])
            .env("PATH", &path)
            .env("ZI_FAKE_DOCKER_LOG", &log)
            .env("ZI_FAKE_CONTAINERD", containerd.socket())
            .env("CONTAINERD_SNAPSHOTTER", "native")
            .env_remove("KIND_CLUSTER_NAME")
            .current_dir(dir.path());
        cmd.output().unwrap()
    };
    let images = || stdout_of(&run_ok(containerd.ctr("k8s.io").args(["images", "ls"])));

    // kind: the one node of cluster `dev`.
    let output = load("zi-kind/hello:1", "kind:dev");
    assert!(output.status.success(), "{}", stderr_of(&output));
    let err = stderr_of(&output);
    assert!(
        err.contains("Loading zi-kind/hello:1 into kind cluster `dev` (linux/amd64)"),
        "{err}"
    );
    assert!(
        err.contains("Loaded zi-kind/hello:1 into node dev-control-plane of kind cluster `dev`"),
        "{err}"
    );
    let summary = stdout_json(&output);
    let loaded = &summary["loaded"][0];
    assert_eq!(loaded["runtime"], "kind");
    assert_eq!(loaded["cluster"], "dev");
    assert_eq!(loaded["node"], "dev-control-plane");
    assert_eq!(loaded["name"], "docker.io/zi-kind/hello:1");
    assert_eq!(loaded["id"], summary["digest"]);
    assert!(
        images().contains("docker.io/zi-kind/hello:1"),
        "{}",
        images()
    );
    let ran = run_ok(&mut containerd.run("k8s.io", "docker.io/zi-kind/hello:1", &[]));
    assert!(stdout_of(&ran).starts_with("hello from the zeroimage fixture"));

    // k3d: its server and agent, not its load balancer.
    std::fs::write(&log, "").unwrap();
    let output = load("zi-k3d/hello:1", "k3d:lab");
    assert!(output.status.success(), "{}", stderr_of(&output));
    let summary = stdout_json(&output);
    let nodes: Vec<&str> = summary["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["k3d-lab-agent-0", "k3d-lab-server-0"]);
    let calls = std::fs::read_to_string(&log).unwrap();
    let execs: Vec<&str> = calls.lines().filter(|l| l.starts_with("exec ")).collect();
    assert_eq!(execs.len(), 2, "{calls}");
    for (exec, node) in execs.iter().zip(&nodes) {
        assert!(
            exec.starts_with(&format!(
                "exec -i {node} ctr --namespace k8s.io images import --platform linux/amd64 -"
            )),
            "{exec}"
        );
    }
    assert!(images().contains("docker.io/zi-k3d/hello:1"));

    // No such cluster: the ones there are, and how to make it; said before anything is packaged.
    let output = load("zi-kind/none:1", "kind:prod");
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(!err.contains("Packaging"), "{err}");
    assert!(
        err.contains(
            "error: no kind cluster `prod` is running in docker (running: broken, dev); create it \
             (`kind create cluster --name prod`), or name one with --load kind:NAME"
        ),
        "{err}"
    );
    // A node without ctr.
    let output = load("zi-kind/none:1", "kind:broken");
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in node broken-control-plane of kind cluster `broken` failed"),
        "{err}"
    );
    assert!(
        err.contains("the node has no containerd client `ctr`"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );

    // A name no cluster can have: refused before docker is asked anything.
    std::fs::write(&log, "").unwrap();
    let output = load("zi-kind/none:1", "kind:Prod;rm");
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`Prod;rm` is not a kind cluster name"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
    assert!(!images().contains("zi-kind/none"));
}

#[test]
fn a_cluster_load_without_docker_is_refused_before_building() {
    let Some(hello) = support::hello_fixture(X86_64_MUSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let output = zeroimage()
        .arg(&hello)
        .args(["--load", "k3d", "-o"])
        .arg(dir.path().join("never.tar"))
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: docker is not installed (not found on PATH); install the docker CLI"),
        "{err}"
    );
    assert!(!dir.path().join("never.tar").exists());
}
