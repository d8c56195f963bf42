//! The fork server's protocol: what the runner and a warmed worker say to each other.
//!
//! Starting a worker costs an `exec`, loading libpython, `Py_Initialize` and importing the
//! harness (23–37 ms), and a `pytest` workload adds pytest's start-up and the import of the
//! test's modules on top (hundreds of milliseconds for a real suite). A run therefore starts one
//! worker as a *fork server* (`leakcheck-worker --fork-server`): it boots the interpreter once,
//! collects the run's pytest selections (for the runner, and again as sessions its workers
//! adopt), and then forks one child per scenario. Each
//! child is a worker like a spawned one: it reads its [`WorkerRequest`](crate::protocol) on
//! stdin, reports on the channel, leads a session of its own and dies with its parent.
//!
//! The runner and the server talk over a `SOCK_SEQPACKET` socket pair: one datagram per
//! message, so neither side needs framing, and a request carries the child's four descriptors
//! (stdin, stdout, stderr, channel) as `SCM_RIGHTS`. A forked worker is re-parented to the
//! runner, which reaps it as it reaps a spawned one.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use crate::protocol::PythonEnvironment;

/// The largest message either side sends (a [`Start`] with many pytest selections included).
pub const MAX_MESSAGE: usize = 1 << 16;

/// How many descriptors a [`Request::Fork`] carries: the child's stdin, stdout, stderr and
/// channel, in that order.
pub const FORK_FDS: usize = 4;

/// What the server needs before it boots, written to its stdin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Start {
    /// The environment the interpreter starts as (every scenario of a run shares it).
    pub environment: Option<PythonEnvironment>,
    /// `PYTHONHASHSEED`, read once when CPython starts: every child shares it.
    pub seed: u64,
}

/// One rootdir's pytest test files, collected once in the server and kept as a session that
/// the workers of its tests adopt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warm {
    /// pytest's arguments: the test files.
    pub args: Vec<String>,
    /// The rootdir it runs in.
    pub rootdir: PathBuf,
}

/// The runner's requests; each has an `id` its reply echoes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Collect a `pytest:` selection (`args`, from the scenario file's folder `dir`) as
    /// `src/python/collect_pytest.py` does, writing its result to `output`.
    Collect {
        /// Echoed in the reply.
        id: u64,
        /// pytest's arguments.
        args: Vec<String>,
        /// The folder it runs in.
        dir: PathBuf,
        /// Where the result goes (a reply could not carry a large suite's items).
        output: PathBuf,
    },
    /// Collect and keep the run's pytest sessions, then freeze the heap: the last request
    /// before the forks.
    Warm {
        /// Echoed in the reply.
        id: u64,
        /// One per rootdir.
        selections: Vec<Warm>,
    },
    /// Fork one worker; its descriptors come with the message.
    Fork {
        /// Echoed in the reply.
        id: u64,
        /// Environment variables the child sets before its scenario starts (the runner's
        /// stray-sweeping cookie).
        env: Vec<(String, String)>,
    },
}

/// The server's messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Booted: it serves requests from now on.
    Ready,
    /// The interpreter could not boot; the server exits and the runner does without it.
    Broken {
        /// Why.
        reason: String,
    },
    /// Request `id` is done: a collection written, sessions kept (`count` of them), a worker
    /// forked (`count` is its pid).
    Done {
        /// The request.
        id: u64,
        /// What the request made: the sessions kept, or the worker's pid.
        count: u64,
    },
    /// Request `id` was not served (a collection that raised, or a fork refused because code
    /// the server imported started a thread, which a fork would not carry): the runner does
    /// it the ordinary way instead.
    Refused {
        /// The request.
        id: u64,
        /// Why.
        reason: String,
    },
}

/// Sends one message, with `fds` attached.
pub fn send<T: Serialize>(
    socket: &impl AsRawFd,
    message: &T,
    fds: &[RawFd],
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    let iov = [IoSlice::new(&bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Receives one message and the descriptors attached to it (close-on-exec); `None` at the end
/// of the stream (the other side is gone).
pub fn receive<T: for<'de> Deserialize<'de>>(
    socket: &impl AsRawFd,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; FORK_FDS]);
    let (bytes, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(message) => {
                let mut fds = Vec::new();
                for cmsg in message.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        // SAFETY: the kernel just installed these descriptors in this process
                        // for us; nothing else owns them.
                        fds.extend(
                            received
                                .into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (message.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    };
    if bytes == 0 {
        return Ok(None);
    }
    let message = serde_json::from_slice(&buffer[..bytes]).map_err(std::io::Error::other)?;
    Ok(Some((message, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::io::{Read, Write};

    #[test]
    fn a_request_carries_its_descriptors() {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (reader, mut writer) = std::io::pipe().unwrap();
        let request = Request::Fork {
            id: 7,
            env: vec![("A".to_string(), "b".to_string())],
        };
        send(&ours, &request, &[reader.as_raw_fd()]).unwrap();
        drop(reader);
        let (received, fds): (Request, _) = receive(&theirs).unwrap().unwrap();
        assert!(matches!(received, Request::Fork { id: 7, .. }));
        assert_eq!(fds.len(), 1);
        writer.write_all(b"hello").unwrap();
        drop(writer);
        let mut text = String::new();
        std::fs::File::from(fds.into_iter().next().unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
        drop(ours);
        assert!(receive::<Request>(&theirs).unwrap().is_none());
    }
}
