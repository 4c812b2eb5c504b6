//! The server's connection table: how many connections it holds, and which it closes to make
//! room, so that peers without a key can never keep a signed client out.
//!
//! Every accepted connection starts *fresh*; it becomes *trusted* once a request on it carries a
//! valid signature (checked on the request head, before any body is read). Fresh connections are
//! what a peer without a key can make, so they are the ones given up under pressure:
//! - one address holds at most `FRESH_PER_IP` fresh connections: beyond that, its oldest is closed;
//! - the server holds at most `cap` connections (at most half the file descriptors it may open,
//!   so handlers always have files to work with): beyond that, the oldest fresh connection is
//!   closed, and if every one is trusted the new connection is closed instead.
//!
//! So a thousand connections that never send a signed request cannot keep out a client that
//! does: its new connection displaces the oldest of them and is trusted with its first request.
//! Trusted connections are closed by the head timeout once idle (and by `Stall` when they stop
//! reading their replies), never displaced.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Fresh (not yet signed) connections one address may hold.
pub const FRESH_PER_IP: usize = 32;

pub struct Conns {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: usize,
    next: u64,
    /// Fresh connections by age (id), each with its address and what closes it.
    fresh: BTreeMap<u64, (IpAddr, Arc<Closer>)>,
    fresh_by_ip: HashMap<IpAddr, usize>,
}

impl Inner {
    fn forget_fresh(&mut self, id: u64) -> Option<Arc<Closer>> {
        let (ip, close) = self.fresh.remove(&id)?;
        if let Some(n) = self.fresh_by_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.fresh_by_ip.remove(&ip);
            }
        }
        Some(close)
    }

    /// Closes the oldest fresh connection (from `ip` only, if given); false if there is none.
    fn evict_oldest(&mut self, ip: Option<IpAddr>) -> bool {
        let Some(id) = self.fresh.iter().find(|(_, (a, _))| ip.is_none_or(|ip| *a == ip)).map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(close) = self.forget_fresh(id) {
            // Its place is free from now on; the notified task only drops the socket.
            self.open -= 1;
            close.evicted.store(true, Ordering::Relaxed);
            close.notify.notify_one();
        }
        true
    }
}

/// What closes one connection from outside: set and notified (under the table's lock) when the
/// table gave its place to another.
#[derive(Default)]
struct Closer {
    notify: Notify,
    evicted: AtomicBool,
}

/// One connection's place in the table; dropping it frees the place.
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    close: Arc<Closer>,
}

impl Conns {
    pub fn new(cap: usize) -> Conns {
        Conns { cap, inner: Mutex::new(Inner::default()) }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections held now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table().open
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, closing older fresh ones to make room; None when
    /// every place is held by a trusted connection.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut t = self.table();
        if t.fresh_by_ip.get(&ip).copied().unwrap_or(0) >= FRESH_PER_IP {
            t.evict_oldest(Some(ip));
        }
        if t.open >= self.cap && !t.evict_oldest(None) {
            return None;
        }
        let id = t.next;
        t.next += 1;
        t.open += 1;
        let close = Arc::new(Closer::default());
        t.fresh.insert(id, (ip, close.clone()));
        *t.fresh_by_ip.entry(ip).or_default() += 1;
        Some(Slot { conns: self.clone(), id, close })
    }
}

impl Slot {
    /// A request on this connection carried a valid signature: it is no longer displaced.
    pub fn trust(&self) {
        self.conns.table().forget_fresh(self.id);
    }

    /// Resolves once the table closed this connection to make room for another.
    pub async fn closed(&self) {
        self.close.notify.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.conns.table();
        // An evicted connection has already given its place back.
        if !self.close.evicted.load(Ordering::Relaxed) {
            t.forget_fresh(self.id);
            t.open -= 1;
        }
    }
}

/// The file descriptors this process may open, after raising its soft limit to the hard one.
pub fn raise_fd_limit() -> libc::rlim_t {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
        l.rlim_cur
    }
}

/// How many connections to hold with `fds` file descriptors: half of them (the rest serve the
/// handlers' files and the runtime), at least 16, at most 8192.
pub fn cap_for(fds: u64) -> usize {
    (fds / 2).clamp(16, 8192) as usize
}

/// A connection's stream, failed when a write makes no progress for `timeout`: a peer that stops
/// reading its replies (a full socket buffer) gives its connection up instead of holding it.
pub struct Stall<S> {
    inner: S,
    timeout: Duration,
    write_stuck: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Stall<S> {
    pub fn new(inner: S, timeout: Duration) -> Stall<S> {
        Stall { inner, timeout, write_stuck: None }
    }

    fn watch<T>(&mut self, cx: &mut Context<'_>, res: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if res.is_ready() {
            self.write_stuck = None;
            return res;
        }
        let timeout = self.timeout;
        let timer = self.write_stuck.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer stopped reading the reply",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, res)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn fresh_connections_make_room_and_trusted_ones_stay() {
        let t = Arc::new(Conns::new(16));
        let mut attacker: Vec<Slot> = (0..100).map(|_| t.admit(ip(1)).expect("room")).collect();
        // One address never holds more than FRESH_PER_IP fresh connections; the oldest went.
        assert_eq!(t.open(), FRESH_PER_IP.min(16));
        assert!(attacker[0].close.evicted.load(Ordering::Relaxed));
        assert!(!attacker[99].close.evicted.load(Ordering::Relaxed));
        // Another address gets in by displacing the oldest fresh one, and keeps its place once trusted.
        let signed = t.admit(ip(2)).expect("room");
        signed.trust();
        for _ in 0..100 {
            attacker.push(t.admit(ip(1)).expect("room"));
        }
        assert!(!signed.close.evicted.load(Ordering::Relaxed));
        assert_eq!(t.open(), 16);
        // Dropping evicted slots frees nothing twice; dropping live ones frees their places.
        drop(attacker);
        assert_eq!(t.open(), 1);
        // With every place trusted, a new connection is turned away.
        let full: Vec<Slot> = (0..15).map(|i| t.admit(ip(3 + i)).expect("room")).collect();
        full.iter().for_each(Slot::trust);
        assert!(t.admit(ip(1)).is_none());
        drop(full);
        drop(signed);
        assert_eq!(t.open(), 0);
    }

    #[test]
    fn the_connection_cap_leaves_files_for_the_handlers() {
        assert_eq!(cap_for(256), 128);
        assert_eq!(cap_for(1024), 512);
        assert_eq!(cap_for(20), 16);
        assert_eq!(cap_for(1 << 20), 8192);
    }
}
