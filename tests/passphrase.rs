//! Passphrase-protected key files, as a user meets them: `keygen --passphrased` and `keymgmt
//! --passphrased` seal the key file (scrypt); every passphrase method tarsnap 1.0.40 has
//! (`env:`, `file:`, `dev:stdin-once`, `dev:tty-stdin`, `dev:tty-once`, the config key) opens it
//! for a backup and a byte-exact restore; a prompt on a real pseudo-terminal asks with echo off
//! and confirms a new passphrase; a wrong passphrase, a missing one with no terminal, a damaged
//! file and hostile scrypt parameters each end in one line, exit 1, with the passphrase never
//! printed; `keymgmt` adds, changes and removes a passphrase.
//!
//! Every command runs in a new session (setsid): it has no controlling terminal, so a test run
//! from a terminal never stops at a prompt.

mod util;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::*;

const PW: &str = "correct horse 2718";

/// `env.command(args)` in a new session, without a controlling terminal.
fn detached(env: &Env, args: &[&str]) -> Command {
    let mut c = env.command(args);
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c
}

fn run(env: &Env, args: &[&str]) -> Out {
    out_of(detached(env, args).output().unwrap())
}

fn run_stdin(env: &Env, args: &[&str], input: &str) -> Out {
    let mut child = detached(env, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    out_of(child.wait_with_output().unwrap())
}

fn ok(env: &Env, args: &[&str]) -> Out {
    let out = run(env, args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out
}

/// A repository whose key file is sealed under `PW` (given through `$PW`), holding archive "a".
fn setup() -> Env {
    let mut env = Env::bare();
    env.vars.push(("PW".into(), PW.into()));
    ok(&env, &["keygen", "--passphrased", "--passphrase", "env:PW", "--passphrase-time", "0.05"]);
    small_tree(&env.path("t"), 3, 10, 50_000);
    write_data(&env.path("t/big.bin"), 9, 3 * MIB);
    ok(&env, &["--passphrase", "env:PW", "create", "a", "t"]);
    env
}

/// Restores "a" with `args` (a passphrase method) and checks it byte for byte.
fn restores(env: &Env, args: &[&str], stdin: Option<&str>) {
    let dir = env.fresh_dir("x");
    std::fs::create_dir_all(&dir).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    let d = dir.to_str().unwrap();
    all.extend(["extract", "a", "-C", d]);
    let out = match stdin {
        Some(s) => run_stdin(env, &all, s),
        None => run(env, &all),
    };
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    assert_same_tree(&env.path("t"), &dir.join("t"));
}

#[test]
fn every_method_opens_the_key_and_restores_byte_exact() {
    let env = setup();
    let text = std::fs::read_to_string(&env.key).unwrap();
    assert!(text.contains("archiver-keyfile-passphrased 1") && !text.contains("enc-key"), "{text}");
    restores(&env, &["--passphrase", "env:PW"], None);
    std::fs::write(env.path("pw"), format!("{PW}\nnot this line\n")).unwrap();
    restores(&env, &["--passphrase", "file:pw"], None);
    restores(&env, &["--passphrase", "dev:stdin-once"], Some(&format!("{PW}\n")));
    // dev:tty-stdin reads standard input when there is no terminal.
    restores(&env, &["--passphrase", "dev:tty-stdin"], Some(&format!("{PW}\r\n")));
    std::fs::write(env.path("conf"), format!("passphrase file:{}\n", env.path("pw").display())).unwrap();
    restores(&env, &["--config", "conf"], None);
    // The plain key inside is the one the repository was made with: removing the passphrase
    // gives a key file that opens the repository without one, and whose secrets the sealed
    // file does not show.
    ok(&env, &["--passphrase", "env:PW", "keymgmt", "--outkeyfile", "plain.key", "-r", "-w", "-d"]);
    let plain = std::fs::read_to_string(env.path("plain.key")).unwrap();
    let enc = plain.lines().find_map(|l| l.strip_prefix("enc-key ")).unwrap();
    assert!(!text.contains(enc));
    let bare = env_with_key(&env, "plain.key");
    restores(&bare, &[], None);
}

#[test]
fn wrong_missing_and_damaged_each_get_one_line() {
    let env = setup();
    let wrong = env_with_vars(&env, &[("PW", "correct horse 2719")]);
    let out = run(&wrong, &["--passphrase", "env:PW", "list"]);
    out.assert_one_line_error(1).assert_stderr_contains("wrong passphrase for key file");
    assert!(!out.stderr.contains("2719"));
    let out = run(&env, &["list"]);
    out.assert_one_line_error(1).assert_stderr_contains("no terminal to ask on");
    run(&env, &["--passphrase", "env:NOT_SET_ANYWHERE", "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("NOT_SET_ANYWHERE is not set");
    run(&env, &["--passphrase", "file:missing", "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("file:missing");
    run_stdin(&env, &["--passphrase", "dev:stdin-once", "list"], "")
        .assert_one_line_error(1)
        .assert_stderr_contains("standard input is empty");
    run(&env, &["--passphrase", "dev:tty-once", "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("no terminal");
    run(&env, &["--passphrase", "pass:x", "list"])
        .assert_failed()
        .assert_stderr_contains("not a passphrase method");

    let text = std::fs::read_to_string(&env.key).unwrap();
    let damaged = |name: &str, text: String| {
        let key = env.path(name);
        std::fs::write(&key, text).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let mut e = env.view();
        e.key = key;
        let out = run(&e, &["--passphrase", "env:PW", "list"]);
        out.assert_one_line_error(1).assert_stderr_contains("is damaged");
        assert!(!out.stderr.contains(PW));
    };
    // One hex digit of the sealed part, the salt, the parameters; cut short; emptied.
    for field in ["sealed ", "salt ", "check "] {
        let at = text.find(field).unwrap() + field.len() + 7;
        let mut b = text.clone().into_bytes();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        damaged("flip.key", String::from_utf8(b).unwrap());
    }
    damaged("params.key", text.replace("scrypt ", "scrypt 1"));
    damaged("cut.key", text[..text.len() / 2].to_string());
    damaged("nocheck.key", text.lines().filter(|l| !l.starts_with("check")).collect::<Vec<_>>().join("\n"));
    // Hostile parameters with a matching checksum: refused before scrypt runs (it would need
    // 2^30 · 64 · 128 bytes).
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("check"))
        .map(|l| if l.starts_with("scrypt ") { "scrypt 30 64 64\n".to_string() } else { format!("{l}\n") })
        .collect();
    let check = hex::encode(&blake3::hash(body.as_bytes()).as_bytes()[..16]);
    let start = Instant::now();
    damaged("hostile.key", format!("{body}check {check}\n"));
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn keymgmt_adds_changes_and_removes_a_passphrase() {
    let mut env = Env::new();
    env.vars.extend([("PW".into(), PW.into()), ("PW2".into(), "second one".into())]);
    small_tree(&env.path("t"), 2, 8, 40_000);
    let fast = ["--passphrase-time", "0.05"];
    // Add: a write-only key sealed under PW2, from the plain full key.
    let mut args =
        vec!["keymgmt", "--outkeyfile", "w.key", "-w", "--passphrased", "--new-passphrase", "env:PW2"];
    args.extend(fast);
    ok(&env, &args).assert_stderr_contains("protected by a passphrase");
    let w = env_with_key(&env, "w.key");
    ok(&w, &["--passphrase", "env:PW2", "create", "a", "t"]);
    run(&w, &["--passphrase", "env:PW", "create", "b", "t"]).assert_one_line_error(1);
    // Change: PW2 -> PW, keeping the write permission only.
    let mut args =
        vec!["--passphrase", "env:PW2", "keymgmt", "--outkeyfile", "w2.key", "-w", "--passphrased"];
    args.extend(["--new-passphrase", "env:PW"]);
    args.extend(fast);
    ok(&env_with_key(&env, "w.key"), &args);
    let w2 = env_with_key(&env, "w2.key");
    run(&w2, &["--passphrase", "env:PW2", "list"])
        .assert_one_line_error(1)
        .assert_stderr_contains("wrong passphrase");
    ok(&w2, &["--passphrase", "env:PW", "create", "b", "t"]);
    assert!(std::fs::read_to_string(env.path("w2.key")).unwrap().contains("only the write key"));
    // Remove: a plain copy of the write key, which opens without a passphrase.
    ok(&w2, &["--passphrase", "env:PW", "keymgmt", "--outkeyfile", "w3.key", "-w"])
        .assert_stderr_contains("without a passphrase");
    ok(&env_with_key(&env, "w3.key"), &["create", "c", "t"]);
    // A passphrase for a new key file cannot be empty, and a key file is never overwritten.
    let empty = env_with_vars(&env, &[("E", "")]);
    let mut args =
        vec!["keymgmt", "--outkeyfile", "e.key", "-r", "--passphrased", "--new-passphrase", "env:E"];
    args.extend(fast);
    run(&empty, &args).assert_one_line_error(1).assert_stderr_contains("empty passphrase");
    assert!(!env.path("e.key").exists());
    ok(&env, &["extract", "a", "-C", env.fresh_dir("x").to_str().unwrap()]);
    assert_eq!(env.list(), ["a", "b", "c"]);
}

fn env_with_key(env: &Env, key: &str) -> Env {
    let mut e = env.view();
    e.key = env.path(key);
    e
}

fn env_with_vars(env: &Env, vars: &[(&str, &str)]) -> Env {
    let mut e = env.view();
    e.vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    e
}

#[test]
fn passphrase_mem_bounds_scrypt() {
    let mut env = Env::bare();
    env.vars.push(("PW".into(), PW.into()));
    ok(
        &env,
        &[
            "keygen",
            "--passphrased",
            "--passphrase",
            "env:PW",
            "--passphrase-mem",
            "2M",
            "--passphrase-time",
            "2",
        ],
    );
    let text = std::fs::read_to_string(&env.key).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("scrypt ")).unwrap();
    let v: Vec<u64> = line.split(' ').map(|n| n.parse().unwrap()).collect();
    assert!(128 * v[1] << v[0] <= 2 << 20, "scrypt {line} needs more than 2 MiB");
    // The time not spent on memory goes to p, as scrypt's own calibration does.
    assert!(v[2] > 1, "scrypt {line}: p was not raised");
    ok(&env, &["--passphrase", "env:PW", "list"]);
}

/// What a command in a new session with `pty`'s slave as its controlling terminal wrote to the
/// terminal, as answers were typed after each prompt appeared.
fn on_terminal(env: &Env, args: &[&str], answers: &[&str]) -> (Out, String) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; name, termios and window size are optional.
    let r = unsafe {
        libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let fd = slave.as_raw_fd();
    let mut cmd = env.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setsid and ioctl are async-signal-safe. The child keeps the inherited slave
    // descriptor open: were it closed, the master would read EIO until /dev/tty is opened.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::ioctl(fd, libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(slave);
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let s = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut writer = std::fs::File::from(master);
    for (i, answer) in answers.iter().enumerate() {
        // Type only once the prompt is there (and echo is off).
        let deadline = Instant::now() + Duration::from_secs(60);
        while String::from_utf8_lossy(&screen.lock().unwrap()).matches("passphrase for keyfile").count() <= i
        {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let out = out_of(child.wait_with_output().unwrap());
                panic!(
                    "no prompt {i}: {:?}; {}",
                    String::from_utf8_lossy(&screen.lock().unwrap()),
                    out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let out = out_of(child.wait_with_output().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    let text = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    (out, text)
}

#[test]
fn a_terminal_is_asked_with_echo_off_and_a_new_passphrase_confirmed() {
    let env = Env::bare();
    let keygen = ["keygen", "--passphrased", "--passphrase-time", "0.05"];
    let (out, screen) = on_terminal(&env, &keygen, &["typed secret 1", "typed secret 2"]);
    out.assert_one_line_error(1).assert_stderr_contains("do not match");
    assert!(!env.key.exists(), "a key file was written after mismatching passphrases");
    assert!(screen.contains("Please confirm passphrase for keyfile"), "{screen:?}");
    let (out, screen) = on_terminal(&env, &keygen, &["typed secret", "typed secret"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let prompt = format!("Please enter passphrase for keyfile {}: ", env.key.display());
    assert!(screen.contains(&prompt), "{screen:?}");
    assert!(!screen.contains("typed secret"), "the passphrase was echoed: {screen:?}");
    small_tree(&env.path("t"), 4, 6, 30_000);
    let (out, screen) = on_terminal(&env, &["create", "a", "t"], &["typed secret"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(screen.matches("passphrase for keyfile").count(), 1, "asked more than once: {screen:?}");
    let (out, _) = on_terminal(&env, &["list"], &["typed secreT"]);
    out.assert_one_line_error(1).assert_stderr_contains("wrong passphrase");
    let (out, _) = on_terminal(&env, &["--passphrase", "dev:tty-once", "list"], &["typed secret"]);
    assert_eq!(out.stdout.trim(), "a", "{}", out.stderr);
    let (out, _) = on_terminal(&env, &["--passphrase", "dev:tty-stdin", "list"], &["typed secret"]);
    assert_eq!(out.stdout.trim(), "a", "{}", out.stderr);
}
