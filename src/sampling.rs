//! The sampling plan: which figures are read when, so that measuring costs little.
//!
//! `tracemalloc` is the one instrument that slows the code under test: every allocation and
//! free records a traceback, which makes allocation-heavy code 5–10× slower. The figures the
//! verdict is drawn from by default (`alloc_blocks`, `malloc`, `rss`, `fds`) cost nothing
//! between samples, so by default the measured run is untraced, and tracemalloc's byte figure
//! comes from a short **traced window** after it, sized to a small share of the measured run's
//! time. A scenario that gates on `tracemalloc` is traced from start to end instead (the plan
//! before this one), and a leak's diagnosis window always traces deeply.
//!
//! The worker and the runner both read the plan from here, so they agree on which samples
//! carry which figures.

use crate::metric::Metric;

/// Share of the measured run's time the traced window may take.
pub const TRACE_SHARE: f64 = 0.05;

/// Time the traced window may always take, whatever the share: a quick scenario's measured run
/// lasts a few milliseconds, and 5 % of it would not let a small cache turn over before the
/// window's samples (20 ms of a 200-iteration scenario of microseconds is its whole length).
pub const TRACE_MIN_BUDGET_SECS: f64 = 0.02;

/// The traced window's time budget for a measured run that took `measured_secs`.
pub fn trace_budget(measured_secs: f64) -> f64 {
    (TRACE_SHARE * measured_secs).max(TRACE_MIN_BUDGET_SECS)
}

/// Fewest iterations of a traced window, whatever the budget.
pub const TRACE_MIN_ITERATIONS: u64 = 8;

/// Most samples in the fitted half of a traced window.
pub const TRACE_SAMPLES: u64 = 10;

/// Whether tracemalloc runs through warmup and the measured run (the scenario gates on it), or
/// only in the traced window after the measured run.
pub fn traced_throughout(gate: &[Metric]) -> bool {
    gate.contains(&Metric::Tracemalloc)
}

/// The shape of a traced window, chosen once the cost of one traced iteration is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceWindow {
    /// Iterations run right after tracing starts and not sampled, two thirds of the window:
    /// objects allocated before tracing are invisible to it, so a bounded cache that turns over
    /// looks like growth until its untraced entries are gone, and a container allocated before
    /// tracing counts whole when it is first reallocated (a list's array grows by an eighth, so
    /// a leaking list is reallocated within an eighth of its length in iterations).
    pub settle: u64,
    /// Iterations between two samples in the fitted half.
    pub step: u64,
    /// Samples in the fitted half (plus one at its start).
    pub samples: u64,
}

impl TraceWindow {
    /// Sizes the window: as many iterations as fit in `budget_secs` at `traced_secs` per traced
    /// iteration, at least [`TRACE_MIN_ITERATIONS`], at most the scenario's `iterations` (never
    /// under the minimum).
    pub fn plan(iterations: u64, budget_secs: f64, traced_secs: f64) -> TraceWindow {
        let ceiling = iterations.max(TRACE_MIN_ITERATIONS);
        let affordable = if traced_secs > 0.0 {
            (budget_secs / traced_secs).floor().min(u64::MAX as f64) as u64
        } else {
            ceiling
        };
        let total = affordable.clamp(TRACE_MIN_ITERATIONS, ceiling);
        let settle = total * 2 / 3;
        let fitted = total - settle;
        let samples = fitted.min(TRACE_SAMPLES);
        TraceWindow {
            settle,
            step: fitted / samples,
            samples,
        }
    }

    /// Iterations the window runs in all.
    pub fn iterations(&self) -> u64 {
        self.settle + self.step * self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_share_of_the_run_with_a_floor() {
        assert_eq!(trace_budget(10.0), 0.5);
        assert_eq!(trace_budget(0.01), TRACE_MIN_BUDGET_SECS);
    }

    #[test]
    fn only_a_tracemalloc_gate_traces_throughout() {
        assert!(traced_throughout(&[Metric::Rss, Metric::Tracemalloc]));
        assert!(!traced_throughout(&Metric::DEFAULT_GATE));
    }

    #[test]
    fn a_cheap_iteration_gets_what_the_budget_affords() {
        // 30 000 iterations, 10 µs traced, a 15 ms budget: 1 500 iterations, 1 000 settling.
        let window = TraceWindow::plan(30_000, 0.0150001, 10e-6);
        assert_eq!(window.settle, 1_000);
        assert_eq!((window.step, window.samples), (50, 10));
        // Never more than the measured run itself: 133 settling, then 10 samples 6 apart.
        let capped = TraceWindow::plan(200, 10.0, 1e-6);
        assert_eq!(
            capped,
            TraceWindow {
                settle: 133,
                step: 6,
                samples: 10
            }
        );
        assert_eq!(capped.iterations(), 193);
    }

    #[test]
    fn an_expensive_iteration_gets_the_minimum() {
        // 1 ms traced iterations with a 2 ms budget: still 8 iterations, the last 3 sampled.
        let window = TraceWindow::plan(2_500, 0.002, 1e-3);
        assert_eq!(
            window,
            TraceWindow {
                settle: 5,
                step: 1,
                samples: 3
            }
        );
        assert_eq!(
            TraceWindow::plan(3, 1.0, 0.0).iterations(),
            TRACE_MIN_ITERATIONS
        );
    }
}
