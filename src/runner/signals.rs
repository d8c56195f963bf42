//! Ctrl-C, SIGTERM and SIGHUP sent to leakcheck itself: stop the run, keep what finished.
//!
//! Workers run in their own process groups, so a Ctrl-C in the terminal reaches leakcheck only.
//! The handler does the one async-signal-safe thing it can, recording the signal in an atomic;
//! the supervisors poll it (they wake every 50 ms anyway) and kill their workers' groups, the
//! scheduler starts nothing new, and the caller writes the reports of the scenarios that finished,
//! marked as interrupted. A second signal while that happens ends leakcheck at once.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stopping signal received, 0 while none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signals that stop a run.
const STOPPING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the handler for [`STOPPING`] signals. Idempotent.
///
/// A signal that was ignored when leakcheck started stays ignored, as shells expect for
/// background jobs (`leakcheck run &` ignores SIGINT) and `nohup` (SIGHUP).
pub fn install() {
    for signal in STOPPING {
        // SAFETY: plain sigaction calls with a zeroed, then filled, struct; the handler only
        // touches an atomic and, on a second signal, calls the async-signal-safe `_exit`.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    if RECEIVED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // Second signal: the user insists. Workers already had their groups killed on the first.
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Whether a stopping signal has arrived.
pub fn interrupted() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The stopping signal received, if any (e.g. `libc::SIGINT`).
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// A stopping signal's name, for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The conventional exit code after a signal: 128 + its number (130 for Ctrl-C, 143 for
/// SIGTERM, 129 for SIGHUP).
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(130)
}
