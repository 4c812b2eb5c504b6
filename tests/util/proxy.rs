//! A TCP relay between an HTTP client and `archiver serve` (std::net, two threads per
//! connection) that can cut connections and limit bandwidth. A cut is planned per connection from
//! a seeded generator: every `cut_every`-th connection is cut once it has carried a random number
//! of bytes in either direction (drawn for each direction, whichever limit is reached first; half
//! of the draws uniform up to `max_cut`, which mostly lands inside large bodies, half log-uniform
//! from 64 B, which also hits headers and small requests), half the time with a reset, half with
//! an orderly close. The relay parses the requests it forwards, so each cut is
//! counted by what it interrupted: a pack upload, the reply to one, a pack download, or other.
//! It can also swallow the answer to one chosen request (`lose_reply`).

use super::Rng;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub seed: u64,
    /// Cut every N-th connection (0: never cut).
    pub cut_every: u64,
    /// Largest byte offset a cut is planned at.
    pub max_cut: u64,
    /// Cut only server → client: requests arrive whole, answers are lost.
    pub replies_only: bool,
    /// Bytes per second over all connections (None: unlimited).
    pub rate: Option<u64>,
    /// Swallow the answer to the first request whose request line contains this, and close its
    /// connection: the server acted, the client never hears of it.
    pub lose_reply: Option<String>,
    /// Remove this header (lowercase name) from every request, as a careless gateway would.
    pub drop_header: Option<String>,
    /// Answer every N-th request (over all connections) with `503 SlowDown` itself, without
    /// forwarding it, as an overloaded S3 endpoint does (0: never).
    pub slow_down_every: u64,
    /// Answer every write (PUT, POST, DELETE) itself with this status and S3 error code, without
    /// forwarding it: a read-only bucket (403 AccessDenied), a full one (403 QuotaExceeded).
    pub refuse_writes: Option<(u16, &'static str)>,
}

/// What the relay saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub connections: u64,
    pub cuts: u64,
    /// Cut while the client was sending a pack / while the server answered a pack upload / while
    /// the server sent pack bytes / anything else (lock, head, index, commit, ...).
    pub pack_uploads: u64,
    pub upload_replies: u64,
    pub pack_downloads: u64,
    pub other: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Each cut: direction, offset in the connection, the request it interrupted.
    pub log: Vec<String>,
    /// Requests forwarded, by method (`GET`, `PUT`, ...), and by method and the query of the
    /// request line when it has one (`GET ?list-type=2...`: an S3 listing).
    pub requests: std::collections::BTreeMap<String, u64>,
    /// The request lines of listings (`GET` with `list-type=`), for what they list.
    pub listings: Vec<String>,
    /// Every request line forwarded, in order.
    pub lines: Vec<String>,
    /// Requests answered by the relay itself (`slow_down_every`, `refuse_writes`), once their
    /// body is in.
    pub slowed: u64,
}

impl Tally {
    /// The counts, without the log.
    pub fn summary(&self) -> String {
        format!(
            "{} connections, {} cuts: {} in pack uploads, {} in replies to them, {} in pack downloads, \
             {} elsewhere; {} MiB up, {} MiB down",
            self.connections,
            self.cuts,
            self.pack_uploads,
            self.upload_replies,
            self.pack_downloads,
            self.other,
            self.bytes_up >> 20,
            self.bytes_down >> 20
        )
    }
}

struct Shared {
    policy: Policy,
    target: Mutex<String>,
    tally: Mutex<Tally>,
    /// When the bandwidth limit lets the next byte through.
    next_free: Mutex<Instant>,
    stop: AtomicBool,
    /// The answer `lose_reply` names was swallowed.
    lost: AtomicBool,
}

pub struct Proxy {
    pub addr: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Relays 127.0.0.1:<free port> to `target` (`HOST:PORT`).
    pub fn start(target: &str, policy: Policy) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let shared = Arc::new(Shared {
            policy,
            target: Mutex::new(target.to_string()),
            tally: Mutex::new(Tally::default()),
            next_free: Mutex::new(Instant::now()),
            stop: AtomicBool::new(false),
            lost: AtomicBool::new(false),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                if sh.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || relay(sh, client, n as u64 + 1));
            }
        });
        Proxy { addr, shared }
    }

    /// `http://PROXY/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Points new connections at another server address.
    pub fn set_target(&self, target: &str) {
        *self.shared.target.lock().unwrap() = target.to_string();
    }

    pub fn tally(&self) -> Tally {
        self.shared.tally.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr); // wakes the accept loop
    }
}

/// How a connection ended: still running, closed (either side, or a cut with a FIN), or cut
/// with a reset.
const RUNNING: u8 = 0;
const CLOSED: u8 = 1;
const RESET: u8 = 2;

/// A planned cut: after `up` bytes client → server or `down` bytes server → client.
#[derive(Clone, Copy)]
struct Cut {
    up: u64,
    down: u64,
    reset: bool,
}

fn relay(sh: Arc<Shared>, client: TcpStream, n: u64) {
    let target = sh.target.lock().unwrap().clone();
    sh.tally.lock().unwrap().connections += 1;
    let Ok(server) = TcpStream::connect(&target) else {
        let _ = client.shutdown(Shutdown::Both); // server down: the client sees a closed connection
        return;
    };
    let p = &sh.policy;
    let mut rng = Rng::new(p.seed.wrapping_mul(1_000_003).wrapping_add(n));
    let cut = (p.cut_every > 0 && n.is_multiple_of(p.cut_every)).then(|| {
        let (lo, hi) = (64f64.ln(), (p.max_cut.max(128) as f64).ln());
        let mut at = || match rng.below(2) {
            0 => 64 + rng.below(p.max_cut.max(128) - 64),
            _ => (lo + (hi - lo) * rng.below(1 << 20) as f64 / (1 << 20) as f64).exp() as u64,
        };
        let (up, down) = (if p.replies_only { u64::MAX } else { at() }, at());
        Cut { up, down, reset: rng.below(2) == 0 }
    });
    // The request line of the request the connection carries now (no pipelining in HTTP/1.1
    // clients: a reply belongs to the last request sent).
    let current = Arc::new(Mutex::new(String::new()));
    let done = Arc::new(AtomicU8::new(RUNNING));
    let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let (sh2, cur2, done2) = (sh.clone(), current.clone(), done.clone());
    let down = std::thread::spawn(move || pump(&sh2, s2, c2, false, cut, &cur2, &done2));
    pump(&sh, client, server, true, cut, &current, &done);
    let _ = down.join();
}

/// Copies `from` → `to` until either side ends or the planned cut; then closes both.
fn pump(
    sh: &Shared,
    mut from: TcpStream,
    mut to: TcpStream,
    up: bool,
    cut: Option<Cut>,
    current: &Mutex<String>,
    done: &AtomicU8,
) {
    let mut parser = RequestParser::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    let limit = cut.map(|c| if up { c.up } else { c.down });
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut n = n;
        let cutting = limit.is_some_and(|at| sent + n as u64 >= at);
        if cutting {
            n = (limit.unwrap() - sent) as usize;
        }
        let mut out = None;
        if up {
            let fed = parser.feed(&buf[..n], current, sh);
            for (status, code) in std::mem::take(&mut parser.answers) {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code} (from the test relay)</Message></Error>"
                );
                let reply = format!(
                    "HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = from.write_all(reply.as_bytes());
            }
            out = Some(fed);
        } else if let Some(pat) = &sh.policy.lose_reply {
            let what = current.lock().unwrap().clone();
            if what.contains(pat.as_str()) && !sh.lost.swap(true, Ordering::SeqCst) {
                count_cut(sh, false, sent, &what);
                break;
            }
        }
        let bytes = out.as_deref().unwrap_or(&buf[..n]);
        throttle(sh, bytes.len() as u64);
        if to.write_all(bytes).is_err() {
            break;
        }
        sent += n as u64;
        {
            let mut t = sh.tally.lock().unwrap();
            if up {
                t.bytes_up += n as u64;
            } else {
                t.bytes_down += n as u64;
            }
        }
        if cutting {
            let end = if cut.is_some_and(|c| c.reset) { RESET } else { CLOSED };
            if done.compare_exchange(RUNNING, end, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                count_cut(sh, up, sent, &current.lock().unwrap());
            }
            break;
        }
    }
    if done.compare_exchange(RUNNING, CLOSED, Ordering::SeqCst, Ordering::SeqCst).is_err()
        && done.load(Ordering::SeqCst) == RESET
    {
        // An abortive close: wake the other thread without sending anything; the last close of
        // each socket then sends a reset (SO_LINGER 0).
        for s in [&from, &to] {
            reset(s);
            let _ = s.shutdown(Shutdown::Read);
        }
        return;
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn count_cut(sh: &Shared, up: bool, at: u64, what: &str) {
    let mut t = sh.tally.lock().unwrap();
    t.cuts += 1;
    t.log.push(format!("{} after {at} B, in {what}", if up { "up" } else { "down" }));
    let pack = what.contains("/packs/") && !what.contains("/size/");
    match (up, what.starts_with("PUT"), what.starts_with("GET")) {
        (true, true, _) if pack => t.pack_uploads += 1,
        (false, true, _) if pack => t.upload_replies += 1,
        (false, _, true) if pack => t.pack_downloads += 1,
        _ => t.other += 1,
    }
}

/// Makes the next close send a TCP reset instead of a FIN.
fn reset(s: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on an open socket with a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Waits until the bandwidth limit lets `n` more bytes through.
fn throttle(sh: &Shared, n: u64) {
    let Some(rate) = sh.policy.rate else { return };
    let until = {
        let mut next = sh.next_free.lock().unwrap();
        let start = (*next).max(Instant::now());
        *next = start + Duration::from_secs_f64(n as f64 / rate as f64);
        *next
    };
    let now = Instant::now();
    if until > now {
        std::thread::sleep(until - now);
    }
}

/// Follows the requests in the client → server byte stream: headers up to the blank line, then
/// `Content-Length` bytes of body. Returns the bytes to forward: the same, except that a request's
/// head is held until it is complete, then forwarded without the header `drop_header` names;
/// counts each request in the tally.
#[derive(Default)]
struct RequestParser {
    head: Vec<u8>,
    body_left: u64,
    /// The current request's body is swallowed, not forwarded (the relay answers it).
    swallow: Option<(u16, &'static str)>,
    /// Requests swallowed whole in the last `feed`, which the relay must answer itself.
    answers: Vec<(u16, &'static str)>,
}

impl RequestParser {
    fn feed(&mut self, mut data: &[u8], current: &Mutex<String>, sh: &Shared) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        while !data.is_empty() {
            if self.body_left > 0 {
                let k = (self.body_left as usize).min(data.len());
                self.body_left -= k as u64;
                match self.swallow {
                    None => out.extend_from_slice(&data[..k]),
                    Some(a) if self.body_left == 0 => self.answers.push(a), // swallowed whole
                    Some(_) => {}
                }
                data = &data[k..];
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            if self.head.len() == 1 || !self.head.ends_with(b"\r\n\r\n") {
                if self.head.len() > 64 * 1024 {
                    out.append(&mut self.head); // not HTTP as we know it: stop making sense of it
                }
                continue;
            }
            let text = String::from_utf8_lossy(&self.head).into_owned();
            let refused = {
                let mut t = sh.tally.lock().unwrap();
                let every = sh.policy.slow_down_every;
                let n = t.lines.len() as u64 + t.slowed + 1;
                let write = ["PUT ", "POST ", "DELETE "].iter().any(|m| text.starts_with(m));
                if every > 0 && n.is_multiple_of(every) {
                    t.slowed += 1;
                    Some((503, "SlowDown"))
                } else if write && sh.policy.refuse_writes.is_some() {
                    t.slowed += 1;
                    sh.policy.refuse_writes
                } else {
                    None
                }
            };
            self.swallow = refused;
            if let Some(answer) = refused {
                // Not forwarded: its body is swallowed, and the relay answers (after `feed`).
                self.head.clear();
                self.body_left = text
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.body_left == 0 {
                    self.answers.push(answer);
                }
                continue;
            }
            match &sh.policy.drop_header {
                Some(h) => {
                    for line in text.split_inclusive("\r\n") {
                        let name = line.split_once(':').map(|(k, _)| k.trim().to_ascii_lowercase());
                        if name.as_deref() != Some(h.as_str()) {
                            out.extend_from_slice(line.as_bytes());
                        }
                    }
                }
                None => out.extend_from_slice(&self.head),
            }
            self.head.clear();
            let mut lines = text.lines();
            let request_line = lines.next().unwrap_or("").to_string();
            {
                let mut t = sh.tally.lock().unwrap();
                let method = request_line.split(' ').next().unwrap_or("").to_string();
                *t.requests.entry(method.clone()).or_default() += 1;
                if method == "GET" && request_line.contains("list-type=") {
                    t.listings.push(request_line.clone());
                }
                t.lines.push(request_line.clone());
            }
            *current.lock().unwrap() = request_line;
            self.body_left = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
        }
        out
    }
}
