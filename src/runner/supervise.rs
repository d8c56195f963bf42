//! Starting one worker process and watching it: the channel, captured output, the limits, and
//! what to say when it dies.
//!
//! The worker runs in its own session and process group so that a timeout, the memory cap, an
//! interrupted run or the end of the scenario can stop it together with any subprocess it
//! started; strays that left the group are swept by their environment cookie ([`reap`]). Its stdout and stderr are
//! drained by threads into bounded tails, so a scenario that prints megabytes neither blocks on a
//! full pipe nor fills our memory, and a stray that keeps a pipe open cannot hang the run. The
//! worker dies with us (`PR_SET_PDEATHSIG`) if leakcheck itself is killed.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::fork_server::ForkServer;
use super::workers::WorkerProgram;
use super::{limits, reap, signals};
use crate::diagnosis::Diagnosis;
use crate::protocol::{
    CHANNEL_FD, Phase, Sample, SampleKind, Timings, WatchdogLimit, WorkerMessage, WorkerRequest,
};
use crate::results::{Failure, WorkerStart};
use crate::units::format_bytes;

/// How much of each output stream is kept, from the end.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// How often the supervisor checks the clock and the child while no message arrives.
const POLL: Duration = Duration::from_millis(50);

/// How long to wait for the worker to exit after it reported its last message.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How often to look whether a worker that is on its way out has exited. It usually takes a
/// millisecond or two after its last message; a coarser step is added to every scenario.
const EXIT_POLL: Duration = Duration::from_millis(1);

/// How long to wait for the output pipes to close once the worker's processes are gone; a stray
/// that escaped both nets may hold them open forever.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Why a worker did not run its scenario to the end: the facts results.json records
/// ([`Failure`]), and the text that goes with them.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerFailure {
    /// What happened.
    pub fact: Failure,
    /// The Python traceback, pytest's report, or the stack faulthandler printed on a fatal
    /// signal: shown with the error. Never empty.
    pub text: Option<String>,
}

impl From<Failure> for WorkerFailure {
    fn from(fact: Failure) -> Self {
        WorkerFailure { fact, text: None }
    }
}

impl WorkerFailure {
    /// `fact` with its text, unless that is empty.
    pub fn with_text(fact: Failure, text: impl Into<String>) -> Self {
        let text = text.into();
        WorkerFailure {
            fact,
            text: (!text.is_empty()).then_some(text),
        }
    }

    /// One line for the `error` field of reports.
    pub fn summary(&self) -> String {
        match &self.fact {
            Failure::Exception {
                phase,
                iteration,
                message,
            } => match iteration {
                Some(i) => format!("{message} (in {phase}, iteration {i})"),
                None => format!("{message} (in {phase})"),
            },
            Failure::Skipped {
                phase,
                iteration,
                reason,
            } => match iteration {
                Some(i) => format!("{reason} (in {phase}, iteration {i})"),
                // Skipped before the worker started: there is no phase to name.
                None if *phase == Phase::Prepare => reason.clone(),
                None => format!("{reason} (in {phase})"),
            },
            Failure::Crashed {
                phase,
                iteration,
                signal,
                exit_code,
            } => format!(
                "worker {} in {phase} after {iteration} iterations",
                describe_exit(*signal, *exit_code)
            ),
            Failure::TimedOut {
                phase,
                iteration,
                limit_secs,
            } => format!(
                "timed out after {limit_secs} s in {phase} after {iteration} iterations (scenario `timeout`)"
            ),
            Failure::IterationTimedOut {
                phase,
                iteration,
                limit_secs,
            } => format!(
                "iteration {iteration} ran longer than {limit_secs} s in {phase} and was killed (scenario `iteration_timeout`)"
            ),
            Failure::MemoryCap {
                phase,
                iteration,
                resident,
                cap,
                group,
            } => {
                let place = match (phase, iteration) {
                    (Phase::Warmup | Phase::Measure | Phase::Trace | Phase::Diagnose, Some(i)) => {
                        format!("at iteration {i}")
                    }
                    _ => format!("in {phase}"),
                };
                let whose = if *group {
                    "worker and its subprocesses"
                } else {
                    "worker"
                };
                format!(
                    "exceeded memory cap {place} ({whose}: {} resident, cap {}; raise `max_rss` or --max-rss if this much is expected)",
                    format_bytes(*resident as f64),
                    format_bytes(*cap as f64),
                )
            }
            Failure::Interrupted => "interrupted before it finished".to_string(),
            Failure::SignalledLeakcheck { phase, signal } => format!(
                "sent {} to leakcheck itself in {phase} (`os.kill(os.getppid(), …)`); leakcheck \
                 ignored it and stopped this scenario",
                signals::name(*signal)
            ),
            Failure::Spawn { reason } => format!("could not start the worker: {reason}"),
        }
    }

    /// The traceback or report that goes with the failure, when there is one.
    pub fn traceback(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Whether the run was interrupted before the scenario finished.
    pub fn interrupted(&self) -> bool {
        self.fact == Failure::Interrupted
    }

    /// Whether the failure is itself a finding about memory: the cap was exceeded while
    /// iterations ran, which makes the verdict `leak` rather than `error`.
    pub fn is_leak(&self) -> bool {
        matches!(
            self.fact,
            Failure::MemoryCap {
                phase: Phase::Warmup | Phase::Measure | Phase::Trace | Phase::Diagnose,
                ..
            }
        )
    }
}

/// Everything observed of one worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerRun {
    /// Samples in arrival order, each with where it was taken.
    pub samples: Vec<(Sample, SampleKind)>,
    /// Set when the scenario did not finish.
    pub failure: Option<WorkerFailure>,
    /// Time split reported at the end.
    pub timings: Option<Timings>,
    /// Where memory went, when the worker ran its diagnosis window.
    pub diagnosis: Option<Diagnosis>,
    /// Who held the growth, when a look would have called it a leak.
    pub holders: Option<crate::holders::HolderReport>,
    /// `sys.version` the worker reported.
    pub python_version: Option<String>,
    /// Iterations completed, as last reported.
    pub iterations_done: u64,
    /// Wall time from spawn to exit.
    pub duration: Duration,
    /// How the worker started, when it did.
    pub start: Option<WorkerStart>,
    /// Tail of stdout.
    pub stdout: String,
    /// Tail of stderr.
    pub stderr: String,
}

/// What the supervisor tells its caller while the worker runs.
pub enum Progress {
    /// A new phase started.
    Phase(Phase),
    /// Iterations completed so far.
    Iteration(u64),
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
    let mut run = WorkerRun::default();
    if signals::interrupted() {
        run.failure = Some(Failure::Interrupted.into());
        return run;
    }
    let cookie = reap::new_cookie();
    let mut spawned = match spawn(program, server, request, &cookie) {
        Ok(spawned) => spawned,
        Err(err) => {
            run.failure = Some(
                Failure::Spawn {
                    reason: err.to_string(),
                }
                .into(),
            );
            return run;
        }
    };
    let pid = spawned.child.id();
    run.start = Some(match spawned.child {
        Process::Spawned(_) => WorkerStart::Spawned,
        Process::Forked { .. } => WorkerStart::Forked,
    });
    let slot = signals::WorkerSlot::register(pid);
    let cap = request.options.max_rss;

    let mut phase = Phase::Prepare;
    let mut finished = false;
    // When the last message came: exit-time code (an `atexit` or `on_exit` handler, a native
    // destructor joining a thread) gets [`EXIT_GRACE`] from then, and is killed after it.
    let mut finished_at: Option<Instant> = None;
    let deadline = started + timeout;
    let mut next_group_poll = started + limits::GROUP_POLL;
    let mut exit_status: Option<ExitStatus> = None;
    let mut hung_at_exit = false;
    let mut exited_at: Option<Instant> = None;
    loop {
        match spawned.messages.recv_timeout(POLL) {
            Ok(message) => match message {
                WorkerMessage::Started { python_version, .. } => {
                    run.python_version = Some(python_version)
                }
                WorkerMessage::Phase { phase: p } => {
                    phase = p;
                    on_progress(Progress::Phase(p));
                }
                WorkerMessage::Progress { iteration } => {
                    run.iterations_done = iteration;
                    on_progress(Progress::Iteration(iteration));
                }
                WorkerMessage::Sample { sample, kind } => {
                    run.iterations_done = sample.iteration;
                    on_progress(Progress::Iteration(sample.iteration));
                    run.samples.push((sample, kind));
                }
                WorkerMessage::Failed {
                    phase,
                    iteration,
                    message,
                    traceback,
                } => {
                    let fact = Failure::Exception {
                        phase,
                        iteration,
                        message,
                    };
                    run.failure = Some(WorkerFailure::with_text(fact, traceback));
                    finished = true;
                }
                WorkerMessage::Skipped {
                    phase,
                    iteration,
                    reason,
                    report,
                } => {
                    let fact = Failure::Skipped {
                        phase,
                        iteration,
                        reason,
                    };
                    run.failure = Some(WorkerFailure::with_text(fact, report));
                    finished = true;
                }
                WorkerMessage::Watchdog { limit, iteration } => {
                    // The worker kills itself right after sending this; make sure of it.
                    reap::kill_group(pid);
                    let fact = match limit {
                        WatchdogLimit::IterationTimeout { limit_secs } => {
                            Failure::IterationTimedOut {
                                phase,
                                iteration: iteration.unwrap_or(run.iterations_done),
                                limit_secs,
                            }
                        }
                        WatchdogLimit::MemoryCap { resident, cap } => Failure::MemoryCap {
                            phase,
                            iteration,
                            resident,
                            cap,
                            group: false,
                        },
                    };
                    run.failure = Some(fact.into());
                    finished = true;
                }
                WorkerMessage::Diagnosis { diagnosis } => run.diagnosis = Some(*diagnosis),
                WorkerMessage::Holders { report } => run.holders = Some(*report),
                WorkerMessage::Finished { timings } => {
                    run.timings = Some(timings);
                    finished = true;
                }
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if finished && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        if exit_status.is_none() {
            exit_status = spawned.child.try_wait();
            if exit_status.is_some() {
                exited_at = Some(Instant::now());
            }
        }
        // A subprocess that inherited the channel can keep it open after the worker exits;
        // stop listening shortly after the worker itself is gone.
        if exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
        if let Some(signal) = slot.sent() {
            reap::kill_group(pid);
            run.failure = Some(Failure::SignalledLeakcheck { phase, signal }.into());
            break;
        }
        if signals::interrupted() {
            reap::kill_group(pid);
            run.failure = Some(Failure::Interrupted.into());
            break;
        }
        if exit_status.is_none() && finished_at.is_some_and(|t| t.elapsed() > EXIT_GRACE) {
            reap::kill_group(pid);
            hung_at_exit = true;
            break;
        }
        if !finished && Instant::now() >= deadline {
            reap::kill_group(pid);
            let fact = Failure::TimedOut {
                phase,
                iteration: run.iterations_done,
                limit_secs: timeout.as_secs_f64(),
            };
            run.failure = Some(fact.into());
            break;
        }
        if !finished && Instant::now() >= next_group_poll {
            next_group_poll = Instant::now() + limits::GROUP_POLL;
            let resident = limits::group_resident_bytes(pid, &cookie);
            if resident > cap {
                reap::kill_group(pid);
                let fact = Failure::MemoryCap {
                    phase,
                    iteration: Some(run.iterations_done),
                    resident,
                    cap,
                    group: true,
                };
                run.failure = Some(fact.into());
                break;
            }
        }
    }

    let status = match exit_status {
        Some(status) => Some(status),
        None => wait_briefly(&mut spawned.child, if finished { EXIT_GRACE } else { POLL }),
    };
    // Whatever the scenario left running goes with it: its group, then strays by cookie.
    reap::kill_group(pid);
    let status = status.or_else(|| spawned.child.wait());
    reap::sweep(&cookie);

    run.stdout = spawned.stdout.finish(OUTPUT_GRACE);
    run.stderr = spawned.stderr.finish(OUTPUT_GRACE);
    if hung_at_exit {
        // The scenario's results stand; where they came out of is said with its output.
        run.stderr.push_str(&format!(
            "\n[leakcheck] the worker had not exited {} s after its last message (exit-time \
             code: an atexit or on_exit handler, a destructor joining a thread) and was killed\n",
            EXIT_GRACE.as_secs()
        ));
    }
    if !finished && run.failure.is_none() {
        let crashed = Failure::Crashed {
            phase,
            iteration: run.iterations_done,
            signal: status.and_then(|s| s.signal()),
            exit_code: status.and_then(|s| s.code()),
        };
        run.failure = Some(match fatal_error_report(&run.stderr) {
            Some(report) => WorkerFailure::with_text(crashed, report),
            None => crashed.into(),
        });
    }
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

/// The report CPython's faulthandler writes to stderr on a fatal signal (`Fatal Python error:
/// Segmentation fault` and the stack of each thread), when present.
fn fatal_error_report(stderr: &str) -> Option<String> {
    let start = stderr.rfind("Fatal Python error:")?;
    Some(stderr[start..].trim_end().to_string())
}

/// "exited with code 3", "was killed by signal 11 (SIGSEGV, Segmentation fault)", or "vanished"
/// when neither is known.
fn describe_exit(signal: Option<i32>, exit_code: Option<i32>) -> String {
    match (exit_code, signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal} ({})", signal_name(signal)),
        (None, None) => "vanished".to_string(),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    };
    // SAFETY: strsignal returns a pointer to a static or thread-local string, or NULL.
    let description = unsafe {
        let text = libc::strsignal(signal);
        if text.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        }
    };
    format!("{name}, {description}")
}
