//! `--json` against its documentation: every command that prints is run with `--json`; every
//! stdout line must be one JSON object with a `message_type`, a failing command must print
//! exactly one `exit_error` object on stderr (with its exit code) and nothing else, every message
//! type docs/SCRIPTING.md documents must appear, and every field seen must be documented there
//! under its type.

mod util;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use util::*;

/// docs/SCRIPTING.md's sections: `type` or `summary/command` to the fields its table lists.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SCRIPTING.md")).unwrap();
    let mut sections = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### `") {
            let (ty, rest) = h.split_once('`').unwrap();
            let key = match rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                Some(cmd) => format!("{ty}/{cmd}"),
                None => ty.to_string(),
            };
            sections.insert(key.clone(), BTreeSet::new());
            current = Some(key);
        } else if line.starts_with("## ") {
            current = None;
        } else if let (Some(key), Some(row)) = (&current, line.strip_prefix("| `")) {
            // The first cell: one or more `field` names.
            let cell = row.split(" |").next().unwrap();
            let fields = cell.split('`').enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, f)| f.to_string());
            sections.get_mut(key).unwrap().extend(fields.filter(|f| !f.is_empty() && !f.starts_with(',')));
        }
    }
    sections
}

/// The key an object is documented under.
fn key_of(v: &Value) -> String {
    let ty = v["message_type"].as_str().unwrap_or_else(|| panic!("no message_type: {v}"));
    match (ty, v["command"].as_str()) {
        ("summary", Some(cmd)) => format!("summary/{cmd}"),
        _ => ty.to_string(),
    }
}

struct Seen {
    docs: BTreeMap<String, BTreeSet<String>>,
    types: BTreeSet<String>,
}

impl Seen {
    fn check(&mut self, v: &Value, what: &str) {
        let key = key_of(v);
        let fields =
            self.docs.get(&key).unwrap_or_else(|| panic!("{what}: type {key} is not documented: {v}"));
        for f in v.as_object().unwrap().keys().filter(|f| *f != "message_type") {
            assert!(fields.contains(f), "{what}: field {f:?} of {key} is not documented: {v}");
        }
        self.types.insert(key);
    }

    /// Runs `args` with `--json`: checks stdout, and stderr (empty, or one exit_error object
    /// carrying the exit code). Returns the stdout objects.
    fn run(&mut self, env: &Env, args: &[&str]) -> (i32, Vec<Value>) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = env.run(&all);
        out.assert_no_panic();
        let mut objects = Vec::new();
        for line in out.stdout.lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line:?}"));
            self.check(&v, &format!("{args:?}"));
            objects.push(v);
        }
        let errs: Vec<&str> = out.stderr.lines().collect();
        if out.code == 0 {
            assert!(errs.is_empty(), "{args:?} succeeded but wrote to stderr: {errs:?}");
        } else {
            assert_eq!(errs.len(), 1, "{args:?}: expected one exit_error line on stderr: {errs:?}");
            let e: Value = serde_json::from_str(errs[0]).expect("exit_error is JSON");
            self.check(&e, &format!("{args:?}"));
            assert_eq!(e["message_type"], "exit_error");
            assert_eq!(e["code"], out.code, "{args:?}: exit_error names another code than the exit code");
            assert!(!e["message"].as_str().unwrap().is_empty());
        }
        (out.code, objects)
    }
}

#[test]
fn every_message_type_appears_parses_and_is_documented() {
    let mut seen = Seen { docs: documented(), types: BTreeSet::new() };
    let env = Env::new();
    small_tree(&env.path("d"), 1, 20, 50_000);
    write_data(&env.path("d/big"), 2, 3 * MIB);

    let (code, objs) =
        seen.run(&env, &["--progress", "-v", "create", "--checkpoint-bytes", "1M", "one", "d"]);
    assert_eq!(code, 0);
    assert_eq!(key_of(objs.last().unwrap()), "summary/create", "create ends with its summary");
    assert!(
        seen.types.contains("checkpoint") && seen.types.contains("file") && seen.types.contains("status")
    );
    write_data(&env.path("d/big2"), 3, MIB);
    seen.run(&env, &["create", "two", "d"]);
    assert_eq!(seen.run(&env, &["create", "one", "d"]).0, 1, "a name that exists is refused");
    seen.run(&env, &["list"]);
    seen.run(&env, &["ls", "one"]);
    seen.run(&env, &["stats", "one"]);
    // Commits by a write-only key keep the generations they replace: roll back to one.
    let w = env.path("write.key");
    let w = w.to_str().unwrap();
    seen.run(&env, &["keymgmt", "--outkeyfile", w, "-w"]);
    seen.run(&env, &["--keyfile", w, "create", "w1", "d"]);
    seen.run(&env, &["--keyfile", w, "create", "w2", "d"]);
    let (_, gens) = seen.run(&env, &["generations"]);
    assert!(gens.len() >= 2, "write-only commits keep generations: {gens:?}");
    let older = gens[1]["generation"].as_u64().unwrap().to_string();
    assert_eq!(seen.run(&env, &["--keyfile", w, "rollback", &older]).0, 0);
    let dir = env.fresh_dir("x");
    seen.run(&env, &["extract", "-C", dir.to_str().unwrap(), "one"]);
    seen.run(&env, &["fsck"]);
    seen.run(&env, &["fsck", "--verify-data=50%"]);
    seen.run(&env, &["newest", "--max-age", "1d"]);
    seen.run(&env, &["recover"]); // "nothing to recover": a notice
    seen.run(&env, &["prune", "--keep-last", "5", "--dry-run"]);
    seen.run(&env, &["create", "three", "d"]);
    seen.run(&env, &["delete", "three"]);
    seen.run(&env, &["prune", "--keep-last", "1"]);
    // A key file others can read: a warning.
    std::fs::set_permissions(&env.key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    seen.run(&env, &["list"]);
    std::fs::set_permissions(&env.key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Failing commands: refused by the library, and by the argument parser.
    assert_eq!(seen.run(&env, &["prune", "--keep-daily", "-1"]).0, 1);
    assert_eq!(seen.run(&env, &["extract", "nothing-by-this-name"]).0, 1);

    let documented: BTreeSet<String> = seen.docs.keys().cloned().collect();
    let missing: Vec<&String> = documented.difference(&seen.types).collect();
    assert!(missing.is_empty(), "documented types never printed by the commands run: {missing:?}");
}
