"""A plain-Python leak harness: what a user would write by hand to do what leakcheck does.

By default it follows leakcheck's sampling plan exactly (src/python/harness.py and
src/worker/mod.rs): a full gc.collect(), then tracemalloc starts with 1-frame tracebacks before
setup; a sample after setup, then one every SAMPLE_EVERY iterations through 20 warmup and N
measured iterations (default N // 100, so ~100 measured samples); each sample is a full
gc.collect() + tracemalloc.get_traced_memory() + sys.getallocatedblocks() +
len(gc.get_objects()) + RSS (/proc/self/statm) + open fds (/proc/self/fd). At the end an OLS
line per metric over the measured samples, a 99 % Student-t interval on the slope, and
leakcheck's default gate (tracemalloc 8 B, alloc_blocks 0.1, fds 0.05 per iteration).

With --plan untraced it follows leakcheck's current default plan instead (src/sampling.rs):
gc.collect() + gc.freeze() after setup, ~100 untraced samples (gc.collect() +
sys.getallocatedblocks() + len(gc.get_objects()) + malloc in-use bytes from glibc mallinfo2() +
RSS + fds), then a traced window after the measured run: tracemalloc on, one iteration timed,
as many iterations as fit in 5 % of the measured run's time (at least 8, at most N / 10), the
first half unsampled, up to 10 samples over the second; gate malloc 64 B, alloc_blocks 0.1,
fds 0.05, rss 2 KiB per iteration.

Options, to price the pieces of the previous plan:
  --sample-every K    a sample every K iterations instead of N // 100
  --no-tracemalloc    never start tracemalloc; gate on alloc_blocks and fds only
  --trace-window F    tracemalloc only over the last fraction F of the measured iterations
                      (with --trace-samples samples, default 5, inside that window)
  --freeze            gc.collect() then gc.freeze() right after setup: the setup's objects move
                      to the permanent generation, which later collections (and
                      gc.get_objects()) skip, so a sample no longer costs O(setup heap)

Prints one JSON line: seconds spent in setup, loop and sampling, the slopes and the verdict.

usage: python3 harness.py WORKLOAD N [options]
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
TOLERANCE = {"tracemalloc": 8.0, "alloc_blocks": 0.1, "fds": 0.05}
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


METRICS = ("tracemalloc", "alloc_blocks", "gc_objects", "rss", "fds")


def sample(values, row, tracing):
    """One sample into row ``row`` of the preallocated ``values``: storing an int into an
    ``array`` allocates nothing, so the harness's own records never show up as growth (a list
    of dicts would: ~0.1 block and ~7 B per iteration at 100 samples)."""
    gc.collect()
    base = row * len(METRICS)
    values[base] = tracemalloc.get_traced_memory()[0] if tracing else -1
    values[base + 1] = sys.getallocatedblocks()
    values[base + 2] = len(gc.get_objects()) + gc.get_freeze_count()
    values[base + 3] = rss_bytes()
    values[base + 4] = len(os.listdir("/proc/self/fd"))


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("n", type=int)
    parser.add_argument("--sample-every", type=int)
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--trace-window", type=float)
    parser.add_argument("--trace-samples", type=int, default=5)
    parser.add_argument("--freeze", action="store_true")
    parser.add_argument("--plan", choices=("traced", "untraced"), default="traced")
    args = parser.parse_args()
    if args.plan == "untraced":
        return untraced_plan(args)
    n = args.n
    step = args.sample_every or max(n // 100, 1)
    total = WARMUP + n
    # Sample points, as leakcheck takes them: after setup (0), every `step` iterations through
    # the warmup and the measured iterations, and at the end of each phase.
    points = sorted(set(list(range(step, WARMUP, step)) + [WARMUP]
                        + list(range(WARMUP + step, total, step)) + [total]))
    window_start = None  # with --trace-window: the first traced iteration, and its samples
    if args.trace_window:
        window_start = total - max(int(n * args.trace_window), 3)
        wstep = max((total - window_start) // args.trace_samples, 1)
        points = sorted(set(points + list(range(window_start, total, wstep))))
    points = [0] + points
    values = array.array("q", bytes(8 * len(METRICS) * len(points)))

    clock = time.perf_counter()
    gc.collect()
    tracing = not args.no_tracemalloc and window_start is None
    if tracing:
        tracemalloc.start(1)
    work = workloads.make(args.workload)
    if args.freeze:
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
        if done == window_start:
            tracemalloc.start(1)
            tracing = True
        sample(values, row, tracing)
        sampling += time.perf_counter() - t0
    loop_secs = time.perf_counter() - loop_clock - sampling

    def series(col):
        k = len(METRICS)
        return [(x, values[r * k + col]) for r, x in enumerate(points)
                if x > WARMUP and values[r * k + col] >= 0]

    fits = {}
    for col, metric in enumerate(METRICS):
        pts = series(col)
        if len(pts) < 3:
            continue
        slope, stderr = ols(pts)
        half = t_quantile(0.995, len(pts) - 2) * stderr
        fits[metric] = (slope, slope - half, slope + half, len(pts))
    grows = [m for m, t in TOLERANCE.items() if m in fits and fits[m][1] > t]
    within = all(fits[m][2] <= t for m, t in TOLERANCE.items() if m in fits)
    verdict = "leak" if grows else "pass" if within else "inconclusive"
    print(
        json.dumps(
            {
                "setup": setup_secs,
                "loop": loop_secs,
                "sampling": sampling,
                "samples": len(series(1)),
                "verdict": verdict,
                "fits": {m: [round(v, 4) for v in f[:3]] + [f[3]] for m, f in fits.items()},
            }
        )
    )


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def untraced_plan(args):
    """leakcheck's default plan, by hand (see the module docstring)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2  # looked up once: a fresh lookup per sample would allocate

    def malloc_in_use():
        m = info()
        return m.uordblks + m.hblkhd

    n = args.n
    step = max(n // 100, 1)
    total = WARMUP + n
    points = [0] + sorted(set(list(range(step, WARMUP, step)) + [WARMUP]
                              + list(range(WARMUP + step, total, step)) + [total]))
    values = array.array("q", bytes(8 * len(METRICS) * len(points)))

    clock = time.perf_counter()
    gc.collect()
    work = workloads.make(args.workload)
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
        gc.collect()
        base = row * len(METRICS)
        values[base] = malloc_in_use()
        values[base + 1] = sys.getallocatedblocks()
        values[base + 2] = len(gc.get_objects())
        values[base + 3] = rss_bytes()
        values[base + 4] = len(os.listdir("/proc/self/fd"))
        sampling += time.perf_counter() - t0
    measured_secs = time.perf_counter() - loop_clock
    loop_secs = measured_secs - sampling

    # The traced window.
    window_clock = time.perf_counter()
    tracemalloc.start(1)
    work()
    traced = time.perf_counter() - window_clock
    budget = max(0.05 * measured_secs - traced, 0.0)
    ceiling = max(n // 10, 8)
    total_window = min(max(int(budget / traced) if traced > 0 else ceiling, 8), ceiling)
    settle = total_window // 2
    wsamples = min(total_window - settle, 10)
    wstep = (total_window - settle) // wsamples
    for _ in range(settle - 1):
        work()
    traced_points = []
    gc.collect()
    traced_points.append((0, tracemalloc.get_traced_memory()[0]))
    for k in range(1, wsamples + 1):
        for _ in range(wstep):
            work()
        gc.collect()
        traced_points.append((k * wstep, tracemalloc.get_traced_memory()[0]))
    tracemalloc.stop()
    window_secs = time.perf_counter() - window_clock

    names = ("malloc", "alloc_blocks", "gc_objects", "rss", "fds")
    tolerance = {"malloc": 64.0, "alloc_blocks": 0.1, "rss": 2048.0, "fds": 0.05}
    fits = {}
    k = len(METRICS)
    for col, metric in enumerate(names):
        pts = [(x, values[r * k + col]) for r, x in enumerate(points) if x > WARMUP]
        slope, stderr = ols(pts)
        half = t_quantile(0.995, len(pts) - 2) * stderr
        fits[metric] = (slope, slope - half, slope + half, len(pts))
    slope, stderr = ols(traced_points)
    fits["tracemalloc"] = (slope, slope, slope, len(traced_points))
    grows = [m for m, t in tolerance.items() if fits[m][1] > t]
    within = all(fits[m][2] <= t for m, t in tolerance.items())
    verdict = "leak" if grows else "pass" if within else "inconclusive"
    print(json.dumps({
        "setup": setup_secs,
        "loop": loop_secs,
        "sampling": sampling,
        "window": window_secs,
        "samples": len(points) - 2,
        "verdict": verdict,
        "fits": {m: [round(v, 4) for v in f[:3]] + [f[3]] for m, f in fits.items()},
    }))


if __name__ == "__main__":
    main()
