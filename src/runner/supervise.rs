//! Starting one worker process and watching it: the process side of supervision (spawn or
//! fork, pipes, output tails, kill and sweep, waiting for the exit). What the worker's messages
//! mean and when it must be stopped is decided by [`Watch`], which this loop feeds.
//!
//! The worker runs in its own session and process group so that a timeout, the memory cap, an
//! interrupted run or the end of the scenario can stop it together with any subprocess it
//! started; strays that left the group are swept by their environment cookie ([`reap`]). Its
//! stdout and stderr are drained by threads into bounded tails, so a scenario that prints
//! megabytes neither blocks on a full pipe nor fills our memory, and a stray that keeps a pipe
//! open cannot hang the run. The worker dies with us (`PR_SET_PDEATHSIG`) if leakcheck itself is
//! killed.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::fork_server::ForkServer;
use super::watch::{EXIT_GRACE, Order, Signals, Watch, WorkerRun};
use super::workers::WorkerProgram;
use super::{limits, reap, signals};
use crate::protocol::{CHANNEL_FD, Phase, WorkerMessage, WorkerRequest};
use crate::results::{Failure, WorkerStart};

/// How much of each output stream is kept, from the end.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// How often the supervisor ticks the watch while no message arrives.
const POLL: Duration = Duration::from_millis(50);

/// How often to look whether a worker that is on its way out has exited. It usually takes a
/// millisecond or two after its last message; a coarser step is added to every scenario.
const EXIT_POLL: Duration = Duration::from_millis(1);

/// How long to wait for the output pipes to close once the worker's processes are gone; a stray
/// that escaped both nets may hold them open forever.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// What the supervisor tells its caller while the worker runs.
pub enum Progress {
    /// A new phase started.
    Phase(Phase),
    /// Iterations completed so far.
    Iteration(u64),
}

impl Progress {
    /// The progress a message reports, if any.
    fn of(message: &WorkerMessage) -> Option<Progress> {
        match message {
            WorkerMessage::Phase { phase } => Some(Progress::Phase(*phase)),
            WorkerMessage::Progress { iteration } => Some(Progress::Iteration(*iteration)),
            WorkerMessage::Sample { sample, .. } => Some(Progress::Iteration(sample.iteration)),
            _ => None,
        }
    }
}

/// Runs one worker to completion (or failure) and returns what it reported.
///
/// Whatever happens, when this returns the worker's process group has been killed, the strays
/// carrying its cookie swept, and no thread of ours waits on its pipes for more than
/// [`OUTPUT_GRACE`].
pub fn run_worker(
    program: &WorkerProgram,
    server: Option<&ForkServer>,
    request: &WorkerRequest,
    timeout: Duration,
    mut on_progress: impl FnMut(Progress),
) -> WorkerRun {
    let started = Instant::now();
    if signals::interrupted() {
        return WorkerRun {
            failure: Some(Failure::Interrupted.into()),
            ..WorkerRun::default()
        };
    }
    let cookie = reap::new_cookie();
    let mut spawned = match spawn(program, server, request, &cookie) {
        Ok(spawned) => spawned,
        Err(err) => {
            let reason = err.to_string();
            return WorkerRun {
                failure: Some(Failure::Spawn { reason }.into()),
                ..WorkerRun::default()
            };
        }
    };
    let pid = spawned.child.id();
    let start = match spawned.child {
        Process::Spawned(_) => WorkerStart::Spawned,
        Process::Forked { .. } => WorkerStart::Forked,
    };
    let slot = signals::WorkerSlot::register(pid);
    let mut watch = Watch::new(started, timeout, request.options.max_rss);
    let mut exit_status: Option<ExitStatus> = None;
    // Carries out the watch's order; whether to stop watching.
    let obey = |order: Option<Order>| match order {
        None => false,
        Some(Order::Kill) => {
            reap::kill_group(pid);
            false
        }
        Some(Order::Stop) => {
            reap::kill_group(pid);
            true
        }
        Some(Order::Leave) => true,
    };
    loop {
        match spawned.messages.recv_timeout(POLL) {
            Ok(message) => {
                if let Some(progress) = Progress::of(&message) {
                    on_progress(progress);
                }
                if obey(watch.on_message(Instant::now(), message)) {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if exit_status.is_none() {
            exit_status = spawned.child.try_wait();
        }
        let signals = Signals {
            from_worker: slot.sent(),
            interrupted: signals::interrupted(),
        };
        let order = watch.on_tick(Instant::now(), exit_status, signals, || {
            limits::group_resident_bytes(pid, &cookie)
        });
        if obey(order) {
            break;
        }
    }

    let grace = if watch.finished() { EXIT_GRACE } else { POLL };
    let status = exit_status.or_else(|| wait_briefly(&mut spawned.child, grace));
    // Whatever the scenario left running goes with it: its group, then strays by cookie.
    reap::kill_group(pid);
    let status = status.or_else(|| spawned.child.wait());
    reap::sweep(&cookie);

    let stdout = spawned.stdout.finish(OUTPUT_GRACE);
    let stderr = spawned.stderr.finish(OUTPUT_GRACE);
    let mut run = watch.finish(status, stdout, stderr);
    run.start = Some(start);
    run.duration = started.elapsed();
    run
}

struct Spawned {
    child: Process,
    messages: mpsc::Receiver<WorkerMessage>,
    stdout: Tail,
    stderr: Tail,
}

/// The worker's process: spawned by us, or forked by the fork server and re-parented to us.
enum Process {
    Spawned(Child),
    Forked {
        pid: u32,
        status: Option<ExitStatus>,
        /// Its exit status can no longer be had (it was reaped elsewhere).
        lost: bool,
    },
}

impl Process {
    fn id(&self) -> u32 {
        match self {
            Process::Spawned(child) => child.id(),
            Process::Forked { pid, .. } => *pid,
        }
    }

    /// Its exit status, if it has ended.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        match self {
            Process::Spawned(child) => child.try_wait().ok().flatten(),
            Process::Forked { .. } => self.wait_forked(libc::WNOHANG),
        }
    }

    /// Waits for it to end; `None` when its status can no longer be known.
    fn wait(&mut self) -> Option<ExitStatus> {
        match self {
            Process::Spawned(child) => child.wait().ok(),
            Process::Forked { .. } => self.wait_forked(0),
        }
    }

    fn wait_forked(&mut self, flags: libc::c_int) -> Option<ExitStatus> {
        let Process::Forked { pid, status, lost } = self else {
            return None;
        };
        if status.is_none() && !*lost {
            let mut raw = 0;
            // SAFETY: waitpid on a child of ours with a valid status pointer.
            let reaped = unsafe { libc::waitpid(*pid as libc::pid_t, &mut raw, flags) };
            if reaped == *pid as libc::pid_t {
                *status = Some(ExitStatus::from_raw(raw));
            } else if reaped == -1
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                *lost = true;
            }
        }
        *status
    }
}

/// Makes `command` start in a session and process group of its own, dying with leakcheck, with
/// `channel_fd` as its [`CHANNEL_FD`]: how every worker and the fork server start.
pub(super) fn in_own_session_with_channel(command: &mut Command, channel_fd: RawFd) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: only async-signal-safe calls (dup2, fcntl, prctl, getppid, setsid, _exit) between
    // fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Die with leakcheck, even if it is killed with SIGKILL and cannot clean up; if it
            // already died before this line, the parent is no longer `parent`.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // A session of its own, which it leads with a group of its own: a process can only
            // join a group of its own session, so the worker cannot move into leakcheck's
            // group (`os.setpgid(0, os.getpgid(os.getppid()))`) to escape the group kill.
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if channel_fd == CHANNEL_FD {
                let flags = libc::fcntl(CHANNEL_FD, libc::F_GETFD);
                if flags == -1
                    || libc::fcntl(CHANNEL_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(channel_fd, CHANNEL_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts the worker: forked by `server` when there is one that can, else spawned. Either way
/// it reads `request` on stdin and carries `cookie` in its environment.
fn spawn(
    program: &WorkerProgram,
    server: Option<&ForkServer>,
    request: &WorkerRequest,
    cookie: &str,
) -> std::io::Result<Spawned> {
    let forked = server.and_then(|server| {
        server
            .fork(vec![(reap::COOKIE_VAR.to_string(), cookie.to_string())])
            .ok()
    });
    let (process, stdin, stdout, stderr, channel_reader): (_, Box<dyn Write + Send>, _, _, _) =
        match forked {
            Some(forked) => (
                Process::Forked {
                    pid: forked.pid,
                    status: None,
                    lost: false,
                },
                Box::new(forked.stdin),
                Tail::drain(forked.stdout),
                Tail::drain(forked.stderr),
                forked.channel,
            ),
            None => {
                let (channel_reader, channel_writer) = std::io::pipe()?;
                // The worker executable, its loader search path and allocator settings.
                let mut command = program.command();
                command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .env("PYTHONHASHSEED", "0")
                    .env(reap::COOKIE_VAR, cookie);
                in_own_session_with_channel(&mut command, channel_writer.as_raw_fd());
                let mut child = command.spawn()?;
                // Our copy of the write end must go, or the channel never reports end-of-file.
                drop(channel_writer);
                let stdin = child.stdin.take().expect("stdin was piped");
                let stdout = Tail::drain(child.stdout.take().expect("stdout was piped"));
                let stderr = Tail::drain(child.stderr.take().expect("stderr was piped"));
                (
                    Process::Spawned(child),
                    Box::new(stdin),
                    stdout,
                    stderr,
                    channel_reader,
                )
            }
        };

    let request_json = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    let mut stdin = stdin;
    thread::spawn(move || {
        // A worker that dies before reading simply closes the pipe; nothing to report here.
        let _ = stdin.write_all(&request_json);
    });

    let (sender, messages) = mpsc::channel();
    thread::spawn(move || {
        crate::protocol::read_messages(channel_reader, |message| sender.send(message).is_ok())
    });
    Ok(Spawned {
        child: process,
        messages,
        stdout,
        stderr,
    })
}

/// The last [`OUTPUT_TAIL_BYTES`] of an output stream, drained by a thread of its own.
struct Tail {
    state: Arc<Mutex<TailState>>,
    /// Never sent on: it disconnects when the draining thread ends, which wakes [`Tail::finish`]
    /// at once.
    ended: mpsc::Receiver<()>,
}

#[derive(Default)]
struct TailState {
    tail: Vec<u8>,
    dropped: usize,
}

impl Tail {
    /// Starts reading `stream` to its end.
    fn drain(mut stream: impl Read + Send + 'static) -> Tail {
        let state = Arc::new(Mutex::new(TailState::default()));
        let shared = Arc::clone(&state);
        let (ending, ended) = mpsc::channel::<()>();
        thread::spawn(move || {
            let _ending = ending; // dropped, disconnecting `ended`, when this thread ends
            let mut buffer = [0u8; 8192];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                        state.tail.extend_from_slice(&buffer[..n]);
                        if state.tail.len() > 2 * OUTPUT_TAIL_BYTES {
                            let cut = state.tail.len() - OUTPUT_TAIL_BYTES;
                            state.dropped += cut;
                            state.tail.drain(..cut);
                        }
                    }
                }
            }
        });
        Tail { state, ended }
    }

    /// Waits up to `grace` for the stream to end, then returns what it holds. A stream still
    /// open (a process that escaped every net holds it) is left to its thread, which ends when
    /// that process does.
    fn finish(self, grace: Duration) -> String {
        let open = self.ended.recv_timeout(grace) == Err(mpsc::RecvTimeoutError::Timeout);
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut tail = state.tail.as_slice();
        let mut dropped = state.dropped;
        if tail.len() > OUTPUT_TAIL_BYTES {
            dropped += tail.len() - OUTPUT_TAIL_BYTES;
            tail = &tail[tail.len() - OUTPUT_TAIL_BYTES..];
        }
        let mut text = String::new();
        if dropped > 0 {
            text.push_str(&format!("[… {dropped} earlier bytes not kept …]\n"));
        }
        text.push_str(&String::from_utf8_lossy(tail));
        if open {
            text.push_str("\n[… still open: a process outside the worker's group holds it …]");
        }
        text
    }
}

fn wait_briefly(child: &mut Process, grace: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(EXIT_POLL);
    }
}
