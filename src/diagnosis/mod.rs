//! Explaining a leak: which lines allocate the memory that grew, which object types grew, who
//! still holds the objects, uncollectable garbage, and hints for known causes.
//!
//! The worker collects this in a diagnosis window of its own after the measured run, at two
//! checkpoints (A after half the window, B at its end), never per iteration, and sends it as one
//! [`Diagnosis`] message; this module holds the data (part of `results.json`, schema below) and
//! nothing that runs Python; `view.rs` words it for every report.
//!
//! What the worker's Python sends is decoded strictly (`deny_unknown_fields`, as the holder
//! probe's findings are): a field renamed on one side is a decode error, recorded in
//! [`Diagnosis::error`], rather than a silently missing figure.

mod view;

pub use view::{ChainView, DiagnosisView, FrameView, SiteView, TypeView};

use serde::{Deserialize, Serialize};

use crate::metric::Metric;

/// Everything found out about where memory went between the two checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(with = "hints")]
    pub hints: Vec<Hint>,
    /// Seconds the worker spent diagnosing (snapshots, census, chain search), both checkpoints.
    pub cost_secs: f64,
    /// Anything that limited the diagnosis (e.g. tracemalloc stopped by the scenario).
    pub notes: Vec<String>,
    /// Why the diagnosis could not be completed, when it could not: the diagnosis code raised,
    /// or what it returned did not decode as this type (a field one side does not know). The
    /// verdict stands; the reports say so in a note. Added in schema version 1 without a bump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Native allocation sites from the native window (memray), when the C allocator grew by
    /// more than the traced sites explain and memray was importable; else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeDiagnosis>,
    /// Native memory the traced sites do not explain, and what the native window made of it:
    /// present when the C allocator or resident memory grew by more than twice what the traced
    /// sites account for. Added in schema version 1 without a bump (files before it said the
    /// same in a note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_gap: Option<NativeGap>,
}

/// Growth of the C allocator or of resident memory that tracemalloc's sites do not explain: a C
/// extension's, ctypes' or a native library's memory. Facts only; `view.rs` words them as the
/// diagnosis's last note.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeGap {
    /// The metric that grew: `malloc` or `rss`, whichever grew more above its tolerance.
    pub metric: Metric,
    /// Its growth per iteration, in bytes (the deciding look's robust slope).
    pub bytes_per_iteration: f64,
    /// What the traced allocation sites account for, in bytes per iteration.
    pub traced_bytes_per_iteration: f64,
    /// What the native window made of it.
    pub window: NativeWindow,
}

/// How the native window went (`outcome` names the variant in JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum NativeWindow {
    /// memray cannot be imported in the scenario's environment: the window did not run.
    MemrayMissing {
        /// The Python to install it with (`{python} -m pip install memray`).
        python: String,
    },
    /// The window could not start (its temporary folder, or memray's tracker).
    NotRun {
        /// Why.
        reason: String,
    },
    /// The window started and could not stop cleanly.
    NotCompleted {
        /// Why.
        reason: String,
    },
    /// memray's records could not be read.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// Neither memray nor leakcheck's malloc recorder saw a native allocation grow with the
    /// window.
    NothingGrew,
    /// Native sites grew: [`Diagnosis::native`] lists memray's.
    Found,
    /// memray's sites, some of which it saw without a Python frame: their lines are those of
    /// leakcheck's malloc recorder's sites that grew at the same rate.
    FoundWithRecordedLines,
    /// memray cannot be imported; leakcheck's malloc recorder found the sites
    /// ([`Diagnosis::native`], Python lines only).
    RecordedWithoutMemray {
        /// The Python to install memray with, for the native frames.
        python: String,
    },
    /// memray saw nothing grow (allocations through a pointer from `dlsym`, as ctypes and
    /// cffi make them, pass it by); leakcheck's malloc recorder found the sites.
    RecordedPastMemray,
}

/// What recorded a native window's sites (`source` in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NativeSource {
    /// memray: each site with its native frames.
    #[default]
    Memray,
    /// leakcheck's own malloc recorder (`src/worker/malloc_recorder.rs`): the Python lines
    /// only, for allocations memray does not see or when memray is not installed.
    Recorder,
}

/// What the native diagnosis window found: allocations outside tracemalloc that grew with the
/// window, from memray's records of two windows of different lengths (the difference drops
/// what both hold: one-off buffers, the last iteration's temporaries).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeDiagnosis {
    /// What recorded them (results written before the recorder existed are memray's).
    #[serde(default)]
    pub source: NativeSource,
    /// The memray release that recorded them (empty for the recorder's).
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct NativeFrame {
    /// The symbol, e.g. `ImagingSgiRleDecode`.
    pub symbol: String,
    /// `source.c:line` where debug information names it, else the shared library that defines
    /// the symbol (e.g. `_imaging.cpython-311-x86_64-linux-gnu.so`), else empty.
    pub file: String,
}

/// A place in the code whose live allocations grew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct ReferrerChain {
    /// The type of the leaked object the search started from.
    pub type_name: String,
    /// What kind of root (or holder next to the object) was reached.
    pub root_kind: RootKind,
    /// Steps from the root to the object, e.g. `module shop.prices`, `global '_seen_quotes' (list)`,
    /// `item [1532]`, `dict`.
    pub steps: Vec<String>,
    /// The chain in one line, steps joined with ` → `.
    pub text: String,
    /// Why the search stopped, when no root was reached (depth, time, or object count limit).
    pub note: Option<String>,
}

/// What holds a leaked object, as a referrer chain names it: the holder nearest the object
/// when it is a telling one (a cache, a handler, a closure), else the root the chain reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    /// A module's global.
    ModuleGlobal,
    /// A name of the scenario's own namespace (its `setup` and `run` code).
    ScenarioGlobal,
    /// A class attribute.
    ClassAttribute,
    /// A closure's cell.
    Closure,
    /// A function's default arguments.
    DefaultArgument,
    /// `sys.modules` itself.
    SysModules,
    /// A running (or suspended) frame's locals.
    Frame,
    /// A `logging.Handler`.
    LoggingHandler,
    /// A `functools.lru_cache`.
    FunctoolsCache,
    /// No root: the search stopped first (see the chain's `note`).
    None,
}

/// Uncollectable garbage and what the collector did between the checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

/// A known cause recognised from the data: the facts `diagnose.py` found, one variant per rule
/// (`rule` names it in JSON). The words, what was observed and the fix, are written once, in
/// `view.rs` ([`Hint::message`], [`Hint::fix`]), so that rewording a hint is a Rust change that
/// the report snapshots pin, and a consumer of results.json gets the figures as well as the
/// sentence. In results.json each hint also carries its `message` and `fix` (see [`hints`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Hint {
    /// A `functools.lru_cache(maxsize=None)` whose size grew.
    UnboundedLruCache {
        /// The cached function, `module.qualname`.
        name: String,
        /// Entries gained between the checkpoints.
        grew: u64,
        /// `grew / iterations`.
        per_iteration: f64,
    },
    /// A `logging.handlers.BufferingHandler` whose buffer grew.
    BufferingHandler {
        /// The handler's type, e.g. `logging.handlers.BufferingHandler`.
        handler: String,
        /// Records gained between the checkpoints.
        grew: u64,
        /// `grew / iterations`.
        per_iteration: f64,
    },
    /// Loggers made with a new name per call (`logging.getLogger(f"app.{id}")`): logging keeps
    /// every one in `logging.Logger.manager.loggerDict` for good.
    LoggerPerCall {
        /// Names gained between the checkpoints.
        grew: u64,
        /// `grew / iterations`.
        per_iteration: f64,
        /// The newest new name, as Python's `repr`, shortened to 40 characters.
        example: String,
    },
    /// A list, dict, set or deque held by a module global (or the scenario's) that grew with
    /// the iterations.
    GrowingModuleContainer {
        /// The module whose global it is; `null` for the scenario's own namespace.
        module: Option<String>,
        /// The global's name.
        name: String,
        /// The container's type, e.g. `list` or `collections.deque`.
        kind: String,
        /// Entries gained between the checkpoints.
        grew: u64,
        /// `grew / iterations`.
        per_iteration: f64,
    },
    /// `requests` sessions or `urllib3` connection pools among the growing types.
    HttpSessions {
        /// The growing session and pool types.
        grown: Vec<Grown>,
    },
    /// Sampled growing numpy arrays that are views of much larger base arrays.
    NumpyViewKeepsBase {
        /// How many of the sampled arrays are such views.
        views: u64,
        /// Bytes of their base arrays.
        base_bytes: u64,
    },
    /// Growing SQLAlchemy mapped classes (their instances kept, e.g. in result lists).
    SqlalchemyResultsKept {
        /// The growing mapped classes.
        grown: Vec<Grown>,
    },
    /// Growing autograd graph nodes (objects holding `_prev` and `_backward`).
    AutogradGraphKept {
        /// The growing node classes.
        grown: Vec<Grown>,
    },
    /// Growing instances of classes with `__del__`.
    FinalizerKeepsObject {
        /// The growing classes.
        grown: Vec<Grown>,
    },
    /// A hint read from a results.json written before hints carried their facts (or by a
    /// later leakcheck with a rule this one does not know): only its words, kept as they were.
    #[serde(skip)]
    Worded {
        /// The rule's identifier.
        rule: String,
        /// What was observed.
        message: String,
        /// What to do about it.
        fix: String,
    },
}

/// A growing type a hint names, and by how many objects it grew between the checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grown {
    /// Qualified name.
    pub type_name: String,
    /// Objects gained.
    pub grew: u64,
}

/// How results.json holds [`Diagnosis::hints`]: each hint's facts with its `rule`, `message`
/// and `fix` (the fields the file has always had, so readers of the words keep working).
/// Reading drops the words of a hint whose facts this build knows (they are worded again,
/// the same way) and keeps them for one it does not ([`Hint::Worded`]).
pub mod hints {
    use super::Hint;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    /// A hint as written: its facts and their words, or the words alone.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Written<'a> {
        Facts {
            #[serde(flatten)]
            facts: &'a Hint,
            message: String,
            fix: String,
        },
        Words {
            rule: &'a str,
            message: &'a str,
            fix: &'a str,
        },
    }

    /// Writes each hint's facts, `message` and `fix`, in that order.
    pub fn serialize<S: Serializer>(hints: &[Hint], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(hints.iter().map(|hint| match hint {
            Hint::Worded { rule, message, fix } => Written::Words { rule, message, fix },
            facts => Written::Facts {
                facts,
                message: facts.message(),
                fix: facts.fix(),
            },
        }))
    }

    /// Reads hints with or without their words: strictly by their facts when they have them
    /// (what `diagnose.py` sends has no words), else by their words alone.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Hint>, D::Error> {
        Vec::<Map<String, Value>>::deserialize(deserializer)?
            .into_iter()
            .map(|mut fields| {
                let message = fields.remove("message");
                let fix = fields.remove("fix");
                let rule = fields.get("rule").cloned();
                match Hint::deserialize(Value::Object(fields)) {
                    Ok(hint) => Ok(hint),
                    Err(err) => match (rule, message, fix) {
                        (
                            Some(Value::String(rule)),
                            Some(Value::String(message)),
                            Some(Value::String(fix)),
                        ) => Ok(Hint::Worded { rule, message, fix }),
                        _ => Err(D::Error::custom(format!("hint: {err}"))),
                    },
                }
            })
            .collect()
    }
}
