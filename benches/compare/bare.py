"""The bare loop: the workload run N times by plain python3, nothing measured. The limit.

usage: python3 bare.py WORKLOAD N
"""

import sys

import workloads

work = workloads.make(sys.argv[1])
for _ in range(int(sys.argv[2])):
    work()
