//! A worker's pipes, served by the thread that supervises it: the request written to its stdin,
//! its messages read from the channel, its stdout and stderr drained into bounded tails, and its
//! exit seen, all from one `poll(2)`.
//!
//! The supervisor used to give each worker four threads (the request's writer, the channel's
//! reader, one drain per output stream) and hand every message across a queue: a short
//! scenario then paid four thread starts (each faulting in a fresh stack and arena) and three
//! wake-ups per sample, which was most of what leakcheck itself spent per scenario. Polling the
//! descriptors from the supervising thread costs one wake-up per batch of messages and no
//! thread at all. Every descriptor here is non-blocking, so a worker that never reads its
//! request, or a stray that keeps a pipe open, can only make the supervisor wait until its next
//! tick, never hang it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::protocol::{MessageReader, WorkerMessage};

/// How much of each output stream is kept, from the end.
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// What one [`Pipes::pump`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// The worker's exit can be collected now (its pidfd became readable).
    pub exited: bool,
    /// The message handler said stop.
    pub stopped: bool,
}

/// The supervisor's ends of one worker's pipes.
pub struct Pipes {
    /// The request still to be written, and how much of it is; `None` once written (or the
    /// worker closed its stdin), when our end is closed so that the worker reads its end.
    stdin: Option<(File, Vec<u8>, usize)>,
    /// The channel, until its end of file.
    channel: Option<File>,
    messages: MessageReader,
    stdout: Tail,
    stderr: Tail,
    /// A pidfd of the worker (Linux 5.3+), readable once it has exited: the supervisor then
    /// sleeps in `poll` until the exit instead of looking every millisecond.
    exit: Option<OwnedFd>,
}

impl Pipes {
    /// The pipes of the worker `pid`: our ends of its stdin (to which `request` goes), channel,
    /// stdout and stderr.
    pub fn new(
        pid: u32,
        stdin: OwnedFd,
        request: Vec<u8>,
        channel: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> std::io::Result<Pipes> {
        for fd in [&stdin, &channel, &stdout, &stderr] {
            set_nonblocking(fd.as_raw_fd())?;
        }
        let mut pipes = Pipes {
            stdin: Some((File::from(stdin), request, 0)),
            channel: Some(File::from(channel)),
            messages: MessageReader::default(),
            stdout: Tail::new(File::from(stdout)),
            stderr: Tail::new(File::from(stderr)),
            exit: pidfd_open(pid),
        };
        // Most requests fit in the pipe: written now, the worker has it before the first poll.
        pipes.write_request();
        Ok(pipes)
    }

    /// Whether the channel is still open (its end of file not yet read).
    pub fn channel_open(&self) -> bool {
        self.channel.is_some()
    }

    /// Whether the worker's exit wakes [`Pipes::pump`] (a pidfd, until it has fired once);
    /// else the caller must look for it itself, on a timer.
    pub fn exit_pollable(&self) -> bool {
        self.exit.is_some()
    }

    /// Stops reading the channel: what the worker still says is not heard.
    pub fn close_channel(&mut self) {
        self.channel = None;
    }

    /// Waits up to `timeout` for any pipe to be ready (or the worker to exit), then serves
    /// every ready one: the request written on, output drained, each whole message passed to
    /// `on_message` until it returns false. Returns at once when something was ready.
    pub fn pump(
        &mut self,
        timeout: Duration,
        mut on_message: impl FnMut(WorkerMessage) -> bool,
    ) -> Pumped {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(5);
        let mut watch = |fd: Option<RawFd>, events: libc::c_short| {
            fd.map(|fd| {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                fds.len() - 1
            })
        };
        let stdin = watch(self.stdin.as_ref().map(|s| s.0.as_raw_fd()), libc::POLLOUT);
        let channel = watch(self.channel.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        let stdout = watch(self.stdout.fd(), libc::POLLIN);
        let stderr = watch(self.stderr.fd(), libc::POLLIN);
        let exit = watch(self.exit.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the duration of
        // the call, and each descriptor in it is open (owned by `self`).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        let mut pumped = Pumped::default();
        if ready <= 0 {
            // A timeout, or EINTR (a signal: the caller's tick looks at it).
            return pumped;
        }
        let fired = |slot: Option<usize>| slot.is_some_and(|i| fds[i].revents != 0);
        if fired(stdin) {
            self.write_request();
        }
        if fired(stdout) {
            self.stdout.drain();
        }
        if fired(stderr) {
            self.stderr.drain();
        }
        if fired(channel) {
            pumped.stopped = !self.read_channel(&mut on_message);
        }
        if fired(exit) {
            // Readable from now on: dropped, or every later poll would return at once.
            pumped.exited = true;
            self.exit = None;
        }
        pumped
    }

    /// Waits until both output streams have ended or `grace` has passed (a stray that escaped
    /// every net may hold them open), then returns their tails.
    pub fn finish(mut self, grace: Duration) -> (String, String) {
        self.stdin = None;
        self.channel = None;
        self.exit = None;
        let until = Instant::now() + grace;
        loop {
            let now = Instant::now();
            if (self.stdout.fd().is_none() && self.stderr.fd().is_none()) || now >= until {
                break;
            }
            self.pump(until - now, |_| true);
        }
        (self.stdout.text(), self.stderr.text())
    }

    /// Writes as much of the request as the pipe takes; closes our end once it is all written
    /// or the worker will never read it.
    fn write_request(&mut self) {
        let Some((file, request, written)) = self.stdin.as_mut() else {
            return;
        };
        loop {
            if *written == request.len() {
                self.stdin = None;
                return;
            }
            match file.write(&request[*written..]) {
                Ok(0) => {
                    self.stdin = None;
                    return;
                }
                Ok(n) => *written += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                // A worker that dies before reading closes the pipe: nothing to report here.
                Err(_) => {
                    self.stdin = None;
                    return;
                }
            }
        }
    }

    /// Reads what the channel has; false when `on_message` said stop.
    fn read_channel(&mut self, on_message: &mut impl FnMut(WorkerMessage) -> bool) -> bool {
        let mut buffer = [0u8; 16 * 1024];
        while let Some(channel) = self.channel.as_mut() {
            match channel.read(&mut buffer) {
                Ok(0) => self.channel = None,
                Ok(n) => {
                    if !self.messages.push(&buffer[..n], on_message) {
                        return false;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.channel = None,
            }
        }
        true
    }
}

/// The last [`OUTPUT_TAIL_BYTES`] of an output stream.
struct Tail {
    /// The stream, until its end of file.
    stream: Option<File>,
    tail: Vec<u8>,
    dropped: usize,
}

impl Tail {
    fn new(stream: File) -> Tail {
        Tail {
            stream: Some(stream),
            tail: Vec::new(),
            dropped: 0,
        }
    }

    fn fd(&self) -> Option<RawFd> {
        self.stream.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Reads what the stream has, keeping about the last [`OUTPUT_TAIL_BYTES`].
    fn drain(&mut self) {
        let mut buffer = [0u8; 8192];
        while let Some(stream) = self.stream.as_mut() {
            match stream.read(&mut buffer) {
                Ok(0) => self.stream = None,
                Ok(n) => {
                    self.tail.extend_from_slice(&buffer[..n]);
                    if self.tail.len() > 2 * OUTPUT_TAIL_BYTES {
                        let cut = self.tail.len() - OUTPUT_TAIL_BYTES;
                        self.dropped += cut;
                        self.tail.drain(..cut);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.stream = None,
            }
        }
    }

    /// What it holds, saying how much came before and whether the stream was still open.
    fn text(&self) -> String {
        let mut tail = self.tail.as_slice();
        let mut dropped = self.dropped;
        if tail.len() > OUTPUT_TAIL_BYTES {
            dropped += tail.len() - OUTPUT_TAIL_BYTES;
            tail = &tail[tail.len() - OUTPUT_TAIL_BYTES..];
        }
        let mut text = String::new();
        if dropped > 0 {
            text.push_str(&format!("[… {dropped} earlier bytes not kept …]\n"));
        }
        text.push_str(&String::from_utf8_lossy(tail));
        if self.stream.is_some() {
            text.push_str("\n[… still open: a process outside the worker's group holds it …]");
        }
        text
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is involved.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pidfd for `pid` (close-on-exec), or `None` where the kernel has none (before 5.3): the
/// supervisor then looks for the exit on a short timer instead.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
