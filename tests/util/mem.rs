//! Running the binary with its memory measured: the child's peak resident set size, as the
//! kernel accounts it (`wait4`'s `ru_maxrss`, for this child alone), under an address-space
//! limit so that a runaway allocation fails fast instead of exhausting the test machine; and
//! the bytes it read (`rchar` of /proc/PID/io, read once it exited, before it is reaped).

use super::{Env, Out};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

/// Address space the child may map: far above what archiver needs (thread stacks and malloc
/// arenas included), far below the machine's memory.
pub const ADDRESS_SPACE: u64 = 4 << 30;

/// Runs `archiver ARGS` in `env`; returns what it printed and its peak RSS in bytes.
pub fn run_measured(env: &Env, args: &[&str]) -> (Out, u64) {
    let (out, rss, _) = run_measured_io(env, args);
    (out, rss)
}

/// Runs `archiver ARGS` in `env`; returns what it printed, its peak RSS and the bytes it read
/// through read calls (files, pipes and sockets alike).
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its resource usage
pub fn run_measured_io(env: &Env, args: &[&str]) -> (Out, u64, u64) {
    let mut cmd = env.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no state of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: ADDRESS_SPACE, rlim_max: ADDRESS_SPACE };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("cannot run archiver");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    // SAFETY: siginfo_t is plain data; waitid with WNOWAIT leaves the child to be reaped below.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(r, 0, "waitid failed: {}", std::io::Error::last_os_error());
    let io = std::fs::read_to_string(format!("/proc/{}/io", child.id())).unwrap_or_default();
    let rchar = io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.parse().ok()).unwrap_or(0);
    let (mut status, mut usage) = (0i32, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: the pid is our own unreaped child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32, "wait4 failed: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    let killed = !libc::WIFEXITED(status);
    let out = Out { code, killed, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    (out, usage.ru_maxrss as u64 * 1024, rchar)
}
