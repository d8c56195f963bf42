"""The four workloads of the comparison, in one place, so every tool runs the same code.

``make(name)`` does the workload's setup and returns ``work``, a no-argument function that is
one iteration. Each tool calls it N times: the bare loop, the plain-Python harness, the
block-delta rule and pytest-memray directly; leakcheck through a scenario whose ``setup`` is
``work = workloads.make(name)`` and whose ``run`` is ``work()``. None of them leaks.
"""

import json
import random

# name -> (what it is, iterations N in the full run). The counts make the loop itself last
# ~1 s on the reference machine (the big heap's setup adds ~0.5 s): long enough that starting
# an interpreter (~20 ms bare, ~60 ms for a leakcheck worker) does not dominate, short enough for
# the whole comparison to run in ~10 minutes with 3 rounds; QUICK=1 divides them by 4.
WORKLOADS = {
    "small": ("~10 µs: sort 400 floats (allocates one list)", 90_000),
    "medium": ("~100 µs: JSON round trip of a 50-item document", 7_500),
    "alloc": ("allocation-heavy, ~3 µs: [dict(a=1) for _ in range(50)]", 180_000),
    "bigheap": ("the ~10 µs sort, with 1 million live lists in the heap (made in setup)", 30_000),
}

# Kept alive here for the whole run in the big-heap workload.
_heap = None


def _sort_400():
    rng = random.Random(0)
    data = [rng.random() for _ in range(400)]

    def work():
        sorted(data)

    return work


def make(name):
    """Set the workload up and return its one-iteration function."""
    global _heap
    if name == "small":
        return _sort_400()
    if name == "medium":
        doc = {
            "items": [
                {"id": k, "name": f"item-{k}", "price": k * 1.5, "tags": ["a", "b"]}
                for k in range(50)
            ]
        }

        def work():
            json.loads(json.dumps(doc))

        return work
    if name == "alloc":

        def work():
            [dict(a=1) for _ in range(50)]

        return work
    if name == "bigheap":
        # 1 million live objects, all gc-tracked (empty lists), so a full gc.collect() and
        # gc.get_objects() have real work to do.
        _heap = [[] for _ in range(1_000_000)]
        return _sort_400()
    raise ValueError(f"unknown workload {name!r} (one of {', '.join(WORKLOADS)})")
