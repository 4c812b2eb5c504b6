//! Crafting repository content through the library, as any holder of the key could: archives
//! whose root and metadata say whatever the test wants, and manifests edited at will. The
//! crafter uses its own cache directory, so the environment's cache learns of the change the
//! way a victim's would.

use super::Env;
use archiver::archive::{Node, NodeKind, Root};
use archiver::crypto::BlockId;
use archiver::index::Segment;
use archiver::manifest::{ArchiveRef, Manifest};
use archiver::pack::Kind;
use archiver::session::{Session, Settings};
use archiver::txn::Txn;

/// A session on `env`'s repository with its key, and a cache of its own (the crafter's).
pub fn crafter(env: &Env) -> Session {
    session_as(env, &env.key, "crafter-cache")
}

/// A session on `env`'s repository with key file `key` and the cache directory `cache` (under
/// the working directory), as a holder of that key could open it through the library.
pub fn session_as(env: &Env, key: &std::path::Path, cache: &str) -> Session {
    let settings = Settings {
        repo: env.repo.display().to_string(),
        keyfile: key.to_path_buf(),
        cachedir: env.path(cache),
        ca_cert: None,
        lock_wait: None,
        rates: Default::default(),
        passphrase: None,
    };
    Session::open(&settings).expect("the key opens the repository")
}

/// Commits archive `name` whose root lists the metadata blocks `blocks` (each stored once) in
/// the order and repetition `listing` gives, with `extra` added to the transaction's index
/// segment.
pub fn commit_archive(env: &Env, name: &str, blocks: &[Vec<u8>], listing: Vec<usize>, extra: Segment) {
    let session = crafter(env);
    let _lock = session.repo.lock("crafter").unwrap();
    let head = session.head().unwrap();
    let cache = session.open_cache(&head, &|_| {}).unwrap();
    let mut txn = Txn::begin(&session, head.0.clone(), cache, b"crafted").unwrap();
    let ids: Vec<(BlockId, u32)> =
        blocks.iter().map(|b| (txn.put(Kind::Meta, b).unwrap(), b.len() as u32)).collect();
    let root = Root {
        name: name.into(),
        time: 1,
        host: "h".into(),
        meta: listing.iter().map(|&i| ids[i]).collect(),
        command: Vec::new(),
    };
    let bytes = root.encode();
    let root_id = txn.put(Kind::Root, &bytes).unwrap();
    let archive = ArchiveRef {
        name: name.into(),
        root: root_id,
        root_len: bytes.len() as u32,
        time: 1,
        partial: false,
        stats: Default::default(),
    };
    txn.commit(
        extra,
        move |m, new, _| {
            m.insert(archive);
            m.indexes.extend_from_slice(new);
        },
        Vec::new(),
        Vec::new(),
    )
    .unwrap();
}

pub fn node(path: Vec<u8>, kind: NodeKind) -> Node {
    Node { mode: if kind == NodeKind::Dir { 0o40755 } else { 0o100644 }, ..Node::new(path, kind) }
}

/// Commits a manifest edited by `edit` (nothing stored but the new generation), keeping the
/// generation it supersedes as a commit with the write key alone does.
pub fn commit_edit(env: &Env, edit: impl FnOnce(&mut Manifest)) {
    let session = crafter(env);
    let _lock = session.repo.lock("crafter").unwrap();
    let head = session.head().unwrap();
    let cache = session.open_cache(&head, &|_| {}).unwrap();
    let mut txn = Txn::begin(&session, head.0.clone(), cache, b"crafted").unwrap();
    txn.keep_history = true;
    txn.commit(Segment::default(), |m, _, _| edit(m), Vec::new(), Vec::new()).unwrap();
}
