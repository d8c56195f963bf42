//! Ctrl-C, SIGTERM and SIGHUP sent to leakcheck itself: stop the run, keep what finished.
//!
//! Workers run in their own process groups, so a Ctrl-C in the terminal reaches leakcheck only.
//! The handler does the one async-signal-safe thing it can, recording the signal in an atomic;
//! the supervisors poll it (they wake every 50 ms anyway) and kill their workers' groups, the
//! scheduler starts nothing new, and the caller writes the reports of the scenarios that finished,
//! marked as interrupted. A second signal while that happens ends leakcheck at once.
//!
//! A scenario can signal leakcheck too: its parent's pid is one `os.getppid()` away, and no
//! process can hide it from its children. Such a signal is not an interrupt. The handler reads
//! who sent it (`SA_SIGINFO`): every worker leads a session of its own, so a sender whose
//! session is a running worker's is that worker or something it started. The signal is then
//! recorded against that worker, whose supervisor stops it with an error naming the signal, and
//! the run goes on. SIGKILL and SIGSTOP cannot be caught; see the README.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stopping signal received, 0 while none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Slots of running workers' pids (each leads its session); 0 when free. A fixed table the
/// handler can read without locking; workers beyond it are simply not told apart.
static WORKERS: [AtomicI32; 256] = [const { AtomicI32::new(0) }; 256];

/// Per slot of [`WORKERS`], the stopping signal its session sent us, 0 while none.
static SENT_BY_WORKER: [AtomicI32; 256] = [const { AtomicI32::new(0) }; 256];

/// A running worker registered with the handler; unregisters when dropped.
pub struct WorkerSlot(Option<usize>);

impl WorkerSlot {
    /// Registers the worker `pid` (the leader of its own session).
    pub fn register(pid: u32) -> WorkerSlot {
        let Ok(pid) = i32::try_from(pid) else {
            return WorkerSlot(None);
        };
        let slot = WORKERS.iter().position(|w| {
            w.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if let Some(slot) = slot {
            SENT_BY_WORKER[slot].store(0, Ordering::SeqCst);
        }
        WorkerSlot(slot)
    }

    /// The stopping signal this worker (or a process of its session) sent leakcheck, if any.
    pub fn sent(&self) -> Option<i32> {
        let signal = SENT_BY_WORKER[self.0?].load(Ordering::SeqCst);
        (signal != 0).then_some(signal)
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            WORKERS[slot].store(0, Ordering::SeqCst);
        }
    }
}

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
            action.sa_sigaction = on_signal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO; si_pid is set for kill(2).
    let sender = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_pid() }
    };
    if sender > 0 {
        // SAFETY: getsid is a plain system call, safe in a handler.
        let session = unsafe { libc::getsid(sender) };
        if session > 0
            && let Some(slot) = WORKERS
                .iter()
                .position(|w| w.load(Ordering::SeqCst) == session)
        {
            SENT_BY_WORKER[slot].store(signal, Ordering::SeqCst);
            return;
        }
    }
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
