"""A plain-Python leak harness: what a user would write by hand to do what leakcheck does.

Two plans, each as leakcheck runs it (src/sampling.rs, src/worker/mod.rs, src/python/harness.py):

--plan untraced (leakcheck's default): gc.collect() + gc.freeze() after setup, a sample after
setup and then every N // 100 iterations through 20 warmup and N measured iterations (~100
measured samples), each sys._clear_type_cache() + gc.collect() + malloc in-use bytes from glibc mallinfo2() +
sys.getallocatedblocks() + len(gc.get_objects()) + RSS (/proc/self/statm) + open fds
(/proc/self/fd); then a traced window: tracemalloc on, one iteration timed, as many iterations as
fit in 5 % of the measured run's time or 20 ms, whichever is more (at least 8, at most N), the
first two thirds unsampled, up to 10 samples over the rest. Gate: malloc 64 B, alloc_blocks 0.1,
rss 2 KiB, fds 0.05 per iteration.

--plan traced (the previous default): tracemalloc with 1-frame tracebacks from before setup, no
freeze, the same sample points with tracemalloc's traced bytes in place of malloc. Gate:
tracemalloc 8 B, alloc_blocks 0.1, fds 0.05 per iteration.

Both fit an OLS line per metric over the measured samples with a 99 % Student-t interval, and
print one JSON line: seconds spent in setup, loop and sampling, the slopes and the verdict.

usage: python3 harness.py WORKLOAD N [--plan traced|untraced]
"""

import argparse
import array
import ctypes
import gc
import json
import math
import os
import sys
import time
import tracemalloc

import workloads

WARMUP = 20
PAGE = os.sysconf("SC_PAGE_SIZE")
# Column 0 of a sample is the plan's byte figure: traced bytes, or malloc in-use bytes.
METRICS = {
    "traced": ("tracemalloc", "alloc_blocks", "gc_objects", "rss", "fds"),
    "untraced": ("malloc", "alloc_blocks", "gc_objects", "rss", "fds"),
}
TOLERANCE = {
    "traced": {"tracemalloc": 8.0, "alloc_blocks": 0.1, "fds": 0.05},
    "untraced": {"malloc": 64.0, "alloc_blocks": 0.1, "rss": 2048.0, "fds": 0.05},
}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_reader():
    """A function returning glibc's in-use bytes (arena chunks + mmapped blocks)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2  # looked up once: a fresh lookup per sample would allocate

    def malloc_in_use():
        m = info()
        return m.uordblks + m.hblkhd

    return malloc_in_use


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def sample(values, row, first):
    """One sample into row ``row`` of the preallocated ``values``, ``first()`` in column 0:
    storing an int into an ``array`` allocates nothing, so the harness's own records never
    show up as growth (a list of dicts would: ~0.1 block and ~7 B per iteration at 100
    samples). Clears CPython's attribute lookup cache first, as leakcheck does."""
    sys._clear_type_cache()
    gc.collect()
    base = row * 5
    values[base] = first()
    values[base + 1] = sys.getallocatedblocks()
    values[base + 2] = len(gc.get_objects())
    values[base + 3] = rss_bytes()
    values[base + 4] = len(os.listdir("/proc/self/fd"))


def sample_points(n):
    """Iterations after which leakcheck samples: after setup (0), every N // 100 iterations
    through the warmup and the measured iterations, and at the end of each phase."""
    step = max(n // 100, 1)
    total = WARMUP + n
    return [0] + sorted(set(list(range(step, WARMUP, step)) + [WARMUP]
                            + list(range(WARMUP + step, total, step)) + [total]))


def traced_window(work, n, measured_secs):
    """leakcheck's traced window (src/sampling.rs): returns its (iteration, traced bytes)."""
    tracemalloc.start(1)
    clock = time.perf_counter()
    work()
    traced = time.perf_counter() - clock
    budget = max(max(0.05 * measured_secs, 0.02) - traced, 0.0)
    ceiling = max(n, 8)
    total = min(max(int(budget / traced) if traced > 0 else ceiling, 8), ceiling)
    settle = total * 2 // 3
    samples = min(total - settle, 10)
    step = (total - settle) // samples
    for _ in range(settle - 1):
        work()
    points = []
    for k in range(samples + 1):
        if k:
            for _ in range(step):
                work()
        gc.collect()
        points.append((k * step, tracemalloc.get_traced_memory()[0]))
    tracemalloc.stop()
    return points


def t_quantile(p, df):
    """Student-t quantile (Cornish-Fisher expansion around the normal; fine for df >= 3)."""
    # Acklam-free normal quantile by bisection on erfc: exact enough for a harness.
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > 1 - p:
            lo = mid
        else:
            hi = mid
    z = lo
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def ols(points):
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in points)
    stderr = math.sqrt(resid / (n - 2) / sxx) if n > 2 else float("inf")
    return slope, stderr


def fit(points):
    """OLS slope with its 99 % interval: (slope, low, high, samples)."""
    slope, stderr = ols(points)
    half = t_quantile(0.995, len(points) - 2) * stderr
    return (slope, slope - half, slope + half, len(points))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("n", type=int)
    parser.add_argument("--plan", choices=("traced", "untraced"), default="traced")
    args = parser.parse_args()
    untraced = args.plan == "untraced"
    first = malloc_reader() if untraced else (lambda: tracemalloc.get_traced_memory()[0])
    points = sample_points(args.n)
    values = array.array("q", bytes(8 * 5 * len(points)))

    clock = time.perf_counter()
    gc.collect()
    if not untraced:
        tracemalloc.start(1)
    work = workloads.make(args.workload)
    if untraced:
        gc.collect()
        gc.freeze()
    setup_secs = time.perf_counter() - clock

    loop_clock = time.perf_counter()
    sampling = 0.0
    done = 0
    for row, stop in enumerate(points):
        for _ in range(stop - done):
            work()
        done = stop
        t0 = time.perf_counter()
        sample(values, row, first)
        sampling += time.perf_counter() - t0
    measured_secs = time.perf_counter() - loop_clock

    result = {"setup": setup_secs, "loop": measured_secs - sampling, "sampling": sampling}
    fits = {
        metric: fit([(x, values[r * 5 + col]) for r, x in enumerate(points) if x > WARMUP])
        for col, metric in enumerate(METRICS[args.plan])
    }
    if untraced:
        clock = time.perf_counter()
        slope, _ = ols(traced_window(work, args.n, measured_secs))
        result["window"] = time.perf_counter() - clock
        fits["tracemalloc"] = (slope, slope, slope, None)
    tolerance = TOLERANCE[args.plan]
    grows = [m for m, t in tolerance.items() if fits[m][1] > t]
    within = all(fits[m][2] <= t for m, t in tolerance.items())
    result["samples"] = len(points) - 2
    result["verdict"] = "leak" if grows else "pass" if within else "inconclusive"
    result["fits"] = {m: [round(v, 4) for v in f[:3]] + [f[3]] for m, f in fits.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
