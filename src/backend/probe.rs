//! The check a store must pass before a repository is made on it: create-if-absent really refuses
//! a second create. Manifest generations, commit decisions, checkpoint records and the lock all
//! rest on it; a store that silently accepts both writes (some S3 gateways ignore
//! `If-None-Match: *`) would let two writers both commit, so such a store is refused in one line.
//! `keygen` runs it on S3 (issue 14); a local directory's `hard_link` cannot fail it.

use super::{Backend, ErrorKind};
use anyhow::{bail, Context, Result};

/// Writes one probe object twice with `put_new` and requires the second to be refused with
/// `Exists` and the first to stay; removes the probe. `key` is where the probe goes.
pub fn create_if_absent_holds(backend: &dyn Backend, key: &str) -> Result<()> {
    let where_ = backend.describe();
    backend.put_new(key, b"first").with_context(|| format!("cannot write a probe object to {where_}"))?;
    let second = backend.put_new(key, b"second");
    let kept = backend.get(key);
    let _ = backend.delete(key);
    match second {
        Err(e) if e.kind == ErrorKind::Exists => {}
        Ok(()) => bail!(
            "storage at {where_} accepted a second create of the same object (it ignores If-None-Match: *, conditional writes): two writers could both commit, so archiver cannot keep a repository there; use a service or gateway with conditional writes"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot probe conditional writes at {where_}")),
    }
    match kept {
        Ok(bytes) if bytes == b"first" => Ok(()),
        Ok(_) => bail!(
            "storage at {where_} refused a second create of an object but replaced it anyway: conditional writes do not hold there, so archiver cannot keep a repository there"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read back a probe object at {where_}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::backend::s3_server::MotoServer;
    use crate::backend::StoreResult;

    /// A store whose create-if-absent is a plain overwrite, as on a gateway that drops the
    /// condition.
    struct Careless(MemoryBackend);

    impl Backend for Careless {
        fn describe(&self) -> String {
            "careless gateway".into()
        }
        fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
            self.0.put(key, data)
        }
        fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
            self.0.put(key, data)
        }
        fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
            self.0.get(key)
        }
        fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
            self.0.get_range(key, offset, len)
        }
        fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
            self.0.list(prefix)
        }
        fn delete(&self, key: &str) -> StoreResult<()> {
            self.0.delete(key)
        }
        fn size(&self, key: &str) -> StoreResult<u64> {
            self.0.size(key)
        }
        fn clean_partial(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    #[test]
    fn a_store_that_ignores_the_condition_is_refused_in_one_line() {
        create_if_absent_holds(&MemoryBackend::new(), "probe").unwrap();
        let careless = Careless(MemoryBackend::new());
        let err = format!("{:#}", create_if_absent_holds(&careless, "probe").unwrap_err());
        assert!(
            err.contains("careless gateway") && err.contains("If-None-Match") && !err.contains('\n'),
            "{err}"
        );
        assert!(careless.list("").unwrap().is_empty(), "the probe is removed");
    }

    #[test]
    fn a_real_s3_server_with_conditional_writes_passes() {
        let Some(server) = MotoServer::start() else { return };
        server.bucket("probe");
        let s3 = server.backend("s3://probe/r");
        create_if_absent_holds(&s3, "probe-object").unwrap();
        assert!(s3.list("").unwrap().is_empty(), "the probe is removed");
    }
}
