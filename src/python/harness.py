"""The Python half of a leakcheck worker.

The Rust worker loads this file as the module ``_leakcheck_harness`` inside the embedded
interpreter and calls a few entry points: ``prepare`` once, ``run_setup``, ``run_chunk`` for a
block of iterations between two samples, ``sample``, ``run_teardown`` and ``describe`` for an
exception. The per-iteration loop lives in ``run_chunk`` so that crossing from Rust into Python
happens once per sample, not once per iteration.

Everything here is created before ``tracemalloc`` starts, and nothing here keeps state that grows
with the iteration count, so the harness's own memory never shows up as growth.

Scenario code runs in this same interpreter and may, by accident or not, change the instruments:
stop tracemalloc, disable the collector, replace ``gc.collect``. The harness keeps its own
references to everything it measures with, taken before any scenario code runs, and checks the
instruments at every sample; a change ends the scenario with ``MeasurementTampered`` (verdict
``error``) rather than a verdict drawn from figures that mean something else.
"""

import builtins
import faulthandler
import gc
import _ast
import _symtable
import _leakcheck_diagnose as _diagnose
import _leakcheck_holders as _holders
import _leakcheck_pytest as _pytest_item
import _leakcheck_native as _native
import _leakcheck_collect as _collect
import json
import linecache
import os
import random
import site
import sys
import tracemalloc
import traceback
from collections import namedtuple

_HARNESS_FILE = __file__ if "__file__" in globals() else "_leakcheck_harness"
_diagnose.OWN_FILES.update(
    (
        _HARNESS_FILE,
        _diagnose.__file__,
        _holders.__file__,
        _pytest_item.__file__,
        _native.__file__,
        _collect.__file__,
    )
)
_native.OWN_FILES = _diagnose.OWN_FILES

# Private references to what the loop and the samples use, so that scenario code replacing
# ``builtins.exec`` or ``gc.collect`` changes nothing here (and is reported, see _check).
_exec = builtins.exec
_range = builtins.range
_len = builtins.len
_gc_collect = gc.collect
_gc_isenabled = gc.isenabled
_gc_get_objects = gc.get_objects
_tm_is_tracing = tracemalloc.is_tracing
_tm_get_traced_memory = tracemalloc.get_traced_memory
_tm_get_tracemalloc_memory = tracemalloc.get_tracemalloc_memory
_tm_get_object_traceback = tracemalloc.get_object_traceback
_getallocatedblocks = sys.getallocatedblocks
_clear_lookup_cache = _diagnose.clear_lookup_cache
# (module, attribute, the original): replaced attributes mean scenario code patched them.
_INSTRUMENTS = (
    (gc, "collect", _gc_collect),
    (gc, "isenabled", _gc_isenabled),
    (gc, "get_objects", _gc_get_objects),
    (tracemalloc, "is_tracing", _tm_is_tracing),
    (tracemalloc, "get_traced_memory", _tm_get_traced_memory),
    (sys, "getallocatedblocks", _getallocatedblocks),
    (builtins, "exec", _exec),
)
_MODULES = (("gc", gc), ("tracemalloc", tracemalloc))


class MeasurementTampered(Exception):
    """Scenario code changed what leakcheck measures with; its samples cannot be trusted."""


# An object allocated right after tracemalloc starts: if its trace is gone, tracemalloc was
# restarted or its traces cleared, and traced bytes are no longer comparable between samples.
_sentinel = None
# Whether tracemalloc should be on now: from ``prepare`` when the scenario gates on it
# (``_traced_throughout``), else only between ``trace_begin`` and ``trace_end``.
_tracing = False
_traced_throughout = False
# Depth of tracemalloc's tracebacks outside the diagnosis (``spec["frames"]``).
_frames = 1
# Iterations completed when the last chunk ended (None: only setup has run), for messages.
_last_done = None
# Watchdog hooks from the Rust worker (see src/worker/guard.rs), set by ``prepare``.
_iteration_started = None
_iterations_paused = None

# The scenario's namespace and its compiled code, set by ``prepare``.
_ns = None
_setup = None
_run = None
_call = None
_teardown = None
# A ``pytest`` workload: its arguments, node id, rootdir and fixtures mode (see
# ``_leakcheck_pytest``), or None.
_pytest = None
# ``_run`` compiled as one function holding the whole loop (see ``_loop_function``), or None
# when the run code needs the exec path.
_loop = None
# The iteration that raised, so the runner can say which one failed.
failed_iteration = None


def _at_line(source, first_line):
    """``source`` moved down to start on line ``first_line`` (the scenario file's line where it
    is written), so tracebacks and allocation sites give the file's own line numbers."""
    if source and first_line and first_line > 1:
        return "\n" * (first_line - 1) + source
    return source


def _compile(source, filename):
    """Compile scenario code under a readable pseudo-filename and register its source with
    linecache, so tracebacks show the scenario's own lines."""
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    return compile(source, filename, "exec")


# Names whose use means the run code looks at its own scope (locals(), a frame's f_locals, exec
# or eval without a namespace): only the exec path keeps that scope the scenario's namespace.
_INTROSPECTING = {"locals", "vars", "dir", "exec", "eval", "_getframe", "currentframe", "f_locals"}
# The loop function's own names: never the scenario's.
_LOOP_ITERATIONS = "__leakcheck_iterations"
_LOOP_STARTED = "__leakcheck_started"
_LOOP_I = "__leakcheck_i"


def _loop_function(source, filename):
    """Compile the run code into one function that runs a whole chunk of iterations, or return
    None when the code needs the exec path.

    ``exec(code, ns)`` per iteration costs ~100 ns (a new frame, name lookups through dicts):
    3 % of an allocation-heavy 3 µs iteration. The function built here is, in effect::

        def <module>(__leakcheck_iterations, __leakcheck_started):
            global i, <every name the run code binds or reads at top level>
            for __leakcheck_i in __leakcheck_iterations:
                __leakcheck_started(__leakcheck_i)
                i = __leakcheck_i
                <the run code, its own line numbers>

    with the scenario's namespace as its globals, so every name means what it means under
    ``exec`` (the symbol table lists them, walrus targets in comprehensions included) and
    tracebacks and allocation sites show the same file, lines and ``<module>``. The loop's own
    statements sit on one extra line after the run code, which linecache shows as the loop.
    Code that inspects its own scope (``locals()``, frames, ``exec`` or ``eval``) or that Python
    refuses inside a function (``from m import *``, annotated top-level names) keeps the exec
    path.
    """
    try:
        names = set(_symtable.symtable(source, filename, "exec").symbols)
        if names & _INTROSPECTING or any(n.startswith("__leakcheck") for n in names):
            return None
        names.add("i")
        tree = compile(source, filename, "exec", _ast.PyCF_ONLY_AST)
        # The loop's own lines come after the run code's, with a line of text of their own, so
        # an allocation site "the iteration number" (code keeping `i`) is not shown as the run
        # code's first line.
        lines = linecache.cache[filename][2]
        line = len(lines) + 1
        at = {"lineno": line, "col_offset": 0, "end_lineno": line, "end_col_offset": 0}

        def name(id, ctx):
            return _ast.Name(id=id, ctx=ctx(), **at)

        loop = _ast.For(
            target=name(_LOOP_I, _ast.Store),
            iter=name(_LOOP_ITERATIONS, _ast.Load),
            body=[
                _ast.Expr(
                    value=_ast.Call(
                        func=name(_LOOP_STARTED, _ast.Load),
                        args=[name(_LOOP_I, _ast.Load)],
                        keywords=[],
                        **at,
                    ),
                    **at,
                ),
                _ast.Assign(targets=[name("i", _ast.Store)], value=name(_LOOP_I, _ast.Load), **at),
                *tree.body,
            ],
            orelse=[],
            **at,
        )
        arguments = _ast.arguments(
            posonlyargs=[],
            args=[_ast.arg(arg=_LOOP_ITERATIONS, **at), _ast.arg(arg=_LOOP_STARTED, **at)],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        )
        fields = {}
        if "type_params" in _ast.FunctionDef._fields:  # Python 3.12+
            fields["type_params"] = []
        function = _ast.FunctionDef(
            name="<module>",
            args=arguments,
            body=[_ast.Global(names=sorted(names), **at), loop],
            decorator_list=[],
            **fields,
            **at,
        )
        module = compile(_ast.Module(body=[function], type_ignores=[]), filename, "exec")
    except SyntaxError:
        return None
    lines.append("for i in range(...):  # leakcheck's loop, which makes each iteration's `i`\n")
    code = next(c for c in module.co_consts if isinstance(c, type(module)))
    return type(_loop_function)(code, _ns)


def _resolve_call(target, with_iteration):
    """Import ``package.module:attr.path`` and return a one-argument function calling it once:
    ``f(i)`` with ``call_with_iteration``, else ``f()``; an ``async def`` is awaited on one event
    loop kept for the whole scenario (so loop-level state persists as in a real service)."""
    import importlib, inspect  # loaded by ``prepare`` before the scenario's paths were added

    module_name, _, attr_path = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"call target {target!r} is not callable (it is {type(obj).__name__})")
    func = obj
    if inspect.iscoroutinefunction(func):
        run = _stdlib_import("asyncio").new_event_loop().run_until_complete
        if with_iteration:
            return lambda i: run(func(i))
        return lambda i: run(func())
    if with_iteration:
        return func
    return lambda i: func()


# The folders ``prepare`` put in front of ``sys.path`` for the scenario's own modules.
_scenario_paths = ()


def _stdlib_import(name):
    """Import a standard-library module the harness needs after the scenario's folders are on
    ``sys.path``, with those folders left out: a scenario's ``queue.py`` or ``select.py`` must
    not break the harness's own imports (asyncio imports a dozen modules)."""
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if p not in _scenario_paths]
    try:
        return __import__(name)
    finally:
        sys.path[:] = saved


# What ``prepare`` is given: the Rust worker's ``PrepareSpec`` (src/worker/interpreter.rs), whose
# fields these are, one for one (a name on one side only fails every ``prepare`` with a
# TypeError naming it). name, file; setup, run, teardown (code or None) and lines (the file's
# line where each starts, or None); call (a target or None), call_with_iteration; pytest (args,
# node_id, rootdir, fixtures, or None); params ((name, JSON value) pairs); python_path;
# site_packages (None, or the folders that replace our own site-packages); executable (the
# Python subprocesses should use); frames (tracemalloc depth); trace (tracemalloc on now and
# throughout: the scenario gates on it); the watchdog's iteration_started and
# iterations_paused; identities and count_types (the diagnosis census's identity set and its
# count at checkpoint A, see ``_leakcheck_diagnose.Identities``); freeze_all_but (the holder
# probe's ``gc.freeze()`` that leaves the objects made since setup collectable); referrers (the
# chain search's index of referrers, ``_leakcheck_diagnose.Referrers``); recorder_start and
# recorder_stop (the native window's malloc recorder, see ``_leakcheck_native``); seed (for ``random``,
# so "random" scenario data is the same on every rerun).
Spec = namedtuple(
    "Spec",
    "name file setup run teardown lines call call_with_iteration pytest params python_path "
    "site_packages executable frames trace iteration_started iterations_paused identities "
    "count_types freeze_all_but referrers recorder_start recorder_stop seed",
)
Lines = namedtuple("Lines", "setup run teardown")
Pytest = namedtuple("Pytest", "args node_id rootdir fixtures")
# One sample's Python-level figures, read by name by the worker's ``PythonSample``.
Sample = namedtuple("Sample", "traced_bytes gc_objects allocated_blocks tracemalloc_overhead")


def prepare(fields):
    """Set up ``sys.path``, compile the scenario and start tracemalloc; ``fields`` are a
    ``Spec``'s, as a dict."""
    global _ns, _setup, _run, _call, _teardown, _loop, _iteration_started, _iterations_paused
    global _traced_throughout, _frames, _scenario_paths, _pytest
    spec = Spec(**fields)
    lines = Lines(**spec.lines)
    _iteration_started = spec.iteration_started
    _iterations_paused = spec.iterations_paused
    _diagnose.Identities = spec.identities
    _diagnose.count_types = spec.count_types
    _holders.freeze_all_but = spec.freeze_all_but
    _diagnose.Referrers = spec.referrers
    _native.recorder_start = spec.recorder_start
    _native.recorder_stop = spec.recorder_stop
    # On a fatal signal (segfault, abort) print the Python stack of every thread to stderr,
    # which the runner keeps and shows with the crash.
    faulthandler.enable()
    if spec.call:
        # Only a `call` target needs these (inspect alone is ~4 ms of every worker's start);
        # imported here, before the scenario's paths are added, like every other harness import.
        import importlib, inspect  # noqa: F401
    if spec.site_packages is not None:
        own = set(site.getsitepackages())
        own.add(site.getusersitepackages())
        sys.path[:] = [p for p in sys.path if p not in own]
        for folder in spec.site_packages:
            site.addsitedir(folder)
    _scenario_paths = tuple(spec.python_path)
    sys.path[0:0] = _scenario_paths
    sys.executable = spec.executable
    sys.argv = [spec.file]

    label = f"{spec.file} [{spec.name}]"
    setup = _at_line(spec.setup, lines.setup)
    run = _at_line(spec.run, lines.run)
    teardown = _at_line(spec.teardown, lines.teardown)
    _setup = _compile(setup, f"<{label} setup>") if setup else None
    _run = _compile(run, f"<{label} run>") if run else None
    _teardown = _compile(teardown, f"<{label} teardown>") if teardown else None
    _ns = {"__name__": "__scenario__", "__builtins__": builtins, "i": 0}
    for key, value in spec.params:
        _ns[key] = json.loads(value)
    _loop = _loop_function(run, f"<{label} run>") if run else None

    random.seed(spec.seed)
    _traced_throughout = spec.trace
    _frames = spec.frames
    if _traced_throughout:
        trace_begin()
    if spec.call:
        _call = _resolve_call(spec.call, spec.call_with_iteration)
    _pytest = Pytest(**spec.pytest) if spec.pytest is not None else None


def run_setup():
    """Run the scenario's ``setup`` code once in its namespace, then freeze what exists.

    ``gc.freeze()`` moves every object alive after setup (the interpreter, imported modules,
    the scenario's fixtures) out of the collector's reach, so the full collection before each
    sample only walks objects made since: on a heap of a million objects a sample drops from
    ~44 ms to a few. Frozen objects stay alive and keep their memory; the diagnosis unfreezes
    them before it needs the whole heap.
    """
    global _call
    if _setup is not None:
        _exec(_setup, _ns)
    if _pytest is not None:
        # Collection imports the test module and its conftests: setup, before the heap freezes.
        _pytest_item.start(_pytest.args, _pytest.node_id, _pytest.rootdir, _pytest.fixtures)
        _call = _pytest_item.iterate
    _gc_collect()
    gc.freeze()


def run_chunk(start, stop):
    """Run iterations ``start`` to ``stop - 1``: the hottest loop of the product.

    ``run`` code goes through its loop function when it has one (``_loop_function``), else
    through ``exec`` per iteration; a ``call`` target is called directly. ``started(i)`` tells
    the watchdog which iteration runs (one atomic store in Rust, ~40 ns)."""
    global failed_iteration, _last_done
    i = start
    started = _iteration_started
    try:
        if _loop is not None:
            _loop(_range(start, stop), started)
        elif _run is not None:
            ns = _ns
            code = _run
            run = _exec
            for i in _range(start, stop):
                started(i)
                ns["i"] = i
                run(code, ns)
        else:
            func = _call
            for i in _range(start, stop):
                started(i)
                func(i)
    except BaseException as exc:
        failed_iteration = i if _loop is None else _loop_iteration(exc.__traceback__, start)
        raise
    finally:
        _iterations_paused()
    _last_done = stop


def _loop_iteration(tb, start):
    """The iteration the loop function was running when it raised, read from its frame."""
    while tb is not None:
        if tb.tb_frame.f_code is _loop.__code__:
            return tb.tb_frame.f_locals.get(_LOOP_I, start)
        tb = tb.tb_next
    return start


def trace_begin():
    """Start tracemalloc (the traced window, or the whole run of a scenario gated on it)."""
    global _sentinel, _tracing
    tracemalloc.start(_frames)
    _sentinel = object()
    _tracing = True


def trace_end():
    """End the traced window: tracing costs every allocation, so it is off again at once."""
    global _tracing
    if not _traced_throughout:
        tracemalloc.stop()
        _tracing = False


def run_teardown():
    """Run the scenario's ``teardown`` code once, then end a ``pytest`` workload's session."""
    if _teardown is not None:
        _exec(_teardown, _ns)
    if _pytest is not None:
        _pytest_item.finish()


def sample():
    """Clear the attribute lookup cache (see ``_diagnose.clear_lookup_cache``) and collect
    garbage, then read the Python-level metrics.

    Returns a ``Sample`` (traced_bytes, gc_objects, allocated_blocks, tracemalloc_overhead);
    traced bytes are 0 outside a traced window. The overhead is what tracemalloc itself holds in the C
    allocator (its traces and tracebacks, growing with the live blocks it traces): the worker
    takes it off the ``malloc`` figure, which would otherwise grow with any traced growth.
    Blocks are read before the object list is built so that list never counts; the few objects
    alive during a sample are the same every time and cancel out in a slope.
    """
    _check()
    _clear_lookup_cache()
    _gc_collect()
    traced = _tm_get_traced_memory()[0]
    overhead = _tm_get_tracemalloc_memory()
    blocks = _getallocatedblocks()
    objects = _len(_gc_get_objects())
    return Sample(traced, objects, blocks, overhead)


def _check():
    """Raise ``MeasurementTampered`` if scenario code changed the instruments since ``prepare``."""
    problem = None
    if _tracing and not _tm_is_tracing():
        problem = "stopped tracemalloc (tracemalloc.stop())"
    elif _tracing and _tm_get_object_traceback(_sentinel) is None:
        problem = (
            "restarted tracemalloc or cleared its traces (tracemalloc.stop() and start(), or "
            "tracemalloc.clear_traces())"
        )
    elif not _gc_isenabled():
        problem = (
            "disabled the garbage collector (gc.disable()); if the code under test does this on "
            "purpose, call gc.enable() at the end of `run`"
        )
    else:
        for module, name, original in _INSTRUMENTS:
            if getattr(module, name, None) is not original:
                problem = f"replaced {module.__name__}.{name}"
                break
        for name, module in _MODULES:
            if problem is None and sys.modules.get(name) is not module:
                problem = f"replaced the `{name}` module in sys.modules"
    if problem is not None:
        when = "setup" if _last_done is None else f"iteration {_last_done - 1}"
        raise MeasurementTampered(
            f"scenario code {problem}, found at the sample after {when}; leakcheck measures "
            "with these, so the figures can no longer be trusted"
        )


def describe(exc):
    """Return ``(message, traceback_text, skipped)`` for an exception raised by scenario code,
    without the harness's own frames; ``skipped`` is true when a pytest test skipped itself."""
    if isinstance(exc, MeasurementTampered):
        # Raised by the harness itself: its traceback would only show harness frames.
        return (f"measurement tampered: {exc}", "", False)
    if isinstance(exc, _pytest_item.TestDidNotPass):
        # pytest's own report says it all (assertion, captured output); ours would add frames.
        return (exc.summary, exc.report_text, exc.skipped)
    if isinstance(exc, _pytest_item.CollectionFailed):
        return (str(exc).splitlines()[0], str(exc), False)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _HARNESS_FILE:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    lines = traceback.format_exception_only(type(exc), exc)
    if isinstance(exc, SyntaxError):
        # The file, line and caret lines above the message are in the traceback already.
        lines = lines[-1:]
    message = "".join(lines).strip()
    return (message, text, False)


def collect_pytest(output, args, folder):
    """In a fork server: collect a ``pytest:`` selection for the runner, in ``folder`` (the
    scenario file's), as ``collect_pytest.py`` does when the runner runs it itself, and keep
    the session for the workers (``_leakcheck_pytest.keep``): what the collection imports
    stays imported, and a worker adopts its test from the kept session."""
    cwd = os.getcwd()
    try:
        os.chdir(folder)
        _collect.collect(output, args, _pytest_item.keep)
    finally:
        os.chdir(cwd)


def warm(selections):
    """Prepare a fork server's heap for forking: collect the run's pytest selections (see
    ``_leakcheck_pytest.warm``), then collect garbage and freeze what is left, as ``run_setup``
    does after a scenario's setup. A worker's collections then never walk the server's objects
    (a setup that imported a suite would spend ~20 ms in its first one), and never write to their
    headers, so the pages a worker shares with its server stay shared."""
    warmed = _pytest_item.warm(selections) if selections else 0
    _gc_collect()
    gc.freeze()
    return warmed


def probe_holders():
    """Who holds what survived since setup (``_leakcheck_holders.probe``), as JSON."""
    return _holders.probe(_ns)


def holder_sizes():
    """The sizes of the holders the last probe found, as JSON."""
    return _holders.sizes()


def keep_holders(indices):
    """Keep only some holders of the last probe; returns the bounds read for them
    (``_leakcheck_holders.keep``), as JSON."""
    return _holders.keep(indices)


def holders_full():
    """The holders are full: collect what they evicted (``_leakcheck_holders.thaw``)."""
    _holders.thaw()


def holders_settled():
    """Whether the window after saturation saw everything collected
    (``_leakcheck_holders.settled``)."""
    return _holders.settled()


def diagnose_begin(frames):
    """Start the diagnosis window: the frozen heap is returned to the collector (censuses and
    referrer searches must see it), and tracemalloc restarts with deep tracebacks."""
    global _sentinel
    gc.unfreeze()
    _diagnose.begin(frames)
    _sentinel = object()


def diagnose_checkpoint():
    """Checkpoint A of the diagnosis window."""
    _diagnose.checkpoint(_ns)


def diagnose_finish(iterations, chain_seconds):
    """Checkpoint B; returns the diagnosis as JSON. The diagnosis ends with tracing off; a
    scenario traced throughout gets its one-frame tracing back for teardown."""
    result = _diagnose.finish(_ns, iterations, chain_seconds)
    if _traced_throughout:
        trace_begin()
    return result


def native_version():
    """memray's version when the scenario's environment has it, else "" (``_leakcheck_native``)."""
    return _native.version()


def native_begin(folder, index, tracer):
    """Start native window ``index`` under ``tracer`` (``"memray"``, writing into ``folder``, or
    ``"recorder"``), tracemalloc off meanwhile: memray records the Python allocators itself, and
    the recorder leaves them out."""
    tracemalloc.stop()
    _native.begin(folder, index, tracer)


def native_end():
    """End the current native window."""
    _native.end()


def native_finish(short, long):
    """The native sites of both windows, as JSON; tracing comes back where the plan wants it."""
    result = _native.finish(short, long)
    if _traced_throughout:
        trace_begin()
    return result


if hasattr(run_chunk.__code__, "co_lines"):
    _diagnose.LOOP_LINES.update(line for _, _, line in run_chunk.__code__.co_lines() if line)
else:  # Python 3.9: no co_lines(); dis is imported only there
    import dis

    _diagnose.LOOP_LINES.update(line for _, line in dis.findlinestarts(run_chunk.__code__))
