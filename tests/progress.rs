//! Progress as a person sees it: `create` and `extract` run with stderr on a real pseudo-terminal
//! (openpty) draw a bar that updates at least once a second and is cleared at the end; with
//! stderr on a pipe nothing is drawn (no escape code, no progress line) unless `--progress`
//! asks for plain lines; `--no-progress` draws nothing on a terminal; with `--json --progress`
//! progress comes as `status` objects on stdout.

mod util;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};
use util::*;

/// What a command wrote to its terminal, each read stamped with its time since the start.
struct Screen {
    reads: Vec<(Duration, Vec<u8>)>,
    code: i32,
    elapsed: Duration,
}

impl Screen {
    fn bytes(&self) -> Vec<u8> {
        self.reads.iter().flat_map(|r| r.1.clone()).collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// Runs `args` with stderr on the slave side of a new pseudo-terminal (stdout to a pipe).
fn on_terminal(env: &Env, args: &[&str]) -> Screen {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name, termios and window size are optional.
    let mut size = libc::winsize { ws_row: 24, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
    let r =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &mut size) };
    assert_eq!(r, 0, "openpty failed: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let start = Instant::now();
    let mut child = env.command(args).stdout(Stdio::null()).stderr(Stdio::from(slave)).spawn().unwrap();
    let mut file = std::fs::File::from(master);
    let mut reads = Vec::new();
    let mut buf = [0u8; 65536];
    // Reading ends with EIO once the child (the slave's last holder) is gone.
    while let Ok(n) = file.read(&mut buf) {
        if n == 0 {
            break;
        }
        reads.push((start.elapsed(), buf[..n].to_vec()));
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    Screen { reads, code, elapsed: start.elapsed() }
}

/// About 300 MiB in six files: a create of it takes a couple of seconds on two cores.
fn data(env: &Env) {
    for i in 0..6 {
        write_data(&env.path(format!("d/f{i}")), 40 + i, 50 * MIB);
    }
}

/// The bar redraws (each begins by returning to the line's start) and when they came.
fn draws(s: &Screen) -> Vec<Duration> {
    s.reads.iter().filter(|r| r.1.windows(2).any(|w| w == b"\r\x1b")).map(|r| r.0).collect()
}

fn assert_drawn_and_cleared(s: &Screen, what: &str) {
    assert_eq!(s.code, 0, "{what} failed:\n{}", s.text());
    let draws = draws(s);
    eprintln!("{what}: {} draws in {:?}", draws.len(), s.elapsed);
    assert!(s.text().contains('%'), "{what}: no progress bar was drawn: {:?}", s.text());
    // At least one draw for each second the command ran (the bar's promise), and more than one
    // in all: a fixed count would fail a restore that a fast machine ends in 0.4 s.
    let wanted = (s.elapsed.as_secs() as usize + 1).max(2);
    assert!(draws.len() >= wanted, "{what}: only {} redraws in {:?}", draws.len(), s.elapsed);
    // It updates at least once a second while the command runs.
    let gaps = draws.windows(2).map(|w| w[1] - w[0]);
    let first_last = (draws[0], *draws.last().unwrap());
    let longest = gaps.max().unwrap_or_default();
    assert!(longest <= Duration::from_secs(1), "{what}: the bar went {longest:?} without an update");
    assert!(first_last.0 <= Duration::from_secs(1), "{what}: first drawn after {:?}", first_last.0);
    assert!(s.elapsed - first_last.1 <= Duration::from_secs(1), "{what}: no update in the last second");
    // It ends cleanly: the last thing on the bar's line is the erase, and nothing of a bar after.
    let text = s.text();
    let last_bar = text.rfind('%').unwrap();
    assert!(
        text[last_bar..].contains("\r\x1b[2K"),
        "{what}: the bar was not cleared: {:?}",
        &text[last_bar..]
    );
    let cleared = text.rfind("\r\x1b[2K").unwrap() + 5;
    assert!(
        !text[cleared..].contains('\x1b'),
        "{what}: drawn after the bar was cleared: {:?}",
        &text[cleared..]
    );
}

#[test]
fn a_terminal_gets_a_bar_that_updates_every_second_and_is_cleared() {
    let env = Env::new();
    data(&env);
    let s = on_terminal(&env, &["create", "--checkpoint-bytes", "16M", "night", "d"]);
    assert_drawn_and_cleared(&s, "create");
    assert!(s.text().contains("files"), "create's bar names its files: {:?}", s.text());
    let dir = env.fresh_dir("x");
    let s = on_terminal(&env, &["extract", "-C", dir.to_str().unwrap(), "night"]);
    // A restore is quicker than a backup: check only that it drew and cleared when it ran long
    // enough for a draw and the clear (the bar first draws at 0.2 s, then every 0.2 s).
    if s.elapsed > Duration::from_millis(600) {
        assert_drawn_and_cleared(&s, "extract");
    }
    assert_same_tree(&env.path("d"), &dir.join("d"));

    // --no-progress: nothing drawn on a terminal.
    let s = on_terminal(&env, &["--no-progress", "create", "night2", "d"]);
    assert_eq!(s.code, 0);
    assert!(!s.bytes().contains(&0x1b), "--no-progress drew: {:?}", s.text());
}

#[test]
fn a_pipe_gets_no_escape_codes_and_progress_only_on_request() {
    let env = Env::new();
    data(&env);
    let out = env.run(["create", "--checkpoint-bytes", "16M", "night", "d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !out.stderr.contains('\x1b') && !out.stderr.contains("progress"),
        "drawn into a pipe: {:?}",
        out.stderr
    );
    // --progress into a pipe: plain lines, no escape codes.
    let out = env.run(["--progress", "create", "night2", "d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains('\x1b'), "escape codes in a pipe: {:?}", out.stderr);
    assert!(out.stderr.contains("archiver: progress: "), "--progress printed no line: {:?}", out.stderr);
    // --json --progress: status objects on stdout, each a JSON object.
    let out = env.run(["--json", "--progress", "create", "--checkpoint-bytes", "16M", "night3", "d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let statuses: Vec<serde_json::Value> = out
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["message_type"] == "status")
        .collect();
    assert!(!statuses.is_empty(), "no status objects: {}", out.stdout);
    for s in &statuses {
        assert!(s["bytes_done"].is_u64() && s["files_done"].is_u64() && s["seconds_elapsed"].is_u64(), "{s}");
    }
}
