//! The server side of [`crate::fork_server`]: boot once, then fork one worker per request.
//!
//! The server is single-threaded, so `fork()` copies a consistent process: it blocks on its
//! socket, forks only from its main thread, and refuses to fork once code it imported (a warmed
//! pytest suite) has started a thread, which a child would not carry and whose locks it could
//! inherit held. Each worker is forked through a short-lived intermediate, so that it ends up a
//! child of leakcheck (see [`fork_one`]); it closes the server's socket, puts its four
//! descriptors in place, leads a session of its own, dies with leakcheck, and from there on is a
//! worker like a spawned one.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::interpreter::Booted;
use crate::fork_server::{self, FORK_FDS, Reply, Request, Start};
use crate::protocol::CHANNEL_FD;

/// How long a worker waits to be re-parented to the runner (it takes microseconds).
const REPARENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Entry point of `leakcheck-worker --fork-server`; returns the exit code.
pub fn main() -> i32 {
    super::exit_code("leakcheck fork server", run())
}

fn run() -> Result<()> {
    // SAFETY: first thing in the server, before any thread starts.
    unsafe { super::allocator::restore_user_env() };
    let socket = super::channel::take_runner_fd().context("taking the fork server's socket")?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the fork server's start message")?;
    let start: Start = serde_json::from_str(&input).context("decoding the start message")?;
    super::set_hash_seed(start.seed);
    let booted = match Booted::start(start.environment.as_ref()) {
        Ok(booted) => booted,
        Err(failure) => {
            let reason = failure.message;
            fork_server::send(&socket, &Reply::Broken { reason }, &[])?;
            return Ok(());
        }
    };
    fork_server::send(&socket, &Reply::Ready, &[])?;
    serve(&socket, booted)
}

/// Serves requests until the runner closes its end.
fn serve(socket: &OwnedFd, booted: Booted) -> Result<()> {
    // SAFETY: getppid has no preconditions.
    let runner = unsafe { libc::getppid() };
    while let Some((request, fds)) = fork_server::receive::<Request>(socket)? {
        let (id, done) = match request {
            Request::Collect {
                id,
                args,
                dir,
                output,
            } => (id, booted.collect_pytest(&output, &args, &dir).map(|()| 0)),
            Request::Warm { id, selections } => (id, Ok(booted.warm(&selections) as u64)),
            Request::Fork { id, env } => (
                id,
                fork_one(&booted, socket, fds, &env, runner).map(u64::from),
            ),
        };
        let reply = match done {
            Ok(count) => Reply::Done { id, count },
            Err(reason) => Reply::Refused { id, reason },
        };
        fork_server::send(socket, &reply, &[])?;
    }
    // The runner is done (or gone).
    Ok(())
}

/// Forks one worker with `fds` as its stdin, stdout, stderr and channel, and returns its pid.
///
/// The worker is forked twice, by a short-lived intermediate that exits at once, so that it is
/// re-parented to the runner (a child subreaper): as a spawned worker, its parent is leakcheck,
/// which reaps it and reads its exit status, and `os.getppid()` in scenario code is leakcheck,
/// not this server. Returns only in the server.
fn fork_one(
    booted: &Booted,
    socket: &OwnedFd,
    fds: Vec<OwnedFd>,
    env: &[(String, String)],
    runner: libc::pid_t,
) -> Result<u32, String> {
    if fds.len() != FORK_FDS {
        return Err(format!(
            "the request carried {} descriptors, not {FORK_FDS}",
            fds.len()
        ));
    }
    let threads = threads();
    if threads != 1 {
        return Err(format!(
            "the server runs {threads} threads (code imported while warming started some)"
        ));
    }
    let (told, tell) = std::io::pipe().map_err(|err| err.to_string())?;
    let intermediate = booted.fork()?;
    if intermediate == 0 {
        drop(told);
        let worker = booted.fork();
        match worker {
            Ok(0) => {
                drop(tell);
                become_worker(booted, socket, &fds, env, runner);
            }
            Ok(pid) => {
                let _ = (&tell).write_all(&pid.to_ne_bytes());
                // SAFETY: `_exit` ends the intermediate at once, running nothing of the server's.
                unsafe { libc::_exit(0) };
            }
            // SAFETY: as above; the server reads no pid and refuses the request.
            Err(_) => unsafe { libc::_exit(1) },
        }
    }
    drop(tell);
    let mut pid = [0u8; 4];
    let read = (&told).read_exact(&mut pid);
    // SAFETY: waitpid on our own child; it has exited or is about to.
    unsafe { libc::waitpid(intermediate as libc::pid_t, std::ptr::null_mut(), 0) };
    read.map_err(|err| format!("the intermediate process gave no pid: {err}"))?;
    Ok(u32::from_ne_bytes(pid))
}

/// In the worker: from the server's copy to a worker of its own, then the worker's life.
fn become_worker(
    booted: &Booted,
    socket: &OwnedFd,
    fds: &[OwnedFd],
    env: &[(String, String)],
    runner: libc::pid_t,
) -> ! {
    let placed = (|| -> std::io::Result<()> {
        // SAFETY: plain descriptor and process calls on what this process owns; the
        // descriptors in `fds` and `socket` stay owned by their owners, which are never
        // dropped in this process.
        unsafe {
            libc::close(socket.as_raw_fd());
            for (target, fd) in fds.iter().enumerate() {
                if libc::dup2(fd.as_raw_fd(), target as RawFd) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for fd in fds {
                if fd.as_raw_fd() > CHANNEL_FD {
                    libc::close(fd.as_raw_fd());
                }
            }
            // The intermediate exits right after forking: wait until the runner is the parent,
            // then die with it, as a spawned worker does.
            let waited = Instant::now();
            while libc::getppid() != runner && waited.elapsed() < REPARENT_TIMEOUT {
                std::thread::sleep(Duration::from_micros(20));
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != runner {
                return Err(std::io::Error::other(
                    "the worker was not re-parented to leakcheck (is it a child subreaper?)",
                ));
            }
            // A session and group of its own, as a spawned worker has (see the runner's spawn).
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    })();
    if let Err(err) = placed {
        eprintln!("leakcheck worker: setting up the forked worker: {err}");
        // SAFETY: `_exit` ends the process immediately.
        unsafe { libc::_exit(3) };
    }
    // Set in `os.environ` (and so in the C environment): the processes this worker starts
    // inherit them, which is what the runner's stray sweep looks for.
    for (name, value) in env {
        if let Err(err) = booted.set_env(name, value) {
            eprintln!("leakcheck worker: setting {name}: {err}");
            // SAFETY: `_exit` ends the process immediately.
            unsafe { libc::_exit(3) };
        }
    }
    std::process::exit(super::exit_code(
        "leakcheck worker",
        super::serve(Some(booted.clone_ref())),
    ));
}

/// How many threads this process runs (`/proc/self/task` has one entry per thread).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |entries| entries.count())
}
