//! The embedded CPython: starting it, loading the harness module, and calling its entry points.
//!
//! All Python lives in `src/python/harness.py`; this file only moves values across the boundary
//! and turns Python exceptions into [`ScenarioFailure`]s.

use std::ffi::CStr;
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction, PyTuple, PyType};

use crate::fork_server::Warm;
use crate::protocol::{Phase, PythonEnvironment, WorkerRequest};
use crate::sampling;
use crate::scenario::{Body, Collected, Fixtures};

/// One of the worker's Python files: its source, and the bytecode `build.rs` compiled from it.
struct EmbeddedModule {
    /// The name it is imported under.
    name: &'static CStr,
    /// The pseudo-filename its code carries (build.rs compiles it under the same one).
    file_name: &'static CStr,
    /// The source, compiled here when the bytecode does not fit this interpreter.
    source: &'static str,
    /// The interpreter's magic number and the marshalled code; empty when the build could not
    /// compile it.
    bytecode: &'static [u8],
}

const DIAGNOSE: EmbeddedModule = EmbeddedModule {
    name: c"_leakcheck_diagnose",
    file_name: c"<leakcheck diagnose>",
    source: include_str!("../python/diagnose.py"),
    bytecode: include_bytes!(concat!(env!("OUT_DIR"), "/diagnose.bytecode")),
};

const HOLDERS: EmbeddedModule = EmbeddedModule {
    name: c"_leakcheck_holders",
    file_name: c"<leakcheck holders>",
    source: include_str!("../python/holders.py"),
    bytecode: include_bytes!(concat!(env!("OUT_DIR"), "/holders.bytecode")),
};

const PYTEST_ITEM: EmbeddedModule = EmbeddedModule {
    name: c"_leakcheck_pytest",
    file_name: c"<leakcheck pytest>",
    source: include_str!("../python/pytest_item.py"),
    bytecode: include_bytes!(concat!(env!("OUT_DIR"), "/pytest_item.bytecode")),
};

const NATIVE: EmbeddedModule = EmbeddedModule {
    name: c"_leakcheck_native",
    file_name: c"<leakcheck native>",
    source: include_str!("../python/native.py"),
    bytecode: include_bytes!(concat!(env!("OUT_DIR"), "/native.bytecode")),
};

const COLLECT_PYTEST: EmbeddedModule = EmbeddedModule {
    name: c"_leakcheck_collect",
    file_name: c"<leakcheck collect>",
    source: include_str!("../python/collect_pytest.py"),
    bytecode: include_bytes!(concat!(env!("OUT_DIR"), "/collect_pytest.bytecode")),
};

const HARNESS: EmbeddedModule = EmbeddedModule {
    name: c"_leakcheck_harness",
    file_name: c"<leakcheck harness>",
    source: include_str!("../python/harness.py"),
    bytecode: include_bytes!(concat!(env!("OUT_DIR"), "/harness.bytecode")),
};

/// Depth of tracemalloc tracebacks; one frame is enough to measure totals and is the cheapest.
const TRACEMALLOC_FRAMES: u32 = 1;

/// Scenario code raised, or the scenario could not be prepared.
#[derive(Debug)]
pub struct ScenarioFailure {
    /// Where it happened.
    pub phase: Phase,
    /// Which iteration raised, for warmup and run.
    pub iteration: Option<u64>,
    /// One line: exception type and message.
    pub message: String,
    /// The Python traceback, harness frames removed.
    pub traceback: String,
    /// Whether the workload skipped itself rather than failed (a `pytest` skip or xfail).
    pub skipped: bool,
}

/// Python-level metrics of one sample: the harness's `Sample` named tuple, read by field name
/// (pyo3 interns the names, so reading them creates no string per sample; see [`Interpreter`]).
#[derive(FromPyObject)]
pub struct PythonSample {
    /// Bytes tracemalloc traces (0 outside a traced window).
    pub traced_bytes: f64,
    /// Objects the collector tracks.
    pub gc_objects: f64,
    /// `sys.getallocatedblocks()`.
    pub allocated_blocks: f64,
    /// Bytes tracemalloc itself holds in the C allocator (0 when it is off).
    pub tracemalloc_overhead: f64,
}

/// A running interpreter with the harness loaded and the scenario prepared.
///
/// The entry points are looked up once and kept. Looking them up by name on every call would
/// create a fresh name string each time, and CPython 3.11's type attribute cache keeps a
/// reference to each such string in a slot chosen by its address: the harness itself would then
/// "leak" about one 55-byte string per sample until the cache's 4096 slots fill.
pub struct Interpreter {
    harness: Py<PyModule>,
    entry_run_setup: Py<PyAny>,
    entry_run_chunk: Py<PyAny>,
    entry_run_teardown: Py<PyAny>,
    entry_sample: Py<PyAny>,
}

/// Tells CPython, before it starts, that it is the interpreter leakcheck was built against.
///
/// Embedded, CPython finds its prefix (and so its standard library) from the program name;
/// leakcheck's own name has no slash, so it would search `PATH` for `python3`, and a virtual
/// environment first on `PATH` (of another Python build, say) would supply a standard library
/// that does not match the linked libpython. Environments are chosen with `--python` and
/// `VIRTUAL_ENV` instead: a venv of this very installation becomes the program (CPython then
/// finds its `pyvenv.cfg` and sets the venv up as running it would); any other environment's
/// site-packages are swapped in by the harness's `prepare`.
fn pin_program_name(environment: Option<&PythonEnvironment>) {
    let program = match environment {
        Some(env) if env.native => env.executable.as_os_str().as_encoded_bytes().to_vec(),
        _ => env!("LEAKCHECK_BUILD_PYTHON").as_bytes().to_vec(),
    };
    let Ok(path) = std::ffi::CString::new(program) else {
        return;
    };
    // SAFETY: called before the interpreter starts, from the only thread that touches Python;
    // the decoded string is deliberately never freed, as CPython keeps the pointer.
    unsafe {
        let wide = pyo3::ffi::Py_DecodeLocale(path.as_ptr(), std::ptr::null_mut());
        if !wide.is_null() {
            #[allow(deprecated)]
            pyo3::ffi::Py_SetProgramName(wide);
        }
    }
}

/// A started CPython with the harness loaded, not yet given a scenario: what a fork server
/// keeps, and what each of its children prepares its own scenario in.
pub struct Booted {
    harness: Py<PyModule>,
}

impl Booted {
    /// Starts CPython as `environment`'s interpreter and loads the harness.
    pub fn start(environment: Option<&PythonEnvironment>) -> Result<Booted, ScenarioFailure> {
        pin_program_name(environment);
        Python::initialize();
        Python::attach(|py| {
            let harness =
                load_harness(py).map_err(|err| describe(py, err, Phase::Prepare, None))?;
            Ok(Booted {
                harness: harness.unbind(),
            })
        })
    }

    /// Another handle on the same interpreter.
    pub fn clone_ref(&self) -> Booted {
        Python::attach(|py| Booted {
            harness: self.harness.clone_ref(py),
        })
    }

    /// Prepares a fork server's heap: collects the run's pytest selections once and keeps their
    /// sessions for the workers to adopt, then freezes the heap (see the harness's `warm`);
    /// returns how many selections collected. Never fails: a test that is not in a kept session
    /// is collected again, and reported, by its own worker.
    pub fn warm(&self, selections: &[Warm]) -> usize {
        Python::attach(|py| {
            let selections: Vec<(Vec<String>, String)> = selections
                .iter()
                .map(|warm| (warm.args.clone(), warm.rootdir.display().to_string()))
                .collect();
            self.harness
                .bind(py)
                .call_method1("warm", (selections,))
                .and_then(|done| done.extract::<usize>())
                .unwrap_or(0)
        })
    }

    /// Collects the pytest selection `args` in `dir` as `pytest --collect-only` would, writing
    /// what it found to `output` (see `src/python/collect_pytest.py`); the imports stay.
    pub fn collect_pytest(&self, output: &Path, args: &[String], dir: &Path) -> Result<(), String> {
        Python::attach(|py| {
            self.harness
                .bind(py)
                .call_method1(
                    "collect_pytest",
                    (
                        output.display().to_string(),
                        args.to_vec(),
                        dir.display().to_string(),
                    ),
                )
                .map(|_| ())
                .map_err(|err| err.to_string())
        })
    }

    /// Forks this process (`os.fork()`, so CPython's own before- and after-fork work is done):
    /// the child's pid in the parent, 0 in the child.
    pub fn fork(&self) -> Result<u32, String> {
        Python::attach(|py| {
            py.import("os")
                .and_then(|os| os.call_method0("fork"))
                .and_then(|pid| pid.extract::<u32>())
                .map_err(|err| err.to_string())
        })
    }

    /// Sets an environment variable the way scenario code sees it (`os.environ`, which
    /// subprocesses inherit), not only in the C environment CPython copied at start-up.
    pub fn set_env(&self, name: &str, value: &str) -> Result<(), String> {
        Python::attach(|py| {
            py.import("os")
                .and_then(|os| os.getattr("environ"))
                .and_then(|environ| environ.set_item(name, value))
                .map_err(|err| err.to_string())
        })
    }

    /// Prepares the scenario (paths, code, tracemalloc) in this interpreter.
    pub fn prepare(self, request: &WorkerRequest) -> Result<Interpreter, ScenarioFailure> {
        Python::attach(|py| {
            let harness = self.harness.bind(py);
            let spec =
                build_spec(py, request).map_err(|err| describe(py, err, Phase::Prepare, None))?;
            harness
                .call_method1("prepare", (spec,))
                .map_err(|err| describe_with(py, harness, err, Phase::Prepare, None))?;
            let entry = |name: &str| {
                harness
                    .getattr(name)
                    .map(Bound::unbind)
                    .map_err(|err| describe(py, err, Phase::Prepare, None))
            };
            Ok(Interpreter {
                entry_run_setup: entry("run_setup")?,
                entry_run_chunk: entry("run_chunk")?,
                entry_run_teardown: entry("run_teardown")?,
                entry_sample: entry("sample")?,
                harness: self.harness.clone_ref(py),
            })
        })
    }
}

impl Interpreter {
    /// Starts CPython, loads the harness and prepares the scenario (paths, code, tracemalloc).
    pub fn start(request: &WorkerRequest) -> Result<Interpreter, ScenarioFailure> {
        Booted::start(request.environment.as_ref())?.prepare(request)
    }

    /// `sys.version` of the embedded interpreter.
    pub fn python_version(&self) -> String {
        Python::attach(|py| {
            py.import("sys")
                .and_then(|sys| sys.getattr("version"))
                .and_then(|v| v.extract::<String>())
                .unwrap_or_else(|_| "unknown".to_string())
        })
    }

    /// Runs the scenario's `setup`.
    pub fn run_setup(&self) -> Result<(), ScenarioFailure> {
        self.call(Phase::Setup, &self.entry_run_setup, None)
    }

    /// Runs iterations `start..stop`.
    pub fn run_chunk(&self, phase: Phase, start: u64, stop: u64) -> Result<(), ScenarioFailure> {
        self.call(phase, &self.entry_run_chunk, Some((start, stop)))
    }

    /// Runs the scenario's `teardown`.
    pub fn run_teardown(&self) -> Result<(), ScenarioFailure> {
        self.call(Phase::Teardown, &self.entry_run_teardown, None)
    }

    /// Collects garbage and reads tracemalloc, gc and allocator figures.
    pub fn sample(&self) -> Result<PythonSample, ScenarioFailure> {
        Python::attach(|py| {
            let harness = self.harness.bind(py);
            self.entry_sample
                .bind(py)
                .call0()
                .and_then(|v| v.extract::<PythonSample>())
                .map_err(|err| describe_with(py, harness, err, Phase::Measure, None))
        })
    }

    /// Starts tracemalloc with one-frame tracebacks for the traced window.
    pub fn trace_begin(&self) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Measure, "trace_begin", |py| Ok(PyTuple::empty(py)))
            .map(|_| ())
    }

    /// Ends the traced window (tracemalloc stays on for a scenario traced throughout).
    pub fn trace_end(&self) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Measure, "trace_end", |py| Ok(PyTuple::empty(py)))
            .map(|_| ())
    }

    /// Probes who holds what survived since setup (`holders.py`); returns its JSON.
    pub fn probe_holders(&self) -> Result<String, ScenarioFailure> {
        self.call_harness(Phase::Measure, "probe_holders", |py| Ok(PyTuple::empty(py)))
    }

    /// The sizes of the holders the last probe found, as a JSON list (`null` for one without a
    /// length).
    pub fn holder_sizes(&self) -> Result<String, ScenarioFailure> {
        self.call_harness(Phase::Measure, "holder_sizes", |py| Ok(PyTuple::empty(py)))
    }

    /// Keeps only the holders at `indices` (in the last probe's order) for later size readings;
    /// returns, as a JSON list in the same order, the bound read now for each kept module
    /// global container (`null` for the others): the probe leaves those to this call.
    pub fn keep_holders(&self, indices: &[usize]) -> Result<String, ScenarioFailure> {
        let json = serde_json::to_string(indices).expect("indices serialize");
        self.call_harness(Phase::Measure, "keep_holders", |py| {
            (json,).into_pyobject(py)
        })
    }

    /// Tells the harness the holders are full: what setup made and the holders evicted is
    /// collected, and the heap frozen again but for what the scenario made since setup.
    pub fn holders_full(&self) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Measure, "holders_full", |py| Ok(PyTuple::empty(py)))
            .map(|_| ())
    }

    /// After the window judged past saturation: how many unreachable objects a collection of
    /// the whole heap found (frozen entries the holders evicted; the heap then stays unfrozen).
    pub fn holders_settled(&self) -> Result<u64, ScenarioFailure> {
        let found = self.call_harness(Phase::Measure, "holders_settled", |py| {
            Ok(PyTuple::empty(py))
        })?;
        Ok(found.parse().unwrap_or(0))
    }

    /// Restarts tracemalloc with `frames`-deep tracebacks for the diagnosis window.
    pub fn diagnose_begin(&self, frames: u32) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "diagnose_begin", |py| {
            (frames,).into_pyobject(py)
        })
        .map(|_| ())
    }

    /// Takes checkpoint A of the diagnosis window.
    pub fn diagnose_checkpoint(&self) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "diagnose_checkpoint", |py| {
            Ok(PyTuple::empty(py))
        })
        .map(|_| ())
    }

    /// Takes checkpoint B and returns the diagnosis as JSON.
    pub fn diagnose_finish(
        &self,
        iterations: u64,
        chain_seconds: f64,
    ) -> Result<String, ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "diagnose_finish", |py| {
            (iterations, chain_seconds).into_pyobject(py)
        })
    }

    /// memray's version when the scenario's environment can import it, else an empty string.
    pub fn native_version(&self) -> Result<String, ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "native_version", |py| {
            Ok(PyTuple::empty(py))
        })
    }

    /// Starts native window `index` (0 or 1) under `tracer` (`"memray"`, writing its records
    /// into `folder`, or `"recorder"`: see `malloc_recorder.rs`).
    pub fn native_begin(
        &self,
        folder: &str,
        index: u32,
        tracer: &str,
    ) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "native_begin", |py| {
            (folder, index, tracer).into_pyobject(py)
        })
        .map(|_| ())
    }

    /// Ends the current native window.
    pub fn native_end(&self) -> Result<(), ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "native_end", |py| Ok(PyTuple::empty(py)))
            .map(|_| ())
    }

    /// Reads both native windows (`short` and `long` iterations); returns their sites as JSON.
    pub fn native_finish(&self, short: u64, long: u64) -> Result<String, ScenarioFailure> {
        self.call_harness(Phase::Diagnose, "native_finish", |py| {
            (short, long).into_pyobject(py)
        })
    }

    /// Calls a rarely used harness function by name (not in the iteration loop); errors are
    /// reported in `phase`.
    fn call_harness(
        &self,
        phase: Phase,
        name: &str,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
    ) -> Result<String, ScenarioFailure> {
        Python::attach(|py| {
            let harness = self.harness.bind(py);
            harness
                .getattr(name)
                .and_then(|f| f.call1(args(py)?))
                .and_then(|v| {
                    if v.is_none() {
                        Ok(String::new())
                    } else {
                        v.extract::<String>()
                    }
                })
                .map_err(|err| describe_with(py, harness, err, phase, None))
        })
    }

    /// Calls a harness entry point, with an iteration range for `run_chunk`.
    fn call(
        &self,
        phase: Phase,
        entry: &Py<PyAny>,
        range: Option<(u64, u64)>,
    ) -> Result<(), ScenarioFailure> {
        Python::attach(|py| {
            let harness = self.harness.bind(py);
            let entry = entry.bind(py);
            let result = match range {
                Some(range) => entry.call1(range),
                None => entry.call0(),
            };
            result.map(|_| ()).map_err(|err| {
                let iteration = harness
                    .getattr("failed_iteration")
                    .and_then(|v| v.extract::<Option<u64>>())
                    .ok()
                    .flatten();
                describe_with(py, harness, err, phase, iteration)
            })
        })
    }
}

/// Loads `diagnose.py`, `holders.py`, `pytest_item.py` and `native.py`, then `harness.py`
/// (which imports them), before tracemalloc starts.
fn load_harness(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    load_module(py, &DIAGNOSE)?;
    load_module(py, &HOLDERS)?;
    load_module(py, &PYTEST_ITEM)?;
    load_module(py, &NATIVE)?;
    load_module(py, &COLLECT_PYTEST)?;
    load_module(py, &HARNESS)
}

/// Runs an embedded module's code as a module registered in `sys.modules`, as
/// [`PyModule::from_code`] does, from its precompiled bytecode when it fits this interpreter.
fn load_module<'py>(py: Python<'py>, module: &EmbeddedModule) -> PyResult<Bound<'py, PyModule>> {
    let code = match precompiled(py, module.bytecode)? {
        Some(code) => code,
        None => {
            let compile = py.import("builtins")?.getattr("compile")?;
            compile.call1((module.source, module.file_name, "exec"))?
        }
    };
    // SAFETY: the GIL is held, both strings are NUL-terminated and `code` is a live code object.
    let loaded = unsafe {
        pyo3::ffi::PyImport_ExecCodeModuleEx(
            module.name.as_ptr(),
            code.as_ptr(),
            module.file_name.as_ptr(),
        )
    };
    // SAFETY: `loaded` is a new reference to the module, or NULL with an exception set.
    let loaded = unsafe { Bound::from_owned_ptr_or_err(py, loaded) }?;
    Ok(loaded.cast_into::<PyModule>()?)
}

/// The code object in `bytecode` (magic number + marshalled code), or `None` when there is none
/// or it was compiled by an interpreter of another bytecode version.
fn precompiled<'py>(py: Python<'py>, bytecode: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some((magic, code)) = bytecode.split_first_chunk::<4>() else {
        return Ok(None);
    };
    // SAFETY: reads a constant of the initialised interpreter; the GIL is held.
    let expected = unsafe { pyo3::ffi::PyImport_GetMagicNumber() };
    if u32::try_from(expected) != Ok(u32::from_le_bytes(*magic)) {
        return Ok(None);
    }
    let loads = py.import("marshal")?.getattr("loads")?;
    loads.call1((PyBytes::new(py, code),)).map(Some)
}

/// What the harness's `prepare` is given, converted into a dict with one key a field (pyo3's
/// derive) and read there as its `Spec` named tuple, whose field names are these: a field
/// added, renamed or dropped on one side only fails every scenario's `prepare` at once, naming
/// it, rather than reading as a silent `None`.
#[derive(IntoPyObject)]
struct PrepareSpec<'py> {
    /// The scenario's name, for its code's pseudo-filenames.
    name: String,
    /// The scenario file: `sys.argv[0]` and the pseudo-filenames.
    file: String,
    /// The `setup`, `run` and `teardown` code (`None` when absent).
    setup: Option<String>,
    run: Option<String>,
    teardown: Option<String>,
    /// The file's line where each of them starts.
    lines: Lines,
    /// A `call` target, `package.module:attr`.
    call: Option<String>,
    /// Whether the call target is given the iteration number.
    call_with_iteration: bool,
    /// A `pytest` workload, else `None`.
    pytest: Option<PytestSpec>,
    /// The scenario's `params`, each value as JSON.
    params: Vec<(String, String)>,
    /// Folders put in front of `sys.path`.
    python_path: Vec<String>,
    /// Another environment's site-packages, replacing the embedded interpreter's own; `None`
    /// to keep them.
    site_packages: Option<Vec<String>>,
    /// The Python that subprocesses should use (`sys.executable`).
    executable: String,
    /// Depth of tracemalloc's tracebacks outside the diagnosis.
    frames: u32,
    /// Whether tracemalloc runs throughout (the scenario gates on it).
    trace: bool,
    /// The watchdog's hooks (see `guard.rs`).
    iteration_started: Bound<'py, PyCFunction>,
    iterations_paused: Bound<'py, PyCFunction>,
    /// The diagnosis census's identity set and its count at checkpoint A (see `census.rs`).
    identities: Bound<'py, PyType>,
    count_types: Bound<'py, PyCFunction>,
    /// `gc.freeze()` but for the objects made since setup (see `freeze.rs`), for the holder
    /// probe.
    freeze_all_but: Bound<'py, PyCFunction>,
    /// `gc.get_referrers` from one walk of the heap, for the chain search (see `referrers.rs`).
    referrers: Bound<'py, PyType>,
    /// The native window's malloc recorder (see `malloc_recorder.rs`).
    recorder_start: Bound<'py, PyCFunction>,
    recorder_stop: Bound<'py, PyCFunction>,
    /// Seed of Python's `random`.
    seed: u64,
}

/// The scenario file's line where each code block starts, when it has one.
#[derive(IntoPyObject)]
struct Lines {
    setup: Option<usize>,
    run: Option<usize>,
    teardown: Option<usize>,
}

/// A `pytest` workload: `args` (the test's node id under its rootdir), `node_id`, `rootdir`
/// and `fixtures` (`iteration` or `scenario`).
#[derive(IntoPyObject)]
struct PytestSpec {
    args: Vec<String>,
    node_id: String,
    rootdir: String,
    fixtures: &'static str,
}

fn build_spec<'py>(py: Python<'py>, request: &WorkerRequest) -> PyResult<PrepareSpec<'py>> {
    let scenario = &request.scenario;
    let (run, call) = match &scenario.body {
        Body::Run(code) => (Some(code.clone()), None),
        Body::Call(target) => (None, Some(target.clone())),
        Body::Pytest(_) => (None, None),
    };
    let (site_packages, executable) = match &request.environment {
        Some(env) if env.native => (None, env.executable.display().to_string()),
        Some(env) => (
            Some(
                env.site_packages
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            ),
            env.executable.display().to_string(),
        ),
        None => (None, env!("LEAKCHECK_BUILD_PYTHON").to_string()),
    };
    Ok(PrepareSpec {
        name: scenario.name.clone(),
        file: scenario.file.display().to_string(),
        setup: scenario.setup.clone(),
        run,
        teardown: scenario.teardown.clone(),
        lines: Lines {
            setup: scenario.code_lines.setup,
            run: scenario.code_lines.run,
            teardown: scenario.code_lines.teardown,
        },
        call,
        call_with_iteration: scenario.call_with_iteration,
        pytest: pytest_spec(&scenario.body)?,
        params: scenario
            .params
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect(),
        python_path: scenario
            .python_path
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        site_packages,
        executable,
        frames: TRACEMALLOC_FRAMES,
        trace: sampling::traced_throughout(&scenario.gate),
        iteration_started: wrap_pyfunction!(super::guard::iteration_started, py)?,
        iterations_paused: wrap_pyfunction!(super::guard::iterations_paused, py)?,
        identities: py.get_type::<super::census::Identities>(),
        count_types: wrap_pyfunction!(super::census::count_types, py)?,
        freeze_all_but: wrap_pyfunction!(super::freeze::freeze_all_but, py)?,
        referrers: py.get_type::<super::referrers::Referrers>(),
        recorder_start: wrap_pyfunction!(super::malloc_recorder::recorder_start, py)?,
        recorder_stop: wrap_pyfunction!(super::malloc_recorder::recorder_stop, py)?,
        seed: request.options.seed,
    })
}

/// A `pytest` workload as the harness's `prepare` reads it; `None` for other workloads.
fn pytest_spec(body: &Body) -> PyResult<Option<PytestSpec>> {
    let Body::Pytest(test) = body else {
        return Ok(None);
    };
    let Collected::Test(collected) = &test.collected else {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "the pytest selection `{}` was not collected before the worker started",
            test.selection
        )));
    };
    let rootdir = collected.rootdir.display().to_string();
    Ok(Some(PytestSpec {
        args: vec![format!("{rootdir}/{}", collected.node_id)],
        node_id: collected.node_id.clone(),
        rootdir,
        fixtures: match test.fixtures {
            Fixtures::Iteration => "iteration",
            Fixtures::Scenario => "scenario",
        },
    }))
}

/// Describes an error raised before the harness could format it.
fn describe(py: Python<'_>, err: PyErr, phase: Phase, iteration: Option<u64>) -> ScenarioFailure {
    let traceback = err
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    ScenarioFailure {
        phase,
        iteration,
        message: err.to_string(),
        traceback: format!("{traceback}{err}"),
        skipped: false,
    }
}

/// Describes a scenario exception with the harness's `describe`, which drops harness frames.
fn describe_with(
    py: Python<'_>,
    harness: &Bound<'_, PyModule>,
    err: PyErr,
    phase: Phase,
    iteration: Option<u64>,
) -> ScenarioFailure {
    let value = err.clone_ref(py).into_value(py);
    match harness
        .call_method1("describe", (value,))
        .and_then(|v| v.extract::<(String, String, bool)>())
    {
        Ok((message, traceback, skipped)) => ScenarioFailure {
            phase,
            iteration,
            message,
            traceback,
            skipped,
        },
        Err(_) => describe(py, err, phase, iteration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_loads_from_bytecode_the_build_compiled_for_this_interpreter() {
        Python::initialize();
        Python::attach(|py| {
            for module in [&DIAGNOSE, &HARNESS] {
                let code = precompiled(py, module.bytecode).expect("bytecode unmarshals");
                let code = code.unwrap_or_else(|| panic!("{:?} not precompiled", module.file_name));
                // build.rs must compile it under the name the module gets here, which the
                // harness compares with its frames' file names.
                let file_name: String = code.getattr("co_filename").unwrap().extract().unwrap();
                assert_eq!(file_name, module.file_name.to_str().unwrap());
            }
            let harness = load_harness(py).expect("the harness loads");
            assert!(harness.hasattr("prepare").expect("hasattr"));
        });
    }

    #[test]
    fn without_fitting_bytecode_a_module_is_compiled_from_its_source() {
        Python::initialize();
        Python::attach(|py| {
            const OTHER_MAGIC: &[u8] = &[0, 0, 0, 0, 0xe3];
            for bytecode in [&[][..], OTHER_MAGIC] {
                let module = EmbeddedModule {
                    name: c"_leakcheck_test_fallback",
                    file_name: c"<leakcheck test>",
                    source: "VALUE = 6 * 7\n",
                    bytecode,
                };
                let loaded = load_module(py, &module).expect("compiled from source");
                let value: i64 = loaded.getattr("VALUE").unwrap().extract().unwrap();
                assert_eq!(value, 42);
            }
        });
    }
}
