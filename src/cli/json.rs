//! `--json`: the objects the binary prints as JSON lines, one constructor per message type, so
//! that docs/SCRIPTING.md and the code agree in one place. Every object has `message_type`.
//! Names and paths are given as the text output shows them (`query::escape`: UTF-8, with `\\`,
//! control characters and bytes that are not UTF-8 escaped), times as RFC 3339 in UTC plus
//! seconds since the epoch, sizes in bytes.

use archiver::archive::{Node, NodeKind};
use archiver::manifest::ArchiveRef;
use archiver::query::{escape, escape_name};
use serde_json::{json, Value};

/// `2026-11-27T00:30:00Z`.
pub fn time(secs: i64) -> String {
    let c = archiver::calendar::utc(secs);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

pub fn message(kind: &str, text: &str) -> Value {
    json!({ "message_type": kind, "message": text })
}

/// The error a command ended with (on stderr), with the exit code it ends with.
pub fn exit_error(code: i32, text: &str) -> Value {
    json!({ "message_type": "exit_error", "code": code, "message": text })
}

pub fn archive(a: &ArchiveRef) -> Value {
    json!({
        "message_type": "archive",
        "name": escape_name(&a.name),
        "time": time(a.time),
        "time_unix": a.time,
        "partial": a.partial,
        "files": a.stats.files,
        "dirs": a.stats.dirs,
        "symlinks": a.stats.symlinks,
        "size": a.stats.raw,
        "stored_size": a.stats.stored,
        "new_size": a.stats.new_raw,
        "new_stored_size": a.stats.new_stored,
    })
}

pub fn node(n: &Node) -> Value {
    let kind = match n.kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Hardlink => "hardlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDev => "chardev",
        NodeKind::BlockDev => "blockdev",
    };
    let mut v = json!({
        "message_type": "node",
        "path": escape(&n.path),
        "type": kind,
        "mode": n.mode & 0o7777,
        "uid": n.uid,
        "gid": n.gid,
        "size": n.size,
        "mtime": time(n.mtime),
        "mtime_unix": n.mtime,
        "mtime_ns": n.mtime_ns,
        "partial": n.partial,
    });
    if !n.uname.is_empty() {
        v["user"] = Value::from(escape(&n.uname));
    }
    if !n.gname.is_empty() {
        v["group"] = Value::from(escape(&n.gname));
    }
    if matches!(n.kind, NodeKind::Symlink | NodeKind::Hardlink) {
        v["target"] = Value::from(escape(&n.target));
    }
    if matches!(n.kind, NodeKind::CharDev | NodeKind::BlockDev) {
        v["device_major"] = Value::from(libc::major(n.rdev));
        v["device_minor"] = Value::from(libc::minor(n.rdev));
    }
    v
}

/// One row of the size table: `scope` is `all`, `unique` or `archive` (with `name`).
pub fn stats_row(
    scope: &str,
    name: Option<&str>,
    (size, stored): (u64, u64),
    new: Option<(u64, u64)>,
) -> Value {
    let mut v = json!({ "message_type": "stats", "scope": scope, "size": size, "stored_size": stored });
    if let Some(n) = name {
        v["name"] = Value::from(escape_name(n));
    }
    if let Some((size, stored)) = new {
        v["new_size"] = Value::from(size);
        v["new_stored_size"] = Value::from(stored);
    }
    v
}

/// Generations newest first, with what each added to and removed from the one before it.
pub fn generations(gens: &[archiver::history::Generation]) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, g) in gens.iter().enumerate().rev() {
        let mut v = json!({
            "message_type": "generation",
            "generation": g.gen,
            "current": i + 1 == gens.len(),
            "damaged": g.damaged,
        });
        if g.damaged.is_none() {
            v["archives"] = Value::from(g.archives.iter().map(|a| escape_name(a)).collect::<Vec<_>>());
            if let Some(prev) = i.checked_sub(1).map(|p| &gens[p]).filter(|p| p.damaged.is_none()) {
                let diff = |a: &[String], b: &[String]| -> Vec<String> {
                    a.iter().filter(|n| !b.contains(n)).map(|n| escape_name(n)).collect()
                };
                v["added"] = Value::from(diff(&g.archives, &prev.archives));
                v["removed"] = Value::from(diff(&prev.archives, &g.archives));
            }
        }
        out.push(v);
    }
    out
}

pub fn decision(d: &archiver::retention::Decision, dry_run: bool) -> Value {
    json!({
        "message_type": "prune_decision",
        "name": escape_name(&d.name),
        "time": time(d.time),
        "time_unix": d.time,
        "partial": d.partial,
        "keep": d.keep,
        "reasons": d.reasons,
        "dry_run": dry_run,
    })
}

pub fn fsck(r: &archiver::fsck::FsckReport) -> Value {
    json!({
        "message_type": "summary",
        "command": "fsck",
        "clean": r.is_clean(),
        "generation": r.gen,
        "archives": r.archives,
        "files": r.files,
        "blocks_referenced": r.referenced,
        "blocks_indexed": r.indexed_blocks,
        "bytes_indexed": r.indexed_bytes,
        "bytes_read": r.read,
        "index_rebuilt": r.index_rebuilt.is_some(),
        "orphan_packs": r.orphan_packs.len(),
        "orphan_bytes": r.orphan_bytes,
        "orphan_segments": r.orphan_segments.len(),
        "blocks_verified": r.verified.map(|v| v.0),
        "blocks_damaged": r.verified.map(|v| v.2),
        "packs_verified": r.sampled.map(|s| s.0),
        "packs": r.sampled.map(|s| s.1),
        "sample_percent": r.sampled.map(|s| s.2 * 100.0),
        "bytes_reclaimed": r.pruned.as_ref().map(|p| p.reclaimed),
        "problems": r.problems,
        "notes": r.relisted.iter().chain(&r.repaired).collect::<Vec<_>>(),
    })
}
