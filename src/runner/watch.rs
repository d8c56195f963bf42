//! What the supervisor decides while a worker runs, kept apart from processes and clocks: what
//! each message means, and when the worker must be stopped (the scenario's `timeout`, the memory
//! cap of its process group, the grace it gets to exit, a signal).
//!
//! [`Watch`] is a pure state machine. The process side ([`super::supervise`]) hands it every
//! message the worker sends and, between messages, a tick: the time, the worker's exit status,
//! the signals received, and a way to measure the group's memory. It answers with an [`Order`]
//! when the process side must act on the worker. The watch reads no clock and touches no
//! process, so every limit is unit-tested below on a fake clock and fake messages, and a new
//! limit (CPU time, open files) is one more check in [`Watch::on_tick`] rather than a thread
//! through the I/O loop.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::failure::{WorkerFailure, fatal_error_report};
use super::limits;
use crate::diagnosis::Diagnosis;
use crate::protocol::{Phase, Sample, SampleKind, Timings, WatchdogLimit, WorkerMessage};
use crate::results::{Failure, WorkerStart};
use crate::verdict::{Stop, Verdict};

/// How long the worker may take to exit after its last message. It runs no exit-time code (see
/// `worker::leave`), but its flush of C streams can block on a pipe nobody reads: it is killed
/// after this long.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long to go on listening once the worker has exited and nothing more is heard: a
/// subprocess that inherited the channel can keep it open after the worker is gone, so its end
/// of file may never come. Counted from the later of the exit and the last message, because the
/// worker's last messages can still be on their way through the reading thread when it exits:
/// on a loaded machine that took longer than this, and a worker that had finished its scenario
/// and exited 0 was called crashed.
pub const LINGER: Duration = Duration::from_millis(500);

/// How long to go on listening once the worker has exited, however many messages still come:
/// a stray holding the channel cannot keep the run listening for ever.
pub const LISTEN_AFTER_EXIT: Duration = EXIT_GRACE;

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
    /// The verdict and stop the worker reported when its measured rounds ended; none when it
    /// did not get that far.
    pub stopped: Option<(Verdict, Stop)>,
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

/// What the process side must do to the worker after a message or a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Kill the worker's process group, and go on watching: the worker said it is about to
    /// kill itself (its watchdog fired), so make sure of it; its exit is still to be seen.
    Kill,
    /// Kill the worker's process group and stop watching: a limit or a signal ended the
    /// scenario, or the worker outstayed its exit grace.
    Stop,
    /// Stop watching without killing first: the worker has exited (or closed its channel), and
    /// what it had to say is heard. It still gets the wait [`Watch::finished`] implies to exit.
    Leave,
}

/// The stopping signals a tick reports (see [`super::signals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// A stopping signal the worker, or a process of its session, sent leakcheck itself.
    pub from_worker: Option<i32>,
    /// Whether leakcheck was told to stop (Ctrl-C, SIGTERM, SIGHUP from elsewhere).
    pub interrupted: bool,
}

/// One worker's watch: what it reported so far, and the limits it runs under.
#[derive(Debug)]
pub struct Watch {
    /// What the worker reported so far; its failure, once one is known.
    run: WorkerRun,
    /// The phase the worker last said it entered.
    phase: Phase,
    /// When the scenario's `timeout` runs out.
    deadline: Instant,
    /// The scenario's `timeout`, for the failure's `limit_secs`.
    timeout: Duration,
    /// The memory cap of the worker's process group, in bytes.
    cap: u64,
    /// When the group's memory is next added up.
    next_group_poll: Instant,
    /// When the worker sent its last message (finished, failed, skipped, or its watchdog
    /// fired); none while it still has something to say.
    finished_at: Option<Instant>,
    /// When a tick first saw the worker exited.
    exited_at: Option<Instant>,
    /// When the last message came.
    heard_at: Option<Instant>,
    /// Whether the worker outstayed [`EXIT_GRACE`] and was stopped.
    hung_at_exit: bool,
}

impl Watch {
    /// The watch of a worker started at `started`, which must finish within `timeout` and keep
    /// its process group under `cap` resident bytes.
    pub fn new(started: Instant, timeout: Duration, cap: u64) -> Watch {
        Watch {
            run: WorkerRun::default(),
            phase: Phase::Prepare,
            deadline: started + timeout,
            timeout,
            cap,
            next_group_poll: started + limits::GROUP_POLL,
            finished_at: None,
            exited_at: None,
            heard_at: None,
            hung_at_exit: false,
        }
    }

    /// Whether the worker sent its last message, so that it now only has to exit.
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }

    /// Takes in one message from the worker, which arrived at `now`. A failure, a skip, the
    /// watchdog's report and `finished` are its last messages: the exit grace starts at the
    /// first of them.
    pub fn on_message(&mut self, now: Instant, message: WorkerMessage) -> Option<Order> {
        self.heard_at = Some(now);
        let mut order = None;
        let failure = match message {
            WorkerMessage::Started { python_version, .. } => {
                self.run.python_version = Some(python_version);
                return None;
            }
            WorkerMessage::Phase { phase } => {
                self.phase = phase;
                return None;
            }
            WorkerMessage::Progress { iteration } => {
                self.run.iterations_done = iteration;
                return None;
            }
            WorkerMessage::Sample { sample, kind } => {
                self.run.iterations_done = sample.iteration;
                self.run.samples.push((sample, kind));
                return None;
            }
            WorkerMessage::Diagnosis { diagnosis } => {
                self.run.diagnosis = Some(*diagnosis);
                return None;
            }
            WorkerMessage::Holders { report } => {
                self.run.holders = Some(*report);
                return None;
            }
            WorkerMessage::Stopped { verdict, stop } => {
                self.run.stopped = Some((verdict, stop));
                return None;
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
                Some(WorkerFailure::with_text(fact, traceback))
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
                Some(WorkerFailure::with_text(fact, report))
            }
            WorkerMessage::Watchdog { limit, iteration } => {
                // The worker kills itself right after sending this; make sure of it.
                order = Some(Order::Kill);
                let fact = match limit {
                    WatchdogLimit::IterationTimeout { limit_secs } => Failure::IterationTimedOut {
                        phase: self.phase,
                        iteration: iteration.unwrap_or(self.run.iterations_done),
                        limit_secs,
                    },
                    WatchdogLimit::MemoryCap { resident, cap } => Failure::MemoryCap {
                        phase: self.phase,
                        iteration,
                        resident,
                        cap,
                        group: false,
                    },
                };
                Some(fact.into())
            }
            WorkerMessage::Finished { timings } => {
                self.run.timings = Some(timings);
                None
            }
        };
        if failure.is_some() {
            self.run.failure = failure;
        }
        self.finished_at.get_or_insert(now);
        order
    }

    /// Checks the limits at `now`, the worker's exit status being `exit` (none while it runs)
    /// and `signals` the stopping signals received; `group_resident` adds up the memory of the
    /// worker's process group, and is only called every [`limits::GROUP_POLL`].
    ///
    /// The checks come in a fixed order, which decides the failure when several apply at once:
    /// an exited worker is left first (once quiet for [`LINGER`]), then a signal from the worker, an interrupt, the exit
    /// grace, the scenario's timeout and the memory cap. A signal ends even a worker on its way
    /// out; the timeout and the cap only one that still runs its scenario.
    pub fn on_tick(
        &mut self,
        now: Instant,
        exit: Option<ExitStatus>,
        signals: Signals,
        group_resident: impl FnOnce() -> u64,
    ) -> Option<Order> {
        if exit.is_some() && self.exited_at.is_none() {
            self.exited_at = Some(now);
        }
        if let Some(exited_at) = self.exited_at {
            let quiet_since = self
                .heard_at
                .map_or(exited_at, |heard| heard.max(exited_at));
            if now - quiet_since > LINGER || now - exited_at > LISTEN_AFTER_EXIT {
                return Some(Order::Leave);
            }
        }
        if let Some(signal) = signals.from_worker {
            return self.stop(Failure::SignalledLeakcheck {
                phase: self.phase,
                signal,
            });
        }
        if signals.interrupted {
            return self.stop(Failure::Interrupted);
        }
        if let Some(finished_at) = self.finished_at {
            if exit.is_none() && now - finished_at > EXIT_GRACE {
                self.hung_at_exit = true;
                return Some(Order::Stop);
            }
            return None;
        }
        if now >= self.deadline {
            return self.stop(Failure::TimedOut {
                phase: self.phase,
                iteration: self.run.iterations_done,
                limit_secs: self.timeout.as_secs_f64(),
            });
        }
        if now >= self.next_group_poll {
            self.next_group_poll = now + limits::GROUP_POLL;
            let resident = group_resident();
            if resident > self.cap {
                return self.stop(Failure::MemoryCap {
                    phase: self.phase,
                    iteration: Some(self.run.iterations_done),
                    resident,
                    cap: self.cap,
                    group: true,
                });
            }
        }
        None
    }

    /// Ends the watch with `fact` as the failure.
    fn stop(&mut self, fact: Failure) -> Option<Order> {
        self.run.failure = Some(fact.into());
        Some(Order::Stop)
    }

    /// What was observed, once the worker's processes are gone: its exit status (none when it
    /// can no longer be known) and the tails of its output. A worker that ended without a last
    /// message, and without a limit or signal that stopped it, crashed.
    pub fn finish(self, status: Option<ExitStatus>, stdout: String, stderr: String) -> WorkerRun {
        let mut run = self.run;
        run.stdout = stdout;
        run.stderr = stderr;
        if self.hung_at_exit {
            // The scenario's results stand; where they came out of is said with its output.
            run.stderr.push_str(&format!(
                "\n[leakcheck] the worker had not exited {} s after its last message (flushing C \
                 output buffered for a pipe nobody reads, or stuck in the kernel) and was killed\n",
                EXIT_GRACE.as_secs()
            ));
        }
        if self.finished_at.is_none() && run.failure.is_none() {
            let crashed = Failure::Crashed {
                phase: self.phase,
                iteration: run.iterations_done,
                signal: status.and_then(|s| s.signal()),
                exit_code: status.and_then(|s| s.code()),
            };
            run.failure = Some(match fatal_error_report(&run.stderr) {
                Some(report) => WorkerFailure::with_text(crashed, report),
                None => crashed.into(),
            });
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);
    const CAP: u64 = 1 << 30;

    /// A fake clock: `at(t0, ms)` is `ms` milliseconds after `t0`. No test reads the time.
    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    fn killed_by(signal: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(signal))
    }

    /// A group whose memory must not be measured at this tick.
    fn unmeasured() -> u64 {
        panic!("the group's memory was measured before it was due")
    }

    const QUIET: Signals = Signals {
        from_worker: None,
        interrupted: false,
    };

    fn phase(phase: Phase) -> WorkerMessage {
        WorkerMessage::Phase { phase }
    }

    fn progress(iteration: u64) -> WorkerMessage {
        WorkerMessage::Progress { iteration }
    }

    fn sample(iteration: u64, kind: SampleKind) -> WorkerMessage {
        WorkerMessage::Sample {
            sample: Sample {
                iteration,
                values: [0.0; crate::metric::Metric::ALL.len()],
            },
            kind,
        }
    }

    fn finished() -> WorkerMessage {
        WorkerMessage::Finished {
            timings: Timings::default(),
        }
    }

    /// A watch of a worker that started at `t0` and is measuring, 7 iterations done.
    fn measuring(t0: Instant) -> Watch {
        let mut watch = Watch::new(t0, TIMEOUT, CAP);
        for message in [
            WorkerMessage::Started {
                python_version: "3.12.1".to_string(),
                pid: 42,
            },
            phase(Phase::Setup),
            phase(Phase::Warmup),
            sample(0, SampleKind::Warmup),
            phase(Phase::Measure),
            sample(5, SampleKind::Measure),
            progress(7),
        ] {
            assert_eq!(watch.on_message(at(t0, 10), message), None);
        }
        watch
    }

    /// The watch's answers to ticks at each of `ms` milliseconds, the worker having exited 0.
    fn after_exit(watch: &mut Watch, t0: Instant, ms: &[u64]) -> Vec<Option<Order>> {
        ms.iter()
            .map(|&ms| watch.on_tick(at(t0, ms), exited(0), QUIET, || 1))
            .collect()
    }

    /// The failure of a watch whose worker was killed by the process side (no output).
    fn killed(watch: Watch) -> WorkerFailure {
        let run = watch.finish(killed_by(libc::SIGKILL), String::new(), String::new());
        run.failure.expect("a failure")
    }

    #[test]
    fn a_normal_finish_keeps_what_was_reported_and_leaves_once_the_worker_exited() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let stop = Stop {
            reason: crate::verdict::StopReason::Decided,
            measured_iterations: 5,
            look: 1,
            looks: 3,
            confidence: 0.995,
        };
        let stopped = WorkerMessage::Stopped {
            verdict: Verdict::Pass,
            stop,
        };
        assert_eq!(watch.on_message(at(t0, 15), stopped), None);
        assert!(!watch.finished(), "teardown is still to come");
        assert_eq!(watch.on_message(at(t0, 20), finished()), None);
        assert!(watch.finished());
        // Exited at 30 ms: listening goes on for LINGER, in case messages are still in flight.
        assert_eq!(
            after_exit(&mut watch, t0, &[30, 530, 531]),
            [None, None, Some(Order::Leave)]
        );
        let run = watch.finish(exited(0), "out".into(), "err".into());
        assert_eq!(run.failure, None);
        assert_eq!(run.stopped, Some((Verdict::Pass, stop)));
        assert_eq!(run.timings, Some(Timings::default()));
        assert_eq!(run.python_version.as_deref(), Some("3.12.1"));
        assert_eq!(run.iterations_done, 7);
        let kinds: Vec<SampleKind> = run.samples.iter().map(|(_, kind)| *kind).collect();
        assert_eq!(kinds, [SampleKind::Warmup, SampleKind::Measure]);
        assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("out", "err"));
    }

    #[test]
    fn messages_still_arriving_after_the_exit_are_heard_out_within_a_bound() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        // Not finished yet: the group's memory is still polled, and under the cap.
        let under_cap = || 1;
        // Exited at 100 ms; its samples are still being read, one every 400 ms.
        assert_eq!(
            watch.on_tick(at(t0, 100), exited(0), QUIET, under_cap),
            None
        );
        for ms in [400, 800] {
            watch.on_message(at(t0, ms), sample(ms, SampleKind::Measure));
            assert_eq!(watch.on_tick(at(t0, ms), exited(0), QUIET, under_cap), None);
        }
        watch.on_message(at(t0, 1_200), finished());
        assert_eq!(
            after_exit(&mut watch, t0, &[1_700, 1_701]),
            [None, Some(Order::Leave)]
        );
        assert_eq!(
            watch
                .finish(exited(0), String::new(), String::new())
                .failure,
            None
        );

        // A stray that keeps the channel busy is left once the exit is old enough.
        let mut busy = measuring(t0);
        assert_eq!(busy.on_tick(at(t0, 100), exited(0), QUIET, under_cap), None);
        let bound = 100 + LISTEN_AFTER_EXIT.as_millis() as u64;
        busy.on_message(at(t0, bound), progress(8));
        assert_eq!(
            busy.on_tick(at(t0, bound), exited(0), QUIET, under_cap),
            None
        );
        busy.on_message(at(t0, bound + 1), progress(9));
        assert_eq!(
            busy.on_tick(at(t0, bound + 1), exited(0), QUIET, under_cap),
            Some(Order::Leave)
        );
    }

    #[test]
    fn the_scenario_timeout_stops_a_running_worker_and_names_where_it_was() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let deadline = TIMEOUT.as_millis() as u64;
        // The group poll comes due on the way; the worker stays under its cap.
        assert_eq!(watch.on_tick(at(t0, deadline - 1), None, QUIET, || 1), None);
        assert_eq!(
            watch.on_tick(at(t0, deadline), None, QUIET, unmeasured),
            Some(Order::Stop)
        );
        assert_eq!(
            killed(watch).fact,
            Failure::TimedOut {
                phase: Phase::Measure,
                iteration: 7,
                limit_secs: 30.0,
            }
        );
    }

    #[test]
    fn the_scenario_timeout_does_not_apply_to_a_worker_on_its_way_out() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let deadline = TIMEOUT.as_millis() as u64;
        watch.on_message(at(t0, deadline - 10), finished());
        assert_eq!(
            watch.on_tick(at(t0, deadline + 1), None, QUIET, unmeasured),
            None
        );
    }

    #[test]
    fn an_iteration_timeout_from_the_watchdog_kills_at_once_and_names_the_iteration() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let watchdog = WorkerMessage::Watchdog {
            limit: WatchdogLimit::IterationTimeout { limit_secs: 2.0 },
            iteration: Some(9),
        };
        assert_eq!(watch.on_message(at(t0, 50), watchdog), Some(Order::Kill));
        assert!(watch.finished());
        // Killed: it exits, and the watch leaves after listening a little longer.
        assert_eq!(
            watch.on_tick(at(t0, 60), killed_by(libc::SIGKILL), QUIET, unmeasured),
            None
        );
        assert_eq!(
            watch.on_tick(at(t0, 561), killed_by(libc::SIGKILL), QUIET, unmeasured),
            Some(Order::Leave)
        );
        assert_eq!(
            killed(watch).fact,
            Failure::IterationTimedOut {
                phase: Phase::Measure,
                iteration: 9,
                limit_secs: 2.0,
            }
        );
    }

    #[test]
    fn an_iteration_timeout_outside_an_iteration_names_the_last_one_done() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let watchdog = WorkerMessage::Watchdog {
            limit: WatchdogLimit::IterationTimeout { limit_secs: 2.0 },
            iteration: None,
        };
        watch.on_message(at(t0, 50), watchdog);
        assert!(matches!(
            killed(watch).fact,
            Failure::IterationTimedOut { iteration: 7, .. }
        ));
    }

    #[test]
    fn the_group_memory_cap_is_polled_every_group_poll_and_stops_the_worker_as_a_leak() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let poll = limits::GROUP_POLL.as_millis() as u64;
        assert_eq!(
            watch.on_tick(at(t0, poll - 1), None, QUIET, unmeasured),
            None
        );
        assert_eq!(watch.on_tick(at(t0, poll), None, QUIET, || CAP), None);
        // Next due one poll after that one, not after the start.
        assert_eq!(
            watch.on_tick(at(t0, 2 * poll - 1), None, QUIET, unmeasured),
            None
        );
        assert_eq!(
            watch.on_tick(at(t0, 2 * poll), None, QUIET, || CAP + 1),
            Some(Order::Stop)
        );
        let failure = killed(watch);
        assert!(failure.is_leak());
        assert_eq!(
            failure.fact,
            Failure::MemoryCap {
                phase: Phase::Measure,
                iteration: Some(7),
                resident: CAP + 1,
                cap: CAP,
                group: true,
            }
        );
    }

    #[test]
    fn the_memory_cap_from_the_watchdog_is_the_workers_own() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let watchdog = WorkerMessage::Watchdog {
            limit: WatchdogLimit::MemoryCap {
                resident: CAP + 5,
                cap: CAP,
            },
            iteration: Some(8),
        };
        assert_eq!(watch.on_message(at(t0, 50), watchdog), Some(Order::Kill));
        assert_eq!(
            killed(watch).fact,
            Failure::MemoryCap {
                phase: Phase::Measure,
                iteration: Some(8),
                resident: CAP + 5,
                cap: CAP,
                group: false,
            }
        );
    }

    #[test]
    fn the_memory_cap_is_not_polled_once_the_worker_finished() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        watch.on_message(at(t0, 20), finished());
        let poll = limits::GROUP_POLL.as_millis() as u64;
        assert_eq!(watch.on_tick(at(t0, poll), None, QUIET, unmeasured), None);
    }

    #[test]
    fn a_worker_that_exits_before_its_last_message_crashed() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        // `os._exit(0)` in an iteration; a subprocess keeps the channel open.
        assert_eq!(
            watch.on_tick(at(t0, 100), exited(0), QUIET, unmeasured),
            None
        );
        assert_eq!(
            watch.on_tick(at(t0, 601), exited(0), QUIET, unmeasured),
            Some(Order::Leave)
        );
        assert!(!watch.finished());
        let run = watch.finish(exited(0), String::new(), String::new());
        assert_eq!(
            run.failure.expect("a crash").fact,
            Failure::Crashed {
                phase: Phase::Measure,
                iteration: 7,
                signal: None,
                exit_code: Some(0),
            }
        );
    }

    #[test]
    fn a_worker_that_does_not_exit_after_its_last_message_is_stopped_and_its_results_stand() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        watch.on_message(at(t0, 1_000), finished());
        let grace = EXIT_GRACE.as_millis() as u64;
        assert_eq!(
            watch.on_tick(at(t0, 1_000 + grace), None, QUIET, unmeasured),
            None
        );
        assert_eq!(
            watch.on_tick(at(t0, 1_001 + grace), None, QUIET, unmeasured),
            Some(Order::Stop)
        );
        let run = watch.finish(killed_by(libc::SIGKILL), String::new(), "err".into());
        assert_eq!(run.failure, None);
        assert!(run.timings.is_some());
        assert_eq!(
            run.stderr,
            "err\n[leakcheck] the worker had not exited 5 s after its last message (flushing C \
             output buffered for a pipe nobody reads, or stuck in the kernel) and was killed\n"
        );
    }

    #[test]
    fn the_exit_grace_runs_from_the_first_last_message() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let failed = |message: &str| WorkerMessage::Failed {
            phase: Phase::Teardown,
            iteration: None,
            message: message.to_string(),
            traceback: "Traceback ...".to_string(),
        };
        watch.on_message(at(t0, 1_000), failed("ValueError: first"));
        watch.on_message(at(t0, 3_000), finished());
        let grace = EXIT_GRACE.as_millis() as u64;
        assert_eq!(
            watch.on_tick(at(t0, 1_001 + grace), None, QUIET, unmeasured),
            Some(Order::Stop)
        );
        let run = watch.finish(None, String::new(), String::new());
        let failure = run.failure.expect("the exception stands");
        assert_eq!(failure.traceback(), Some("Traceback ..."));
        assert!(matches!(
            failure.fact,
            Failure::Exception { ref message, .. } if message == "ValueError: first"
        ));
    }

    #[test]
    fn an_interrupt_stops_the_worker_even_on_its_way_out() {
        let t0 = Instant::now();
        let interrupted = Signals {
            from_worker: None,
            interrupted: true,
        };
        let mut running = measuring(t0);
        assert_eq!(
            running.on_tick(at(t0, 20), None, interrupted, unmeasured),
            Some(Order::Stop)
        );
        assert!(killed(running).interrupted());

        let mut leaving = measuring(t0);
        leaving.on_message(at(t0, 20), finished());
        assert_eq!(
            leaving.on_tick(at(t0, 30), None, interrupted, unmeasured),
            Some(Order::Stop)
        );
        assert!(killed(leaving).interrupted());
    }

    #[test]
    fn a_signal_from_the_worker_is_its_own_failure_and_comes_before_an_interrupt() {
        let t0 = Instant::now();
        let mut watch = measuring(t0);
        let both = Signals {
            from_worker: Some(libc::SIGTERM),
            interrupted: true,
        };
        assert_eq!(
            watch.on_tick(at(t0, 20), None, both, unmeasured),
            Some(Order::Stop)
        );
        assert_eq!(
            killed(watch).fact,
            Failure::SignalledLeakcheck {
                phase: Phase::Measure,
                signal: libc::SIGTERM,
            }
        );
    }

    #[test]
    fn a_crash_by_signal_is_named_with_faulthandlers_report() {
        let t0 = Instant::now();
        let watch = measuring(t0);
        // The channel closed (the process side leaves); the status says SIGSEGV.
        let stderr = "some output\nFatal Python error: Segmentation fault\n\nCurrent thread 0x1 \
                      (most recent call first):\n  File \"x.py\", line 1\n\n";
        let run = watch.finish(killed_by(libc::SIGSEGV), String::new(), stderr.into());
        let failure = run.failure.expect("a crash");
        assert_eq!(
            failure.fact,
            Failure::Crashed {
                phase: Phase::Measure,
                iteration: 7,
                signal: Some(libc::SIGSEGV),
                exit_code: None,
            }
        );
        assert_eq!(
            failure.traceback(),
            Some(
                "Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call \
                 first):\n  File \"x.py\", line 1"
            )
        );
        assert!(
            failure
                .summary()
                .starts_with("worker was killed by signal 11 (SIGSEGV, "),
            "{}",
            failure.summary()
        );
    }

    #[test]
    fn a_worker_whose_status_is_lost_vanished() {
        let t0 = Instant::now();
        let watch = measuring(t0);
        let run = watch.finish(None, String::new(), String::new());
        assert_eq!(
            run.failure.unwrap().summary(),
            "worker vanished in run after 7 iterations"
        );
    }
}
