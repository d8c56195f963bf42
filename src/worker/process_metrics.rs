//! Process-level metrics read from `/proc`, in Rust, so reading them allocates nothing that
//! Python's allocators or tracemalloc could see.

use std::os::fd::RawFd;
use std::sync::Mutex;

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
///
/// The folder is kept open between samples and listed again from its start: opening it afresh
/// cost a path walk through `/proc` and a `close` at every sample, about half of what counting
/// took. Scenario code may close descriptors it does not own and get the same number back for a
/// file of its own, so the descriptor is checked before each listing (same device and inode as
/// when it was opened, in the same process) and, when it is not ours any more, left alone and
/// opened again.
pub fn open_fds() -> f64 {
    let mut kept = FD_FOLDER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !kept.as_ref().is_some_and(FdFolder::still_ours) {
        *kept = FdFolder::open();
    }
    match kept.as_ref().and_then(FdFolder::entries) {
        Some(entries) => entries.saturating_sub(1) as f64,
        None => {
            *kept = None;
            f64::NAN
        }
    }
}

/// `/proc/self/fd`, opened in this process, for [`open_fds`].
static FD_FOLDER: Mutex<Option<FdFolder>> = Mutex::new(None);

/// An open `/proc/self/fd` and what identifies it.
struct FdFolder {
    fd: RawFd,
    pid: libc::pid_t,
    device: libc::dev_t,
    inode: libc::ino_t,
}

impl FdFolder {
    /// Opens the folder, close-on-exec. At the lowest free number, as any file: a high one
    /// would grow the descriptor table, which in a process with threads waits for an RCU grace
    /// period (milliseconds, at every worker's first sample).
    fn open() -> Option<FdFolder> {
        // SAFETY: a NUL-terminated path and plain flags.
        let fd = unsafe {
            libc::open(
                c"/proc/self/fd".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        let (device, inode) = identity(fd)?;
        Some(FdFolder {
            fd,
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
            device,
            inode,
        })
    }

    /// Whether the descriptor is still the folder this process opened.
    fn still_ours(&self) -> bool {
        // SAFETY: getpid has no preconditions.
        self.pid == unsafe { libc::getpid() }
            && identity(self.fd) == Some((self.device, self.inode))
    }

    /// The folder's entries, `.` and `..` left out, listed from its start; `None` when the
    /// listing fails.
    fn entries(&self) -> Option<usize> {
        // SAFETY: rewinding a directory descriptor we checked is ours.
        if unsafe { libc::lseek(self.fd, 0, libc::SEEK_SET) } != 0 {
            return None;
        }
        // On the stack, 8-byte aligned as `linux_dirent64` records are: nothing is allocated
        // while a sample is taken.
        let mut buffer = [0u64; 512];
        let mut count = 0;
        loop {
            // SAFETY: getdents64 writes at most the buffer's length into it.
            let read = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd,
                    buffer.as_mut_ptr(),
                    std::mem::size_of_val(&buffer),
                )
            };
            if read < 0 {
                return None;
            }
            if read == 0 {
                return Some(count);
            }
            // SAFETY: the kernel filled `read` bytes of the buffer with whole records.
            let bytes =
                unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), read as usize) };
            let mut offset = 0;
            while offset + DIRENT_NAME <= bytes.len() {
                let length = u16::from_ne_bytes([bytes[offset + 16], bytes[offset + 17]]) as usize;
                let name = &bytes[offset + DIRENT_NAME..];
                if !(name.starts_with(b".\0") || name.starts_with(b"..\0")) {
                    count += 1;
                }
                if length == 0 {
                    return None;
                }
                offset += length;
            }
        }
    }
}

impl Drop for FdFolder {
    fn drop(&mut self) {
        if self.still_ours() {
            // SAFETY: the descriptor is still the folder we opened.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// Where the name starts in a `linux_dirent64` record: inode (8), offset (8), length (2), type.
const DIRENT_NAME: usize = 19;

/// The device and inode of the file open at `fd`, if any.
fn identity(fd: RawFd) -> Option<(libc::dev_t, libc::ino_t)> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` on success, which is checked before it is read.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded.
    let stat = unsafe { stat.assume_init() };
    Some((stat.st_dev, stat.st_ino))
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

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Runs `check` in a forked child, which has the descriptor table to itself (the other
    /// tests' threads open files too), and asserts it found nothing wrong. The check returns
    /// the number of its first failed step, or 0; it does not panic, so the child takes no lock
    /// another thread may have held at the fork.
    fn alone(check: fn() -> i32) {
        // SAFETY: the child runs `check` and leaves with `_exit`; the parent waits for it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ending the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(check()) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "the check did not exit");
        assert_eq!(libc::WEXITSTATUS(status), 0, "the step that failed");
    }

    /// What a fresh listing of `/proc/self/fd` counts, less the descriptor of that listing and
    /// of the kept folder.
    fn listed() -> f64 {
        std::fs::read_dir("/proc/self/fd").map_or(f64::NAN, |dir| dir.count() as f64 - 2.0)
    }

    #[test]
    fn the_kept_folder_counts_what_a_fresh_listing_counts() {
        alone(|| {
            let before = open_fds();
            if before != listed() {
                return 1;
            }
            // More entries than one `getdents64` call returns into the 4 KiB buffer.
            let files: Vec<File> = (0..300)
                .filter_map(|_| File::open("/proc/self/stat").ok())
                .collect();
            if files.len() != 300 || open_fds() != before + 300.0 {
                return 2;
            }
            drop(files);
            if open_fds() != before {
                return 3;
            }
            0
        });
    }

    #[test]
    fn a_descriptor_the_scenario_took_over_is_left_alone() {
        alone(|| {
            open_fds();
            let Some(kept) = FD_FOLDER
                .lock()
                .ok()
                .and_then(|folder| folder.as_ref().map(|f| f.fd))
            else {
                return 1;
            };
            // Scenario code closes the folder and opens a file that gets its number.
            let Ok(file) = File::open("/proc/self/stat") else {
                return 2;
            };
            // SAFETY: replacing the kept descriptor with a copy of `file`, as careless code would.
            if unsafe { libc::dup2(file.as_raw_fd(), kept) } != kept {
                return 3;
            }
            if open_fds() != listed() {
                return 4;
            }
            // The file is still open at that number, not closed as the old folder was.
            if identity(kept).is_none() || identity(kept) != identity(file.as_raw_fd()) {
                return 5;
            }
            0
        });
    }
}
