//! A hostile HTTP server for the client's tests (std::net, a thread per connection): it reads
//! each request (head and Content-Length body), records `METHOD PATH` and the request's headers,
//! and lets the test's handler answer however it likes: a valid answer, a lie, a redirect, a
//! stall, an endless body. `Hostile::log` tells what reached it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header lines as received, lower-cased names: `name: value`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.headers.iter().find_map(|h| h.strip_prefix(&prefix))
    }
}

/// What the handler wants after answering: keep the connection for the next request, or close it.
pub enum Next {
    Keep,
    Close,
}

pub type Handler = dyn Fn(&Req, &mut TcpStream) -> Next + Send + Sync;

pub struct Hostile {
    /// `HOST:PORT`.
    pub addr: String,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    pub fn start(handler: impl Fn(&Req, &mut TcpStream) -> Next + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (l, h) = (l.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &l, &*h));
            }
        });
        Hostile { addr, log, stop }
    }

    /// `http://ADDR/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Every request received so far.
    pub fn log(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests had a path starting with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.log().iter().filter(|r| r.method == method && r.path.starts_with(prefix)).count()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Req>>, handler: &Handler) {
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((&h, ""));
            headers.push(format!("{}: {}", name.to_ascii_lowercase(), value.trim()));
        }
        let mut req = Req { method, path, headers, body: Vec::new() };
        let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        req.body.resize(len, 0);
        if r.read_exact(&mut req.body).is_err() {
            return;
        }
        log.lock().unwrap().push(req.clone());
        if let Next::Close = handler(&req, &mut out) {
            return;
        }
    }
}

/// Writes a whole answer: status line, these headers, Content-Length and the body.
pub fn answer(s: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) -> Next {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let ok = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).is_ok();
    if ok {
        Next::Keep
    } else {
        Next::Close
    }
}

/// Holds the connection open, sending nothing, for `d`.
pub fn stall(d: Duration) -> Next {
    std::thread::sleep(d);
    Next::Close
}
