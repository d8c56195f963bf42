"""A block-delta leak rule in the style of CPython's ``regrtest -R 5:4``.

The workload's N iterations are cut into 9 runs of N // 9 iterations. Around each run:
``gc.collect()`` then ``sys.getallocatedblocks()`` (regrtest's dash_R collects before reading).
The first 5 deltas are discarded as warmup; the workload leaks if all 4 remaining deltas are
>= 1 block. Prints the deltas and the decision; exits 1 on a leak.

usage: python3 regrtest_rule.py WORKLOAD N
"""

import gc
import sys

import workloads

WARMUPS, RUNS = 5, 4

work = workloads.make(sys.argv[1])
per_run = int(sys.argv[2]) // (WARMUPS + RUNS)
gc.collect()
before = sys.getallocatedblocks()
deltas = []
for _ in range(WARMUPS + RUNS):
    for _ in range(per_run):
        work()
    gc.collect()
    after = sys.getallocatedblocks()
    deltas.append(after - before)
    before = after
leaks = all(d >= 1 for d in deltas[WARMUPS:])
print(f"block deltas {deltas[WARMUPS:]} (discarded {deltas[:WARMUPS]}): {'LEAK' if leaks else 'pass'}")
sys.exit(1 if leaks else 0)
