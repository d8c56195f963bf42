//! The worker's end of the result pipe: JSON lines on file descriptor [`CHANNEL_FD`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::FromRawFd;

use crate::protocol::{CHANNEL_FD, WorkerMessage};

/// Writes [`WorkerMessage`]s to the runner, one line each, flushed immediately so the runner
/// sees progress live and keeps every sample even if the worker dies right after.
pub struct Channel {
    out: BufWriter<File>,
}

impl Channel {
    /// Takes ownership of the channel descriptor the runner set up.
    pub fn open() -> std::io::Result<Channel> {
        // SAFETY: fcntl only queries the descriptor; it tells us whether it is open at all.
        if unsafe { libc::fcntl(CHANNEL_FD, libc::F_GETFD) } == -1 {
            return Err(std::io::Error::other(format!(
                "file descriptor {CHANNEL_FD} is not open: the worker mode is started by `leakcheck run`, not by hand"
            )));
        }
        // SAFETY: the descriptor is open (checked above) and nothing else in this process owns it.
        let file = unsafe { File::from_raw_fd(CHANNEL_FD) };
        Ok(Channel {
            out: BufWriter::new(file),
        })
    }

    /// Sends one message.
    pub fn send(&mut self, message: &WorkerMessage) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, message)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Flushes anything buffered (sends already flush; this is for the exit path).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
