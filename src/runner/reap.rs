//! Killing everything a worker started, so no scenario leaves processes behind.
//!
//! Two nets. The worker leads its own process group, and killing the group takes every
//! subprocess that stayed in it. A subprocess that left the group (`start_new_session=True`,
//! `setsid`, a daemon's double fork) is found by a cookie instead: every worker gets a unique
//! value in the environment variable [`COOKIE_VAR`], which its descendants inherit, and the
//! sweep kills every process whose environment carries it (Jenkins finds a build's strays the
//! same way). Only a process that both leaves the group and clears its environment escapes.
//!
//! Reading another process's environment is the expensive part (the kernel copies it out of that
//! process's memory), so a search reads it only for processes started since the cookie was made:
//! a descendant of the worker cannot be older than the worker. On a machine of a few hundred
//! processes this turns each scenario's sweep from hundreds of environment reads into a handful.
//! Telling a process's age takes a read of its `/proc/<pid>/stat` (about 10 µs each, a
//! millisecond per scenario on a machine of a hundred processes, most of what a short scenario
//! cost leakcheck itself), so the sweep first leaves out, by pid alone, every process older than
//! the cookie: pids are handed out in increasing order until they wrap around, and a cookie
//! notes the last one handed out before it (see [`PidClock`]).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that marks a worker and its descendants.
pub const COOKIE_VAR: &str = "LEAKCHECK_WORKER_COOKIE";

/// Rounds of the sweep: a process forking while it runs is caught in a later round.
const SWEEP_ROUNDS: usize = 10;

/// A value for [`COOKIE_VAR`] unique to one worker of this leakcheck process, and when it was
/// made. It reads as the value (`&cookie` is a `&str`).
pub struct Cookie {
    value: String,
    /// Clock ticks since boot (the unit of `/proc/<pid>/stat`'s start time) when it was made,
    /// one tick early: every process that can carry it started at or after this.
    made: u64,
    /// Where pid allocation stood when it was made; none when that cannot be read.
    born: Option<PidClock>,
}

/// Where the kernel's pid allocation stands: the last pid it handed out in our pid namespace
/// (`/proc/sys/kernel/ns_last_pid`) and how many processes and threads have been created on the
/// machine since boot (`processes` in `/proc/stat`, every namespace's).
///
/// The kernel hands out each new pid above the last one, wrapping around to the low pids past
/// `pid_max` (32768 on many machines: a scenario that runs a subprocess per iteration can wrap
/// it). Between two readings `then` and `now`, every process created has a pid above
/// `then.last_pid` unless allocation wrapped; to wrap and come back above `then.last_pid`, it
/// must pass every other pid once, skipping only those in use, so it takes at least `pid_max`
/// creations less the pids in use. Fewer than half `pid_max` creations, with `now.last_pid` not
/// below `then.last_pid`, therefore rule a wrap out unless half the pid space is in use (a
/// machine that close to running out of pids has other troubles; the age check still applies to
/// every process the pid lets through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PidClock {
    last_pid: u32,
    created: u64,
}

impl PidClock {
    fn now() -> Option<PidClock> {
        let last_pid = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid").ok()?;
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let created = stat
            .lines()
            .find_map(|line| line.strip_prefix("processes "))?
            .trim()
            .parse()
            .ok()?;
        Some(PidClock {
            last_pid: last_pid.trim().parse().ok()?,
            created,
        })
    }

    /// The lowest pid a process created since `self` can have at `now` (see the type's doc),
    /// or 0 when allocation may have wrapped.
    fn lowest_since(&self, now: PidClock, pid_max: u32) -> u32 {
        let unwrapped = now.last_pid >= self.last_pid
            && now.created.saturating_sub(self.created) < u64::from(pid_max / 2);
        if unwrapped { self.last_pid + 1 } else { 0 }
    }
}

/// `/proc/sys/kernel/pid_max`, read once; the smallest it can be (which makes wraps look likely)
/// when unreadable.
fn pid_max() -> u32 {
    static PID_MAX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID_MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(301)
    })
}

/// The lowest pid a process that may carry `cookie` can have now: 0 (every process) when that
/// cannot be narrowed down.
fn lowest_candidate(cookie: &Cookie) -> libc::pid_t {
    let lowest = match (cookie.born, PidClock::now()) {
        (Some(then), Some(now)) => then.lowest_since(now, pid_max()),
        _ => 0,
    };
    libc::pid_t::try_from(lowest).unwrap_or(0)
}

impl std::ops::Deref for Cookie {
    type Target = str;

    fn deref(&self) -> &str {
        &self.value
    }
}

/// A new [`Cookie`].
pub fn new_cookie() -> Cookie {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let value = format!(
        "{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    Cookie {
        value,
        made: boot_ticks().saturating_sub(1),
        // Read before the worker starts: its pid, and its descendants', come after.
        born: PidClock::now(),
    }
}

/// Clock ticks since boot, as `/proc/<pid>/stat` counts a process's start time
/// (`CLOCK_BOOTTIME` in `sysconf(_SC_CLK_TCK)` units); 0 if the clock cannot be read, which
/// makes every process a candidate.
fn boot_ticks() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; sysconf has no preconditions.
    let (read, per_second) = unsafe {
        (
            libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    if read != 0 || per_second <= 0 {
        return 0;
    }
    let per_second = per_second as u64;
    now.tv_sec as u64 * per_second + now.tv_nsec as u64 * per_second / 1_000_000_000
}

/// The fields of `/proc/<pid>/stat` after `comm` (`state ppid pgrp ...`: `fields[0]` is the
/// state, field N of proc(5) is `fields[N - 3]`), or None for a gone process. `comm` may hold
/// spaces and parentheses, hence the last `)`.
pub fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(
        stat.get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect(),
    )
}

/// Whether a process whose stat fields are `fields` may carry `cookie`: it started at or
/// after the cookie was made (proc(5) field 22, `starttime`).
pub fn may_carry(fields: &[&str], cookie: &Cookie) -> bool {
    fields
        .get(19)
        .and_then(|ticks| ticks.parse::<u64>().ok())
        .is_none_or(|started| started >= cookie.made)
}

/// Whether the process `pid` may carry `cookie` (see [`may_carry`]).
fn started_since(pid: libc::pid_t, cookie: &Cookie) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .is_some_and(|stat| stat_fields(&stat).is_some_and(|f| may_carry(&f, cookie)))
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
/// Reads `/proc/<pid>/stat` of every process whose pid may be younger than the cookie, and the
/// environment only of those started since the cookie was made (see the module's doc).
pub fn sweep(cookie: &Cookie) -> usize {
    let needle = cookie_needle(cookie);
    let own = std::process::id();
    let mut killed = 0;
    for _ in 0..SWEEP_ROUNDS {
        let lowest = lowest_candidate(cookie);
        let found: Vec<libc::pid_t> = processes()
            .filter(|&pid| {
                pid >= lowest
                    && pid as u32 != own
                    && started_since(pid, cookie)
                    && environ_contains(pid, &needle)
            })
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
            .env(COOKIE_VAR, &*cookie)
            .process_group(0)
            .spawn()
            .expect("sleep runs");
        let mut other = Command::new("sleep")
            .arg("60")
            .env(COOKIE_VAR, &*new_cookie())
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

    #[test]
    fn pids_handed_out_since_a_cookie_are_above_its_last_pid_until_they_may_have_wrapped() {
        let clock = |last_pid, created| PidClock { last_pid, created };
        let then = clock(1000, 50_000);
        assert_eq!(then.lowest_since(clock(1000, 50_000), 32768), 1001);
        assert_eq!(then.lowest_since(clock(9000, 58_000), 32768), 1001);
        // Below the last pid: wrapped.
        assert_eq!(then.lowest_since(clock(400, 50_100), 32768), 0);
        // Above it again, but after enough creations to have gone all the way round.
        assert_eq!(then.lowest_since(clock(1200, 50_000 + 16_384), 32768), 0);
        assert_eq!(then.lowest_since(clock(1200, 50_000 + 16_383), 32768), 1001);

        // A process started after a cookie has a pid the sweep looks at.
        let cookie = new_cookie();
        assert!(
            cookie.born.is_some(),
            "/proc/sys/kernel/ns_last_pid and /proc/stat read"
        );
        let mut child = Command::new("sleep").arg("60").spawn().expect("sleep runs");
        let lowest = lowest_candidate(&cookie);
        assert!(
            child.id() as libc::pid_t >= lowest,
            "{} < {lowest}",
            child.id()
        );
        child.kill().ok();
        child.wait().ok();
    }

    #[test]
    fn only_processes_started_since_the_cookie_may_carry_it() {
        let cookie = new_cookie();
        let stat = |started: u64| {
            format!(
                "4242 (a (b) c) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {started} 1000 10"
            )
        };
        let fields = |text: &str| {
            stat_fields(text).map(|f| f.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let carries = |started: u64| {
            let text = stat(started);
            let owned = fields(&text).expect("fields");
            let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
            may_carry(&borrowed, &cookie)
        };
        assert!(!carries(cookie.made - 1), "older than the cookie");
        assert!(carries(cookie.made));
        assert!(carries(cookie.made + 100));
        // Our own start time is before the cookie; a child started now is not.
        assert!(!started_since(std::process::id() as libc::pid_t, &cookie));
        let mut child = Command::new("sleep").arg("60").spawn().expect("sleep runs");
        assert!(started_since(child.id() as libc::pid_t, &cookie));
        child.kill().ok();
        child.wait().ok();
    }
}
