//! A CNCF distribution registry started for one test on 127.0.0.1, optionally with htpasswd Basic auth
//! and TLS from a CA made in the test; stopped (by its pid) on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run_ok;

pub struct TestRegistry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    tls: bool,
}

/// Basic-auth user and TLS, for [`TestRegistry::start`].
#[derive(Clone, Copy, Default)]
pub struct Setup<'a> {
    pub user: Option<(&'a str, &'a str)>,
    pub tls: bool,
    /// Bearer-token auth: the token service's realm and the certificate that signs its tokens.
    pub token: Option<(&'a str, &'a Path)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl TestRegistry {
    /// Starts a registry, or returns `None` (after a visible skip) when it is not installed.
    pub fn start(setup: Setup) -> Option<TestRegistry> {
        let binary = super::peer("docker-registry")?;
        if setup.user.is_some() {
            super::peer("htpasswd")?;
        }
        if setup.tls {
            super::peer("openssl")?;
        }
        let dir = tempfile::Builder::new()
            .prefix("zi-registry")
            .tempdir()
            .expect("registry dir");
        let d = dir.path();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            d.display()
        );
        if setup.tls {
            make_certificates(d);
            config.push_str(&format!(
                "  tls:\n    certificate: {0}/server.pem\n    key: {0}/server.key\n",
                d.display()
            ));
        }
        if let Some((user, password)) = setup.user {
            let out = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
            std::fs::write(d.join("htpasswd"), out.stdout).expect("htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: zeroimage-test\n    path: {}/htpasswd\n",
                d.display()
            ));
        }
        if let Some((realm, cert)) = setup.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                super::token_server::SERVICE,
                super::token_server::ISSUER,
                cert.display()
            ));
        }
        std::fs::write(d.join("config.yml"), config).expect("config.yml");
        let mut registry = TestRegistry {
            child: None,
            dir,
            port,
            tls: setup.tls,
        };
        registry.spawn(&binary);
        Some(registry)
    }

    fn spawn(&mut self, binary: &Path) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("registry.log"))
            .expect("log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the TLS certificate.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls);
        self.dir.path().join("ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Digests of the blobs whose upload completed, from the registry's own request log.
    pub fn uploaded_blobs(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed\"") && l.contains("http.request.method=PUT")
            })
            .filter_map(|l| {
                let uri = l
                    .split("http.request.uri=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .trim_matches('"');
                if !uri.contains("/blobs/uploads/") {
                    return None;
                }
                let digest = uri.split("digest=").nth(1)?.split('&').next()?;
                Some(digest.replace("%3A", ":"))
            })
            .collect()
    }

    /// The request URIs of every manifest PUT the registry answered (`/v2/NAME/manifests/REF`), from
    /// its request log: one per tag or digest a push sent.
    pub fn manifest_puts(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        self.log()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed\"") && l.contains("http.request.method=PUT")
            })
            .filter_map(|l| {
                let uri = l
                    .split("http.request.uri=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .trim_matches('"');
                uri.contains("/manifests/").then(|| uri.to_owned())
            })
            .collect()
    }

    /// How many blob GETs the registry answered, from its request log.
    pub fn blob_gets(&self) -> usize {
        // The registry logs a request just after answering it.
        std::thread::sleep(Duration::from_millis(300));
        self.log()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed\"")
                    && l.contains("http.request.method=GET")
                    && l.contains("/blobs/sha256:")
            })
            .count()
    }

    /// Blob mounts the registry performed (`POST ...?mount=` answered 201), from its request log.
    pub fn mounts(&self) -> usize {
        std::thread::sleep(Duration::from_millis(300));
        self.log()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed\"")
                    && l.contains("http.request.method=POST")
                    && l.contains("mount=")
                    && l.contains("http.response.status=201")
            })
            .count()
    }

    /// Stops the registry (SIGTERM by pid) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        let binary = super::which("docker-registry").expect("docker-registry");
        self.spawn(&binary);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(d: &Path) {
    let openssl = |args: &[&str]| run_ok(Command::new("openssl").args(args).current_dir(d));
    super::self_signed_certificate(d, "ca", "zeroimage test CA");
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}
