//! A containerd started for one test with its own configuration: root, state, the gRPC socket and the
//! opt directory under a temp dir, the CRI plugin disabled. It runs in a private mount namespace whose
//! /run is an overlay in the temp dir, so the paths containerd and its shims hard-code
//! (/run/containerd/s, /run/containerd/fifo, /run/containerd/runc) stay there too; `ctr run` enters
//! that namespace. Stopped (by its pid) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts the daemon, or returns `None` (after a visible skip) when containerd is not installed.
    pub fn start() -> Option<Containerd> {
        let binary = super::peer("containerd")?;
        super::peer("ctr")?;
        super::peer("unshare")?;
        super::peer("nsenter")?;
        if !super::require_root("containerd") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("zi-containerd")
            .tempdir()
            .expect("containerd temp dir");
        let d = dir.path();
        for sub in ["root", "state", "opt", "run-up", "run-work"] {
            std::fs::create_dir_all(d.join(sub)).expect("containerd dirs");
        }
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            d = d.display()
        );
        std::fs::write(d.join("config.toml"), config).expect("config.toml");
        let script = r#"set -e
mount -t overlay overlay -o "lowerdir=/run,upperdir=$1/run-up,workdir=$1/run-work" /run
exec "$2" --config "$1/config.toml""#;
        let log = std::fs::File::create(d.join("containerd.log")).expect("containerd log");
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
            .arg(&binary)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let daemon = Containerd { child, dir };
        daemon.wait_ready();
        Some(daemon)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self
                .ctr("default")
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if ok.is_ok_and(|s| s.success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not become ready in 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The gRPC socket (what `CONTAINERD_ADDRESS` names).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// `ctr -a SOCKET -n NAMESPACE`, run from outside (images, content: all over the socket).
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .args(["--namespace", namespace]);
        cmd
    }

    /// `ctr run --rm --snapshotter native IMAGE ID ARGS...`, inside the daemon's mount namespace
    /// (the task's FIFOs and the shim's socket live in its /run).
    pub fn run(&self, namespace: &str, image: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.child.id().to_string())
            .args(["--mount", "--", "ctr", "--address"])
            .arg(self.socket())
            .args([
                "--namespace",
                namespace,
                "run",
                "--rm",
                "--snapshotter",
                "native",
                image,
            ])
            .arg(super::unique("zi-ctr"))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // unshare and sh exec, so this pid is containerd's own.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
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
