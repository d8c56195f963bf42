"""The native diagnosis window: where memory that tracemalloc cannot see is allocated.

Runs inside the worker (loaded as ``_leakcheck_native``), after the diagnosis window and only
when the C allocator grew by more than the traced sites explain. It uses memray, when the
scenario's environment has it, around two windows of iterations of different lengths, each under
its own ``memray.Tracker`` (one tracker per process at a time): an allocation that grows with
the window is a leak, one that is the same in both (a buffer made once, the last iteration's
temporaries) drops out of the difference. The worker drives it: ``begin`` and ``end`` around
each window's iterations, then ``finish``. Nothing here decides a verdict.

Python allocations (memray's ``PYMALLOC_*`` records, the memory tracemalloc already sees) are
dropped, so are allocations whose Python frames are all leakcheck's (its own work).

When memray is missing, saw nothing grow, or saw sites without a Python frame, the worker runs
two windows of the same lengths under leakcheck's own malloc recorder as well
(``src/worker/malloc_recorder.rs``, its ``recorder_start``/``recorder_stop`` set here by the
harness): it sees ``malloc`` called through a ``dlsym`` pointer (ctypes, cffi), which memray
does not, and names the Python line, without native frames."""

import json
import os
import shutil
import sys

# Files of leakcheck's own Python (filled by the harness with diagnose.OWN_FILES).
OWN_FILES = set()

# Sites shown, and native frames per site.
_SITES = 5
_NATIVE_FRAMES = 6
# A site must grow by at least this much per iteration to be shown.
_MIN_BYTES_PER_ITERATION = 8.0
# The interpreter's call machinery, below the extension's own frames: a native stack is cut
# there (what is above it is the extension; what is below, the interpreter running Python).
_EVAL_FRAMES = (
    "_PyEval_EvalFrameDefault",
    "_PyEval_Vector",
    "PyObject_Vectorcall",
    "_PyObject_VectorcallTstate",
    "PyObject_Call",
    "_PyObject_Call",
    "_PyObject_MakeTpCall",
    "trace_call_function",
    "method_vectorcall",
    "slot_tp_call",
)

_tracker = None
_folder = None
# The window's tracer ("memray" or "recorder"), the Python trace function the recorder's
# replaced, and the recorder's windows so far (each as ``_recorded_sites`` returns it).
_tracer = None
_saved_trace = None
_recorded = []
# leakcheck's malloc recorder (src/worker/malloc_recorder.rs), set by the harness.
recorder_start = None
recorder_stop = None


def version():
    """memray's version when it can be imported in the scenario's environment, else ``""``."""
    try:
        import memray
    except Exception:
        return ""
    return str(getattr(memray, "__version__", "unknown version"))


def begin(folder, index, tracer):
    """Starts window ``index`` under ``tracer``: ``"memray"`` (writing into ``folder``, made by
    the worker) or ``"recorder"`` (leakcheck's own malloc recorder, ``malloc_recorder.rs``)."""
    global _tracker, _folder, _tracer, _saved_trace
    _tracer = tracer
    if tracer == "recorder":
        # The recorder's trace function replaces any Python one until the window ends.
        _saved_trace = sys.gettrace()
        if index == 0:
            _recorded.clear()
        recorder_start(OWN_FILES, [os.path.dirname(os.__file__) + os.sep])
        return
    import memray

    # memray's metadata records the command line; an embedded interpreter may have no argv.
    if not getattr(sys, "argv", None):
        sys.argv = ["leakcheck-worker"]
    _folder = folder
    _tracker = memray.Tracker(
        os.path.join(folder, f"window-{index}.bin"),
        native_traces=True,
        trace_python_allocators=True,
        file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS,
    )
    _tracker.__enter__()


def end():
    """Stops the current window's tracker."""
    global _tracker
    if _tracer == "recorder":
        sites = recorder_stop()
        if _saved_trace is not None:
            sys.settrace(_saved_trace)
        _recorded.append(_recorded_sites(sites))
        return
    tracker, _tracker = _tracker, None
    if tracker is not None:
        tracker.__exit__(None, None, None)


def finish(short, long):
    """Reads both windows (``short`` and ``long`` iterations) and returns the native sites that
    grew with the window, as JSON matching the Rust ``NativeDiagnosis``."""
    if _tracer == "recorder":
        windows = list(_recorded)
        _recorded.clear()
        source = "recorder"
    else:
        windows = _memray_windows()
        source = "memray"
    first, second = windows
    span = long - short
    sites = []
    for key, (size, count, python, caller, native) in second.items():
        was_size, was_count = first.get(key, (0, 0))[:2]
        rate = (size - was_size) / span
        # Growth with the window's length: what is the same in both windows is one-off, and a
        # site that grew by less than half of what the long window holds is mostly one-off.
        if rate < _MIN_BYTES_PER_ITERATION or rate * long < size / 2:
            continue
        sites.append(
            {
                "bytes_per_iteration": rate,
                "allocations_per_iteration": (count - was_count) / span,
                "python": python,
                "caller": caller,
                "native": native,
            }
        )
    sites.sort(key=lambda s: s["bytes_per_iteration"], reverse=True)
    return json.dumps(
        {
            "source": source,
            "memray_version": version() if source == "memray" else "",
            "windows": [short, long],
            "sites": sites[:_SITES],
            "cost_secs": 0.0,
        }
    )


def _memray_windows():
    """Both memray windows' allocations still alive, by site (see ``_sites``)."""
    import memray

    python_allocators = {
        memray.AllocatorType.PYMALLOC_MALLOC,
        memray.AllocatorType.PYMALLOC_CALLOC,
        memray.AllocatorType.PYMALLOC_REALLOC,
    }
    try:
        return [
            _sites(os.path.join(_folder, f"window-{index}.bin"), memray, python_allocators)
            for index in (0, 1)
        ]
    finally:
        shutil.rmtree(_folder, ignore_errors=True)


def _recorded_sites(records):
    """The recorder's blocks still alive, by site: ``{key: (bytes, blocks, python frame,
    caller frame, [])}``, keyed by the innermost Python line and the project's line."""
    sites = {}
    for code, line, caller_code, caller_line, size, count in records:
        python = _code_frame(code, line)
        caller = _code_frame(caller_code, caller_line)
        key = (
            python and (python["file"], python["line"]),
            caller and (caller["file"], caller["line"]),
        )
        was_size, was_count = sites.get(key, (0, 0))[:2]
        sites[key] = (was_size + size, was_count + count, python, caller, [])
    return sites


def _code_frame(code, line):
    if code is None:
        return None
    name = getattr(code, "co_qualname", code.co_name)
    return {"file": code.co_filename, "line": line, "function": name}


def _sites(path, memray, python_allocators):
    """The allocations a window left alive, by site: ``{key: (bytes, allocations, innermost
    Python frame, caller frame, native frames)}``, keyed by the Python line and the extension's
    native frames."""
    sites = {}
    reader = memray.FileReader(path)
    try:
        for record in reader.get_leaked_allocation_records(merge_threads=True):
            if record.allocator in python_allocators:
                continue
            stack = record.stack_trace(max_stacks=16)
            python = [
                {"file": file, "line": line, "function": function}
                for function, file, line in stack
                if file not in OWN_FILES
            ]
            # Only leakcheck's frames: its own work. No Python frame at all (memray sees none
            # inside a greenlet here, say) is kept, attributed to its native frames alone.
            if stack and not python:
                continue
            native = _extension_frames(record.native_stack_trace(max_stacks=32))
            key = (
                python[0]["file"] if python else None,
                python[0]["line"] if python else None,
                tuple(frame["symbol"] for frame in native),
            )
            size, count = sites.get(key, (0, 0))[:2]
            sites[key] = (
                size + record.size,
                count + record.n_allocations,
                python[0] if python else None,
                _caller(python),
                native,
            )
    finally:
        reader.close()
    return sites


def _extension_frames(stack):
    """The innermost native frames down to the interpreter's call machinery: the allocator and
    the extension's functions that called it, as ``{"symbol", "file"}`` (``file`` is the source
    file where debug information names it, else the shared library that holds the symbol).

    When those are all the interpreter's own (a frame's data stack, an object's memory, taken
    on behalf of an extension that called back into Python, as greenlet does to start a
    greenlet), the extension's frames further down are what names the leak: then the last
    interpreter frame is kept, an ``…`` frame stands for the machinery between, and the first
    extension frames follow."""
    frames = []
    rest = iter(stack)
    for symbol, file, line in rest:
        if symbol in _EVAL_FRAMES or symbol.startswith("cfunction_vectorcall"):
            break
        frames.append({"symbol": _short(symbol), "file": _where(symbol, file, line)})
        if len(frames) == _NATIVE_FRAMES:
            break
    if not frames or not all(_in_interpreter(frame) for frame in frames):
        return frames
    below = []
    for symbol, file, line in rest:
        frame = {"symbol": _short(symbol), "file": _where(symbol, file, line)}
        if not _in_interpreter(frame):
            below.append(frame)
            if len(below) == _NATIVE_FRAMES - 2:
                break
        elif below:
            break
    if not below:
        return frames
    return [frames[-1], {"symbol": "…", "file": ""}, *below]


# Where CPython's own functions are: its source folders (with debug information), or its
# library.
_INTERPRETER_SOURCES = ("Objects/", "Python/", "Include/", "./Include/", "Modules/", "Parser/")


def _in_interpreter(frame):
    """Whether a native frame is the interpreter's (or an unknown system library's) rather than
    an extension's: an extension's library is outside the system folders, so it is named."""
    file = frame["file"]
    return not file or file.startswith(_INTERPRETER_SOURCES) or file.startswith("libpython")


def _short(symbol):
    """A C++ symbol without its argument list: ``greenlet::UserGreenlet::g_initialstub``."""
    return symbol.split("(", 1)[0] if "(" in symbol and not symbol.startswith("(") else symbol


def _where(symbol, file, line):
    if file and file != "<unknown>":
        return f"{file}:{line}" if line else file
    return _library_of(symbol) or ""


_symbol_libraries = None


def _library_of(symbol):
    """The loaded shared library that defines ``symbol`` (its symbol tables read once)."""
    global _symbol_libraries
    if _symbol_libraries is None:
        _symbol_libraries = {}
        for library in _loaded_libraries():
            for name in _elf_symbols(library):
                _symbol_libraries.setdefault(name, os.path.basename(library))
    return _symbol_libraries.get(symbol)


def _loaded_libraries():
    """Shared libraries mapped into this process outside the system folders (extensions and
    the libraries they ship), from /proc/self/maps."""
    libraries = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for entry in maps:
                # address, permissions, offset, device, inode, then the path when there is one
                fields = entry.split(None, 5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if ".so" in path and path.startswith("/") and path not in libraries:
                    if not path.startswith(("/lib", "/usr/lib")) and "memray" not in path:
                        libraries.append(path)
    except OSError:
        pass
    return libraries


def _elf_symbols(path):
    """Names of the functions a 64-bit little-endian ELF file defines (``.symtab`` and
    ``.dynsym``); none when it cannot be read."""
    import struct

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + k * shentsize) for k in range(shnum)]
    names = []
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind not in (2, 11) or not entsize or link >= len(sections):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strings = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name, info, _, shndx = struct.unpack_from("<IBBH", data, at)
            if info & 0xF == 2 and shndx:  # STT_FUNC, defined here
                end = data.index(b"\0", strings + name)
                names.append(data[strings + name:end].decode("utf-8", "replace"))
    return names


def _caller(python):
    """The first Python frame outside installed packages and the standard library: the line of
    the scenario (or of the project's code) that led to the allocation."""
    for frame in python:
        file = frame["file"]
        if "site-packages" in file or "dist-packages" in file or file.startswith(sys.base_prefix):
            continue
        return frame
    return None

