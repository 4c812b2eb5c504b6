//! Writing an archive from a given list of nodes, exactly as listed: paths, order, duplicates and
//! attributes are not checked or normalised. This is what a holder of a write key can store
//! without `create`'s rules, so tests use it to craft hostile archives (`tests/extract_escape.rs`).
//! Not part of the supported API.

use crate::archive::Node;
use crate::pack::Kind;
use crate::session::Session;
use crate::txn::{Draft, Txn};
use anyhow::Result;

/// Stores archive `name` holding `nodes` in this order. A file node's content is the bytes given
/// with it (cut by the keyed chunker); its `size` and `blocks` are filled in from them.
pub fn store_archive(session: &Session, name: &str, nodes: Vec<(Node, Vec<u8>)>) -> Result<()> {
    let _writing = crate::txn::lock(session, "craft", &|_| {}, Default::default())?;
    let head = session.head()?;
    let cache = session.open_cache(&head, &|_| {})?;
    let mut txn = Txn::begin(session, head.0, cache, b"crafted archive")?;
    let chunker = session.chunker();
    let mut stream = Vec::new();
    for (mut node, content) in nodes {
        let mut rest = &content[..];
        node.blocks.clear();
        while !rest.is_empty() {
            let n = chunker.cut(rest);
            node.blocks.push((txn.put(Kind::Data, &rest[..n])?, n as u32));
            rest = &rest[n..];
        }
        node.size = content.len() as u64;
        let mut w = crate::codec::Writer::new();
        node.encode(&mut w);
        stream.extend_from_slice(&w.finish());
    }
    let mut meta = Vec::new();
    let mut rest = &stream[..];
    let chunker = chunker.with_sizes(crate::chunker::META);
    while !rest.is_empty() {
        let n = chunker.cut(rest);
        meta.push((txn.put(Kind::Meta, &rest[..n])?, n as u32));
        rest = &rest[n..];
    }
    let time = crate::process::now_ns() / 1_000_000_000;
    txn.commit_archive(Draft {
        name: name.to_string(),
        time,
        meta,
        stats: Default::default(),
        command: vec![],
    })?;
    Ok(())
}
