"""Collect a pytest selection for leakcheck and write what it found as JSON.

Two callers. The run's fork server imports this file as ``_leakcheck_collect`` and calls
``collect(output, args)`` in the scenario file's folder, so that the collection's imports are
already done when it forks the workers. Without a server (``leakcheck list``, or a server that
cannot serve), the leakcheck parent runs it in the project's own interpreter, in the same
folder: ``python -c <this> OUTPUT ARGS...``.

Either way it writes ``{"exit", "pytest", "rootdir", "items", "errors"}`` to OUTPUT; ``pytest``
is null when pytest cannot be imported. pytest's own output goes to the process's stdout and
stderr, which leakcheck does not show.
"""

import json
import sys


class _Collector:
    """Keeps the collected items and the text of every failed collection report."""

    def __init__(self, result):
        self.result = result

    def pytest_collectreport(self, report):
        if report.failed:
            self.result["errors"].append(report.longreprtext)

    def pytest_collection_finish(self, session):
        self.result["rootdir"] = str(session.config.rootpath)
        for item in session.items:
            path = str(item.location[0]).replace("\\", "/")
            self.result["items"].append({"node_id": item.nodeid, "file": path})


def collect(output, args):
    """Collect ``args`` as ``pytest --collect-only`` does and write the result to ``output``."""
    result = {"exit": 0, "pytest": None, "rootdir": "", "items": [], "errors": []}
    try:
        import pytest
    except ImportError:
        pytest = None
    if pytest is not None:
        result["pytest"] = pytest.__version__
        flags = ["--collect-only", "-q", "-p", "no:cacheprovider"]
        result["exit"] = int(pytest.main([*args, *flags], plugins=[_Collector(result)]))
    with open(output, "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    collect(sys.argv[1], sys.argv[2:])
