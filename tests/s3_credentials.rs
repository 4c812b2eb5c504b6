//! Wrong credentials on S3 (issue 14): against a server that checks SigV4 signatures (s3s-fs,
//! `util::s3fs`; moto accepts any key), a wrong secret and an unknown access key are each one
//! line, exit 1, naming the credentials as the problem, never showing the secret, and writing
//! nothing, for `keygen`, `create` and `list`.

mod util;

use util::s3::S3;
use util::*;

/// `env` with its `AWS_*` credentials replaced by `key` and `secret`.
fn with_key(env: &Env, key: &str, secret: &str) -> Env {
    let mut e = env.view();
    e.vars.retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY");
    e.vars.push(("AWS_ACCESS_KEY_ID".into(), key.into()));
    e.vars.push(("AWS_SECRET_ACCESS_KEY".into(), secret.into()));
    e
}

#[test]
fn wrong_credentials_are_one_line_and_write_nothing() {
    let home = Env::bare();
    let Some(s3) = S3::start_on_disk(&home.path("s3-root")) else { return };
    let bucket = s3.bucket();
    let url = format!("s3://{bucket}/r");
    let env = s3.env(&home, &url);
    small_tree(&env.path("data"), 1, 10, 50_000);
    let (key, _) = util::s3fs::KEY;
    let wrong_secret = "not-the-secret-0123456789";
    let cases =
        [(key, wrong_secret, "wrong secret"), ("AKIANOBODYKNOWS", wrong_secret, "unknown access key")];

    // Before the repository exists: keygen writes nothing and says what is wrong.
    for (k, s, what) in cases {
        let out = with_key(&env, k, s).run(["keygen"]);
        out.assert_one_line_error(1);
        assert!(!out.stderr.contains(s), "{what}: the secret appears in: {}", out.stderr);
        assert!(
            ["credential", "signature", "access key"].iter().any(|w| out.stderr.to_lowercase().contains(w)),
            "{what}: the message does not name the credentials: {}",
            out.stderr
        );
        assert!(!env.key.exists(), "{what}: keygen left a key file");
        assert!(s3.objects(&url).is_empty(), "{what}: keygen wrote {:?}", s3.objects(&url));
    }

    // An existing repository: nothing changes, nothing is read.
    env.ok(["keygen"]);
    env.ok(["create", "one", "data"]);
    write_data(&env.path("data/new.bin"), 2, 2 * MIB);
    let before = s3.objects(&url);
    for (k, s, what) in cases {
        for args in [&["create", "two", "data"][..], &["list"], &["extract", "one", "-C", "out"]] {
            let out = with_key(&env, k, s).run(args);
            out.assert_one_line_error(1);
            assert!(!out.stderr.contains(s), "{what}, {args:?}: the secret appears in: {}", out.stderr);
            assert_eq!(s3.objects(&url), before, "{what}, {args:?}: the bucket changed");
        }
    }
    assert!(!env.path("out").exists(), "extract with wrong credentials wrote files");
    assert_eq!(env.list(), ["one"]);
    env.ok(["create", "two", "data"]);
    env.ok(["fsck"]);
}
