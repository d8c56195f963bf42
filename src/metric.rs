//! The quantities leakcheck samples between iterations.
//!
//! One enum names them everywhere (scenario `gate`/`tolerance` keys, the worker's samples, fits,
//! reports), so a metric's spelling, unit and default tolerance live in exactly one place.

use serde::{Deserialize, Serialize};

use crate::units::Unit;

/// A sampled memory or resource figure of the worker process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Bytes currently traced by `tracemalloc` (exact, Python allocations only). Tracing makes
    /// allocation-heavy code several times slower, so unless a scenario gates on it, it is only
    /// sampled in a short traced window after the measured run (see [`crate::sampling`]).
    Tracemalloc,
    /// Bytes the C allocator has handed out and not got back (glibc `mallinfo2()`: in-use arena
    /// chunks plus mmapped blocks): Python objects over 512 B, buffers that grow by `realloc`,
    /// and memory of C extensions. Python's small objects live in pymalloc arenas mapped
    /// directly, so they show in `alloc_blocks` instead. Costs nothing between samples.
    Malloc,
    /// Resident set size of the worker process (includes native allocations, page-granular).
    Rss,
    /// Objects tracked by the cyclic garbage collector (`len(gc.get_objects())`).
    GcObjects,
    /// Live blocks of Python's small-object allocator (`sys.getallocatedblocks()`).
    AllocBlocks,
    /// Open file descriptors of the worker process.
    Fds,
}

impl Metric {
    /// Every metric, in the order reports show them.
    pub const ALL: [Metric; 6] = [
        Metric::Tracemalloc,
        Metric::Malloc,
        Metric::Rss,
        Metric::GcObjects,
        Metric::AllocBlocks,
        Metric::Fds,
    ];

    /// The name used in scenario files and `results.json`: its serde name (see
    /// [`crate::names`]).
    pub fn name(self) -> &'static str {
        crate::names::of(&self)
    }

    /// Looks a metric up by its scenario-file name.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether values are bytes or counts.
    pub fn unit(self) -> Unit {
        match self {
            Metric::Tracemalloc | Metric::Malloc | Metric::Rss => Unit::Bytes,
            Metric::GcObjects | Metric::AllocBlocks | Metric::Fds => Unit::Count,
        }
    }

    /// Growth per iteration tolerated when a scenario does not set `tolerance`.
    ///
    /// Chosen so that one leaked small object per iteration (an `int` appended to a list is
    /// about 36 B and one block) is well above the line, while the jitter of pymalloc freelists
    /// and lazily created interpreter caches after warmup stays below it. RSS moves in 4 KiB pages
    /// and allocator arenas, so its allowance is larger. `malloc` moves in steps of a few KiB as
    /// the allocator splits and merges chunks (workers run with glibc's per-thread cache off, see
    /// `worker::allocator`, so freed chunks no longer count as in use): 64 B/iter keeps a sawtooth
    /// or random-size buffer below the line (see `benches/accuracy`) while a leaked 4 KiB native
    /// buffer per iteration is far above it.
    pub fn default_tolerance(self) -> f64 {
        match self {
            Metric::Tracemalloc => 8.0,
            Metric::Malloc => 64.0,
            Metric::Rss => 2048.0,
            Metric::GcObjects => 0.1,
            Metric::AllocBlocks => 0.1,
            Metric::Fds => 0.05,
        }
    }

    /// Least total growth over the judged window for a leak verdict, whatever the rate: below
    /// it a "trend" is a handful of pages, blocks or objects that a short window cannot tell
    /// from the allocator settling.
    pub fn min_growth(self) -> f64 {
        match self {
            Metric::Tracemalloc => 1024.0,
            Metric::Malloc => 8.0 * 1024.0,
            Metric::Rss => 256.0 * 1024.0,
            Metric::GcObjects | Metric::AllocBlocks => 10.0,
            Metric::Fds => 3.0,
        }
    }

    /// Metrics that decide the verdict when a scenario does not set `gate`.
    ///
    /// All of them are read between iterations without slowing the iterations down: live
    /// allocator blocks (every Python object), C-allocator bytes (large and native memory),
    /// resident memory and descriptors. Together they catch what tracemalloc's byte count did on
    /// the accuracy corpus (`benches/accuracy`), plus native leaks tracemalloc cannot see.
    pub const DEFAULT_GATE: [Metric; 4] = [
        Metric::Malloc,
        Metric::Rss,
        Metric::AllocBlocks,
        Metric::Fds,
    ];
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
