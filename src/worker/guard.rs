//! The worker's watchdog: a per-iteration time limit and the memory cap, enforced from a thread
//! that needs neither the GIL nor the scenario's cooperation.
//!
//! The harness marks the start of every iteration by calling [`iteration_started`] (a plain
//! atomic store, about as cheap as a Python call gets) and the end of a chunk with
//! [`iterations_paused`]. The watchdog thread looks every [`TICK`]: if the same iteration has
//! been running for longer than `iteration_timeout`, or the process's resident memory is over
//! its cap, it tells the runner which iteration it was, on the channel, and kills its own
//! process at once. Being a separate OS thread, it works while scenario code spins in C holding
//! the GIL; the runner's `timeout` and its own poll of the process group back it up should the
//! whole process be frozen.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::protocol::{WatchdogLimit, WorkerMessage};

/// How often the watchdog looks.
const TICK: Duration = Duration::from_millis(10);

/// The running iteration plus one; 0 while no iteration runs (setup, teardown), or, with
/// [`COLLECTING`] set, the last iteration plus one while the sample after it collects garbage.
static CURRENT: AtomicU64 = AtomicU64::new(0);

/// Marks [`CURRENT`] during a sample: the value differs from the iteration's own, so the
/// watchdog starts a fresh clock even when it never saw the pause between them.
const COLLECTING: u64 = 1 << 63;

/// Called by the harness before iteration `i` runs.
#[pyfunction]
pub fn iteration_started(i: u64) {
    CURRENT.store(i.saturating_add(1), Ordering::Relaxed);
}

/// Called by the harness when a chunk of iterations ends, however it ends.
#[pyfunction]
pub fn iterations_paused() {
    CURRENT.store(0, Ordering::Relaxed);
}

/// Called before a sample taken after iteration `last`: the sample's garbage collection runs
/// the iterations' destructors (`__del__`, `weakref` and `gc.callbacks` callbacks), which are
/// scenario code, so the same limit covers them, charged to that iteration. End it with
/// [`iterations_paused`].
pub fn collecting_after(last: u64) {
    CURRENT.store(last.saturating_add(1) | COLLECTING, Ordering::Relaxed);
}

/// What the watchdog enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest one iteration may run.
    pub iteration_timeout: Option<Duration>,
    /// Cap on the worker's resident memory, in bytes.
    pub max_rss: u64,
}

/// Starts the watchdog thread, writing to `channel` when a limit is exceeded.
///
/// Also volunteers this process as the kernel's first choice should the machine run out of
/// memory anyway (`oom_score_adj` 1000), so a runaway worker goes before leakcheck or anything
/// else on the machine.
pub fn start(limits: Limits, channel: File) -> std::io::Result<()> {
    // Best effort: raising one's own score needs no privilege, but /proc may be read-only.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    // Opened here, before the first sample, rather than by the thread: the descriptor is then
    // open at every sample alike, which the `fds` metric counts.
    STATM.get_or_init(Statm::open);
    std::thread::Builder::new()
        .name("leakcheck-watchdog".into())
        .spawn(move || watch(limits, channel))?;
    Ok(())
}

fn watch(limits: Limits, mut channel: File) {
    let mut seen = 0u64;
    let mut since = Instant::now();
    let statm = STATM.get_or_init(Statm::open).as_ref();
    loop {
        std::thread::sleep(TICK);
        let current = CURRENT.load(Ordering::Relaxed);
        if current != seen {
            seen = current;
            since = Instant::now();
        }
        let iteration = (current & !COLLECTING).checked_sub(1);
        if let Some(resident) = statm.and_then(Statm::resident_bytes)
            && resident > limits.max_rss
        {
            let limit = WatchdogLimit::MemoryCap {
                resident,
                cap: limits.max_rss,
            };
            stop(&mut channel, limit, iteration);
        }
        if let (Some(timeout), Some(i)) = (limits.iteration_timeout, iteration)
            && since.elapsed() >= timeout
        {
            let limit = WatchdogLimit::IterationTimeout {
                limit_secs: timeout.as_secs_f64(),
            };
            stop(&mut channel, limit, Some(i));
        }
    }
}

/// Reports the exceeded limit and kills this process; never returns.
fn stop(channel: &mut File, limit: WatchdogLimit, iteration: Option<u64>) -> ! {
    let message = WorkerMessage::Watchdog { limit, iteration };
    let mut line = b"\n".to_vec();
    if serde_json::to_writer(&mut line, &message).is_ok() {
        line.push(b'\n');
        let _ = channel.write_all(&line);
    }
    // SAFETY: raising SIGKILL on ourselves has no preconditions; it does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// The watchdog's `/proc/self/statm`, opened by [`start`].
static STATM: OnceLock<Option<Statm>> = OnceLock::new();

/// This process's resident bytes from the watchdog's open `/proc/self/statm`; `None` before
/// [`start`] or when it cannot be read. Each sample reads it too: re-reading the open file is
/// one `pread`, where opening it afresh costs a path walk through `/proc` and a `close` besides.
pub fn resident_bytes() -> Option<u64> {
    STATM.get()?.as_ref()?.resident_bytes()
}

/// `/proc/self/statm`, kept open and re-read with a stack buffer: the watchdog allocates nothing
/// while scenarios run, so it cannot show up in their memory figures.
struct Statm {
    file: File,
    page_size: u64,
}

impl Statm {
    fn open() -> Option<Statm> {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        Some(Statm {
            file: File::open("/proc/self/statm").ok()?,
            page_size,
        })
    }

    /// `None` when the read fails or does not look like `statm` (seven numbers): scenario code
    /// may close descriptors it does not own, and another file may then have this number.
    fn resident_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buffer = [0u8; 128];
        let n = self.file.read_at(&mut buffer, 0).ok()?;
        let text = std::str::from_utf8(&buffer[..n]).ok()?;
        let mut fields = 0;
        let mut pages = 0;
        for (index, field) in text.split_whitespace().enumerate() {
            let value: u64 = field.parse().ok()?;
            if index == 1 {
                pages = value;
            }
            fields += 1;
        }
        (fields == 7).then_some(pages * self.page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_reads_our_resident_size_without_reopening() {
        let statm = Statm::open().expect("/proc/self/statm");
        let first = statm.resident_bytes().expect("a figure");
        // black_box: unused, the buffer would be optimised away in release builds.
        let kept = std::hint::black_box(vec![1u8; 32 << 20]);
        let second = statm.resident_bytes().expect("a figure");
        assert!(second >= first + (16 << 20), "{first} -> {second}");
        drop(kept);
    }
}
