//! The C allocator's settings in a worker: glibc's per-thread cache of freed chunks is off.
//!
//! The `malloc` metric is glibc's `mallinfo2()` in-use figure, which counts chunks parked in the
//! per-thread cache (tcache: up to 7 freed chunks of each size class up to 1 KiB) as in use.
//! Code that frees chunks of many sizes (a template cache evicting, random-size churn) then
//! shows `malloc` creeping up by tens of KiB with nothing kept, sometimes past the tolerance.
//! With the cache off, freed chunks go back to the arena's bins, which `mallinfo2()` counts as
//! free, so the figure is what the program holds. A leaked chunk is never freed, so this can
//! hide no leak. Python's own small objects come from pymalloc and are not affected.
//!
//! glibc reads its tunables once, when the process starts: the runner starts each worker with
//! `glibc.malloc.tcache_count=0` appended to the user's `GLIBC_TUNABLES` ([`worker_env`]), and
//! the worker puts the user's value back first thing ([`restore_user_env`]), so subprocesses
//! that scenario code starts run with the user's allocator settings.

use std::ffi::OsString;

/// glibc's tunables variable.
const TUNABLES: &str = "GLIBC_TUNABLES";
/// The user's `GLIBC_TUNABLES`, handed to the worker so it can restore it (empty: unset).
const USER_TUNABLES: &str = "LEAKCHECK_USER_GLIBC_TUNABLES";
/// Turns the per-thread cache off.
const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";

/// The variables the runner sets for a worker: the tunables with the cache off, and the user's
/// own value to restore.
pub fn worker_env() -> [(&'static str, OsString); 2] {
    let user = std::env::var_os(TUNABLES).unwrap_or_default();
    let mut tunables = user.clone();
    if !tunables.is_empty() {
        tunables.push(":");
    }
    tunables.push(TCACHE_OFF);
    [(TUNABLES, tunables), (USER_TUNABLES, user)]
}

/// Puts the user's `GLIBC_TUNABLES` back (the worker's allocator already read its own).
///
/// # Safety
/// Changes the process environment: call it before the worker starts any thread.
pub unsafe fn restore_user_env() {
    let Some(user) = std::env::var_os(USER_TUNABLES) else {
        return;
    };
    // SAFETY: the caller guarantees no other thread runs.
    unsafe {
        if user.is_empty() {
            std::env::remove_var(TUNABLES);
        } else {
            std::env::set_var(TUNABLES, user);
        }
        std::env::remove_var(USER_TUNABLES);
    }
}
