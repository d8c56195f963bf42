//! Starting one worker process and watching it: the process side of supervision (spawn or
//! fork, pipes, output tails, kill and sweep, waiting for the exit). What the worker's messages
//! mean and when it must be stopped is decided by [`Watch`], which this loop feeds.
//!
//! The worker runs in its own session and process group so that a timeout, the memory cap, an
//! interrupted run or the end of the scenario can stop it together with any subprocess it
//! started; strays that left the group are swept by their environment cookie ([`reap`]). Its
//! pipes are served from the supervising thread itself ([`Pipes`]): stdout and stderr are
//! drained into bounded tails, so a scenario that prints megabytes neither blocks on a full pipe
//! nor fills our memory, and a stray that keeps a pipe open cannot hang the run. The worker dies with us (`PR_SET_PDEATHSIG`) if leakcheck itself is
//! killed.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fork_server::{ForkServer, Forked, PendingFork};
use super::pipes::Pipes;
use super::watch::{EXIT_GRACE, Order, Signals, Watch, WorkerRun};
use super::workers::WorkerProgram;
use super::{limits, reap, signals};
use crate::protocol::{CHANNEL_FD, Phase, WorkerMessage, WorkerRequest};
use crate::results::{Failure, WorkerStart};

/// How often the supervisor ticks the watch while no message arrives.
const POLL: Duration = Duration::from_millis(50);

/// How often to look whether a worker that is on its way out has exited, where the kernel has
/// no pidfd to wait on. It usually takes a millisecond or two after its last message; a coarser
/// step is added to every scenario.
const EXIT_POLL: Duration = Duration::from_millis(1);

/// How long samples gather in the channel before the supervisor reads them (see `run_worker`).
const SAMPLE_BATCH: Duration = Duration::from_millis(1);

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
///
/// `ahead` carries a worker forked ahead between the scenarios of one scheduling thread: one
/// there is taken for this scenario, and the next is asked for as soon as this worker has
/// started, when `more` says another scenario may follow (see [`Ahead`]).
pub fn run_worker(
    program: &WorkerProgram,
    server: Option<&ForkServer>,
    request: &WorkerRequest,
    timeout: Duration,
    ahead: &mut Option<Ahead>,
    more: bool,
    mut on_progress: impl FnMut(Progress),
) -> WorkerRun {
    let started = Instant::now();
    if signals::interrupted() {
        return WorkerRun {
            failure: Some(Failure::Interrupted.into()),
            ..WorkerRun::default()
        };
    }
    let (cookie, pending) = match ahead.take() {
        Some(Ahead { cookie, pending }) => (cookie, Some(pending)),
        None => (reap::new_cookie(), None),
    };
    let mut spawned = match spawn(program, server, request, &cookie, pending) {
        Ok(spawned) => spawned,
        Err(err) => {
            let reason = err.to_string();
            return WorkerRun {
                failure: Some(Failure::Spawn { reason }.into()),
                ..WorkerRun::default()
            };
        }
    };
    // The next scenario's worker is forked while this one runs (see `Ahead`).
    if more && let Some(server) = server {
        *ahead = Ahead::ask(server);
    }
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
        let mut stop = false;
        let mut sampling = false;
        let pumped = spawned.pipes.pump(POLL, |message| {
            sampling = matches!(message, WorkerMessage::Sample { .. });
            if let Some(progress) = Progress::of(&message) {
                on_progress(progress);
            }
            stop = obey(watch.on_message(Instant::now(), message));
            !stop
        });
        if stop || !spawned.pipes.channel_open() {
            break;
        }
        if sampling && !pumped.exited {
            // Samples come every few dozen microseconds in a short scenario: read as they came,
            // each woke this thread, a context switch on both sides. Letting them gather in the
            // pipe for a moment reads them in batches; the worker never waits (the pipe holds
            // hundreds), and the last message of the scenario is read at most this much later.
            std::thread::sleep(SAMPLE_BATCH);
        }
        if exit_status.is_none() && (pumped.exited || !spawned.pipes.exit_pollable()) {
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
    spawned.pipes.close_channel();

    let grace = if watch.finished() { EXIT_GRACE } else { POLL };
    let status = exit_status.or_else(|| wait_briefly(&mut spawned, grace));
    // Whatever the scenario left running goes with it: its group, then strays by cookie.
    reap::kill_group(pid);
    let status = status.or_else(|| spawned.child.wait());
    reap::sweep(&cookie);

    let (stdout, stderr) = spawned.pipes.finish(OUTPUT_GRACE);
    let mut run = watch.finish(status, stdout, stderr);
    run.start = Some(start);
    run.duration = started.elapsed();
    run
}

/// A worker forked ahead, for the next scenario its scheduling thread runs, while the current
/// one runs.
///
/// A fork from the server takes two forks (see `worker::fork_server`), each copying the page
/// tables of a server that may hold a collected pytest suite, and several trips through the
/// scheduler before the worker is re-parented and has faulted in what it touches first: 10-14
/// ms between one pytest test's last message and the next one's first, at a load of 1, when it
/// was asked for only once the previous worker had said its last word. Asked for as soon as the
/// current worker has started, it is ready long before the current scenario ends.
///
/// It then waits beside the scenario, idle: blocked on its request, in a session and group of
/// its own, with a cookie of its own, so that the group kill, the stray sweep and the memory
/// cap of the current scenario neither count nor touch it, and the current worker's figures
/// are its own process's. Scenario code that looks for leakcheck's children can see and kill
/// it; a worker found dead when its scenario comes is reaped, and that scenario's is forked
/// then (or spawned, when the server is gone too).
pub struct Ahead {
    cookie: reap::Cookie,
    pending: PendingFork,
}

impl Ahead {
    /// Asks `server` for a worker ahead; `None` when it cannot (the scenario then forks or
    /// spawns its worker when it starts, as it would have).
    fn ask(server: &ForkServer) -> Option<Ahead> {
        let cookie = reap::new_cookie();
        let pending = server.begin_fork(Ahead::env(&cookie)).ok()?;
        Some(Ahead { cookie, pending })
    }

    /// What a forked worker sets in its environment: its cookie.
    fn env(cookie: &str) -> Vec<(String, String)> {
        vec![(reap::COOKIE_VAR.to_string(), cookie.to_string())]
    }

    /// Ends a worker forked ahead that no scenario took (the run is over or interrupted).
    pub fn discard(self, server: Option<&ForkServer>) {
        if let Some(forked) = server.and_then(|server| server.finish_fork(self.pending).ok()) {
            reap::kill_group(forked.pid);
            let mut process = Process::Forked {
                pid: forked.pid,
                status: None,
                lost: false,
            };
            process.wait();
        }
    }
}

struct Spawned {
    child: Process,
    pipes: Pipes,
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
    pending: Option<PendingFork>,
) -> std::io::Result<Spawned> {
    let forked = server.and_then(|server| {
        // A worker forked ahead may have been killed while it waited (scenario code can see
        // it, a child of leakcheck): then it is reaped, and this scenario's is forked now.
        let ahead = pending.and_then(|pending| server.finish_fork(pending).ok());
        match ahead.filter(still_running) {
            Some(forked) => Some(forked),
            None => server.fork(Ahead::env(cookie)).ok(),
        }
    });
    let request_json = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    let (process, pipes) = match forked {
        Some(forked) => {
            let pipes = Pipes::new(
                forked.pid,
                forked.stdin.into(),
                request_json,
                forked.channel.into(),
                forked.stdout.into(),
                forked.stderr.into(),
            );
            let process = Process::Forked {
                pid: forked.pid,
                status: None,
                lost: false,
            };
            (process, pipes)
        }
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
            let pipes = Pipes::new(
                child.id(),
                child.stdin.take().expect("stdin was piped").into(),
                request_json,
                channel_reader.into(),
                child.stdout.take().expect("stdout was piped").into(),
                child.stderr.take().expect("stderr was piped").into(),
            );
            (Process::Spawned(child), pipes)
        }
    };
    let mut process = process;
    match pipes {
        Ok(pipes) => Ok(Spawned {
            child: process,
            pipes,
        }),
        Err(err) => {
            // Not supervisable: it must not run unwatched.
            reap::kill_group(process.id());
            process.wait();
            Err(err)
        }
    }
}

/// Whether a worker forked ahead is still running; reaps it when it is not.
fn still_running(forked: &Forked) -> bool {
    let Ok(pid) = libc::pid_t::try_from(forked.pid) else {
        return false;
    };
    // SAFETY: waitpid on a child of ours, with no status pointer.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) == 0 }
}

/// Waits up to `grace` for the worker to exit, draining its output meanwhile (exit-time code
/// may still print); its status, if it did.
fn wait_briefly(spawned: &mut Spawned, grace: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + grace;
    loop {
        if let Some(status) = spawned.child.try_wait() {
            return Some(status);
        }
        let now = Instant::now();
        if now >= until {
            return None;
        }
        let step = if spawned.pipes.exit_pollable() {
            until - now
        } else {
            EXIT_POLL.min(until - now)
        };
        spawned.pipes.pump(step, |_| true);
    }
}
