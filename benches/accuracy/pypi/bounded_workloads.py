"""Clean workloads of the PyPI part of the accuracy corpus: correct use of popular libraries.

Each function is one iteration of a scenario in clean.yaml, run against the releases pinned in
fixed-requirements.txt (this module imports packages the leaky venv does not have). None of them
leaks, but each makes memory move the way real code does: a bounded cache that fills during the
run and then turns over, a class or model created per call (cyclic garbage the collector frees),
or native buffers allocated and freed. Tools that fire on cyclic garbage, on memory left at the
end, or on growth before it stopped call some of these leaks. Each docstring says what fills and
its bound; each was checked by hand on CPython 3.11 with 20 000 calls in a plain loop (after
`gc.collect()`: `sys.getallocatedblocks()`, gc objects, `mallinfo2()` and RSS stop growing).
"""

import dataclasses
import re

import attrs
import cachetools
import jinja2
import regex
import sqlalchemy
import sympy
import numpy
import pydantic
import yaml
from dateutil import parser as date_parser

# A site with many more pages than its environment keeps compiled: every template is named, so
# get_template() goes through the cache. Users set cache_size when they know their template set.
_PAGES = jinja2.FunctionLoader(lambda name: f"<h1>{{{{ title }}}}</h1> {name}: {{{{ body|e }}}}")
_ENVIRONMENT = jinja2.Environment(loader=_PAGES, cache_size=50, autoescape=True)


def jinja2_template_cache(i):
    """Bounded cache: `Environment.cache`, an LRU of compiled templates, holds `cache_size` (50).

    Each of 1000 page names is loaded, compiled and cached in turn; from the 51st call on the
    least recently used template (its module namespace and code objects) is evicted, so the
    cache fills in the first 50 calls and then turns over at every call.
    """
    _ENVIRONMENT.get_template(f"page-{i % 1000}.html").render(title="Hi", body="<b>x</b>")


def attrs_class_per_call(i):
    """A class per call: `attrs.define` builds a slotted class and generated methods.

    The class, its methods and their `__globals__`/closure cells form reference cycles that
    only the cyclic collector frees. attrs keeps each generated method's source in `linecache`
    under a name made of the class's qualified name, and reuses the entry when the source is the
    same (`_linecache_and_compile`), as it is here: one entry per method whatever the call count.
    """

    @attrs.define(frozen=True)
    class Point:
        x: int
        y: int = 0

    assert Point(i, 2) == Point(i, 2)


def pydantic_model_per_call(i):
    """A model per call with a new constraint: pydantic v2 classes, typing's alias cache.

    `create_model` builds a class and its pydantic-core validator (cyclic garbage, freed by the
    collector). `conint(le=...)` returns `Annotated[int, Interval(...)]`, which typing caches in
    an `lru_cache(maxsize=128)` (`Annotated._class_getitem_inner`); 500 distinct bounds cycle
    through it, so it fills in the first 128 calls and then turns over. (Bounds are kept above
    256 so every cached entry holds the same objects; small ints are shared.)
    """
    limit = 1000 + i % 500
    order = pydantic.create_model("Order", qty=(pydantic.conint(ge=0, le=limit), ...))
    order(qty=limit).model_dump()


def dateutil_utc_offsets(i):
    """Bounded cache: dateutil's `tzoffset` instances, 8 strong references plus a weak cache.

    Each timestamp carries one of 1440 UTC offsets; `tz.tzoffset` is a caching factory that
    keeps the 8 most recent instances in an `OrderedDict` and the rest in a
    `WeakValueDictionary`, so at most 8 (and those still referenced) survive a call.
    """
    minutes = i % 1440 - 720
    sign = "+" if minutes >= 0 else "-"
    stamp = f"2023-01-28T13:27:53{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    date_parser.parse(stamp)


_DOCUMENT = "\n".join(f"key{n}: [1, 2.5, 'text {n}', {{nested: true}}]" for n in range(40))


def pyyaml_c_loader(i):
    """Native churn: libyaml's parser buffers and events, allocated and freed per document.

    `yaml.CSafeLoader` wraps libyaml (C): its reader, scanner and event buffers are `malloc`ed
    per loader and freed with it; the resulting dicts and lists are dropped each call.
    """
    yaml.load(_DOCUMENT, Loader=yaml.CSafeLoader)


@dataclasses.dataclass(frozen=True)
class _Shape:
    rows: int
    cols: int


def numpy_array_churn(i):
    """Native churn: numpy array data, small (numpy's bounded cache) and 64 KiB (glibc malloc).

    numpy keeps freed data blocks under 1 KiB and shape/stride arrays in per-size caches
    (`npy_alloc_cache`: at most 7 blocks per size), which fill in the first calls; larger data
    goes back to the C allocator at once.
    """
    shape = _Shape(rows=i % 16 + 1, cols=8)
    small = numpy.arange(shape.rows * shape.cols, dtype=numpy.float64).reshape(shape.rows, -1)
    (small @ small.T).sum()
    large = numpy.ones(8192) * (i % 7)
    float(large.mean())


# --- Real bounded caches at their default sizes, bigger than a default run -------------------
# Each call adds one entry under a new key; each cache is full only after 300 to 1024 calls.

_ENGINE = sqlalchemy.create_engine("sqlite://")
_CONNECTION = _ENGINE.connect()


def sqlalchemy_new_statement(i):
    """Bounded cache: `Engine._compiled_cache`, a `sqlalchemy.util.LRUCache(capacity=500)`.

    Each new SQL string is compiled once and cached by its cache key; past `capacity * (1 +
    threshold)` = 750 entries the least recently used are dropped back to 500, so the cache
    grows to 750, then swings between 500 and 750 (`sqlalchemy/util/_collections.py`).
    """
    _CONNECTION.execute(sqlalchemy.text(f"SELECT {i % 7} AS n -- query {i}")).all()


_MANY_PAGES = jinja2.FunctionLoader(lambda name: f"<p>{{{{ x }}}} {name}</p>")
_DEFAULT_ENVIRONMENT = jinja2.Environment(loader=_MANY_PAGES)


def jinja2_default_cache(i):
    """Bounded cache: `Environment.cache`, an LRU of `cache_size` templates, 400 by default.

    A new template name per call: compiled, cached, and from the 401st call on the least
    recently used one is evicted (`jinja2/utils.py` `LRUCache`).
    """
    _DEFAULT_ENVIRONMENT.get_template(f"page-{i}.html").render(x=i)


def re_new_pattern(i):
    """Bounded cache: `re._cache`, at most `re._MAXCACHE` (512) compiled patterns on 3.11; when
    full, `re._compile` drops the oldest before adding one."""
    re.compile(f"item-{i}-[a-z]+").match("item-1-ab")


def regex_new_pattern(i):
    """Bounded cache: `regex._main._cache`, at most `_MAXCACHE` (500) patterns; when full,
    `_shrink_cache` drops a fifth of them at random (and their entries in `_named_args`)."""
    regex.compile(f"item-{i}-[a-z]+").match("item-1-ab")


_LOOKUPS = cachetools.LRUCache(maxsize=300)


@cachetools.cached(_LOOKUPS)
def _lookup(key):
    return {"key": key, "payload": [key] * 8}


def cachetools_lookup(i):
    """Bounded cache: a `cachetools.LRUCache(maxsize=300)` memoising a lookup, as services use
    it; past 300 keys `popitem()` evicts the least recently used."""
    _lookup(f"customer-{i}")


def sympy_new_symbol(i):
    """Bounded caches: sympy's `@cacheit` functions, each an `lru_cache(maxsize=1000)`
    (`SYMPY_CACHE_SIZE`); a new Symbol per call fills `Symbol.__xnew_cached_` one entry a call,
    and the arithmetic fills `Pow.__new__`, `AssocOp.__new__` and others faster."""
    x = sympy.Symbol(f"x{i}")
    sympy.expand((x + 1) ** 2)
