"""pytest-memray's ``limit_leaks`` on a workload looped N times in one test.

The workload comes from the environment: COMPARE_WORKLOAD and COMPARE_N. Its setup runs at
import, outside the test, as a user would put it in a fixture or at module level.

usage: COMPARE_WORKLOAD=small COMPARE_N=1000 pytest --memray -q test_memray_workload.py
"""

import os

import pytest

import workloads

WORK = workloads.make(os.environ["COMPARE_WORKLOAD"])
N = int(os.environ["COMPARE_N"])


@pytest.mark.limit_leaks("1 KB")
def test_workload():
    for _ in range(N):
        WORK()
