//! The memory cap: its default, and what a worker's process group holds in memory.
//!
//! A leak check runs code that grows memory on purpose, so a worker must be stopped long before
//! the machine runs out. Two watchers enforce the cap. Inside the worker a watchdog thread reads
//! its own resident size every 10 ms and names the iteration that crossed the cap (see
//! `worker::guard`). Here, the supervisor adds up the resident memory of the worker's whole
//! process group every [`GROUP_POLL`], which catches subprocesses (and a worker whose watchdog
//! could not run). The group's figure is the sum of proportional set sizes (PSS): a page shared
//! by several processes, as after `os.fork()` (multiprocessing pools, DataLoader workers), is
//! counted once in all, where summed resident sizes counted it once per process and called a
//! 120 MiB setup with three forked readers 480 MiB. Resident size is the figure that matters: address-space limits
//! (`RLIMIT_AS`) trip on CPython's and glibc's large reservations long before memory is used,
//! and turn a clear verdict into a `MemoryError` anywhere in the code.

use std::time::Duration;

use super::reap;

/// How often the supervisor adds up the memory of a worker's process group.
pub const GROUP_POLL: Duration = Duration::from_millis(250);

/// The cap when neither the scenario nor `--max-rss` sets one: at most 4 GiB, and together no
/// more than half of the machine's memory for all the workers running at once.
pub fn default_max_rss(jobs: usize) -> u64 {
    const CEILING: u64 = 4 << 30;
    match mem_total() {
        Some(total) => (total / 2 / jobs.max(1) as u64).clamp(1 << 20, CEILING),
        None => CEILING,
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory of a worker and everything it started: the worker `pgid` itself, every process in its
/// group, and every process carrying its `cookie` (subprocesses that left the group, and all of
/// them if the worker itself left it); the sum of their proportional set sizes, each process's
/// resident size where its PSS cannot be read.
pub fn group_resident_bytes(pgid: u32, cookie: &reap::Cookie) -> u64 {
    let needle = reap::cookie_needle(cookie);
    let own = std::process::id() as i32;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    reap::processes()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields = reap::stat_fields(&stat)?;
            let group: u32 = fields.get(2)?.parse().ok()?;
            let ours = pid as u32 == pgid
                || group == pgid
                || (pid != own
                    && reap::may_carry(&fields, cookie)
                    && reap::environ_contains(pid, &needle));
            if !ours {
                return None;
            }
            let pages: u64 = fields.get(21)?.parse().ok()?;
            Some(proportional_bytes(pid).unwrap_or(pages * page))
        })
        .sum()
}

/// `Pss` of `/proc/<pid>/smaps_rollup` (Linux 4.14+), in bytes: the process's private pages
/// plus its share of each page it shares. `None` when unreadable (an older kernel, a process
/// that is not dumpable, or gone).
fn proportional_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    pss_of_rollup(&text)
}

/// The `Pss:` figure of an smaps_rollup text, in bytes.
fn pss_of_rollup(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_is_bounded_and_shared_between_jobs() {
        let one = default_max_rss(1);
        assert!(one <= 4 << 30);
        assert!(one >= 1 << 20);
        assert!(default_max_rss(64) <= one);
    }

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0    [rollup]\nRss:   1736 kB\nPss:  434 kB\nPss_Dirty:  112 kB\n";
        assert_eq!(pss_of_rollup(text), Some(434 * 1024));
        assert_eq!(pss_of_rollup("Rss: 1 kB\n"), None);
        // Our own figure is there, and no more than our resident size.
        let own = proportional_bytes(std::process::id() as i32).expect("smaps_rollup readable");
        assert!(own > 0);
    }

    #[test]
    fn group_memory_counts_our_own_group() {
        // SAFETY: getpgrp has no preconditions.
        let group = unsafe { libc::getpgrp() } as u32;
        assert!(group_resident_bytes(group, &reap::new_cookie()) > 0);
    }
}
