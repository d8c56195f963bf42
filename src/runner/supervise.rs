//! Starting one worker process and watching it: the channel, captured output, the timeout, and
//! what to say when it dies.
//!
//! The worker runs in its own process group so that a timeout or the end of the scenario can stop
//! it together with any subprocess it started. Its stdout and stderr are drained by threads into
//! bounded tails, so a scenario that prints megabytes neither blocks on a full pipe nor fills our
//! memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::diagnosis::Diagnosis;
use crate::protocol::{CHANNEL_FD, Phase, Sample, Timings, WorkerMessage, WorkerRequest};

/// How much of each output stream is kept, from the end.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// How often the supervisor checks the clock and the child while no message arrives.
const POLL: Duration = Duration::from_millis(50);

/// How long to wait for the worker to exit after it reported its last message.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Why a worker did not run its scenario to the end.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerFailure {
    /// Scenario code raised a Python exception.
    Exception {
        /// Where.
        phase: Phase,
        /// Which iteration, for warmup and run.
        iteration: Option<u64>,
        /// `Type: message`.
        message: String,
        /// Formatted traceback.
        traceback: String,
    },
    /// The worker died without reporting (signal, `os._exit`, abort).
    Crashed {
        /// The phase it was last seen in.
        phase: Phase,
        /// Iterations completed when last heard of.
        iteration: u64,
        /// How it ended, e.g. `killed by signal 11 (SIGSEGV, Segmentation fault)`.
        how: String,
    },
    /// The scenario exceeded its `timeout` and was killed.
    TimedOut {
        /// The phase it was in.
        phase: Phase,
        /// Iterations completed.
        iteration: u64,
        /// The limit in seconds.
        limit_secs: f64,
    },
    /// The worker could not be started at all.
    Spawn(String),
}

impl WorkerFailure {
    /// One line for the `error` field of reports.
    pub fn summary(&self) -> String {
        match self {
            WorkerFailure::Exception {
                phase,
                iteration,
                message,
                ..
            } => match iteration {
                Some(i) => format!("{message} (in {phase}, iteration {i})"),
                None => format!("{message} (in {phase})"),
            },
            WorkerFailure::Crashed {
                phase,
                iteration,
                how,
            } => format!("worker {how} in {phase} after {iteration} iterations"),
            WorkerFailure::TimedOut {
                phase,
                iteration,
                limit_secs,
            } => format!(
                "timed out after {limit_secs} s in {phase} after {iteration} iterations (scenario `timeout`)"
            ),
            WorkerFailure::Spawn(reason) => format!("could not start the worker: {reason}"),
        }
    }
}

/// Everything observed of one worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerRun {
    /// Samples in arrival order, each flagged warmup or measured.
    pub samples: Vec<(Sample, bool)>,
    /// Set when the scenario did not finish.
    pub failure: Option<WorkerFailure>,
    /// Time split reported at the end.
    pub timings: Option<Timings>,
    /// Where memory went, when the worker ran its diagnosis window.
    pub diagnosis: Option<Diagnosis>,
    /// `sys.version` the worker reported.
    pub python_version: Option<String>,
    /// Iterations completed, as last reported.
    pub iterations_done: u64,
    /// Wall time from spawn to exit.
    pub duration: Duration,
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
pub fn run_worker(
    request: &WorkerRequest,
    timeout: Duration,
    mut on_progress: impl FnMut(Progress),
) -> WorkerRun {
    let started = Instant::now();
    let mut run = WorkerRun::default();
    let mut spawned = match spawn(request) {
        Ok(spawned) => spawned,
        Err(err) => {
            run.failure = Some(WorkerFailure::Spawn(err.to_string()));
            return run;
        }
    };

    let mut phase = Phase::Prepare;
    let mut finished = false;
    let deadline = started + timeout;
    let mut exit_status: Option<ExitStatus> = None;
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
                WorkerMessage::Sample { sample, warmup } => {
                    run.iterations_done = sample.iteration;
                    on_progress(Progress::Iteration(sample.iteration));
                    run.samples.push((sample, warmup));
                }
                WorkerMessage::Failed {
                    phase,
                    iteration,
                    message,
                    traceback,
                } => {
                    run.failure = Some(WorkerFailure::Exception {
                        phase,
                        iteration,
                        message,
                        traceback,
                    });
                    finished = true;
                }
                WorkerMessage::Diagnosis { diagnosis } => run.diagnosis = Some(*diagnosis),
                WorkerMessage::Finished { timings } => {
                    run.timings = Some(timings);
                    finished = true;
                }
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if exit_status.is_none() {
            exit_status = spawned.child.try_wait().ok().flatten();
            if exit_status.is_some() {
                exited_at = Some(Instant::now());
            }
        }
        // A subprocess that inherited the channel can keep it open after the worker exits;
        // stop listening shortly after the worker itself is gone.
        if exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
        if !finished && Instant::now() >= deadline {
            kill_group(&spawned.child);
            run.failure = Some(WorkerFailure::TimedOut {
                phase,
                iteration: run.iterations_done,
                limit_secs: timeout.as_secs_f64(),
            });
            break;
        }
    }

    let status = match exit_status {
        Some(status) => Some(status),
        None => wait_briefly(&mut spawned.child, if finished { EXIT_GRACE } else { POLL }),
    };
    // Whatever the scenario left running in the worker's group goes with it.
    kill_group(&spawned.child);
    let status = status.or_else(|| spawned.child.wait().ok());

    if !finished && run.failure.is_none() {
        run.failure = Some(WorkerFailure::Crashed {
            phase,
            iteration: run.iterations_done,
            how: status
                .map(describe_exit)
                .unwrap_or_else(|| "vanished".to_string()),
        });
    }
    run.stdout = spawned.stdout.join().unwrap_or_default();
    run.stderr = spawned.stderr.join().unwrap_or_default();
    run.duration = started.elapsed();
    run
}

struct Spawned {
    child: Child,
    messages: mpsc::Receiver<WorkerMessage>,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
}

fn spawn(request: &WorkerRequest) -> std::io::Result<Spawned> {
    let exe = std::env::current_exe()?;
    let (channel_reader, channel_writer) = std::io::pipe()?;
    let writer_fd = channel_writer.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .arg("__worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONHASHSEED", "0")
        .env_remove("PYTHONHOME")
        .process_group(0);
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if writer_fd == CHANNEL_FD {
                let flags = libc::fcntl(CHANNEL_FD, libc::F_GETFD);
                if flags == -1
                    || libc::fcntl(CHANNEL_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(writer_fd, CHANNEL_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    // Our copy of the write end must go, or the channel never reports end-of-file.
    drop(channel_writer);

    let request_json = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    thread::spawn(move || {
        // A worker that dies before reading simply closes the pipe; nothing to report here.
        let _ = stdin.write_all(&request_json);
    });

    let (sender, messages) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(channel_reader).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<WorkerMessage>(&line) {
                Ok(message) => {
                    if sender.send(message).is_err() {
                        break;
                    }
                }
                Err(_) => continue,
            }
        }
    });
    let stdout = drain_tail(child.stdout.take().expect("stdout was piped"));
    let stderr = drain_tail(child.stderr.take().expect("stderr was piped"));
    Ok(Spawned {
        child,
        messages,
        stdout,
        stderr,
    })
}

/// Reads a stream to its end, keeping only the last [`OUTPUT_TAIL_BYTES`].
fn drain_tail(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut dropped = 0usize;
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buffer[..n]);
                    if tail.len() > 2 * OUTPUT_TAIL_BYTES {
                        let cut = tail.len() - OUTPUT_TAIL_BYTES;
                        dropped += cut;
                        tail.drain(..cut);
                    }
                }
            }
        }
        if tail.len() > OUTPUT_TAIL_BYTES {
            let cut = tail.len() - OUTPUT_TAIL_BYTES;
            dropped += cut;
            tail.drain(..cut);
        }
        let text = String::from_utf8_lossy(&tail).into_owned();
        if dropped > 0 {
            format!("[… {dropped} earlier bytes not kept …]\n{text}")
        } else {
            text
        }
    })
}

fn wait_briefly(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + grace;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn kill_group(child: &Child) {
    // The worker leads its own group (process_group(0)), so its pid is the group id.
    // SAFETY: killpg has no memory-safety preconditions; a gone group just yields ESRCH.
    unsafe {
        libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
    }
}

/// "exited with code 3" or "killed by signal 11 (SIGSEGV, Segmentation fault)".
fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal} ({})", signal_name(signal)),
        None => format!("ended with {status}"),
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
