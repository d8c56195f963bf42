//! The runner's side of [`crate::fork_server`]: one warmed server per run, and the workers it
//! forks.
//!
//! The server is an optimisation, never a dependency: whenever it cannot serve (it failed to
//! boot, died, refused a request, or does not answer), [`ForkServer::fork`] says so and the
//! supervisor spawns that worker the ordinary way. A scenario's result never depends on which
//! way its worker started.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::supervise;
use super::workers::WorkerProgram;
use crate::fork_server::{self, Reply, Request, Start, Warm};

/// How long a fork may wait for its answer while the server boots.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may wait once the server is ready: a fork takes about a millisecond.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a collection may take, as when the runner runs it itself.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(300);

/// A running fork server.
pub struct ForkServer {
    /// Our end of the socket pair.
    socket: Arc<OwnedFd>,
    /// What the reply thread shares with the requesters.
    state: Arc<Mutex<State>>,
    /// The server process.
    process: Mutex<Child>,
    next_id: AtomicU64,
}

/// What the reply thread knows.
#[derive(Default)]
struct State {
    /// Whether the server said it booted.
    ready: bool,
    /// Whether it can no longer serve (broken, gone, or given up on).
    dead: bool,
    /// Requests waiting for their answer: what the request made (see [`Reply::Done`]), or why
    /// the server did not do it.
    pending: HashMap<u64, mpsc::Sender<Result<u64, String>>>,
}

/// A worker the server forked: the runner's ends of its pipes.
pub struct Forked {
    /// The worker's pid: a child of this process, which leads its own session and group.
    pub pid: u32,
    /// Its stdin, on which the request is written.
    pub stdin: std::io::PipeWriter,
    /// Its stdout.
    pub stdout: std::io::PipeReader,
    /// Its stderr.
    pub stderr: std::io::PipeReader,
    /// The channel it reports on.
    pub channel: std::io::PipeReader,
}

/// A worker asked for and not yet taken (see [`ForkServer::begin_fork`]).
pub struct PendingFork {
    answer: mpsc::Receiver<Result<u64, String>>,
    /// Our ends of its pipes (its pid is not known yet).
    pipes: Forked,
}

impl ForkServer {
    /// Starts the server for `program`; `None` when it cannot even be started (the run then
    /// does without it).
    pub fn start(program: &WorkerProgram, start: &Start) -> Option<ForkServer> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ok()?;
        let mut command = program.command();
        command
            .arg("--fork-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        supervise::in_own_session_with_channel(&mut command, theirs.as_raw_fd());
        let mut process = command.spawn().ok()?;
        drop(theirs);
        let message = serde_json::to_vec(start).ok()?;
        let mut stdin = process.stdin.take()?;
        if stdin.write_all(&message).is_err() {
            let _ = process.kill();
            let _ = process.wait();
            return None;
        }
        drop(stdin);
        let socket = Arc::new(ours);
        let state = Arc::new(Mutex::new(State::default()));
        let (reader_socket, reader_state) = (Arc::clone(&socket), Arc::clone(&state));
        std::thread::spawn(move || read_replies(&reader_socket, &reader_state));
        Some(ForkServer {
            socket,
            state,
            process: Mutex::new(process),
            next_id: AtomicU64::new(0),
        })
    }

    /// Collects a `pytest:` selection in the server (see [`Request::Collect`]): the text
    /// `collect_pytest.py` writes, or why the server could not.
    pub fn collect(&self, args: &[String], dir: &Path) -> Result<String, String> {
        let output = tempfile::NamedTempFile::new().map_err(|err| err.to_string())?;
        let path = output.path().to_path_buf();
        let answer = self.send(
            |id| Request::Collect {
                id,
                args: args.to_vec(),
                dir: dir.to_path_buf(),
                output: path,
            },
            &[],
        )?;
        self.wait(answer, COLLECT_TIMEOUT)?;
        std::fs::read_to_string(output.path()).map_err(|err| err.to_string())
    }

    /// Collects and keeps the run's pytest sessions (see [`Request::Warm`]); how many it kept.
    pub fn warm(&self, selections: Vec<Warm>) -> Result<u64, String> {
        let answer = self.send(|id| Request::Warm { id, selections }, &[])?;
        self.wait(answer, COLLECT_TIMEOUT)
    }

    /// Forks one worker that sets `env` before its scenario starts; `Err` says why the server
    /// cannot, and the caller spawns the worker instead.
    pub fn fork(&self, env: Vec<(String, String)>) -> Result<Forked, String> {
        let pending = self.begin_fork(env)?;
        self.finish_fork(pending)
    }

    /// Asks for a worker (see [`ForkServer::fork`]) without waiting for it: the server forks it
    /// while the caller does something else, and [`ForkServer::finish_fork`] takes it.
    pub fn begin_fork(&self, env: Vec<(String, String)>) -> Result<PendingFork, String> {
        let (stdin_reader, stdin) = std::io::pipe().map_err(|err| err.to_string())?;
        let (stdout, stdout_writer) = std::io::pipe().map_err(|err| err.to_string())?;
        let (stderr, stderr_writer) = std::io::pipe().map_err(|err| err.to_string())?;
        let (channel, channel_writer) = std::io::pipe().map_err(|err| err.to_string())?;
        let fds = [
            stdin_reader.as_raw_fd(),
            stdout_writer.as_raw_fd(),
            stderr_writer.as_raw_fd(),
            channel_writer.as_raw_fd(),
        ];
        let answer = self.send(|id| Request::Fork { id, env }, &fds)?;
        // The child has its own copies now; ours must go, or the pipes never end.
        drop((stdin_reader, stdout_writer, stderr_writer, channel_writer));
        Ok(PendingFork {
            answer,
            pipes: Forked {
                pid: 0,
                stdin,
                stdout,
                stderr,
                channel,
            },
        })
    }

    /// The worker [`ForkServer::begin_fork`] asked for, once the server says it is forked.
    pub fn finish_fork(&self, pending: PendingFork) -> Result<Forked, String> {
        let timeout = if self.lock().ready {
            FORK_TIMEOUT
        } else {
            BOOT_TIMEOUT
        };
        let pid = self.wait(pending.answer, timeout)?;
        let pid = u32::try_from(pid).map_err(|_| format!("no such pid: {pid}"))?;
        if !is_our_child(pid) {
            // Not re-parented to us (leakcheck is not a subreaper here): we could not reap
            // it, so it goes, and so does the server.
            super::reap::kill_group(pid);
            self.lock().dead = true;
            return Err(format!(
                "the forked worker {pid} is not a child of leakcheck"
            ));
        }
        Ok(Forked {
            pid,
            ..pending.pipes
        })
    }

    /// Sends the request `make(id)` with `fds`; the answer will come on the receiver.
    fn send(
        &self,
        make: impl FnOnce(u64) -> Request,
        fds: &[RawFd],
    ) -> Result<mpsc::Receiver<Result<u64, String>>, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = mpsc::channel();
        {
            let mut state = self.lock();
            if state.dead {
                return Err("the fork server is not running".to_string());
            }
            state.pending.insert(id, answer);
        }
        if let Err(err) = fork_server::send(&*self.socket, &make(id), fds) {
            self.lock().pending.remove(&id);
            return Err(format!("the fork server cannot be reached: {err}"));
        }
        Ok(answered)
    }

    /// Waits for an answer; a server that does not answer in `timeout` is not used again.
    fn wait(
        &self,
        answered: mpsc::Receiver<Result<u64, String>>,
        timeout: Duration,
    ) -> Result<u64, String> {
        match answered.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("the fork server ended".to_string()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.lock().dead = true;
                self.kill();
                Err(format!(
                    "the fork server did not answer in {} s",
                    timeout.as_secs()
                ))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kill(&self) {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        let _ = process.kill();
        let _ = process.wait();
    }
}

impl Drop for ForkServer {
    /// Ends the server: closing our end of the socket tells it to exit, and killing it makes
    /// sure. The workers it forked are ours, not its.
    fn drop(&mut self) {
        // SAFETY: shutdown on a socket we own; the reply thread then reads end-of-file.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR) };
        self.kill();
    }
}

/// The reply thread: hands each answer to its requester, until the server is gone; then every
/// waiter is told (their senders drop).
fn read_replies(socket: &OwnedFd, state: &Mutex<State>) {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let reply = match fork_server::receive::<Reply>(socket) {
            Ok(Some((reply, _))) => reply,
            Ok(None) | Err(_) => break,
        };
        let (id, answer) = match reply {
            Reply::Ready => {
                lock().ready = true;
                continue;
            }
            Reply::Broken { .. } => break,
            Reply::Done { id, count } => (id, Ok(count)),
            Reply::Refused { id, reason } => (id, Err(reason)),
        };
        if let Some(waiter) = lock().pending.remove(&id) {
            let _ = waiter.send(answer);
        }
    }
    let mut state = lock();
    state.dead = true;
    state.pending.clear();
}

/// Whether `pid` is a child of this process (so that it can reap it).
fn is_our_child(pid: u32) -> bool {
    let own = std::process::id() as libc::pid_t;
    libc::pid_t::try_from(pid).is_ok_and(|pid| super::reap::parent_of(pid) == Some(own))
}
