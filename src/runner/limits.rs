//! The memory cap: its default, and what a worker's process group holds in memory.
//!
//! A leak check runs code that grows memory on purpose, so a worker must be stopped long before
//! the machine runs out. Two watchers enforce the cap. Inside the worker a watchdog thread reads
//! its own resident size every 10 ms and names the iteration that crossed the cap (see
//! `worker::guard`). Here, the supervisor adds up the resident memory of the worker's whole
//! process group every [`GROUP_POLL`], which catches subprocesses (and a worker whose watchdog
//! could not run). Resident size is the figure that matters: address-space limits
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

/// Resident bytes of every process in group `pgid`, from `/proc/<pid>/stat`.
pub fn group_resident_bytes(pgid: u32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    reap::processes()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
            let fields: Vec<&str> = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .collect();
            let group: u32 = fields.get(2)?.parse().ok()?;
            let pages: u64 = fields.get(21)?.parse().ok()?;
            (group == pgid).then_some(pages * page)
        })
        .sum()
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
    fn group_memory_counts_our_own_group() {
        // SAFETY: getpgrp has no preconditions.
        let group = unsafe { libc::getpgrp() } as u32;
        assert!(group_resident_bytes(group) > 0);
    }
}
