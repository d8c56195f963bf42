//! Process-level metrics read from `/proc`, in Rust, so reading them allocates nothing that
//! Python's allocators or tracemalloc could see.

/// Resident set size of this process in bytes (`/proc/self/statm`, second field, in pages).
pub fn resident_bytes() -> f64 {
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
