//! A loopback TCP proxy in front of a test registry that injects one fault: a 500 answer, a dropped
//! connection, or "the registry went away" after some bytes. It serves only 127.0.0.1 and stops on drop.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The first plain-HTTP connection gets `500 Internal Server Error`.
    Error500Once,
    /// The first plain-HTTP connection is closed without an answer.
    DropOnce,
    /// After this many request bytes have passed, every connection is cut and new ones are refused.
    GoneAfter(u64),
}

pub struct FaultProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// How many times the fault was applied.
    pub injected: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let injected = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let gone = Arc::new(AtomicBool::new(false));
        let (stop2, injected2) = (stop.clone(), injected.clone());
        let thread = std::thread::spawn(move || {
            let mut faulted = false;
            while !stop2.load(Ordering::SeqCst) {
                let (mut client, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                if gone.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let mut first = [0u8; 1];
                let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
                if client.peek(&mut first).unwrap_or(0) == 0 {
                    continue;
                }
                if first[0] == 0x16 {
                    // A TLS handshake: the registry behind speaks plain HTTP; refuse like it would.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if !faulted && matches!(fault, Fault::Error500Once | Fault::DropOnce) {
                    faulted = true;
                    injected2.fetch_add(1, Ordering::SeqCst);
                    read_request_head(&mut client);
                    if fault == Fault::Error500Once {
                        let _ = client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let limit = match fault {
                    Fault::GoneAfter(n) => Some(n),
                    _ => None,
                };
                pipe(
                    client,
                    server,
                    limit,
                    sent.clone(),
                    gone.clone(),
                    injected2.clone(),
                );
            }
        });
        FaultProxy {
            port,
            stop,
            injected,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn read_request_head(client: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
}

fn pipe(
    client: TcpStream,
    server: TcpStream,
    limit: Option<u64>,
    sent: Arc<AtomicU64>,
    gone: Arc<AtomicBool>,
    injected: Arc<AtomicUsize>,
) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            if gone.load(Ordering::SeqCst) {
                break;
            }
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if limit.is_some_and(|l| total > l) {
                gone.store(true, Ordering::SeqCst);
                injected.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_read.shutdown(Shutdown::Both);
        let _ = s_write.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Both);
    });
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
