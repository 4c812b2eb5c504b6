//! A `Repository` decorator that retries each call under a `backend::retry::Policy`: the one
//! place a repository reached over a network (`repo::open` wraps the HTTP client in it) retries
//! a transient failure, with exponential backoff, jitter and the server's `Retry-After`.
//!
//! Retried: every call but `lock`. Each is idempotent by the repository contract (`Repository`,
//! docs/PROTOCOL.md "Idempotency"): reads and listings change nothing; `init`, `begin`, the
//! uploads and `checkpoint` are create-if-absent with the same bytes counting as success, so a
//! retry after a lost answer succeeds; `commit` and `finish` roll forward to the same state (a
//! retry after the commit finished is success); `abort` and `clean_partial` delete, and deleting
//! what is gone succeeds. `put_pack` takes its pack as `Bytes`, so a retry resends it without a
//! copy.
//!
//! Not retried here: `lock`. Taking the lock is not idempotent (a lease granted by an attempt
//! whose answer was lost is held by nobody until it runs out) and has its own waiting rules (a
//! held lock is waited for once, up to a bound); each kind of repository handles it with its
//! lock strategy (`lock::Locker`; the HTTP client's lease in `http`/`lease`).

use super::{CommitRequest, LockGuard, Pending, Repository};
use crate::backend::retry::Policy;
use crate::backend::StoreResult;
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;

pub struct RetryingRepo {
    inner: Arc<dyn Repository>,
    policy: Policy,
}

impl RetryingRepo {
    pub fn new(inner: Arc<dyn Repository>, policy: Policy) -> RetryingRepo {
        RetryingRepo { inner, policy }
    }
}

impl Repository for RetryingRepo {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_config(&self) -> StoreResult<Option<Vec<u8>>> {
        self.policy.run("reading the repository config", || self.inner.read_config())
    }
    fn init(&self, config: &[u8]) -> StoreResult<()> {
        self.policy.run("creating the repository", || self.inner.init(config))
    }
    fn access_list(&self) -> StoreResult<Option<Vec<u8>>> {
        self.policy.run("reading the access list", || self.inner.access_list())
    }
    fn put_access_list(&self, gen: u64, list: &[u8]) -> StoreResult<()> {
        self.policy.run("storing the access list", || self.inner.put_access_list(gen, list))
    }
    fn lock(&self, owner: &str) -> Result<Box<dyn LockGuard>> {
        self.inner.lock(owner)
    }
    fn head(&self) -> StoreResult<(u64, Option<Vec<u8>>)> {
        self.policy.run("reading the manifest", || self.inner.head())
    }
    fn generations(&self) -> StoreResult<Vec<u64>> {
        self.policy.run("listing manifest generations", || self.inner.generations())
    }
    fn manifest(&self, gen: u64) -> StoreResult<Vec<u8>> {
        self.policy.run("reading a manifest", || self.inner.manifest(gen))
    }
    fn begin(&self, txn: &str, intent: &[u8]) -> StoreResult<()> {
        self.policy.run("beginning a transaction", || self.inner.begin(txn, intent))
    }
    fn put_pack(&self, txn: &str, seq: u32, data: Bytes) -> StoreResult<String> {
        self.policy.run("storing a pack", || self.inner.put_pack(txn, seq, data.clone()))
    }
    fn put_index(&self, txn: &str, seq: u32, data: &[u8]) -> StoreResult<String> {
        self.policy.run("storing an index segment", || self.inner.put_index(txn, seq, data))
    }
    fn checkpoint(&self, txn: &str, seq: u32, record: &[u8]) -> StoreResult<()> {
        self.policy.run("storing a checkpoint", || self.inner.checkpoint(txn, seq, record))
    }
    fn checkpoint_record(&self, txn: &str, seq: u32) -> StoreResult<Vec<u8>> {
        self.policy.run("reading a checkpoint record", || self.inner.checkpoint_record(txn, seq))
    }
    fn commit(&self, txn: &str, req: &CommitRequest) -> StoreResult<()> {
        self.policy.run("committing", || self.inner.commit(txn, req))
    }
    fn finish(&self, txn: &str) -> StoreResult<()> {
        self.policy.run("finishing a commit", || self.inner.finish(txn))
    }
    fn abort(&self, txn: &str) -> StoreResult<()> {
        self.policy.run("discarding a transaction", || self.inner.abort(txn))
    }
    fn pending(&self) -> StoreResult<Vec<Pending>> {
        self.policy.run("listing pending transactions", || self.inner.pending())
    }
    fn clean_partial(&self) -> StoreResult<()> {
        self.policy.run("removing partial uploads", || self.inner.clean_partial())
    }
    fn read_pack(&self, pack: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.policy.run(&format!("reading pack {pack}"), || self.inner.read_pack(pack, offset, len))
    }
    fn pack_size(&self, pack: &str) -> StoreResult<u64> {
        self.policy.run(&format!("reading the size of pack {pack}"), || self.inner.pack_size(pack))
    }
    fn get_index(&self, name: &str) -> StoreResult<Vec<u8>> {
        self.policy.run(&format!("reading index segment {name}"), || self.inner.get_index(name))
    }
    fn list_packs(&self) -> StoreResult<Vec<String>> {
        self.policy.run("listing packs", || self.inner.list_packs())
    }
    fn list_indexes(&self) -> StoreResult<Vec<String>> {
        self.policy.run("listing index segments", || self.inner.list_indexes())
    }
    fn uploads_in_flight(&self) -> usize {
        self.inner.uploads_in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::{Fault, FaultyBackend, Op};
    use crate::backend::memory::MemoryBackend;
    use crate::backend::ErrorKind;
    use crate::repo::lock::ProcessLock;
    use crate::repo::objects::ObjectRepo;
    use std::time::Duration;

    fn over(faults: Vec<Fault>, attempts: u32) -> RetryingRepo {
        let backend = FaultyBackend::new(MemoryBackend::new(), faults);
        let repo = ObjectRepo::new(Box::new(backend), Box::new(ProcessLock::default()));
        let policy = Policy {
            attempts: Some(attempts),
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        };
        RetryingRepo::new(Arc::new(repo), policy)
    }

    /// A pack upload whose answer is lost twice is sent again, and its third attempt finds the
    /// object the first stored (create-if-absent: the same bytes are success).
    #[test]
    fn an_upload_whose_answers_were_lost_is_sent_again() {
        let lost = |n| Fault::new(Op::PutNew, "packs/", n, ErrorKind::Transient).answer_lost();
        let r = over(vec![lost(1), lost(2)], 3);
        r.begin("t1", b"intent").unwrap();
        let name = r.put_pack("t1", 0, Bytes::from_static(b"pack bytes")).expect("retried to success");
        assert_eq!(r.read_pack(&name, 0, 10).unwrap(), b"pack bytes");
        assert!(r.lock("me").is_ok(), "lock passes through");
    }

    #[test]
    fn a_permanent_failure_is_reported_at_once() {
        let r = over(vec![Fault::new(Op::List, "manifest/", 1, ErrorKind::Permanent)], 5);
        assert_eq!(r.head().unwrap_err().kind, ErrorKind::Permanent);
        assert_eq!(r.head().unwrap().0, 0, "the next call works");
    }

    /// A server on 127.0.0.1 that answers each connection with the next canned response (and
    /// closes it); reports when each request arrived.
    fn scripted(answers: Vec<&'static str>) -> (String, std::sync::mpsc::Receiver<std::time::Instant>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut conn, _)) = listener.accept() else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let _ = tx.send(std::time::Instant::now());
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        (addr, rx)
    }

    fn http_client(addr: &str, policy: Policy) -> RetryingRepo {
        let conn =
            super::super::Connect { access: crate::access::AccessKeys::derive(&[7; 32]), ca_cert: None };
        let url = format!("http://{addr}/r");
        let client = super::super::http::HttpRepo::new(&url, &conn, policy.clone()).unwrap();
        RetryingRepo::new(Arc::new(client), policy)
    }

    const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";
    const DOWN: &str = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown";
    const CONFIG: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nconfig";

    /// The HTTP client reports a 503 as transient with the server's `Retry-After`, and the
    /// decorator waits that long (1 s, more than its own backoff) before asking again.
    #[test]
    fn the_http_client_waits_as_long_as_a_busy_server_asks() {
        let (addr, arrived) = scripted(vec![BUSY, CONFIG]);
        let quick =
            Policy { attempts: Some(3), base: Duration::from_millis(1), cap: Duration::from_millis(5) };
        let got = http_client(&addr, quick).read_config().expect("the second attempt is answered");
        assert_eq!(got.as_deref(), Some(&b"config"[..]));
        let (first, second) = (arrived.recv().unwrap(), arrived.recv().unwrap());
        assert!(second - first >= Duration::from_secs(1), "asked again after {:?}", second - first);
    }

    #[test]
    fn the_http_client_gives_up_after_its_attempts_in_one_line() {
        let (addr, _arrived) = scripted(vec![DOWN, DOWN, CONFIG]);
        let quick =
            Policy { attempts: Some(2), base: Duration::from_millis(1), cap: Duration::from_millis(5) };
        let e = http_client(&addr, quick).head().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(
            e.msg,
            "reading the manifest: server answered 502: down (gave up after 2 attempts; ARCHIVER_RETRIES=forever keeps trying)"
        );
    }
}
