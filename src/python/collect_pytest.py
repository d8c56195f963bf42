"""Collect a pytest selection for leakcheck and write what it found as JSON.

Run by the leakcheck parent in the project's own interpreter, in the scenario file's folder:
``python -c <this> OUTPUT ARGS...``. It writes ``{"exit", "pytest", "rootdir", "items",
"errors"}`` to OUTPUT; ``pytest`` is null when pytest cannot be imported. pytest's own output
goes to this process's stdout and stderr, which leakcheck does not show.
"""

import json
import sys

output, args = sys.argv[1], sys.argv[2:]
result = {"exit": 0, "pytest": None, "rootdir": "", "items": [], "errors": []}
try:
    import pytest
except ImportError:
    pytest = None


class Collector:
    """Keeps the collected items and the text of every failed collection report."""

    def pytest_collectreport(self, report):
        if report.failed:
            result["errors"].append(report.longreprtext)

    def pytest_collection_finish(self, session):
        result["rootdir"] = str(session.config.rootpath)
        for item in session.items:
            path = str(item.location[0]).replace("\\", "/")
            result["items"].append({"node_id": item.nodeid, "file": path})


if pytest is not None:
    result["pytest"] = pytest.__version__
    flags = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    result["exit"] = int(pytest.main([*args, *flags], plugins=[Collector()]))
with open(output, "w", encoding="utf-8") as file:
    json.dump(result, file)
