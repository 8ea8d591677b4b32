//! Private container engines for tests: a dockerd and a podman whose state lives in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Docker's own client; another `docker` may come first on PATH.
const DOCKER_CLIENT: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";

/// A dockerd started for one test, in a private mount namespace so that the few paths it hard-codes
/// (/etc/docker, /run/docker, /run/containerd) land in its temp dir. Stopped (by its pid) on drop.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts the daemon, or returns `None` (after a visible skip) when docker is not installed.
    pub fn start() -> Option<Dockerd> {
        let found = Path::new(DOCKERD).is_file() && Path::new(DOCKER_CLIENT).is_file();
        super::peer_at(
            "dockerd (Debian package docker.io)",
            found.then(|| PathBuf::from(DOCKERD)),
        )?;
        super::peer("unshare")?;
        if !super::require_root("dockerd") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("zi-dockerd")
            .tempdir()
            .expect("dockerd temp dir");
        let d = dir.path();
        for sub in ["data", "exec", "cli", "etc-docker", "run-up", "run-work"] {
            std::fs::create_dir_all(d.join(sub)).expect("dockerd dirs");
        }
        std::fs::write(d.join("daemon.json"), "{}").expect("daemon.json");
        let script = r#"set -e
mount -t overlay overlay -o "lowerdir=/run,upperdir=$1/run-up,workdir=$1/run-work" /run
mount --bind "$1/etc-docker" /etc/docker 2>/dev/null || true
exec /usr/sbin/dockerd --config-file "$1/daemon.json" --data-root "$1/data" --exec-root "$1/exec" \
  --pidfile "$1/dockerd.pid" -H "unix://$1/d.sock" --iptables=false --ip6tables=false \
  --ip-forward=false --ip-masq=false --bridge=none --userland-proxy=false --storage-driver=vfs"#;
        let log = std::fs::File::create(d.join("dockerd.log")).expect("dockerd log");
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                script,
                "sh",
            ])
            .arg(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let daemon = Dockerd { child, dir };
        daemon.wait_ready();
        Some(daemon)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = self
                .client()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if ok.is_ok_and(|s| s.success()) {
                return;
            }
            let log =
                std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "dockerd did not become ready in 60 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `unix://SOCKET`, what `DOCKER_HOST` names to reach this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("d.sock").display())
    }

    /// The docker client's config directory (`DOCKER_CONFIG`) for this daemon.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("cli")
    }

    /// A docker client command talking to this daemon.
    pub fn client(&self) -> Command {
        let mut cmd = Command::new(DOCKER_CLIENT);
        cmd.env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("d.sock").display()
            ));
        cmd
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // unshare and sh exec, so this pid is dockerd's own; SIGTERM stops its containers and containerd.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A podman with its own storage, run root, locks and runc state under a temp dir.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Option<Podman> {
        super::peer("podman")?;
        super::peer("runc")?;
        if !super::require_root("podman") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("zi-podman")
            .tempdir()
            .expect("podman temp dir");
        let p = dir.path();
        for sub in ["etc", "root", "runroot", "tmp", "cni", "bin", "runc"] {
            std::fs::create_dir_all(p.join(sub)).expect("podman dirs");
        }
        let conf = format!(
            "[containers]\nnetns = \"none\"\nlog_driver = \"k8s-file\"\n\
             [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{p}/cni\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{p}/events.log\"\nruntime = \"runc\"\ntmp_dir = \"{p}/tmp\"\n\
             volume_path = \"{p}/root/volumes\"\nstatic_dir = \"{p}/root/libpod\"\n\
             lock_type = \"file\"\nnum_locks = 128\n",
            p = p.display()
        );
        std::fs::write(p.join("etc/containers.conf"), conf).expect("containers.conf");
        std::fs::write(
            p.join("etc/storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/runroot\"\n",
                p.display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            p.join("etc/registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
        )
        .expect("registries.conf");
        std::fs::write(
            p.join("etc/policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("policy.json");
        // A wrapper keeps runc's state out of /run/runc; podman's cleanup passes the path on.
        let wrapper = p.join("bin/runc");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec runc --root {}/runc \"$@\"\n", p.display()),
        )
        .expect("runc wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Some(Podman { dir })
    }

    /// A podman command with the isolated configuration.
    pub fn command(&self) -> Command {
        let p = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", p.join("etc/containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", p.join("etc/storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", p.join("etc/registries.conf"))
            .env("TMPDIR", p.join("tmp"))
            .arg("--root")
            .arg(p.join("root"))
            .arg("--runroot")
            .arg(p.join("runroot"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(p.join("bin/runc"))
            .arg("--tmpdir")
            .arg(p.join("tmp"))
            .arg("--network-config-dir")
            .arg(p.join("cni"));
        cmd
    }

    /// `podman run` with the flags this machine needs (no network, rlimits within the host's).
    pub fn run(&self) -> Command {
        let mut cmd = self.command();
        cmd.args([
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=1000:1000",
        ]);
        cmd
    }

    /// The environment that points a plain `podman` (as `--load podman` runs it) at this storage.
    pub fn envs(&self) -> Vec<(&'static str, PathBuf)> {
        let p = self.dir.path();
        vec![
            ("CONTAINERS_CONF", p.join("etc/containers.conf")),
            ("CONTAINERS_STORAGE_CONF", p.join("etc/storage.conf")),
            ("CONTAINERS_REGISTRIES_CONF", p.join("etc/registries.conf")),
            ("TMPDIR", p.join("tmp")),
        ]
    }

    pub fn policy(&self) -> PathBuf {
        self.dir.path().join("etc/policy.json")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Removes stored images and any container state; the temp dir goes with it.
        let _ = self
            .command()
            .args(["rmi", "-af"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
