//! The worker's end of the result pipe: JSON lines on file descriptor [`CHANNEL_FD`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::protocol::{CHANNEL_FD, WorkerMessage};

/// Lowest descriptor the channel moves to, out of the way of code that assumes 3 is free.
const CHANNEL_FD_FLOOR: i32 = 100;

/// Takes the descriptor the runner left on [`CHANNEL_FD`] (a worker's channel, or a fork
/// server's socket), moved to a close-on-exec descriptor above the usual range: subprocesses
/// do not inherit it (so they cannot hold it open or write to it), scenario code that closes or
/// reuses descriptor 3 leaves it alone, and a fork server's children can take 3 for their own.
pub fn take_runner_fd() -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl only queries the descriptor; it tells us whether it is open at all.
    if unsafe { libc::fcntl(CHANNEL_FD, libc::F_GETFD) } == -1 {
        return Err(std::io::Error::other(format!(
            "file descriptor {CHANNEL_FD} is not open: the worker mode is started by `leakcheck run`, not by hand"
        )));
    }
    // SAFETY: fcntl and close on a descriptor we own; no memory is involved.
    let fd = unsafe {
        let mut moved = libc::fcntl(CHANNEL_FD, libc::F_DUPFD_CLOEXEC, CHANNEL_FD_FLOOR);
        if moved == -1 {
            moved = libc::fcntl(CHANNEL_FD, libc::F_DUPFD_CLOEXEC, 0);
        }
        if moved == -1 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(CHANNEL_FD);
        moved
    };
    // SAFETY: the descriptor was just created and nothing else in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes [`WorkerMessage`]s to the runner, one line each, flushed immediately so the runner
/// sees progress live and keeps every sample even if the worker dies right after.
pub struct Channel {
    /// Dropped by hand (see `Drop`): a descriptor scenario code closed must not be closed again.
    out: ManuallyDrop<BufWriter<File>>,
    /// The process that opened the channel; a child forked by scenario code (`os.fork()`) must
    /// not speak on it.
    owner: u32,
    /// A write found the descriptor closed (`EBADF`): it is not ours any more.
    lost: bool,
}

impl Channel {
    /// Takes ownership of the channel descriptor the runner set up.
    pub fn open() -> std::io::Result<Channel> {
        let file = File::from(take_runner_fd()?);
        Ok(Channel {
            out: ManuallyDrop::new(BufWriter::new(file)),
            owner: std::process::id(),
            lost: false,
        })
    }

    /// A second handle on the channel for the watchdog thread. It writes each message in one
    /// `write` under `PIPE_BUF` (atomic on a pipe), starting with a newline: should it cut into
    /// a long message of ours, that one is lost, its own is not.
    pub fn watchdog_handle(&self) -> std::io::Result<File> {
        self.out.get_ref().try_clone()
    }

    /// Sends one message.
    pub fn send(&mut self, message: &WorkerMessage) -> std::io::Result<()> {
        if std::process::id() != self.owner {
            // A copy of the worker made by `os.fork()` in scenario code has come back to the
            // harness: it must not add samples of its own. Leave without running any cleanup.
            // SAFETY: `_exit` ends the process immediately; nothing to uphold.
            unsafe { libc::_exit(0) };
        }
        let sent = (|| {
            serde_json::to_writer(&mut *self.out, message)?;
            self.out.write_all(b"\n")?;
            self.out.flush()
        })();
        sent.map_err(|err| self.explained(err))
    }

    /// The error of a write on the channel, saying who closed it when it was closed: scenario
    /// code that closes every descriptor (`os.closerange(3, 65536)`, as daemonizing helpers
    /// do) closes ours too, and a bare "Bad file descriptor" named no culprit.
    fn explained(&mut self, err: std::io::Error) -> std::io::Error {
        if err.raw_os_error() != Some(libc::EBADF) {
            return err;
        }
        self.lost = true;
        std::io::Error::other(format!(
            "scenario code closed leakcheck's result channel (file descriptor {}), so nothing \
             more could be reported; close only the descriptors the scenario opened",
            self.out.get_ref().as_raw_fd()
        ))
    }

    /// Flushes anything buffered (sends already flush; this is for the exit path).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for Channel {
    /// Flushes and closes the channel, unless scenario code closed its descriptor: closing that
    /// number again would close whatever has it now (and aborts debug builds, which check that
    /// an owned descriptor is still open when it is dropped).
    fn drop(&mut self) {
        // SAFETY: `out` is taken once, here, and never used after.
        let out = unsafe { ManuallyDrop::take(&mut self.out) };
        if self.lost {
            let (file, _) = out.into_parts();
            std::mem::forget(file);
        }
    }
}
