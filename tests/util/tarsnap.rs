//! Running the binary as `tarsnap` (through a symlink) for the tarsnap-mode tests.

use super::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A `tarsnap` symlink to the binary (and the key tools), in `env`'s directory.
pub fn links(env: &Env) -> PathBuf {
    let bin = env.path("bin");
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["tarsnap", "tarsnap-keygen", "tarsnap-keymgmt"] {
            std::os::unix::fs::symlink(BIN, bin.join(name)).unwrap();
        }
    }
    bin
}

/// `program ARGS` through its symlink, with `env`'s repository, key and cache variables.
pub fn command(env: &Env, program: &str, args: &[&str]) -> Command {
    let base = env.command(args);
    let mut c = Command::new(links(env).join(program));
    c.args(args).current_dir(&env.root).stdin(Stdio::null());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

pub fn ts(env: &Env, args: &[&str]) -> Out {
    out_of(command(env, "tarsnap", args).output().unwrap())
}

/// Runs and requires exit 0 with nothing on stderr (tarsnap prints nothing on success).
pub fn ts_ok(env: &Env, args: &[&str]) -> Out {
    let out = ts(env, args);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "tarsnap {args:?}");
    out
}

pub fn tree(env: &Env) -> PathBuf {
    let d = env.path("data");
    write_data(&d.join("big"), 1, 3 * MIB);
    write_data(&d.join("sub/small"), 2, 10_000);
    std::fs::write(d.join("sub/text"), b"hello\n").unwrap();
    std::os::unix::fs::symlink("text", d.join("sub/link")).unwrap();
    d
}
