//! `archiver serve --store s3://BUCKET/PREFIX` (issue 14): the split-key server in front of a
//! bucket, two servers fronting the same bucket at once. Each repository lives under
//! `PREFIX/NAME/`; the lock, create-if-absent and decisions live in the bucket, so clients of
//! either server see one repository, and two writers through two servers are kept apart.

mod util;

use util::crash::wait_out;
use util::s3::S3;
use util::server::Server;
use util::*;

#[test]
fn two_servers_front_one_bucket() {
    let Some(s3) = S3::start() else { return };
    let bucket = s3.bucket();
    let mut vars = s3.vars(&s3.endpoint);
    vars.push(("ARCHIVER_LOCK_TTL".into(), "3".into()));
    let store = format!("s3://{bucket}/srv");
    let (one, two) = (Server::start_s3(&store, &vars), Server::start_s3(&store, &vars));
    let base = Env::bare();
    let a = one.client(&base, "r");
    a.ok(["keygen"]);
    small_tree(&a.path("small"), 5, 20, 100_000);
    write_data(&a.path("big/a.bin"), 6, 40 * MIB);
    a.ok(["create", "--checkpoint-bytes", "4M", "first", "small"]);
    // The repository is in the bucket under srv/r/, nowhere else.
    let keys = s3.objects(&format!("s3://{bucket}"));
    assert!(keys.keys().all(|k| k.starts_with("srv/r/")), "{keys:?}");
    assert!(keys.contains_key("srv/r/config"));

    // The other server serves the same repository.
    let b = two.client(&base, "r").with_cache("cache-b");
    assert_eq!(b.list(), ["first"]);
    let out = b.extract("first", &[]);
    assert_same_tree(&a.path("small"), &out.join("small"));
    std::fs::remove_dir_all(out).unwrap();

    // Two writers, one through each server: one works, the other is told the lock is taken.
    // The first writes through a relay limited to 8 MB/s: it holds the lock for seconds.
    let slow = util::proxy::Proxy::start(
        &one.addr,
        util::proxy::Policy { rate: Some(8 << 20), ..Default::default() },
    );
    let writer = util::server::client_env(&a, &slow.url("r")).spawn_piped(&["create", "big", "big"]);
    s3.wait_for_lease(&format!("s3://{bucket}/srv/r"));
    let second = b.run(["create", "second", "small"]);
    let first = wait_out(writer);
    assert_eq!(first.code, 0, "{}", first.stderr);
    eprintln!("the second writer was told: {}", second.stderr);
    second.assert_one_line_error(1).assert_stderr_contains("locked by another archiver");
    assert_eq!(second.stderr.matches("locked by another").count(), 1, "said twice: {}", second.stderr);
    assert_eq!(b.list(), ["big", "first"]);
    b.ok(["create", "second", "small"]);
    a.ok(["fsck", "--verify-data"]);
    assert_eq!(a.list(), ["big", "first", "second"]);
}
