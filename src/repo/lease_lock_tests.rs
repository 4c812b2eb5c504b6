//! The lease lock against the in-memory backend and a real S3 server (moto): one holder at a time,
//! a live holder refused in one line that names it, a dead holder's lease taken over after the
//! TTL with a notice, a release that frees the lock at once, and a holder that finds its lease
//! taken (it was presumed dead) saying so.

use super::*;
use crate::backend::memory::MemoryBackend;
use crate::backend::s3_server::MotoServer;

const TTL: Duration = Duration::from_millis(600);

fn lock_on(backend: Arc<dyn Backend>) -> LeaseLock {
    LeaseLock { backend, key: crate::layout::LOCK.into(), ttl: TTL }
}

fn checks(backend: Arc<dyn Backend>) {
    let l = lock_on(backend.clone());
    // One holder; a second is refused while the first renews, in one line naming the first.
    let held = l.lock("archiver create, pid 1 on host a").unwrap();
    assert!(held.notice().is_none());
    let started = Instant::now();
    let err = format!("{:#}", l.lock("archiver delete, pid 2 on host b").err().expect("refused"));
    assert!(err.contains("pid 1 on host a") && err.contains("alive") && !err.contains('\n'), "{err}");
    assert!(started.elapsed() < TTL, "a live holder is recognised within a TTL");
    // A holder that keeps renewing stays the holder past several TTLs.
    std::thread::sleep(TTL * 2);
    assert!(l.lock("late").is_err(), "the renewed lease must still hold");
    // Released: the next takes it at once, without a notice.
    drop(held);
    let next = l.lock("archiver fsck, pid 3 on host c").unwrap();
    assert!(next.notice().is_none());
    drop(next);
    // A lease left by a dead holder (written, never renewed) is taken over after the TTL.
    backend
        .put_new(
            crate::layout::LOCK,
            b"archiver create, pid 9 on host dead, since unix time 5\ntoken x\nbeat 0\n",
        )
        .unwrap();
    let started = Instant::now();
    let taken = l.lock("archiver create, pid 4 on host d").unwrap();
    assert!(started.elapsed() >= TTL, "a lease is broken only after a whole TTL unchanged");
    let notice = taken.notice().expect("a notice");
    assert!(notice.contains("pid 9 on host dead") && notice.contains("since unix time 5"), "{notice}");
    // The presumed-dead holder comes back: its renewal finds another token and reports the loss.
    let text = backend.get(crate::layout::LOCK).unwrap();
    assert!(String::from_utf8_lossy(&text).contains("pid 4 on host d"));
    drop(taken);
    assert!(backend.get(crate::layout::LOCK).is_err(), "a release deletes the lease");
}

#[test]
fn a_lease_admits_one_live_holder_and_frees_itself_after_its_holder_dies_in_memory() {
    checks(Arc::new(MemoryBackend::new()));
}

#[test]
fn a_holder_whose_lease_was_taken_over_knows_it() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let l = lock_on(backend.clone());
    let guard = l.lock("first").unwrap();
    // Another client broke the lease (as after a long pause of this one) and holds it now.
    backend.put(crate::layout::LOCK, b"second, since unix time 7\ntoken other\nbeat 0\n").unwrap();
    assert!(!guard.lost(), "nothing seen yet");
    std::thread::sleep(TTL);
    assert!(guard.lost(), "the next renewal finds another holder's token");
    drop(guard);
    let text = backend.get(crate::layout::LOCK).expect("the other holder's lease stays");
    assert!(String::from_utf8_lossy(&text).starts_with("second"), "a lost lease is not deleted on release");
}

#[test]
fn a_lease_admits_one_live_holder_and_frees_itself_after_its_holder_dies_on_s3() {
    let Some(server) = MotoServer::start() else { return };
    server.bucket("leases");
    checks(Arc::new(server.backend("s3://leases/repo")));
}

/// What another client does while a holder is stopped.
type Meanwhile = Box<dyn FnOnce(&MemoryBackend) + Send>;

/// A store whose reads (or writes) of the lease stall once, for longer than the TTL, after `after`
/// of them: a holder stopped between its check that the lease is ours and its renewal (or while
/// its renewal is on its way).
struct Stalling {
    inner: MemoryBackend,
    reads: std::sync::atomic::AtomicU32,
    after: u32,
    writes: bool,
    /// What another client does while the holder is stopped (it broke the lease and took it).
    meanwhile: Mutex<Option<Meanwhile>>,
}

impl Stalling {
    fn stall_at(&self, write: bool) {
        if write == self.writes && self.reads.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            std::thread::sleep(TTL + TTL / 2);
            if let Some(f) = self.meanwhile.lock().unwrap().take() {
                f(&self.inner);
            }
        }
    }
}

impl Backend for Stalling {
    fn describe(&self) -> String {
        "stalling".into()
    }
    fn put(&self, key: &str, data: &[u8]) -> crate::backend::StoreResult<()> {
        self.stall_at(true);
        self.inner.put(key, data)
    }
    fn put_new(&self, key: &str, data: &[u8]) -> crate::backend::StoreResult<()> {
        self.inner.put_new(key, data)
    }
    fn get(&self, key: &str) -> crate::backend::StoreResult<Vec<u8>> {
        let got = self.inner.get(key);
        self.stall_at(false);
        got
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> crate::backend::StoreResult<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }
    fn list(&self, prefix: &str) -> crate::backend::StoreResult<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> crate::backend::StoreResult<()> {
        self.inner.delete(key)
    }
    fn size(&self, key: &str) -> crate::backend::StoreResult<u64> {
        self.inner.size(key)
    }
    fn clean_partial(&self) -> crate::backend::StoreResult<()> {
        Ok(())
    }
}

fn another_client_takes_the_lock() -> Meanwhile {
    Box::new(|b| b.put(crate::layout::LOCK, b"second, since unix time 7\ntoken other\nbeat 0\n").unwrap())
}

/// Regression (seen in tests/s3_crash.rs, 1 run in 6): a holder stopped after reading its own
/// lease and before renewing it woke after another client took the lock, overwrote that
/// client's lease with its own, and then believed it still held the lock.
#[test]
fn a_holder_stopped_between_check_and_renewal_gives_the_lease_up() {
    let inner = MemoryBackend::new();
    let stalling = Stalling {
        inner: inner.clone(),
        reads: Default::default(),
        after: 1,
        writes: false,
        meanwhile: Mutex::new(Some(another_client_takes_the_lock())),
    };
    let l = lock_on(Arc::new(stalling));
    let guard = l.lock("first").unwrap();
    std::thread::sleep(TTL * 3);
    assert!(guard.lost() && !guard.still_held(), "the stopped holder still believes it holds the lock");
    drop(guard);
    let text = inner.get(crate::layout::LOCK).unwrap();
    assert!(String::from_utf8_lossy(&text).starts_with("second"), "the new holder's lease was overwritten");
}

/// A renewal stalled on its way for longer than the TTL lands over the new holder's lease: the
/// stalled holder must not go on as if it held the lock.
#[test]
fn a_holder_whose_renewal_lands_after_the_ttl_gives_the_lease_up() {
    let inner = MemoryBackend::new();
    let stalling = Stalling {
        inner: inner.clone(),
        reads: Default::default(),
        // The lease is created with put_new: the first put is the first renewal.
        after: 1,
        writes: true,
        meanwhile: Mutex::new(Some(another_client_takes_the_lock())),
    };
    let l = lock_on(Arc::new(stalling));
    let guard = l.lock("first").unwrap();
    std::thread::sleep(TTL * 3);
    assert!(guard.lost() && !guard.still_held(), "the stalled holder still believes it holds the lock");
}
