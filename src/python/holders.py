"""Holder probe: who holds what survived since setup, and whether that holder is bounded.

Loaded by the Rust worker as ``_leakcheck_holders``. It runs only at a look whose samples would
call the scenario a leak, never per iteration:

    probe(namespace)   follow a sample of the objects that survived since ``gc.freeze()`` up their
                       referrers to the nearest container made before them (the holder), and read
                       each holder's bound: ``lru_cache(maxsize=N)``, ``deque(maxlen=N)``, an owner
                       with a capacity attribute (``maxsize``, ``capacity``, ...), or a module
                       global dict whose module compares ``len()`` of it against an int constant
    sizes()            the current size of every holder the last probe found (cheap: ``len``)

A filling bounded cache and a leak look the same until the cache is full; the worker uses the
probe to keep running until bounded holders are full and then judges only what comes after, so
a cache bigger than the run is not called a leak, while growth that an unbounded container holds
is decided as before. The verdict never trusts a bound blindly: a holder that keeps growing past
its advertised capacity, or anything else that keeps growing once the holders are full, is still
growth in the samples after saturation.

After setup the harness freezes the heap, so ``gc.get_objects()`` lists just the objects made
since. ``gc.get_referrers`` does not search frozen objects, so the probe unfreezes the heap, and
freezes it again when done, all but the objects made since setup (``freeze_all_but``,
src/worker/freeze.rs), so that samples stay cheap while the holders fill and after, and what a
cache evicts stays collectable.
"""

import functools
import gc
import json
import sys
import types
from itertools import chain, compress, repeat

# Loaded before this module (src/worker/interpreter.rs): one way of naming a type.
from _leakcheck_diagnose import _type_name

# ``gc.freeze()`` but for some objects (src/worker/freeze.rs), set by the harness; None in a
# standalone replay, where the heap is frozen whole.
freeze_all_but = None

# The objects followed to their holders, and the referrer levels climbed. gc.get_referrers costs
# one walk of the heap per level, comparing every reference with each object sought: a small
# sample keeps a probe within tens of milliseconds on heaps of a few hundred thousand objects.
_SAMPLE = 48
_DEPTH = 8
_FRONTIER = 64
# Anchors sought by the first walk of the whole heap (see ``probe``, step 3).
_FIRST_WALK = 8
# Attribute names under which caches publish their capacity (functools, cachetools, Jinja2,
# SQLAlchemy, boltons, pylru, ...): read on the holder and on up to two owners above it.
_CAPACITY_ATTRIBUTES = (
    "maxsize",
    "max_size",
    "capacity",
    "maxlen",
    "cache_size",
    "size_limit",
    "max_entries",
    "_maxsize",
    "_max_size",
    "_capacity",
)
_BOUND_WORDS = ("MAX", "SIZE", "LIMIT", "CAP")
# Containers a module constant can bound.
_CONTAINERS = (dict, list, set)
# functools' C lru_cache wrapper type (None should a build lack it).
_LRU = getattr(functools, "_lru_cache_wrapper", ())
# The same, as the arguments of a ``gc.get_referrers`` that lists every lru_cache (none without).
_LRU_TYPE = (_LRU,) if isinstance(_LRU, type) else ()
# Containers that, held by a namespace, are holders in their own right.
_GLOBAL_CONTAINERS = (dict, list, set, sys.modules["collections"].deque)

# Holders of the last probe, strongly referenced: they are old objects, alive anyway, and
# ``sizes`` reads them until the scenario ends. Never grows: replaced by each probe.
_holders = []
# For each holder of ``_holders``: ``(module name, global name)`` of a module global container
# whose bound is read by ``keep`` rather than by the probe, else None (see ``_scan``).
_bound_sources = []


def _anchor_referrers(referrers, anchors, nodes, own, roots, here, caches):
    """From a walk's ``referrers``: ``({id(anchor): holder}, {id(anchor): references met})`` for
    ``anchors``, the holder being the first referrer in the heap's order that is neither new
    (``nodes``), the probe's own, nor a frame; ``caches``, unless None, gets the walk's
    lru_caches."""
    wanted = {id(o) for o in anchors}
    holders = {}
    met = {}
    for ref in referrers:
        rid = id(ref)
        if caches is not None and type(ref) in _LRU_TYPE and rid not in own:
            caches.append(ref)
            if _size(ref) == 0:
                # Refers to no entry, so to no anchor: met only for referring to its type.
                continue
        if rid in nodes or rid in own or type(ref) is types.FrameType or ref is here:
            continue
        if ref is anchors or ref is referrers:
            continue
        for child in gc.get_referents(ref):
            cid = id(child)
            if cid in wanted:
                met[cid] = met.get(cid, 0) + 1
                # A container that a namespace holds is the holder itself, even when it looks
                # new: a dict empty at setup is untracked, and gc lists it once it fills.
                if rid in roots and isinstance(child, _GLOBAL_CONTAINERS):
                    holders.setdefault(cid, child)
                else:
                    holders.setdefault(cid, ref)
    return holders, met


def _climb(frontier, own, nodes, up, inbound):
    """One level of the climb: the new referrers of ``frontier`` not yet in ``nodes``, added to
    it, with their links to what they refer to in ``up`` and ``inbound``. A function of its own,
    so that no local of the loop (the last referrer, the last referent) outlives the level and
    adds a reference that step 2 of ``probe`` would count as one from outside."""
    wanted = {id(o) for o in frontier}
    referrers = gc.get_referrers(*frontier)
    found = []
    for ref in referrers:
        rid = id(ref)
        # ``frontier`` refers to every object sought (gc skips only the argument tuple): it is
        # the probe's own, not a holder, and would otherwise be climbed as one, a list a level.
        if rid in own or type(ref) is types.FrameType or ref is referrers or ref is frontier:
            continue
        for child in gc.get_referents(ref):
            cid = id(child)
            if cid in wanted:
                up.setdefault(cid, []).append(rid)
                inbound[cid] = inbound.get(cid, 0) + 1
        if rid not in nodes:
            nodes[rid] = ref
            found.append(ref)
    return found


def probe(namespace):
    """Find the holders of what survived since setup; returns JSON (see the Rust
    ``holders::Probe``): each holder of a sampled survivor with its share of the sample, name,
    type, size and bound, the most common first."""
    global _holders, _bound_sources
    _holders = []
    _bound_sources = []
    _bounds_of.clear()
    gc.collect()
    survivors = gc.get_objects()
    here = sys._getframe()
    frame_type = types.FrameType
    candidates = [o for o in survivors if type(o) is not frame_type]
    total = len(candidates)
    step = max(1, total // _SAMPLE)
    sample = candidates[::step][:_SAMPLE]
    del candidates, survivors
    own = {id(sample), id(namespace), id(_holders)}

    # 1. Climb among the objects made since setup while the heap is still frozen: each
    # gc.get_referrers walks only those, not the whole heap. ``up`` links each object to the new
    # objects that refer to it; ``inbound`` counts those references.
    nodes = {id(o): o for o in sample}
    up = {}
    inbound = {}
    own.update((id(nodes), id(up), id(inbound)))
    frontier = list(sample)
    for _ in range(_DEPTH):
        if not frontier:
            break
        frontier = _climb(frontier, own, nodes, up, inbound)[:_FRONTIER]
    del frontier

    # 2. Anchors: objects referred to from outside the new objects (an old container, a frame,
    # C state), told by their reference count beyond the references the probe holds (the
    # sample's, and ``inbound``: the climbed referrers') and those the loop itself adds, which
    # are measured on an object held by nothing else: the dict's, the items tuple the iterator
    # keeps, the loop variable's and getrefcount's argument (4 on CPython 3.9 to 3.13; 3.14
    # borrows some references, so the count is measured rather than assumed).
    in_sample = {id(o) for o in sample}
    obj = None
    for _, obj in {0: object()}.items():
        looped = sys.getrefcount(obj)
    anchors = []
    for rid, obj in nodes.items():
        expected = looped + (rid in in_sample) + inbound.get(rid, 0)
        if sys.getrefcount(obj) > expected:
            anchors.append(obj)
            if len(anchors) >= _FRONTIER:
                break
    del obj
    # Each anchor's references from objects the climb did not count (old ones, frames, new ones
    # beyond the climb), for step 3: all but the sample's, the climbed referrers', ``nodes``' and
    # those of a loop over a list (``anchors``', the loop variable's and getrefcount's argument,
    # measured likewise).
    obj = None
    for obj in [object()]:
        listed = sys.getrefcount(obj)
    outside = {}
    for obj in anchors:
        oid = id(obj)
        outside[oid] = sys.getrefcount(obj) - listed - 1 - (oid in in_sample) - inbound.get(oid, 0)
    del obj

    # 3. The anchors' old referrers. A walk of the whole heap costs ~10 ms per 100 000 objects,
    # and as much again per 20 objects sought (each reference met is compared with every one),
    # so the first walk seeks a few anchors, spread over the list, and every lru_cache for the
    # scan (each refers to its type: the scan needs no listing of the heap). Most anchors share
    # their holder with another, so that walk meets all of their referrers too: an anchor whose
    # references from outside are all counted among the objects it met has exactly the holder a
    # walk seeking it would give (the first of those referrers in the heap's order). Only the
    # others are sought by a second walk.
    # What the scenario made since setup, listed while the heap is still frozen, to be left
    # out of the freeze at the end (a list: a referrer of each, skipped as the probe's own).
    young = _young()
    own.add(id(young))
    gc.unfreeze()
    holders_of = {}
    caches = []
    roots = _namespaces()
    roots[id(namespace)] = namespace
    first_sought = anchors[:: max(1, len(anchors) // _FIRST_WALK)]
    own.update((id(anchors), id(holders_of), id(caches), id(outside), id(first_sought)))
    tentative, met = _anchor_referrers(
        gc.get_referrers(*first_sought, *_LRU_TYPE), anchors, nodes, own, roots, here, caches
    )
    sought = {id(o) for o in first_sought}
    rest = []
    for obj in anchors:
        aid = id(obj)
        if aid in sought or met.get(aid, 0) >= outside[aid]:
            if aid in tentative:
                holders_of[aid] = tentative[aid]
        else:
            rest.append(obj)
    del tentative, met, sought, first_sought
    if rest:
        own.add(id(rest))
        found, _ = _anchor_referrers(gc.get_referrers(*rest), rest, nodes, own, roots, here, None)
        holders_of.update(found)
        del found
    del anchors, rest, roots, outside

    # 4. Each sampled survivor's holder: the old container nearest to it up the links.
    counts = {}
    unattributed = 0
    for obj in sample:
        holder = None
        seen = {id(obj)}
        level = [id(obj)]
        while level and holder is None:
            following = []
            for nid in level:
                holder = holders_of.get(nid)
                if holder is not None:
                    break
                for parent in up.get(nid, ()):
                    if parent not in seen:
                        seen.add(parent)
                        following.append(parent)
            level = following
        if holder is None:
            unattributed += 1
            continue
        entry = counts.setdefault(id(holder), [holder, 0])
        entry[1] += 1
    sampled = len(sample)
    nodes.clear()
    up.clear()
    del sample, nodes, up, inbound, in_sample

    scanned = _scan(namespace, own | {id(counts), id(holders_of)}, caches)
    del caches
    listed = {id(entry[0]): entry for entry in scanned if entry[1] is not None}
    described = _describe_all(
        [holder for holder, _ in counts.values()],
        namespace,
        own | {id(scanned), id(listed)} | set(map(id, scanned)),
        listed,
    )
    del listed
    merged = {}
    for (holder, n), entry in zip(counts.values(), described):
        key = entry.pop("_key")
        if key in merged:
            merged[key]["share"] += n / sampled
            continue
        entry["share"] = n / sampled
        merged[key] = entry
    out = sorted(merged.values(), key=lambda e: -e["share"])
    for entry in out:
        entry["scanned"] = False
        _holders.append(entry.pop("_container"))
        _bound_sources.append(None)
    # Growth the collector does not track (ints, strings, atom-only dicts kept in a list or an
    # lru_cache) leaves no survivor to follow: every lru_cache and every container a namespace
    # holds is listed too, and the worker keeps those whose size grows.
    seen = {id(h) for h in _holders}
    for container, name, bound, source in scanned:
        if id(container) in seen:
            continue
        seen.add(id(container))
        _holders.append(container)
        _bound_sources.append(source)
        out.append(
            {
                "name": name or _lru_name(container),
                "type_name": _listed_type_name(container),
                "size": _size(container),
                "bound": bound,
                "share": 0.0,
                "scanned": True,
            }
        )
    del seen
    _bounds_of.clear()
    result = json.dumps(
        {"survivors": total, "sampled": sampled, "unattributed": unattributed, "holders": out}
    )
    del counts, described, merged, out, holders_of, scanned
    # Frozen again without a collection first (nothing of the scenario's ran since the one above,
    # and the probe leaves no cyclic garbage; a full collection of the unfrozen heap costs tens
    # of milliseconds), all but the objects made since setup: the entries the holders will
    # evict stay collectable, and the samples cheap.
    _freeze(young)
    return result


def _young():
    """The objects made since setup, for ``_freeze``: while the heap is frozen, every object
    gc lists (a few thousand, where listing the whole heap is ~10 ms a 100 000 objects). None
    where the heap is frozen whole."""
    return gc.get_objects() if freeze_all_but is not None else None


def _freeze(young):
    """``gc.freeze()``, leaving out the objects of ``young`` when it is not None."""
    if young is None:
        gc.freeze()
    else:
        freeze_all_but(young)


def thaw():
    """The holders are full: from now on they evict their entries. Those made since setup were
    left collectable by the probe; those setup made are frozen, and once evicted would be cyclic
    garbage the collector never reaches (growth that is not there). So the heap is unfrozen and
    collected once, which frees what was evicted while the holders filled, and frozen again but
    for what the scenario made since setup; unless that collection found anything (setup's
    entries, evicted already: more will be), when the heap stays unfrozen for good, as it did
    always before: every sample's collection then walks the whole heap (0.1 s each on
    SQLAlchemy's, 40 s of a 45 s scenario). Setup's entries evicted only after this are caught
    by ``settled``."""
    young = _young()
    gc.unfreeze()
    if young is not None and gc.collect() == 0:
        _freeze(young)


def settled():
    """After the window judged past saturation: how many objects a collection of the whole heap
    finds unreachable (JSON int). Cache entries that setup made are frozen, so once evicted
    they are garbage no sample collected (a cache that setup filled evicts them first): then
    the window saw growth that is not there, and the heap stays unfrozen for good, so that the
    worker judges a window of its own where every sample collects the whole heap. Otherwise
    (0, what every run of the accuracy bench gives) the heap is frozen again as ``thaw`` does."""
    young = _young()
    gc.unfreeze()
    found = gc.collect()
    if young is not None and found == 0:
        _freeze(young)
    return json.dumps(found)


def sizes():
    """The current size of each holder of the last probe, in the probe's order (JSON list)."""
    return json.dumps([_size(h) for h in _holders])


def keep(indices):
    """Keep only the holders at ``indices`` (a JSON list): the scanned ones that did not grow
    are dropped, so reading sizes stays cheap. Returns, for each kept holder, the bound a module
    sets on it when the probe left that to now (a module global container), else null (JSON
    list): read for the few that grew instead of the thousand the probe listed."""
    global _holders, _bound_sources
    kept = json.loads(indices)
    bounds = []
    for k in kept:
        source = _bound_sources[k]
        module = sys.modules.get(source[0]) if source is not None else None
        bounds.append(None if module is None else _module_bound(module, source[1]))
    _bounds_of.clear()
    _holders = [_holders[k] for k in kept]
    _bound_sources = [None] * len(_holders)
    return json.dumps(bounds)


def _scan(namespace, own, caches):
    """``(container, name, bound, source)`` for every lru_cache (``caches``, in heap order) and
    every dict, list, set or deque that a module or the scenario's namespace holds as a global,
    each once (where first found). ``name`` is None for an lru_cache without a ``__qualname__``
    (``_lru_name`` then names it). A module's own constants bound its containers
    (``_module_bounds``), but reading them means a pass over the module's functions: for a module
    global, ``source`` is ``(module name, global name)`` and the bound is left to ``keep``, which
    reads it for the containers that grew; ``source`` is None otherwise.

    A thousand modules hold tens of thousands of globals: they are listed and filtered by type
    in C (``chain``, ``map``, ``compress``) in one pass over every namespace, and only the few
    thousand hits are looked at in Python (a loop testing each global cost most of a probe)."""
    deque = sys.modules["collections"].deque
    found = []
    seen = set()
    tables = [("the scenario's global", namespace)] if namespace is not None else []
    for name, module in list(sys.modules.items()):
        if name.startswith("_leakcheck"):
            continue
        table = getattr(module, "__dict__", None)
        if isinstance(table, dict) and table is not namespace:
            tables.append((name, table))
    dicts = [table for _, table in tables]
    # dict's own methods, not a subclass's: no Python code runs between these three listings.
    values = list(chain.from_iterable(map(dict.values, dicts)))
    keys = list(chain.from_iterable(map(dict.keys, dicts)))
    owners = list(chain.from_iterable(map(repeat, range(len(dicts)), map(dict.__len__, dicts))))
    del dicts
    kinds = list(map(type, values))
    # Whether globals of a type are containers, decided once per type.
    container = {kind: kind in _CONTAINERS or issubclass(kind, deque) for kind in set(kinds)}
    mask = list(map(container.__getitem__, kinds))
    del kinds
    # The scenario's own ``__builtins__`` is the interpreter's, not a global of its own.
    if namespace is not None:
        for k in range(len(namespace)):
            if keys[k] == "__builtins__":
                mask[k] = False
    hits = list(compress(values, mask))
    labels = list(compress(keys, mask))
    held_by = list(compress(owners, mask))
    del values, keys, owners, mask
    # Each container once, where first found, told apart in C: every module's ``__builtins__``
    # is the same dict, and a thousand hits of it made a Python loop cost most of a scan.
    first = {}
    deque(map(first.setdefault, map(id, hits), range(len(hits))), 0)
    for k in first.values():
        key, value, owner = labels[k], hits[k], tables[held_by[k]][0]
        if not isinstance(key, str) or id(value) in own:
            continue
        seen.add(id(value))
        label = f"{owner} '{key}'" if owner == "the scenario's global" else f"{owner}.{key}"
        bound = source = None
        if isinstance(value, deque) and value.maxlen is not None:
            bound = {"kind": "maxlen", "capacity": value.maxlen}
        elif type(value) in _CONTAINERS and owner != "the scenario's global":
            source = (owner, key)
        found.append((value, label, bound, source))
    del hits, labels, held_by, first, tables
    lru = _LRU_TYPE[0] if _LRU_TYPE else None
    for obj in caches:
        if id(obj) not in own and id(obj) not in seen:
            seen.add(id(obj))
            bound = _bound(obj, None, lru, {})
            name = None
            if getattr(obj, "__qualname__", None):
                name = _lru_name(obj)
            found.append((obj, name, bound, None))
    return found


def _lru_name(obj):
    """An lru_cache's name, as its module and qualified name say."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def _size(obj):
    lru = getattr(functools, "_lru_cache_wrapper", None)
    if lru is not None and isinstance(obj, lru):
        try:
            return obj.cache_info().currsize
        except Exception:
            return None
    try:
        return len(obj)
    except Exception:
        return None


def _namespaces():
    """``{id(module.__dict__): module}`` for every loaded module."""
    modules = {}
    for module in list(sys.modules.values()):
        table = getattr(module, "__dict__", None)
        if isinstance(table, dict):
            modules[id(table)] = module
    return modules


def _referrers(objects, own):
    """``{id(obj): [referrers]}`` for ``objects``, in one walk of the heap."""
    wanted = {id(o) for o in objects}
    out = {i: [] for i in wanted}
    if not objects:
        return out
    referrers = gc.get_referrers(*objects)
    for ref in referrers:
        if id(ref) in own or type(ref) is types.FrameType or ref is objects:
            continue
        for child in gc.get_referents(ref):
            if id(child) in wanted and ref not in out[id(child)]:
                out[id(child)].append(ref)
    del referrers
    return out


def _describe_all(containers, namespace, own, listed):
    """Name, kind, size and bound of each container a climb stopped at. The container itself,
    then up to two owners above it, may set the bound: an lru_cache is the container itself; a
    cache class's dict is owned by its instance (or the instance's __dict__); a module's global
    dict by the module's namespace.

    Owners are found by a walk of the heap per level, for the containers that need them only: a
    namespace has none to read, and a container the scan listed (``listed``: a named lru_cache,
    or a container a namespace holds as a global) is named where the scan found it and bounded
    by itself or by its module's constants (``_listed_description``)."""
    lru = getattr(functools, "_lru_cache_wrapper", None)
    modules = _namespaces()
    walked = [
        c for c in containers if id(c) not in listed and id(c) not in modules and c is not namespace
    ]
    own = own | {id(containers), id(modules), id(walked)}
    first = _referrers(walked, own)
    del walked
    second_wanted = []
    for refs in first.values():
        for ref in refs:
            if id(ref) not in modules and ref is not namespace:
                second_wanted.append(ref)
    second = _referrers(second_wanted[:_FRONTIER], own | {id(first), id(second_wanted)})
    out = []
    for container in containers:
        entry = listed.get(id(container))
        if entry is not None:
            out.append(_listed_description(entry))
            continue
        chain = [(container, None)]
        # A module's or the scenario's namespace is a root: what it holds are its globals.
        is_root = id(container) in modules or container is namespace
        for owner in [] if is_root else first.get(id(container), []):
            chain.append((owner, container))
            for above in second.get(id(owner), []):
                chain.append((above, owner))
        entry = {
            "name": None,
            "type_name": _type_name(type(container)),
            "size": _size(container),
            "bound": None,
            "_container": container,
            "_key": id(container),
        }
        for obj, child in chain:
            bound = _bound(obj, child, lru, modules)
            if bound is None:
                continue
            entry["bound"] = bound
            entry["_key"] = id(obj)
            if obj is not container and not isinstance(obj, dict):
                entry["type_name"] = _type_name(type(obj))
            if isinstance(obj, dict):
                entry["name"] = _name(container, first, second, namespace, modules, lru)
            else:
                entry["name"] = _name(obj, first, second, namespace, modules, lru)
            break
        if lru is not None and isinstance(container, lru):
            entry["type_name"] = "functools.lru_cache"
        if is_root:
            entry["name"] = (
                "the scenario's namespace"
                if container is namespace
                else f"the globals of module {modules[id(container)].__name__}"
            )
        if entry["name"] is None:
            entry["name"] = _name(container, first, second, namespace, modules, lru)
        out.append(entry)
    return out


def _listed_description(entry):
    """``_describe_all``'s description of a container the scan listed, from the scan: named where
    it is held, bounded by itself (an lru_cache's ``maxsize``, a deque's ``maxlen``) or by its
    module's constants."""
    container, name, bound, source = entry
    key = id(container)
    if bound is None and source is not None:
        module = sys.modules.get(source[0])
        if module is not None:
            bound = _module_bound(module, source[1])
            if bound is not None:
                # Keyed by what bounds it, as ``_describe_all`` keys the others: a module's
                # containers bounded by its constants are one holder (regex's ``_cache`` and
                # ``_named_args``, both kept to ``_MAXCACHE``).
                key = id(vars(module))
    return {
        "name": name,
        "type_name": _listed_type_name(container),
        "size": _size(container),
        "bound": bound,
        "_container": container,
        "_key": key,
    }


def _listed_type_name(container):
    """The type a scanned container is reported as."""
    if isinstance(container, _LRU):
        return "functools.lru_cache"
    return _type_name(type(container))


def _bound(obj, child, lru, modules):
    """The capacity ``obj`` sets on the container below it (``child``; None for the container
    itself), or None."""
    if lru is not None and isinstance(obj, lru):
        try:
            info = obj.cache_info()
        except Exception:
            return None
        if info.maxsize is None:
            return None
        return {"kind": "lru_cache", "capacity": info.maxsize}
    if isinstance(obj, sys.modules["collections"].deque):
        if obj.maxlen is None:
            return None
        return {"kind": "maxlen", "capacity": obj.maxlen}
    if isinstance(obj, dict):
        module = modules.get(id(obj))
        if module is None or not isinstance(child, _CONTAINERS):
            return None
        for name, value in list(obj.items()):
            if value is child and isinstance(name, str):
                return _module_bound(module, name)
        return None
    if isinstance(obj, (list, tuple, set, frozenset, types.FunctionType, types.ModuleType, type)):
        return None
    for attribute in _CAPACITY_ATTRIBUTES:
        try:
            value = getattr(obj, attribute)
        except Exception:
            continue
        if type(value) is int and value > 0:
            return {"kind": "attribute", "capacity": value, "attribute": attribute}
    return None


def _module_bound(module, name):
    """The bound a module sets on its global container ``name`` (see ``_module_bounds``)."""
    return _module_bounds(module).get(name)


# ``_module_bounds`` of each module during one probe (cleared by ``probe``): the scan asks for
# hundreds of containers of the same modules.
_bounds_of = {}


def _module_bounds(module):
    """``{global name: bound}`` for the containers a module bounds: an int global that one of its
    functions reads together with ``len`` and the container (``if len(_cache) >= _MAXCACHE``).
    One pass over the module's functions."""
    found = _bounds_of.get(id(module))
    if found is not None:
        return found
    found = _bounds_of[id(module)] = {}
    table = vars(module)
    # Plain functions only: asking every global for ``__code__`` ran the ``__getattr__`` of
    # typing aliases and lazy modules, thousands of times a probe.
    functions = [v for v in list(table.values()) if type(v) is types.FunctionType]
    for value in functions:
        if value.__module__ != module.__name__:
            continue
        names = value.__code__.co_names
        if "len" not in names:
            continue
        limit = next(
            (
                n
                for n in names
                if type(table.get(n)) is int
                and table[n] > 0
                and any(w in n.upper() for w in _BOUND_WORDS)
            ),
            None,
        )
        if limit is None:
            continue
        for n in names:
            if n not in found and isinstance(table.get(n), _CONTAINERS):
                found[n] = {
                    "kind": "module_constant",
                    "capacity": table[limit],
                    "attribute": f"{module.__name__}.{limit}",
                }
    return found


def _name(obj, first, second, namespace, modules, lru):
    """How a user would name ``obj``: ``re._cache``, ``Engine._compiled_cache``, the scenario's
    global ``x``, ``babel.dates.parse_pattern``."""
    if lru is not None and isinstance(obj, lru):
        qualname = getattr(obj, "__qualname__", None)
        if qualname:
            return f"{getattr(obj, '__module__', '?')}.{qualname}"
    owners = first.get(id(obj)) or second.get(id(obj)) or []
    for owner in owners:
        if isinstance(owner, dict):
            key = next((k for k, v in list(owner.items()) if v is obj and isinstance(k, str)), None)
            if key is None:
                continue
            if owner is namespace:
                return f"the scenario's global '{key}'"
            module = modules.get(id(owner))
            if module is not None:
                return f"{module.__name__}.{key}"
            for instance in second.get(id(owner), []):
                if getattr(instance, "__dict__", None) is owner:
                    return f"{_type_name(type(instance))}.{key}"
            return f"dict key '{key}'"
        attributes = getattr(owner, "__dict__", None)
        if isinstance(attributes, dict):
            for key, value in list(attributes.items()):
                if value is obj:
                    return f"{_type_name(type(owner))}.{key}"
        for key in getattr(type(owner), "__slots__", ()):
            if getattr(owner, key, None) is obj:
                return f"{_type_name(type(owner))}.{key}"
    return f"a {_type_name(type(obj))}"
