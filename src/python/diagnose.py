"""Diagnosis: where the memory of a leak comes from and who still holds it.

Loaded by the Rust worker as ``_leakcheck_diagnose`` before tracemalloc starts. It runs only after
the measured iterations, and only for a scenario whose samples already say ``leak`` (or with
``--diagnose``), in a dedicated window of extra iterations:

    begin(frames)      restart tracemalloc with deep tracebacks (traces start empty)
    ... half the window's iterations (bounded caches rotate, transient state settles) ...
    checkpoint()       checkpoint A: allocation statistics, type census, gc and hint state
    ... the other half ...
    finish(...)        checkpoint B, diffs, referrer chains, hints -> JSON for the Rust side

Hints are facts (the rule and what it saw); the Rust side words them for every report.

Nothing here runs per iteration. The containers this module keeps between the checkpoints (the
state of checkpoint A) and every object it creates are skipped by the census and by the referrer
search, so the diagnosis never reports itself.
"""

import functools
import gc
import json
import linecache
import os
import re
import sys
import sysconfig
import time
import tracemalloc
import types
from collections import Counter
from collections import deque
from itertools import chain, compress, filterfalse, repeat
from operator import is_, is_not, itemgetter

# Files whose frames and allocations belong to leakcheck, set by the harness.
OWN_FILES = set()
# Lines of the harness's iteration loop: objects allocated there (each iteration's `i`) may be
# kept by scenario code, so they count as the scenario's. Set by the harness.
LOOP_LINES = set()

# CPython's attribute lookup cache (4096 slots) keeps a reference to the last name looked up in
# each slot. Code that looks attributes up by freshly built names (``getattr(mod, f"{x}_y")``)
# fills it with strings, a slot at a time: live blocks rising for thousands of iterations, then
# flat, in clean code. Clearing it before every measurement, as CPython's own refleak check
# (``regrtest -R``) does, takes that fill out of every figure. (3.13 renamed it.)
clear_lookup_cache = getattr(sys, "_clear_internal_caches", None) or sys._clear_type_cache

# Checkpoint A: a dict of flat dicts (strings and numbers), skipped by the census and the
# referrer search by identity (``_parts``).
_state = None

_SITES = 10
_TYPES = 10
_CHAIN_TYPES = 3
_CHAINS_PER_TYPE = 2
_MAX_DEPTH = 24
_MAX_NODES = 20000
_STDLIB = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
# Compiled when this module loads, before tracemalloc starts: using re inside the window would
# fill re's own cache there and make it look like growth.
_ITEM_INDEX = re.compile(r"\[\d+\]")
_TYPE_SUFFIX = re.compile(r" \(.*\)$")
# Module-level caches that leakcheck's own work fills (reading source lines, compiling patterns):
# their growth inside the window is not the scenario's.
_OWN_CACHES = {"linecache\0cache", "re\0_cache", "fnmatch\0_cache"}
# Py_TPFLAGS_HEAPTYPE: classes defined in Python code (or created at run time by extensions).
_HEAP_TYPE = 1 << 9


def _type_name(t):
    module = getattr(t, "__module__", None)
    name = getattr(t, "__qualname__", None) or getattr(t, "__name__", "?")
    if module in (None, "builtins"):
        return name
    return f"{module}.{name}"


def begin(frames):
    """Restart tracemalloc with ``frames``-deep tracebacks: from here on every live traced block
    was allocated inside the diagnosis window."""
    tracemalloc.stop()
    tracemalloc.start(frames)


# --- allocation sites -------------------------------------------------------------------------


# A raw trace's frames and size (``tracemalloc._get_traces``: domain, size, frames, total).
_FRAMES = itemgetter(2)
_SIZE = itemgetter(1)


def _site_statistics():
    """Live traced memory grouped by traceback: ``{key: [size, count, frames]}``, frames being
    ``[[file, line], ...]`` innermost first with leakcheck's own frames removed.

    Filtering is done here by exact file name rather than with ``tracemalloc.Filter``, whose
    fnmatch/re caches would otherwise fill up inside the window and pass for growth. The raw
    traces (``(domain, size, frames innermost first, total)``) are grouped by their frames in one
    tight loop before anything else: tens of thousands of blocks share a few hundred tracebacks,
    and building a ``Trace`` and ``Frame`` object per block cost most of a diagnosis."""
    raw = getattr(tracemalloc, "_get_traces", None)
    if raw is not None:
        traces = raw()
    else:
        traces = [
            (0, t.size, tuple((f.filename, f.lineno) for f in reversed(t.traceback)), 0)
            for t in tracemalloc.take_snapshot().traces
        ]
    # Each block's size appended to its traceback's list in C: summing in a Python loop made a
    # new int per block (sizes are past the small-int cache), each traced 10 frames deep.
    by_frames = _ByType()
    deque(map(list.append, map(by_frames.__getitem__, map(_FRAMES, traces)), map(_SIZE, traces)), 0)
    del traces
    harness_files = OWN_FILES - {__file__}
    ours = {__file__, tracemalloc.__file__}
    grouped = {}
    for raw_frames, sizes in by_frames.items():
        # Allocated while this module or tracemalloc was on the stack: ours (snapshots, JSON
        # state). The harness is on the stack of every scenario allocation, so only blocks it
        # allocates itself (innermost frame) are dropped.
        if not raw_frames or any(file in ours for file, _ in raw_frames):
            continue
        if raw_frames[0][0] in harness_files:
            continue
        size, count = sum(sizes), len(sizes)
        frames = [[file, line] for file, line in raw_frames if file not in OWN_FILES]
        key = "|".join(f"{f}:{l}" for f, l in frames)
        entry = grouped.get(key)
        if entry is None:
            grouped[key] = [size, count, frames]
        else:
            entry[0] += size
            entry[1] += count
    del by_frames
    return grouped


def _is_stdlib(file):
    """Whether a file belongs to the standard library, where the allocating line is rarely the
    one to change: the first frame outside it is shown as the caller."""
    if file.startswith("<frozen "):
        return True
    return any(file.startswith(folder + os.sep) for folder in _STDLIB)


def _source(file, line):
    text = linecache.getline(file, line).strip()
    return text or None


def _sites(sizes, counts, after, iterations):
    """The sites whose live memory grew from checkpoint A (``sizes`` and ``counts`` by site key)
    to ``after`` (``_site_statistics`` at B), most bytes first, without their source lines
    (``_read_sources`` adds them once tracing has stopped)."""
    rows = []
    for key, (size, count, frames) in after.items():
        if not frames or frames[0][0] == "<unknown>":
            continue  # no Python frame: allocated by the Rust side of the harness
        size_diff = size - sizes.get(key, 0)
        if size_diff <= 0 or size_diff < iterations:  # under 1 B per iteration: noise
            continue
        rows.append((size_diff, count - counts.get(key, 0), frames))
    rows.sort(key=lambda r: r[0], reverse=True)
    sites = []
    for size_diff, count_diff, frames in rows[:_SITES]:
        file, line = frames[0] if frames else ("<unknown>", 0)
        caller = None
        if _is_stdlib(file):
            outside = next(((f, l) for f, l in frames if not _is_stdlib(f)), None)
            if outside is not None:
                caller = {"file": outside[0], "line": outside[1], "code": None}
        sites.append(
            {
                "file": file,
                "line": line,
                "code": None,
                "caller": caller,
                "size_diff": size_diff,
                "count_diff": count_diff,
                "bytes_per_iteration": size_diff / iterations,
                "stack": [{"file": f, "line": l, "code": None} for f, l in frames[:8]],
            }
        )
    return sites


def _read_sources(sites):
    """Fill in the source line of each site, its caller and its stack. Done after tracing stops:
    linecache reads and splits whole files, a string per line, and under the window's 10-frame
    tracing that cost up to 1.9 s for the twenty-odd library files of an HTTP client's stacks."""
    for site in sites:
        site["code"] = _source(site["file"], site["line"])
        if site["caller"] is not None:
            site["caller"]["code"] = _source(site["caller"]["file"], site["caller"]["line"])
        for frame in site["stack"]:
            frame["code"] = _source(frame["file"], frame["line"])


# --- type census ------------------------------------------------------------------------------


class _ByType(dict):
    """``{type: [objects]}``, each list made on first use, so that ``map`` can fill it in C."""

    __slots__ = ()

    def __missing__(self, kind):
        bucket = self[kind] = []
        return bucket


# Types whose equal instances are told apart by a dict keyed by value, with no Python int made
# per object (see ``_Census``): their hash and equality are C code with no side effects.
_VALUE_ATOMS = frozenset(
    (str, int, float, bytes, complex, bool, types.CodeType)
    + (type(None), type(NotImplemented), type(Ellipsis))
)


class _Identities:
    """The census's set of object identities in Python: what ``Identities`` is where the worker
    does not give its own (a standalone replay of this module). The worker's (``census.rs``)
    keeps them in Rust, because here each ``id()`` is a new int, which the diagnosis window's
    deep tracing makes costly: half of each census on a heap of 200 000 objects."""

    __slots__ = ("seen",)

    def __init__(self):
        self.seen = set()

    def add(self, objects):
        """Marks ``objects`` as met."""
        self.seen.update(map(id, objects))

    def fresh(self, bucket):
        """The objects of ``bucket`` not met before, each once, in order; marks them met."""
        by_id = dict(zip(map(id, bucket), bucket))
        new = by_id.keys() - self.seen
        self.seen |= new
        return [obj for ident, obj in by_id.items() if ident in new]

    def __len__(self):
        return len(self.seen)


# The census's identity set: the harness replaces it with the worker's Rust one.
Identities = _Identities
# The worker's Rust count of live objects by type (``census.rs``), set by the harness; None in
# a standalone replay, where ``_count_types`` takes a census instead.
count_types = None
# The worker's index of referrers (``referrers.rs``: ``Referrers(gc.get_objects()).of(obj)`` is
# ``gc.get_referrers(obj)`` from one walk of the heap), set by the harness; None in a standalone
# replay, where the chain search asks gc at every node.
Referrers = None
# The index costs 16 bytes a reference (about five an object), freed when the search ends:
# beyond this many tracked objects it would hold more memory than a worker should take for a
# diagnosis (``--max-rss`` counts it), and the search asks gc at every node instead.
_INDEX_MAX_OBJECTS = 1_000_000
_ATOM_TYPES = tuple(_VALUE_ATOMS)  # as count_types takes them


def _count_types(skip):
    """``{type: number of live objects}``, as ``_Census(skip).counts()`` gives it; counted by
    the worker's Rust walk when there is one (no Python object per object: a tenth of the time,
    and nothing for the window's deep tracing to record)."""
    if count_types is None:
        census = _Census(skip)
        counts = census.counts()
        census.clear()
        return counts
    gc.collect()
    return count_types(gc.get_objects(), skip, _ATOM_TYPES)


class _Census:
    """Every live object once, grouped by type: the gc-tracked objects, then the untracked
    objects they hold (ints, strings, floats, atomic-only dicts and tuples), then what those
    hold, minus the objects in ``skip`` (leakcheck's own).

    Under the diagnosis's deep tracing every object allocated costs microseconds (tracemalloc
    records a traceback for it), so the walk makes almost none: objects are grouped by type with
    ``map`` in C, never counted one increment at a time, and duplicates among the untracked
    referents are told apart without ``id()`` where it can be helped: by a dict keyed by value
    for the atoms of ``_VALUE_ATOMS`` (only equal objects that are not the same one need their
    identity), by a set for types compared by identity, by identity for the rest (tuples,
    dicts, ...), kept in ``Identities`` (the worker's is a Rust set: no int per object). The walk
    this replaces took ``id()`` of every object: under 10-frame tracing it cost ten times what
    it did untraced, three walks at checkpoint B.

    ``objects`` maps each type to its live objects, the tracked ones in the collector's order
    (newest last); ``levels`` are the objects that may hold others, level by level, for
    ``holder_of``. Holding them keeps every object referenced by these containers: drop the
    census (``clear``) before searching referrers."""

    def __init__(self, skip, collect=True):
        if collect:
            gc.collect()
        tracked = gc.get_objects()
        # Made after the listing, and the census itself left out: it counts what ``count_types``
        # (checkpoint A) counts, which makes nothing before it lists the heap.
        consume = deque(maxlen=0).extend
        objects = _ByType()
        consume(map(list.append, map(objects.__getitem__, map(type, tracked)), tracked))
        del tracked
        _remove(objects.get(_Census), self)
        for obj in skip:
            if gc.is_tracked(obj):
                _remove(objects.get(type(obj)), obj)
        level = list(chain.from_iterable(objects.values()))
        self.levels = [level]
        values = {}  # atom type -> {value: the first object of that value}
        others = {}  # atom type -> [equal objects that are not the first], each once
        by_identity = {}  # type -> set of objects
        seen = Identities()
        seen.add(skip)
        is_tracked = gc.is_tracked
        while level:
            grouped = _ByType()
            untracked = list(filterfalse(is_tracked, gc.get_referents(*level)))
            consume(map(list.append, map(grouped.__getitem__, map(type, untracked)), untracked))
            del untracked
            level = []
            for kind, bucket in grouped.items():
                if kind in _VALUE_ATOMS:
                    first = values.get(kind)
                    if first is None:
                        first = values[kind] = {}
                    consume(map(first.setdefault, bucket, bucket))
                    same = map(first.__getitem__, bucket)
                    rest = list(compress(bucket, map(is_not, bucket, same)))
                    if rest:
                        others.setdefault(kind, []).extend(seen.fresh(rest))
                    continue  # atoms hold no references: nothing to walk
                if kind.__hash__ is object.__hash__ and kind.__eq__ is object.__eq__:
                    known = by_identity.get(kind)
                    if known is None:
                        known = by_identity[kind] = set()
                    fresh = set(bucket) - known
                    known |= fresh
                    fresh = list(fresh)
                else:
                    fresh = seen.fresh(bucket)
                objects[kind].extend(fresh)
                level.extend(fresh)
            del grouped
            if level:
                self.levels.append(level)
        for kind, first in values.items():
            found = objects[kind]
            found.extend(first.values())
            found.extend(others.get(kind, ()))
        for obj in skip:
            if not gc.is_tracked(obj):
                _remove(objects.get(type(obj)), obj)
        self.objects = objects

    def counts(self):
        """``{type: number of live objects}``."""
        return {kind: len(found) for kind, found in self.objects.items() if found}

    def ids(self):
        """The census's own containers, which refer to every live object."""
        ids = {id(self.objects), id(self.levels), id(self)}
        ids.update(map(id, self.objects.values()))
        ids.update(map(id, self.levels))
        return ids

    def holder_of(self, target):
        """The first object in walk order that refers to ``target``: the container holding it
        when gc cannot report it (gc.get_referrers only sees gc-tracked holders, but an
        lru_cache's internal dict, for one, is untracked). Searched a chunk at a time with
        gc.get_referents, then object by object inside the one chunk that holds it."""
        # No closure over ``target``: a cell holding it would be found as the holder.
        wanted = repeat(target)
        for level in self.levels:
            for start in range(0, len(level), _CHUNK):
                chunk = level[start : start + _CHUNK]
                if not any(map(is_, gc.get_referents(*chunk), wanted)):
                    continue
                for obj in chunk:
                    if any(map(is_, gc.get_referents(obj), wanted)):
                        return obj
        return None

    def clear(self):
        self.objects.clear()
        self.levels.clear()


# Objects per gc.get_referents call in ``_Census.holder_of``.
_CHUNK = 1024


def _remove(bucket, obj):
    """Remove ``obj`` itself (not an equal object) from ``bucket``, if there."""
    if bucket:
        same = list(map(is_, bucket, repeat(obj)))
        if True in same:
            del bucket[same.index(True)]


def _candidates(census, want, limit=50):
    """Up to ``limit`` live objects of each wanted type that scenario code allocated inside the
    diagnosis window, newest first: the census keeps the tracked objects in the collector's
    age order, so each type's list is read from its newest end."""
    frames_of = _frames_of()
    found = {}
    for kind in want:
        bucket = found[kind] = []
        for obj in reversed(census.objects.get(kind, ())):
            if _allocated_in_window(obj, frames_of):
                bucket.append(obj)
                if len(bucket) >= limit:
                    break
    return found


def _frames_of():
    """A function giving an object's allocation traceback as ``((file, line), ...)``, innermost
    first, or None: tracemalloc's raw one where it has it (no Traceback and Frame objects, each
    traced and costly while the diagnosis traces deeply)."""
    raw = getattr(tracemalloc, "_get_object_traceback", None)
    if raw is not None:
        return raw
    def frames_of(obj):
        tb = tracemalloc.get_object_traceback(obj)
        return None if tb is None else [(f.filename, f.lineno) for f in reversed(tb)]
    return frames_of


def _allocated_in_window(obj, frames_of):
    """Whether ``obj`` was allocated by scenario code inside the diagnosis window: tracemalloc has
    its traceback (restarted at the window's start) and that traceback is not ours. CPython 3.11
    cannot find the traceback of instances whose ``__dict__`` lives before the object header, so
    for those the values they hold stand in as evidence."""
    frames = frames_of(obj)
    if frames is None and type(obj).__flags__ & _HEAP_TYPE:
        for ref in gc.get_referents(obj):
            if isinstance(ref, (type, types.ModuleType)):
                continue
            frames = frames_of(ref)
            if frames is not None:
                break
    # The harness is on every scenario stack and creates each iteration's `i` in its loop, which
    # scenario code may keep; anything else whose innermost frame is the harness (the frame of a
    # diagnosis call being set up, say) is ours, as is anything allocated under this module.
    if not frames:
        return False
    for file, _ in frames:
        if file == __file__:
            return False
    file, line = frames[0]
    return file not in OWN_FILES or line in LOOP_LINES


def _own():
    """Objects of leakcheck itself that a census or a referrer search must not see."""
    own = [globals(), OWN_FILES]
    if _state is not None:
        own.extend(_parts(_state))
    for name in ("_leakcheck_harness", "_leakcheck_holders"):
        module = sys.modules.get(name)
        if module is not None:
            own.append(vars(module))
    holders = sys.modules.get("_leakcheck_holders")
    if holders is not None:
        own.append(holders._holders)
    own.append(own)
    return own


def _parts(state):
    """Checkpoint A's containers: the state, its flat dicts, and gc's list of statistics and
    its dicts. Skipped by identity, they are never counted by a census nor followed by the
    referrer search; what they hold (strings and numbers) is reachable only through them."""
    parts = [state]
    for value in state.values():
        if isinstance(value, (dict, list)):
            parts.append(value)
        if isinstance(value, list):
            parts.extend(value)
    return parts


# --- hint state -------------------------------------------------------------------------------


def _lru_caches(wrappers=None):
    """``{id: [name, maxsize, currsize]}`` of every lru_cache, or of ``wrappers`` (a census's)."""
    wrapper = getattr(functools, "_lru_cache_wrapper", None)
    caches = {}
    if wrapper is None:
        return caches
    for obj in gc.get_objects() if wrappers is None else wrappers:
        if isinstance(obj, wrapper):
            try:
                info = obj.cache_info()
            except Exception:
                continue
            name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
            caches[str(id(obj))] = [name, info.maxsize, info.currsize]
    return caches


def _buffering_handlers():
    handlers = {}
    module = sys.modules.get("logging.handlers")
    logging = sys.modules.get("logging")
    if module is None or logging is None:
        return handlers
    for ref in list(getattr(logging, "_handlerList", [])):
        handler = ref()
        if isinstance(handler, module.BufferingHandler):
            handlers[str(id(handler))] = [_type_name(type(handler)), len(handler.buffer)]
    return handlers


def _logger_names():
    """``logging.Logger.manager.loggerDict``, or None when the scenario did not import logging
    (importing it here would add loggers of our own) or replaced it with something else."""
    logging = sys.modules.get("logging")
    manager = getattr(getattr(logging, "Logger", None), "manager", None)
    names = getattr(manager, "loggerDict", None)
    return names if type(names) is dict else None


def _loggers():
    names = _logger_names()
    return None if names is None else len(names)


def _new_logger(before):
    """The newest logger's name made since checkpoint A, shortened and quoted as chains quote
    keys (a name is untrusted text). logging never removes an entry and a dict keeps its order,
    so the new names are those past the first ``before``."""
    for name in reversed(list(_logger_names() or ())[before:]):
        if type(name) is str:
            return _short(name)
    return None


def _module_containers(namespace):
    """Sizes of list/dict/set/deque globals of every module, and of the scenario's namespace."""
    sizes = {}
    own = set(OWN_FILES)
    holders = [("scenario", namespace)] if namespace is not None else []
    for name, module in list(sys.modules.items()):
        if name.startswith("_leakcheck"):
            continue
        table = getattr(module, "__dict__", None)
        if isinstance(table, dict) and getattr(module, "__file__", None) not in own:
            holders.append((name, table))
    containers = (list, dict, set)
    deque = sys.modules.get("collections").deque
    for owner, table in holders:
        for key, value in list(table.items()):
            if owner == "scenario" and key in ("i", "__builtins__"):
                continue
            if isinstance(value, containers) or isinstance(value, deque):
                sizes[f"{owner}\0{key}"] = [_type_name(type(value)), len(value)]
    return sizes


# --- checkpoints ------------------------------------------------------------------------------


def checkpoint(namespace):
    """Checkpoint A: record everything the end of the window is compared with.

    The census comes last, so whatever taking the other figures leaves behind for good (regex
    and ABC caches, say) is already counted here and does not pass for growth at checkpoint B."""
    global _state
    _state = None
    clear_lookup_cache()
    sites = _site_statistics()
    # Only the figures B is compared with, in flat dicts of strings and numbers: few containers
    # for the census and the referrer search to skip (see ``_parts``).
    _state = {
        "site_sizes": {key: entry[0] for key, entry in sites.items()},
        "site_counts": {key: entry[1] for key, entry in sites.items()},
        "garbage": len(gc.garbage),
        "lru": {key: currsize for key, (_, _, currsize) in _lru_caches().items()},
        "handlers": {key: size for key, (_, size) in _buffering_handlers().items()},
        "containers": {key: size for key, (_, size) in _module_containers(namespace).items()},
        "loggers": _loggers(),
    }
    del sites
    own = _own()
    counts = _count_types(own)
    del own
    _state["types"] = {_type_name(t): n for t, n in counts.items()}
    del counts
    _state["gc"] = gc.get_stats()


def finish(namespace, iterations, chain_seconds):
    """Checkpoint B and the whole diagnosis, as a JSON string matching the Rust ``Diagnosis``."""
    # Collector statistics before our own collections; then the census, before anything here
    # creates objects of its own.
    gc_after = gc.get_stats()
    clear_lookup_cache()
    own = _own()
    # Type counts as at A (the same walk), then the census: the objects that referrer chains
    # start from and the untracked holders they need, found in it.
    counts = _count_types(own)
    own.append(counts)
    # Collected by _count_types just now: a second full collection under deep tracing is ~0.1 s.
    census = _Census(own, collect=count_types is None)
    skip = {id(obj) for obj in own}
    skip.update(census.ids())
    sites_after = _site_statistics() if tracemalloc.is_tracing() else {}
    # Hint state at B, before reading source lines or anything else that fills caches.
    state_b = {
        "lru": _lru_caches(census.objects.get(getattr(functools, "_lru_cache_wrapper", None), ())),
        "handlers": _buffering_handlers(),
        "containers": _module_containers(namespace),
        "loggers": _loggers(),
    }
    before = _state
    notes = []
    if not tracemalloc.is_tracing():
        notes.append("tracemalloc was stopped by the scenario: no allocation sites")
    by_name = Counter()
    type_of = {}
    for t, n in counts.items():
        name = _type_name(t)
        by_name[name] += n
        type_of[name] = t
    del counts
    sites = _sites(before["site_sizes"], before["site_counts"], sites_after, iterations)

    growth = []
    for name, after in by_name.items():
        was = before["types"].get(name, 0)
        if after > was and (after - was) / iterations >= 0.1:
            growth.append((after - was, name, was, after))
    # Objects of the growing types that scenario code allocated inside the window. A type with
    # none grew because of leakcheck itself (this module's own bookkeeping), so it is dropped.
    tracing = tracemalloc.is_tracing()
    wanted_types = {type_of[g[1]] for g in growth}
    found = _candidates(census, wanted_types) if growth and tracing else {}
    skip.add(id(found))
    skip.update(id(bucket) for bucket in found.values())
    if tracing:
        growth = [g for g in growth if found.get(type_of[g[1]])]
    # Classes of the user's code and libraries first: they name what leaks, while the builtin
    # containers and atoms that grow with them (tuple, dict, cell, int, str) are usually its parts.
    growth.sort(key=lambda g: (not type_of[g[1]].__flags__ & _HEAP_TYPE, -g[0]))
    types_out = [
        {"type_name": name, "before": was, "after": after, "per_iteration": diff / iterations}
        for diff, name, was, after in growth[:_TYPES]
    ]

    # Atoms (int, str, float, bytes) usually sit inside the leaked containers; search from them
    # only when nothing else grows.
    atoms = (int, float, str, bytes, complex, bool)
    ranked = [type_of[name] for _, name, _, _ in growth]
    wanted = [t for t in ranked if t not in atoms][:_CHAIN_TYPES] or ranked[:_CHAIN_TYPES]
    picked = _pick(namespace, wanted, found, sites)
    skip.add(id(picked))
    holders = _untracked_holders(picked, census, skip)
    skip.add(id(holders))
    # The census refers to every object: gone before the referrer search walks referrers.
    census.clear()
    del census
    # Nothing below needs allocation tracebacks: stop paying for deep ones.
    if tracing:
        tracemalloc.stop()
    _read_sources(sites)
    chains, chain_notes = _chains(namespace, picked, holders, skip, chain_seconds)
    notes.extend(chain_notes)
    garbage = _garbage(before, gc_after)
    hints = _hints(before, state_b, iterations, growth, found)
    found.clear()
    del picked[:]
    # Tracing stays off: the harness restores what its sampling plan wants for teardown.
    return json.dumps(
        {
            "iterations": iterations,
            "sites": sites,
            "types": types_out,
            "chains": chains,
            "garbage": garbage,
            "hints": hints,
            "cost_secs": 0.0,
            "notes": notes,
        }
    )


# --- referrer chains --------------------------------------------------------------------------


def _pick(namespace, wanted, found, sites):
    """Which objects to search chains from: per wanted type, a few objects allocated inside the
    window (``found`` lists them newest first), those allocated at a top growing site first.
    Needs tracemalloc."""
    top_sites = {(s["file"], s["line"]) for s in sites[:3]}
    picked = []
    for kind in wanted:
        at_site, elsewhere = [], []
        for obj in found.get(kind, []):
            if namespace is not None and obj is namespace.get("i"):
                continue
            tb = tracemalloc.get_object_traceback(obj)
            placed = tb is not None and (tb[-1].filename, tb[-1].lineno) in top_sites
            (at_site if placed else elsewhere).append(obj)
        picked.extend((at_site + elsewhere)[:_CHAINS_PER_TYPE])
    return picked


def _chains(namespace, picked, holders, skip, seconds):
    """Shortest strong-reference paths from a root to each picked object, within ``seconds``."""
    deadline = time.monotonic() + seconds
    notes = []
    chains = []
    roots = _roots(namespace)
    ignore = set(skip)
    ignore.update((id(roots), id(chains), id(ignore), id(picked), id(holders)))
    # One walk of the heap for every node the searches visit, instead of one per node. The
    # index answers for the heap as it is now; nothing below runs scenario code.
    objects = gc.get_objects()
    if Referrers is not None and len(objects) <= _INDEX_MAX_OBJECTS:
        referrers_of = Referrers(objects).of
    else:
        referrers_of = gc.get_referrers
    # The list refers to every object: only the index may keep it.
    del objects
    try:
        for obj, holder in zip(picked, holders):
            if time.monotonic() > deadline:
                notes.append(f"referrer search stopped after {seconds:g} s (--chain-timeout)")
                break
            chains.append(_find_chain(obj, holder, roots, ignore, deadline, referrers_of))
    finally:
        # The index holds every object alive: gone before anything else asks gc.
        del referrers_of
    return _dedupe(chains), notes


def _untracked_holders(picked, census, skip):
    """For each picked object, the untracked container holding it when gc.get_referrers sees no
    holder of it but leakcheck's own (see ``_Census.holder_of``), else None."""
    holders = []
    ours = skip | {id(picked), id(holders)}
    for obj in picked:
        holder = None
        if not gc.is_tracked(obj):
            visible = [
                r for r in gc.get_referrers(obj) if id(r) not in ours and not _is_own_frame(r)
            ]
            if not visible:
                holder = census.holder_of(obj)
            del visible
        holders.append(holder)
    return holders


def _dedupe(chains):
    """Drop chains that repeat one already shown: the same holder path for another object (only
    the last link differs), or a path that runs through an object already shown as leaked (a
    LogRecord's args tuple after the LogRecord). Types are ordered user-first, so the most telling
    chain comes first and stays."""
    def norm(chain):
        return [_TYPE_SUFFIX.sub("", _ITEM_INDEX.sub("[]", step)) for step in chain["steps"]]

    kept, out = [], []
    for chain in chains:
        if chain["root_kind"] == "none":
            if any(c["root_kind"] == "none" and c["type_name"] == chain["type_name"] for c in out):
                continue
            out.append(chain)
            continue
        steps = norm(chain)
        if any(k[:-2] == steps[:-2] or steps[: len(k) - 1] == k[:-1] for k in kept):
            continue
        kept.append(steps)
        out.append(chain)
    return out


def _roots(namespace):
    """Objects where a chain ends: module namespaces, the scenario's namespace, sys.modules."""
    roots = {}
    for name, module in list(sys.modules.items()):
        table = getattr(module, "__dict__", None)
        if isinstance(table, dict) and not name.startswith("_leakcheck"):
            roots[id(table)] = ("module_global", f"module {name}")
    if namespace is not None:
        roots[id(namespace)] = ("scenario_global", "scenario namespace")
    roots[id(sys.modules)] = ("sys_modules", "sys.modules")
    return roots


def _is_own_frame(obj):
    return isinstance(obj, types.FrameType) and obj.f_code.co_filename in OWN_FILES


def _find_chain(target, holder, roots, ignore, deadline, referrers_of):
    """Breadth-first search over ``referrers_of`` (``gc.get_referrers`` or the worker's index of
    it) from ``target`` to the nearest root; ``holder`` is an untracked container known to hold
    ``target`` (gc cannot report it)."""
    this_frame = sys._getframe()
    parent = {id(target): None}
    nodes = {id(target): target}
    queue = [target]
    local_ignore = {id(parent), id(nodes), id(queue), id(this_frame)}
    head = 0
    depth = {id(target): 0}
    local_ignore.add(id(depth))
    reason = "no root found"
    try:
        while head < len(queue):
            if time.monotonic() > deadline:
                reason = "stopped at the time limit"
                break
            if len(nodes) > _MAX_NODES:
                reason = f"stopped after visiting {_MAX_NODES} objects"
                break
            node = queue[head]
            head += 1
            if depth[id(node)] >= _MAX_DEPTH:
                reason = f"stopped at depth {_MAX_DEPTH}"
                continue
            referrers = referrers_of(node)
            if node is target and holder is not None:
                referrers.append(holder)
            local_ignore.add(id(referrers))
            for ref in referrers:
                ident = id(ref)
                if ident in nodes or ident in ignore or ident in local_ignore:
                    continue
                if isinstance(node, type) and type(ref) is node:
                    continue  # instances refer to their class; they do not keep it alive here
                if isinstance(ref, types.FrameType):
                    if _is_own_frame(ref) or ref is this_frame:
                        continue
                if ident in roots and roots[ident][0] == "scenario_global":
                    keys = [k for k, v in ref.items() if v is node]
                    if keys == ["i"]:
                        continue  # the harness's own iteration counter
                parent[ident] = id(node)
                nodes[ident] = ref
                depth[ident] = depth[id(node)] + 1
                if ident in roots or isinstance(ref, types.FrameType):
                    path = [ref]
                    step = id(node)
                    while step is not None:
                        path.append(nodes[step])
                        step = parent[step]
                    return _describe_chain(path, roots)
                queue.append(ref)
            del referrers
        return {
            "type_name": _type_name(type(target)),
            "root_kind": "none",
            "steps": [_type_name(type(target))],
            "text": _type_name(type(target)),
            "note": reason,
        }
    finally:
        parent.clear()
        nodes.clear()
        del queue[:]


# --- chain rendering --------------------------------------------------------------------------


def _describe_node(obj):
    if isinstance(obj, types.FunctionType):
        return f"function {obj.__qualname__}"
    if isinstance(obj, type):
        return f"class {_type_name(obj)}"
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    return _type_name(type(obj))


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _edge(parent, child, grandparent):
    """How ``parent`` refers to ``child``, in words."""
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                if isinstance(key, str) and key.isidentifier() and grandparent is not None:
                    return f".{key}"
                return f"[{_short(key)}]"
        for key in parent:
            if key is child:
                return f"key {_short(key)}"
        return "value"
    if isinstance(parent, (list, tuple)):
        for index, value in enumerate(parent):
            if value is child:
                return f"item [{index}]"
        return "item"
    if isinstance(parent, (set, frozenset)):
        return "member"
    if isinstance(parent, types.CellType):
        return "cell contents"
    wrapper = getattr(functools, "_lru_cache_wrapper", None)
    if wrapper is not None and isinstance(parent, wrapper):
        return "cache"
    if isinstance(parent, types.FunctionType):
        if child is parent.__defaults__ or child is parent.__kwdefaults__:
            return "default arguments"
        if child is parent.__closure__:
            return "closure"
    if isinstance(parent, types.MethodType):
        return "bound to" if child is parent.__self__ else "function"
    attributes = getattr(parent, "__dict__", None)
    if isinstance(attributes, dict):
        for name, value in attributes.items():
            if value is child:
                return f".{name}"
    for name in getattr(type(parent), "__slots__", ()):
        if getattr(parent, name, None) is child:
            return f".{name}"
    return "refers to"


def _describe_chain(path, roots):
    """Render ``path`` (root first, leaked object last) as readable steps, folding the
    bookkeeping objects between a holder and its value: an instance and its ``__dict__`` become
    ``.attr``, a function's closure tuple and cell become ``closure variable 'name'``, a class and
    its ``__dict__`` become ``class attribute 'name'``."""
    root = path[0]
    root_kind, root_label = roots.get(id(root), ("frame", None))
    if root_label is None:
        code = root.f_code
        root_label = f"frame of {code.co_name} ({code.co_filename}:{root.f_lineno})"
    steps = [root_label]
    holder_kind = None
    index = 1
    previous = root
    while index < len(path):
        node = path[index]
        is_last = index == len(path) - 1
        label = None
        # Fold obj -> obj.__dict__ -> value into ".attr".
        if (
            isinstance(node, dict)
            and not is_last
            and getattr(previous, "__dict__", None) is node
            and not isinstance(previous, type)
        ):
            label = _edge(node, path[index + 1], previous)
            index += 1
            node = path[index]
        elif isinstance(previous, type) and isinstance(node, dict) and not is_last:
            label = "class attribute " + _edge(node, path[index + 1], None).strip(".[]")
            holder_kind = holder_kind or "class_attribute"
            index += 1
            node = path[index]
        elif isinstance(previous, types.FunctionType) and node is previous.__closure__ and index + 1 < len(path):
            cell = path[index + 1]
            names = previous.__code__.co_freevars
            position = next((k for k, c in enumerate(node) if c is cell), None)
            variable = names[position] if position is not None and position < len(names) else "?"
            label = f"closure variable '{variable}'"
            holder_kind = "closure"
            index += 1
            if index + 1 < len(path):
                index += 1  # the cell itself: its contents are the next node
            node = path[index]
        elif isinstance(previous, types.FunctionType) and (
            node is previous.__defaults__ or node is previous.__kwdefaults__
        ):
            holder_kind = holder_kind or "default_argument"
            label = "default arguments"
        elif root_kind in ("module_global", "scenario_global") and previous is root:
            label = "global " + repr(_edge(previous, node, None).strip(".[]'\""))
        else:
            label = _edge(previous, node, None)
        _note_holder = _holder_kind(previous)
        if _note_holder and holder_kind is None:
            holder_kind = _note_holder
        if index == len(path) - 1:
            steps.append(label)
            steps.append(_describe_node(node))
        else:
            steps.append(f"{label} ({_describe_node(node)})")
        previous = node
        index += 1
    kind = holder_kind or root_kind
    # The holder nearest the object is the most telling one: recompute from the object side.
    for obj in reversed(path[:-1]):
        special = _holder_kind(obj)
        if special:
            kind = special
            break
    return {
        "type_name": _type_name(type(path[-1])),
        "root_kind": kind,
        "steps": steps,
        "text": " → ".join(steps),
        "note": None,
    }


def _holder_kind(obj):
    wrapper = getattr(functools, "_lru_cache_wrapper", None)
    if wrapper is not None and isinstance(obj, wrapper):
        return "functools_cache"
    logging = sys.modules.get("logging")
    if logging is not None and isinstance(obj, logging.Handler):
        return "logging_handler"
    if isinstance(obj, types.CellType):
        return "closure"
    return None


# --- garbage and hints ------------------------------------------------------------------------


def _garbage(before, after_stats):
    """What the collector did inside the window (leakcheck's own collections excluded) and the
    uncollectable objects it left in gc.garbage."""
    generations = []
    for generation, (old, new) in enumerate(zip(before["gc"], after_stats)):
        generations.append(
            {
                "generation": generation,
                "collections": new["collections"] - old["collections"],
                "collected": new["collected"] - old["collected"],
                "uncollectable": new["uncollectable"] - old["uncollectable"],
            }
        )
    new_garbage = gc.garbage[before["garbage"]:]
    kinds = Counter(_type_name(type(obj)) for obj in new_garbage)
    del new_garbage
    return {
        "garbage_before": before["garbage"],
        "garbage_after": len(gc.garbage),
        "generations": generations,
        "uncollectable_types": [name for name, _ in kinds.most_common(10)],
    }


def _hints(before, after, iterations, growth, found):
    """Known causes recognised from the data, as facts: ``rule`` names the rule, the other
    fields are what it saw. The Rust side words them (``diagnosis/view.rs``), once for every
    report."""
    hints = []

    for key, (name, maxsize, currsize) in after["lru"].items():
        old = before["lru"].get(key)
        if old is None or maxsize is not None:
            continue
        grew = currsize - old
        if grew > 0:
            hints.append(
                {
                    "rule": "unbounded_lru_cache",
                    "name": name,
                    "grew": grew,
                    "per_iteration": grew / iterations,
                }
            )

    for key, (name, size) in after["handlers"].items():
        old = before["handlers"].get(key)
        if old is not None and size > old:
            grew = size - old
            hints.append(
                {
                    "rule": "buffering_handler",
                    "handler": name,
                    "grew": grew,
                    "per_iteration": grew / iterations,
                }
            )

    for key, (kind, size) in after["containers"].items():
        old = before["containers"].get(key)
        if old is None or key in _OWN_CACHES:
            continue
        grew = size - old
        # Growing with the iterations, not by a lazy import or two.
        if grew >= 3 and grew / iterations >= 0.2:
            owner, name = key.split("\0", 1)
            hints.append(
                {
                    "rule": "growing_module_container",
                    "module": None if owner == "scenario" else owner,
                    "name": name,
                    "kind": kind,
                    "grew": grew,
                    "per_iteration": grew / iterations,
                }
            )

    # A logger per call (a name per request, user, task): one new name per call it is made in.
    # At least one per two iterations, and three in all, so that a library imported inside the
    # window, which makes its few loggers once, is not taken for it (as for the containers).
    old, new = before["loggers"], after["loggers"]
    if old is not None and new is not None and new - old >= 3 and (new - old) / iterations >= 0.5:
        example = _new_logger(old)
        if example is not None:
            hints.append(
                {
                    "rule": "logger_per_call",
                    "grew": new - old,
                    "per_iteration": (new - old) / iterations,
                    "example": example,
                }
            )

    grown = {name: diff for diff, name, _, _ in growth}

    def named(names):
        return [{"type_name": n, "grew": grown[n]} for n in names]

    pools = [n for n in grown if n in ("requests.sessions.Session", "urllib3.poolmanager.PoolManager")
             or n.startswith("urllib3.connectionpool.")]
    if pools:
        hints.append({"rule": "http_sessions", "grown": named(pools)})

    numpy = sys.modules.get("numpy")
    if numpy is not None and found.get(numpy.ndarray):
        views = [a for a in found[numpy.ndarray] if isinstance(a.base, numpy.ndarray) and a.base.nbytes >= 4 * max(a.nbytes, 1)]
        if views:
            kept = sum(v.base.nbytes for v in views)
            hints.append({"rule": "numpy_view_keeps_base", "views": len(views), "base_bytes": kept})

    # Growing classes recognised by what they define.
    by_class = [
        # SQLAlchemy instruments each mapped class with `_sa_class_manager`.
        ("sqlalchemy_results_kept", _classes_defining("_sa_class_manager", grown, found)),
        # An autograd node as micrograd (and, in spirit, PyTorch) builds it: its parents and the
        # closure that propagates its gradient, in its instance dict.
        ("autograd_graph_kept", _autograd_nodes(grown, found)),
        ("finalizer_keeps_object", _classes_defining("__del__", grown, found)),
    ]
    for rule, names in by_class:
        if names:
            hints.append({"rule": rule, "grown": named(names)})
    return hints


def _autograd_nodes(grown, found):
    """Names of the growing types whose sampled objects hold ``_prev`` and ``_backward``."""
    return [
        _type_name(kind)
        for kind, objects in found.items()
        if _type_name(kind) in grown
        and any({"_prev", "_backward"} <= getattr(o, "__dict__", {}).keys() for o in objects[:5])
    ]


def _classes_defining(attribute, grown, found):
    """Names of the growing Python classes that have ``attribute`` in their own or a base's
    ``__dict__``. Read from the dicts, not with getattr: a hostile metaclass could run code."""
    names = []
    for kind in found:
        name = _type_name(kind)
        if name in grown and kind.__flags__ & _HEAP_TYPE:
            if any(attribute in vars(base) for base in type.__getattribute__(kind, "__mro__")):
                names.append(name)
    return names
