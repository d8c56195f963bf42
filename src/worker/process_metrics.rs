//! Process-level metrics read from `/proc`, in Rust, so reading them allocates nothing that
//! Python's allocators or tracemalloc could see.

/// Resident set size of this process in bytes (`/proc/self/statm`, second field, in pages):
/// read through the watchdog's open file when it has one (see [`super::guard::resident_bytes`]).
pub fn resident_bytes() -> f64 {
    if let Some(bytes) = super::guard::resident_bytes() {
        return bytes as f64;
    }
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page_size
}

/// Number of open file descriptors (entries of `/proc/self/fd`, minus the one reading it).
pub fn open_fds() -> f64 {
    match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries.count().saturating_sub(1) as f64,
        Err(_) => f64::NAN,
    }
}

/// Bytes the C allocator has handed out and not got back: glibc's `mallinfo2()` in-use arena
/// bytes (`uordblks`) plus mmapped blocks (`hblkhd`), over every arena of every thread.
///
/// Chunks parked in glibc's per-thread caches would count as in use; workers run with those
/// caches off ([`super::allocator`]), so the figure is what the program holds.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn malloc_in_use() -> f64 {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's own state under its
    // locks.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as f64
}

/// Without glibc there is no cheap in-use figure; the metric reads 0 (flat).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn malloc_in_use() -> f64 {
    0.0
}
