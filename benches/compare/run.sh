#!/usr/bin/env bash
# benches/compare/run.sh: leakcheck against the bare loop and the leak checks people use today.
#
# Run from the repository root:   benches/compare/run.sh          (~12 min, 3 rounds)
#                                 QUICK=1 benches/compare/run.sh  (~3 min: N/4, 3 rounds)
#
# On the same four clean workloads (benches/compare/workloads.py: ~10 µs, ~100 µs,
# allocation-heavy, and ~10 µs with 1 million live objects in the heap) and the same iteration
# counts, in one session, it times each of these as a fresh process, start to exit:
#   1. the bare loop (bare.py): the workload N times, nothing measured: the limit;
#   2. a plain-Python harness (harness.py) doing leakcheck's sampling by hand, plus variants
#      that price the pieces of the plan (fewer samples, no tracemalloc, a traced window);
#   3. pytest-memray's limit_leaks on a test that loops the workload N times;
#   4. a regrtest -R 5:4 style block-delta rule (regrtest_rule.py);
#   5. leakcheck with default settings and with sample_every = N/20
#      (`leakcheck run FILE --no-diagnose -j 1 -q`), with the time split from results.json.
# The tables (medians of per-round ratios, peak RSS, leakcheck's time split, verdicts) go to
# stdout and benches/compare/results.md; every raw measurement to benches/compare/results.json.
#
# Needs: cargo and python3 (3.11 with venv and its shared library, as for leakcheck itself).
# It builds leakcheck (`cargo build --release`) unless LEAKCHECK=/path/to/leakcheck is given,
# and creates a benchmark-only venv in target/compare-venv with memray, pytest-memray and
# pytest from PyPI. Scratch files (generated scenarios, reports) go to target/compare-work.
#
# Environment: QUICK=1 (a quarter of the iterations, 3 rounds), REPS=N (rounds),
# ONLY=small,alloc (a subset of the workloads), LEAKCHECK=binary (skip the build),
# OUT=path (default benches/compare/results.md).
#
# The machine matters: other processes (compilers) skew absolute times. Compare ratios, which
# are taken within one round, and look at the lowest–highest spread printed next to each.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

if [[ -z "${LEAKCHECK:-}" ]]; then
    echo "building leakcheck (cargo build --release)" >&2
    cargo build --release --quiet
    LEAKCHECK="$root/target/release/leakcheck"
    source_desc="$(git describe --always --dirty 2>/dev/null || echo unknown)"
else
    source_desc="${LEAKCHECK_SOURCE:-given binary}"
fi

venv="$root/target/compare-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import memray, pytest_memray, pytest" 2>/dev/null; then
    echo "creating the benchmark venv in $venv (memray, pytest-memray, pytest)" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check memray pytest-memray pytest
fi

reps="${REPS:-3}"
quick=()
if [[ "${QUICK:-0}" == 1 ]]; then
    reps="${REPS:-3}"
    quick=(--quick)
fi

exec "$venv/bin/python" "$root/benches/compare/compare.py" \
    --leakcheck "$LEAKCHECK" --python "$venv/bin/python" \
    --work "$root/target/compare-work" --out "${OUT:-$root/benches/compare/results.md}" \
    --reps "$reps" --source "$source_desc" ${ONLY:+--only "$ONLY"} "${quick[@]}"
