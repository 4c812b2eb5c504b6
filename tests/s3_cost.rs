//! What S3 costs, counted where the provider counts it: at a relay between the client and a real
//! S3 server (moto), by HTTP method (issue 14). Requests per GiB stored (PUTs: the priced kind),
//! per unchanged re-backup (every request), per checkpoint, per restore; and that a normal create
//! never lists the whole bucket, only its own prefixes. The figures are printed (docs/BENCHMARKS.md
//! has the table) and bounded: ≤ 70 PUTs per GiB of new data without checkpoints, ≤ 30 requests
//! for an unchanged re-backup of any size. CI backs up 256 MiB and scales the PUTs to a GiB;
//! `ARCHIVER_S3_COST_MIB=1024` measures a whole GiB.

mod util;

use std::collections::BTreeMap;
use util::proxy::{Policy, Proxy, Tally};
use util::s3::S3;
use util::*;

/// Requests since `before`, by the kind S3 prices them by: `LIST` (a GET with `list-type=`),
/// `POST` (DeleteObjects), and the other methods.
fn since(before: &Tally, now: &Tally) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in &now.lines[before.lines.len()..] {
        let method = l.split(' ').next().unwrap_or("");
        let kind = if method == "GET" && l.contains("list-type=") { "LIST" } else { method };
        *out.entry(kind.to_string()).or_default() += 1;
    }
    out
}

fn total(r: &BTreeMap<String, u64>) -> u64 {
    r.values().sum()
}

#[test]
fn requests_per_gib_per_rebackup_per_checkpoint_and_per_restore() {
    let Some(s3) = S3::start() else { return };
    let bucket = s3.bucket();
    let relay = Proxy::start(s3.endpoint.trim_start_matches("http://"), Policy::default());
    let env = s3.env_at(&Env::bare(), &format!("s3://{bucket}/r"), relay.url("").trim_end_matches('/'));
    env.ok(["keygen"]);
    // 256 MiB by default; `ARCHIVER_S3_COST_MIB=1024` measures a whole GiB (not extrapolated).
    let mb: u64 = std::env::var("ARCHIVER_S3_COST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    write_data(&env.path("data/big.bin"), 1, mb * MIB);
    small_tree(&env.path("data/small"), 2, 200, 20_000);

    let t0 = relay.tally();
    env.ok(["create", "first", "data"]);
    let t1 = relay.tally();
    let first = since(&t0, &t1);
    let puts = first.get("PUT").copied().unwrap_or(0);
    eprintln!("first backup of {mb} MiB: {first:?}");

    env.ok(["create", "second", "data"]);
    let t2 = relay.tally();
    let unchanged = since(&t1, &t2);
    eprintln!("unchanged re-backup: {unchanged:?} = {} requests", total(&unchanged));
    for l in &t2.lines[t1.lines.len()..] {
        eprintln!("  {l}");
    }
    // Per GiB: what every run costs (the unchanged run's PUTs: lock, begin, metadata pack, index
    // segment, commit record, decision, manifest) plus what the data costs, scaled to a GiB.
    let fixed = unchanged.get("PUT").copied().unwrap_or(0);
    let per_gib = fixed as f64 + (puts - fixed) as f64 * 1024.0 / mb as f64;
    eprintln!("PUTs per GiB of new data: {fixed} per run + {} per {mb} MiB = {per_gib:.0}", puts - fixed);

    write_data(&env.path("data/new.bin"), 3, 128 * MIB);
    env.ok(["create", "--checkpoint-bytes", "64M", "third", "data"]);
    let t3 = relay.tally();
    eprintln!("128 MiB new with --checkpoint-bytes 64M: {:?}", since(&t2, &t3));

    let out = env.extract("third", &[]);
    let t4 = relay.tally();
    let restore = since(&t3, &t4);
    eprintln!("restore of {} MiB: {restore:?}", mb + 128 + 4);
    assert_same_tree(&env.path("data"), &out.join("data"));

    let whole_bucket: Vec<&String> =
        t4.listings.iter().filter(|l| !l.contains("prefix=r%2F") && !l.contains("prefix=r/")).collect();
    assert!(whole_bucket.is_empty(), "listings outside the repository's prefixes: {whole_bucket:?}");
    let broad: Vec<&String> = t4
        .listings
        .iter()
        .filter(|l| {
            l.contains("prefix=r%2Fpacks%2F&")
                || l.contains("prefix=r%2Findex%2F&")
                || l.ends_with("prefix=r%2F")
        })
        .collect();
    eprintln!("listings: {} in all; of a whole folder: {broad:?}", t4.listings.len());
    assert!(per_gib <= 70.0, "{per_gib:.1} PUTs per GiB stored");
    assert!(
        total(&unchanged) <= 30,
        "an unchanged re-backup took {} requests: {unchanged:?}",
        total(&unchanged)
    );
}
