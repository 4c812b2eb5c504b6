//! archiver: a deduplicating, encrypting backup archiver with crash-safe transactions.
//!
//! Layers, top down: `create` / `extract` / `delete` / `query` (commands as library calls) →
//! `txn` (write transactions: the only place that orders cache and repository durability) →
//! `archive`, `manifest`, `index`, `pack` (formats) → `repo` (the transactional repository API)
//! → `backend` (dumb object stores). `crypto` and `chunker` are leaves. The library never
//! prints: progress and warnings reach the caller through `progress::Event` callbacks.

pub mod access;
pub mod archive;
pub mod backend;
pub mod cache;
pub mod calendar;
pub mod chunker;
pub mod codec;
#[cfg(test)]
mod codec_roundtrip;
pub mod config;
#[doc(hidden)]
pub mod craft;
pub mod create;
pub mod crypto;
pub mod damage;
pub mod delete;
pub mod dirnames;
pub mod extract;
pub mod failpoint;
pub mod fsck;
pub mod fsmeta;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod holes;
pub mod idsort;
pub mod index;
pub mod inputs;
pub mod keycheck;
pub mod keyfile;
pub mod keyseal;
pub mod layout;
pub mod limits;
pub mod manifest;
pub mod metastream;
pub mod operands;
pub mod owners;
pub mod pack;
pub mod place;
pub mod process;
pub mod progress;
pub mod prune;
pub mod query;
pub mod reader;
pub mod rebuild;
pub mod reclaim;
pub mod repo;
pub mod retention;
pub mod revoke;
pub mod scan;
pub mod select;
pub mod serve;
pub mod session;
pub mod stat;
pub mod txn;
pub mod units;
pub mod walker;
