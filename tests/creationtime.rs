//! `create --creationtime EPOCH` (tarsnap's option): the archive records EPOCH as its creation
//! time, shown by `list -v` and kept by a checkpoint's `NAME.part`; a value that is not whole
//! seconds from 0 to the end of year 9999 is one line, exit 1, nothing stored.

mod util;

use util::*;

#[test]
fn creationtime_is_recorded_and_bad_values_are_refused() {
    let env = Env::new();
    small_tree(&env.path("d"), 1, 5, 10_000);
    env.ok(["create", "--creationtime", "1234567890", "old", "d"]);
    env.ok(["create", "now", "d"]);
    let listing = env.ok(["list", "-v"]).stdout;
    let old = listing.lines().find(|l| l.starts_with("old\t")).expect("old listed");
    assert!(old.contains("2009-02-13 23:31:30"), "{old}");
    let now = listing.lines().find(|l| l.starts_with("now\t")).expect("now listed");
    assert!(!now.contains("2009-02-13"), "{now}");
    for bad in ["-1", "12.5", "soon", "253402300800", ""] {
        env.run(["create", &format!("--creationtime={bad}"), "bad", "d"])
            .assert_one_line_error(1)
            .assert_stderr_contains("--creationtime");
    }
    assert_eq!(env.list(), ["now", "old"]);
}
