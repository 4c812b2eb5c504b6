//! Signals during `create`: SIGQUIT ends the archive now as `NAME.part`, SIGUSR2 forces a
//! checkpoint, SIGUSR1 prints progress; SIGINT and SIGTERM stop the run at its last checkpoint
//! (committed as `NAME.part`) or undo it, and the binary exits 130 or 143. Handlers only set
//! flags the library polls between chunks; a second SIGINT or SIGTERM ends the process at once
//! (as a crash: the next write command recovers).

use archiver::progress::Control;
use std::sync::Arc;

pub fn install() -> anyhow::Result<Arc<Control>> {
    let control = Arc::new(Control::default());
    // signal-hook's flag::register takes an Arc<AtomicBool>; mirror into Control by polling would
    // add a thread, so register low-level handlers that set Control's own flags instead.
    for (sig, which) in [(libc::SIGQUIT, 0), (libc::SIGUSR2, 1), (libc::SIGUSR1, 2)] {
        let c = control.clone();
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                let flag = match which {
                    0 => &c.quit,
                    1 => &c.checkpoint_now,
                    _ => &c.report,
                };
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            })
        }?;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let c = control.clone();
        // SAFETY: the handler performs an atomic swap and, the second time, `_exit`: both are
        // async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if c.interrupt.swap(sig, std::sync::atomic::Ordering::Relaxed) != 0 {
                    libc::_exit(128 + sig);
                }
            })
        }?;
    }
    Ok(control)
}
