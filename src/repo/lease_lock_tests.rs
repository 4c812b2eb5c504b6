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
