//! Killing everything a worker started, so no scenario leaves processes behind.
//!
//! Two nets. The worker leads its own process group, and killing the group takes every
//! subprocess that stayed in it. A subprocess that left the group (`start_new_session=True`,
//! `setsid`, a daemon's double fork) is found by a cookie instead: every worker gets a unique
//! value in the environment variable [`COOKIE_VAR`], which its descendants inherit, and the
//! sweep kills every process whose environment carries it (Jenkins finds a build's strays the
//! same way). Only a process that both leaves the group and clears its environment escapes.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that marks a worker and its descendants.
pub const COOKIE_VAR: &str = "LEAKCHECK_WORKER_COOKIE";

/// Rounds of the sweep: a process forking while it runs is caught in a later round.
const SWEEP_ROUNDS: usize = 10;

/// A value for [`COOKIE_VAR`] unique to one worker of this leakcheck process.
pub fn new_cookie() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Sends SIGKILL to the worker `pid` and to the process group it leads (its pid). The worker
/// is also killed by pid: one that left its group (`os.setpgid`) would survive the group kill,
/// and waiting for it would never end.
pub fn kill_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill and killpg have no memory-safety preconditions; a gone process or group
    // just yields ESRCH.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Kills every process whose environment holds `COOKIE_VAR=cookie`; returns how many.
///
/// Reads `/proc/<pid>/environ` of every process this user may read: a few milliseconds for a
/// few hundred processes, once per scenario.
pub fn sweep(cookie: &str) -> usize {
    let needle = cookie_needle(cookie);
    let own = std::process::id();
    let mut killed = 0;
    for _ in 0..SWEEP_ROUNDS {
        let found: Vec<libc::pid_t> = processes()
            .filter(|&pid| pid as u32 != own && environ_contains(pid, &needle))
            .collect();
        if found.is_empty() {
            break;
        }
        for pid in found {
            // SAFETY: kill has no memory-safety preconditions; a gone process yields ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    killed
}

/// Makes leakcheck the reaper of its descendants (`PR_SET_CHILD_SUBREAPER`): a process whose
/// parent dies is then re-parented to leakcheck instead of to init, so a subprocess that both
/// left its worker's group and cleared its environment (`start_new_session=True, env={}`, a
/// double-forked daemon) can still be found, as a child of leakcheck, by [`kill_orphans`].
pub fn become_subreaper() {
    // SAFETY: prctl with an integer option has no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Kills and reaps every child of leakcheck: called once no worker runs, when every child left
/// is a descendant of some worker re-parented to us (see [`become_subreaper`]). Returns how
/// many were killed.
pub fn kill_orphans() -> usize {
    let own = std::process::id() as libc::pid_t;
    let mut killed = 0;
    for _ in 0..SWEEP_ROUNDS {
        let children: Vec<libc::pid_t> = processes()
            .filter(|&pid| parent_of(pid) == Some(own))
            .collect();
        if children.is_empty() {
            break;
        }
        for pid in children {
            // SAFETY: kill has no memory-safety preconditions; a gone process yields ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        reap_exited();
    }
    reap_exited();
    killed
}

/// Collects the exit status of every child that has ended (re-parented orphans leave zombies).
fn reap_exited() {
    loop {
        // SAFETY: waitpid with a null status pointer and WNOHANG has no preconditions.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
pub fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Process ids listed in `/proc`.
pub fn processes() -> impl Iterator<Item = libc::pid_t> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// The needle [`environ_contains`] looks for: `COOKIE_VAR=cookie` and its end.
pub fn cookie_needle(cookie: &str) -> Vec<u8> {
    format!("{COOKIE_VAR}={cookie}\0").into_bytes()
}

/// Whether the environment of `pid` holds `needle` (see [`cookie_needle`]) as one entry.
pub fn environ_contains(pid: libc::pid_t, needle: &[u8]) -> bool {
    let mut environ = Vec::new();
    let read = std::fs::File::open(format!("/proc/{pid}/environ"))
        .and_then(|mut file| file.read_to_end(&mut environ));
    // The first entry has no NUL before it; searching "\0" + environ covers it too.
    read.is_ok()
        && (environ.starts_with(needle)
            || environ
                .windows(needle.len() + 1)
                .any(|w| w[0] == 0 && &w[1..] == needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn sweep_kills_a_process_that_left_the_group_but_kept_the_cookie() {
        use std::os::unix::process::CommandExt;
        let cookie = new_cookie();
        let mut child = Command::new("sleep")
            .arg("60")
            .env(COOKIE_VAR, &cookie)
            .process_group(0)
            .spawn()
            .expect("sleep runs");
        let mut other = Command::new("sleep")
            .arg("60")
            .env(COOKIE_VAR, new_cookie())
            .spawn()
            .expect("sleep runs");
        // Give exec a moment: before it, /proc/<pid>/environ is still ours.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(sweep(&cookie), 1);
        let status = child.wait().expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(other.try_wait().expect("try_wait").is_none(), "not ours");
        other.kill().ok();
        other.wait().ok();
    }
}
