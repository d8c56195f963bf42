"""Workloads of the PyPI part of the accuracy corpus: documented leaks in released packages.

Each function is one iteration of a scenario in leaks.yaml (run against the leaky releases of
leaky-requirements.txt) and in clean.yaml (the same call against the fixed releases of
fixed-requirements.txt). Every function names the report of its leak and the release that fixed
it; each was checked by hand on CPython 3.11 (growth per call in the leaky release, none in the
fixed one) before it entered the corpus.
"""

import datetime
import io
import struct

import greenlet
import ijson
import marshmallow
import msgspec
import rapidjson
import ujson
from babel.dates import format_datetime
from PIL import Image
from selectolax.lexbor import LexborHTMLParser

MOMENT = datetime.datetime(2023, 1, 28, 13, 27, 53)


def babel_new_pattern(i):
    """Pure Python: a module-level dict caches every date pattern ever parsed.

    https://github.com/python-babel/babel/issues/962: `babel.dates.parse_pattern` stores each
    new pattern in `_pattern_cache`, a plain dict that grows without bound (2.11.0). Fixed in
    2.12.1 by https://github.com/python-babel/babel/pull/967 ("Use lru_cache where suitable"):
    an `lru_cache(maxsize=1024)`, which the run fills (no warmup is set: leakcheck finds the
    bounded holder and waits for it to be full).
    """
    format_datetime(MOMENT, f"yyyy-MM-dd HH:mm '{i}'", locale="en")


PACKED_LIST = msgspec.msgpack.encode(list(range(20)))


def msgspec_long_tuple():
    """C extension, reference leak: every decoded variable-length tuple longer than 16 is kept.

    https://github.com/msgspec/msgspec/issues/379, fixed in 0.14.2 by
    https://github.com/msgspec/msgspec/pull/380 ("Fix msgpack memleak when decoding large
    variable length tuples", introduced in 0.14.1).
    """
    msgspec.msgpack.decode(PACKED_LIST, type=tuple[int, ...])


def ijson_parse_error():
    """C extension: the yajl2_c backend keeps its 64 KiB read buffer when yajl reports an error.

    https://github.com/ICRAR/ijson/issues/97; CHANGELOG 3.2.1: "Fixed a memory leak in the
    yajl2_c backend triggered only when the underlying yajl functions reported a failure (#97)".
    """
    try:
        next(ijson.items(b"XXX", "whatever"))
    except ijson.JSONError:
        pass


class _FailingWriter:
    def write(self, text):
        raise OSError("disk full")


RECORD = {"id": 1, "name": "x" * 200}


def ujson_dump_write_error():
    """C extension, reference leak: `ujson.dump` keeps the serialized string when write() raises.

    CVE-2026-44660 (Snyk SNYK-PYTHON-UJSON-16643463: "Missing Release of Memory after Effective
    Lifetime in objToJSONFile()", introduced through 5.12.0, fixed in 5.12.1), as reported in
    https://github.com/fecgov/openFEC/issues/6596 and
    https://github.com/datahub-project/datahub/pull/17453.
    """
    try:
        ujson.dump(RECORD, _FailingWriter())
    except OSError:
        pass


SGI_HEADER = struct.pack(">hbbHHHH", 474, 1, 1, 2, 64, 64, 1).ljust(512, b"\0")
SGI_BODY = bytes(16384)


class _ShortRead(io.BytesIO):
    """An RLE-compressed SGI file whose body arrives short, as from a truncated stream."""

    def read(self, size=-1):
        data = super().read(size)
        return data[: len(data) // 2] if size == len(SGI_BODY) else data


def pillow_sgi_short_read():
    """Native: the SGI RLE decoder's malloc'd copy of the file is not freed on a short read.

    https://github.com/python-pillow/Pillow/issues/8412 (SgiRleDecode.c returns -1 without
    freeing `ptr`), fixed by https://github.com/python-pillow/Pillow/pull/8413, first released
    in 11.0.0. The memory is libc malloc: invisible to tracemalloc and to the block count.
    """
    image = Image.open(_ShortRead(SGI_HEADER + SGI_BODY))
    try:
        image.load()  # native leak
    except OSError:
        pass


def marshmallow_schema_class_per_call(i):
    """A Schema class defined in a function and used once: marshmallow's class registry.

    In marshmallow 2.16.2 each definition was appended to `class_registry._registry`, an
    unbounded leak (https://github.com/marshmallow-code/marshmallow/issues/657, #732; fixed by
    https://github.com/marshmallow-code/marshmallow/pull/1036, first released in 2.16.3:
    ~45 blocks a call kept in 2.16.2, none in 2.16.3, measured by hand on CPython 3.11). Since
    then a class with the same module and name replaces the last one under its full path, and
    the short name keeps only the first: the registry holds two classes whatever the call
    count; the rest is cyclic garbage.
    """

    class EventSchema(marshmallow.Schema):
        id = marshmallow.fields.Int(required=True)
        when = marshmallow.fields.DateTime()

    EventSchema().load({"id": i, "when": "2023-01-28T13:27:53"})


def rapidjson_rawjson_rejected():
    """C extension, reference leak: `RawJSON()` keeps the object it allocated when it rejects
    its argument.

    https://github.com/python-rapidjson/python-rapidjson/pull/239 ("Fix a leak in RawJSON() when
    the argument is rejected"): `RawJSON_new` called `tp_alloc` before parsing its arguments and
    returned NULL on failure without releasing it, one 24-byte object a call (1.23). Merged in
    1.24, which was yanked for its packaging metadata; 1.25, the next release, has the fix too
    and is the one pinned.
    """
    try:
        rapidjson.RawJSON(12345)
    except TypeError:
        pass


LEXBOR_TREE = LexborHTMLParser("<div></div><div></div><div></div>")


def selectolax_css_matches():
    """Native: lexbor's CSS parser and selector memory are not freed by `css_matches`.

    https://github.com/rushter/selectolax/issues/107 ("css_matches of LexborHTMLParser does not
    free memory"), the reporter's loop on a three-div document, fixed in 0.3.18 (the maintainer's
    fix of 2024-01-21; the reporter notes its CHANGES entry was first misnumbered 0.3.15). About
    109 KiB of libc malloc a call in 0.3.17, invisible to tracemalloc and to the block count.
    """
    LEXBOR_TREE.css_matches("div")  # native leak


def _greenlet_body():
    return "hello"


def greenlet_spawn():
    """Native: on Python 3.11 every greenlet that ran keeps its 16 KiB frame data-stack chunk.

    https://github.com/python-greenlet/greenlet/issues/328 (SQLAlchemy's `greenlet_spawn`, as
    here; also https://github.com/gevent/gevent/issues/1924), fixed by
    https://github.com/python-greenlet/greenlet/pull/329, CHANGES 2.0.1: "Python 3.11: Fix a
    memory leak". The chunk is CPython's own mmap'ed data stack: invisible to tracemalloc, the
    block count and mallinfo; only RSS (~4 KiB a call, one touched page) and VmSize grow.
    """
    greenlet.greenlet(_greenlet_body, greenlet.getcurrent()).switch()  # native leak
