"""Collect a pytest selection for leakcheck and write what it found as JSON.

Two callers. The run's fork server imports this file as ``_leakcheck_collect`` and calls
``collect(output, args, keep)`` in the scenario file's folder: ``keep`` (``_leakcheck_pytest.keep``)
builds the session that collects and keeps it for the workers the server forks, so a selection
is collected once in all and its imports are done before any worker starts. Without a server
(``leakcheck list``, or a server that cannot serve), the leakcheck parent runs it in the
project's own interpreter, in the same folder: ``python -c <this> OUTPUT ARGS...``.

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


def collect(output, args, keep=None):
    """Collect ``args`` as ``pytest --collect-only`` does and write the result to ``output``.

    With ``keep``, the session is built by ``keep(argv, plugin)``, which returns pytest's exit
    status as ``pytest.main`` would, instead of by ``pytest.main``."""
    result = {"exit": 0, "pytest": None, "rootdir": "", "items": [], "errors": []}
    try:
        import pytest
    except ImportError:
        pytest = None
    if pytest is not None:
        result["pytest"] = pytest.__version__
        if keep is None:
            flags = ["--collect-only", "-q", "-p", "no:cacheprovider"]
            result["exit"] = int(pytest.main([*args, *flags], plugins=[_Collector(result)]))
        else:
            result["exit"] = int(keep([*args, "-p", "no:cacheprovider"], _Collector(result)))
    with open(output, "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    collect(sys.argv[1], sys.argv[2:])
