//! A small HTTP/1.1 server on 127.0.0.1 for tests that need a registry to misbehave on purpose: each
//! request goes to a handler closure, every request is logged, TLS is optional (a certificate made by
//! openssl), and a "silent" mode accepts connections and never answers. One request per connection
//! (`Connection: close`); stops on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was cut off before its Content-Length.
    pub truncated: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// An answer: status, headers, body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Hang up after this many body bytes, though the Content-Length promised all of them.
    pub cut_after: Option<usize>,
    /// After this many body bytes, send the rest one byte every 100 ms: a slow registry that still
    /// makes progress (the client never times out), until the client hangs up.
    pub trickle_after: Option<usize>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
            trickle_after: None,
        }
    }

    pub fn trickle_after(mut self, bytes: usize) -> Reply {
        self.trickle_after = Some(bytes);
        self
    }

    pub fn cut_after(mut self, bytes: usize) -> Reply {
        self.cut_after = Some(bytes);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct TestServer {
    pub port: u16,
    pub tls: bool,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A plain-HTTP server answering with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
        Self::spawn(None, Some(Arc::new(handler)))
    }

    /// An HTTPS server with the certificate and key (PEM files) given.
    pub fn start_tls(
        cert: &Path,
        key: &Path,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::spawn(Some(tls_config(cert, key)), Some(Arc::new(handler)))
    }

    /// A server that accepts connections and never says anything.
    pub fn silent() -> TestServer {
        Self::spawn(None, None)
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>, handler: Option<Arc<Handler>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let is_tls = tls.is_some();
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = stream.set_nonblocking(false);
                let Some(handler) = handler.clone() else {
                    // Silent: keep the connection open, unanswered, until the server stops.
                    held.push(stream);
                    continue;
                };
                let (tls, log) = (tls.clone(), log2.clone());
                std::thread::spawn(move || serve(stream, tls, handler, log));
            }
        });
        TestServer {
            port,
            tls: is_tls,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn tls_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert file")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    Arc::new(config)
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Request>>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    match tls {
        Some(config) => {
            let Ok(connection) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut tls_stream = rustls::StreamOwned::new(connection, stream);
            exchange(&mut tls_stream, &handler, &log);
        }
        None => {
            // A TLS handshake on a plain-HTTP port is hung up on at once, as real servers do.
            let mut first = [0u8; 1];
            if stream.peek(&mut first).unwrap_or(0) == 0 || first[0] == 0x16 {
                return;
            }
            let mut stream = stream;
            exchange(&mut stream, &handler, &log);
        }
    }
}

fn exchange<S: Read + Write>(stream: &mut S, handler: &Arc<Handler>, log: &Mutex<Vec<Request>>) {
    let Some(request) = read_request(stream) else {
        return;
    };
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(request.clone());
    let reply = handler(&request);
    let mut head = format!("HTTP/1.1 {} Test\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let _ = stream.write_all(head.as_bytes());
    if request.method != "HEAD" {
        let end = reply
            .cut_after
            .map_or(reply.body.len(), |n| n.min(reply.body.len()));
        let fast = reply.trickle_after.map_or(end, |n| n.min(end));
        let _ = stream.write_all(&reply.body[..fast]);
        for byte in &reply.body[fast..end] {
            if stream.flush().is_err() || stream.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = stream.flush();
}

fn read_request<S: Read>(stream: &mut S) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    let read = reader.take(length as u64).read_to_end(&mut body);
    let truncated = read.is_err() || body.len() < length;
    Some(Request {
        method,
        target,
        headers,
        body,
        truncated,
    })
}
