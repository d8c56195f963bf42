//! Explaining a leak: which lines allocate the memory that grew, which object types grew, who
//! still holds the objects, uncollectable garbage, and hints for known causes.
//!
//! The worker collects this in a diagnosis window of its own after the measured run, at two
//! checkpoints (A after half the window, B at its end), never per iteration, and sends it as one
//! [`Diagnosis`] message; this module holds the data (part of `results.json`, schema below) and
//! nothing that runs Python; `view.rs` words it for every report.

mod view;

pub use view::{ChainView, DiagnosisView, FrameView, SiteView, TypeView};

use serde::{Deserialize, Serialize};

/// Everything found out about where memory went between the two checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Iterations between the two checkpoints: the divisor of every per-iteration figure.
    pub iterations: u64,
    /// Top allocation sites by bytes grown (tracemalloc snapshot diff grouped by traceback).
    pub sites: Vec<AllocationSite>,
    /// Top gc-tracked types by count growth.
    pub types: Vec<TypeGrowth>,
    /// Paths from a sample of new objects of the top growing types back to what keeps them alive.
    pub chains: Vec<ReferrerChain>,
    /// `gc.garbage` and collector statistics.
    pub garbage: GarbageReport,
    /// Rule-based hints for known causes, each with a one-line fix.
    pub hints: Vec<Hint>,
    /// Seconds the worker spent diagnosing (snapshots, census, chain search), both checkpoints.
    pub cost_secs: f64,
    /// Anything that limited the diagnosis (e.g. tracemalloc stopped by the scenario).
    pub notes: Vec<String>,
    /// Native allocation sites from the native window (memray), when the C allocator grew by
    /// more than the traced sites explain and memray was importable; else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeDiagnosis>,
}

/// What the native diagnosis window found: allocations outside tracemalloc that grew with the
/// window, from memray's records of two windows of different lengths (the difference drops
/// what both hold: one-off buffers, the last iteration's temporaries).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NativeDiagnosis {
    /// The memray release that recorded them.
    pub memray_version: String,
    /// Iterations of the two windows, shorter first.
    pub windows: [u64; 2],
    /// Sites by bytes grown per iteration, largest first.
    pub sites: Vec<NativeSite>,
    /// Seconds the native window took, its iterations (run only for it) included.
    pub cost_secs: f64,
}

/// One native allocation site that grew with the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NativeSite {
    /// Bytes allocated there and still alive, per iteration.
    pub bytes_per_iteration: f64,
    /// Allocations still alive, per iteration.
    pub allocations_per_iteration: f64,
    /// The innermost Python frame: the line that called into the native code.
    pub python: Option<PythonFrame>,
    /// The first Python frame outside installed packages and the standard library, when the
    /// innermost one is inside them: the scenario's (or the project's) line.
    pub caller: Option<PythonFrame>,
    /// The innermost native frames, down to the interpreter's call machinery.
    pub native: Vec<NativeFrame>,
}

/// A Python frame of a native allocation's stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PythonFrame {
    /// File name as Python reports it.
    pub file: String,
    /// Line number.
    pub line: u32,
    /// The function's name.
    pub function: String,
}

/// A native frame: the C function and where it lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NativeFrame {
    /// The symbol, e.g. `ImagingSgiRleDecode`.
    pub symbol: String,
    /// `source.c:line` where debug information names it, else the shared library that defines
    /// the symbol (e.g. `_imaging.cpython-311-x86_64-linux-gnu.so`), else empty.
    pub file: String,
}

/// A place in the code whose live allocations grew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationSite {
    /// Innermost frame not belonging to the harness: the line that allocates.
    pub file: String,
    /// Line number in `file`.
    pub line: u32,
    /// The source text of that line, when available.
    pub code: Option<String>,
    /// When the allocating line is in the standard library (a `LogRecord` being built, say), the
    /// first frame outside it: usually the line of the user's code to look at.
    #[serde(default)]
    pub caller: Option<Frame>,
    /// Bytes of live allocations gained between the checkpoints.
    pub size_diff: i64,
    /// Live blocks gained between the checkpoints.
    pub count_diff: i64,
    /// `size_diff / iterations`.
    pub bytes_per_iteration: f64,
    /// The allocation's stack, innermost first, harness frames removed.
    pub stack: Vec<Frame>,
}

/// One frame of an allocation stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// File name as Python reports it.
    pub file: String,
    /// Line number.
    pub line: u32,
    /// Source text, when available.
    pub code: Option<String>,
}

/// A gc-tracked type whose number of live objects grew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeGrowth {
    /// Qualified name, e.g. `shop.events.Request` or `dict`.
    pub type_name: String,
    /// Live objects at checkpoint A.
    pub before: u64,
    /// Live objects at checkpoint B.
    pub after: u64,
    /// `(after - before) / iterations`.
    pub per_iteration: f64,
}

/// A shortest path of strong references from a root to a leaked object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferrerChain {
    /// The type of the leaked object the search started from.
    pub type_name: String,
    /// What kind of root was reached: `module_global`, `class_attribute`, `closure`,
    /// `default_argument`, `sys_modules`, `frame`, `logging_handler`, `functools_cache`, or
    /// `none` when the search stopped before reaching a root.
    pub root_kind: String,
    /// Steps from the root to the object, e.g. `module shop.prices`, `global '_seen_quotes' (list)`,
    /// `item [1532]`, `dict`.
    pub steps: Vec<String>,
    /// The chain in one line, steps joined with ` → `.
    pub text: String,
    /// Why the search stopped, when no root was reached (depth, time, or object count limit).
    pub note: Option<String>,
}

/// Uncollectable garbage and what the collector did between the checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GarbageReport {
    /// `len(gc.garbage)` at checkpoint A.
    pub garbage_before: u64,
    /// `len(gc.garbage)` at checkpoint B.
    pub garbage_after: u64,
    /// Per generation (0, 1, 2): collections, collected and uncollectable, between checkpoints.
    pub generations: Vec<GenerationStats>,
    /// Types of objects in `gc.garbage` that appeared during the run (with `__del__` or
    /// finalizers in cycles), most frequent first.
    pub uncollectable_types: Vec<String>,
}

/// Collector activity of one generation between the checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Generation number.
    pub generation: u8,
    /// Collections run.
    pub collections: u64,
    /// Objects freed.
    pub collected: u64,
    /// Objects found uncollectable.
    pub uncollectable: u64,
}

/// A known cause recognised from the data, with what to do about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hint {
    /// Stable identifier of the rule, e.g. `unbounded_lru_cache`.
    pub rule: String,
    /// What was observed, e.g. "shop.prices.tax_unbounded is an lru_cache(maxsize=None) whose
    /// currsize grew by 200 (1.0 per iteration)".
    pub message: String,
    /// A one-line fix suggestion.
    pub fix: String,
}
