"""A pytest test as a leakcheck workload: one collected item, run again and again.

The harness loads this file as ``_leakcheck_pytest`` and, for a scenario with a ``pytest:``
body, calls ``start`` in setup, ``iterate`` once per iteration and ``finish`` in teardown.

pytest has no public API to run one test many times in a process; what this uses is what
pytest-rerunfailures and pytest-leaks use, stable from pytest 7 to 9: a session built the way
``pytest.main`` builds it (``_prepareconfig``, ``Session.from_config``, the session-start and
collection hooks), then ``runtestprotocol(item, nextitem=...)`` per iteration. ``nextitem`` is
the test's parent (its module or class): pytest tears down what the next item does not share,
so function-scoped fixtures are set up and torn down around every iteration and wider scopes
stay up for the whole scenario, as in a real run of the file. With ``fixtures: scenario`` the
setup runs once and only the call phase repeats.

pytest keeps a few things per run of an item that a real session never repeats: captured
output sections and, before pytest 8, one finalizer per request of a wider-scoped fixture.
``iterate`` drops those after each iteration, so that pytest's own bookkeeping never reads as
the test's growth. Nothing here grows with the iteration count.
"""

import functools
import os
import sys

# The session and the one item of the scenario, set by ``start``.
_config = None
_session = None
_item = None
# Whether every iteration runs the fixtures' setup and teardown (``fixtures: iteration``).
_per_iteration = True
# ``_pytest.runner``, imported by ``start`` once pytest is on the path.
_runner = None
# Sessions a fork server collected before forking (``keep``, ``warm``): (rootdir, config,
# session, {node id: item}) each.
_kept = []


class TestDidNotPass(Exception):
    """An iteration of the test failed, errored or was skipped; pytest's report says why.

    ``skipped`` is true for a skip or an expected failure (``xfail``): the scenario then ends
    with the verdict ``skipped`` instead of ``error``.
    """

    def __init__(self, summary, report_text, skipped):
        super().__init__(summary)
        self.summary = summary
        self.report_text = report_text
        self.skipped = skipped


class CollectionFailed(Exception):
    """The test could not be collected in the worker: pytest's errors, or no such item."""


class _Collector:
    """A pytest plugin keeping the failed collection reports, whose text explains a missing
    item (an ImportError in the test module, a conftest that raises)."""

    def __init__(self):
        self.errors = []

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(report.longreprtext)


def start(args, node_id, rootdir, fixtures):
    """Build the pytest session, collect ``args`` and keep the item ``node_id``.

    The worker runs in ``rootdir``, as a user runs pytest from the project's root: tests that
    open files relative to it find them. pytest's cache plugin is off (a leak check must not
    rewrite ``.pytest_cache``) and so is its terminal reporter (nothing of pytest's own output
    belongs in the scenario's). The terminal plugin itself stays loaded: it defines ``-v``,
    ``-q``, ``--tb``, ``-r`` and others that projects put in their ``addopts``, which would not
    parse without it; only the reporter it registers when configured is blocked.

    In a worker forked from a fork server that collected the test already (``keep``), the
    test is taken from the server's session instead (``_adopt``): nothing is imported or
    collected again.
    """
    global _config, _session, _item, _per_iteration, _runner
    from _pytest import runner

    _runner = runner
    _per_iteration = fixtures == "iteration"
    if not _adopt(node_id, rootdir):
        os.chdir(rootdir)
        collector = _Collector()
        argv = [*args, "--rootdir", rootdir, "-p", "no:cacheprovider"]
        _config, _session = _session_for(argv, collector)
        found = [item for item in _session.items if item.nodeid == node_id]
        if not found:
            collected = ", ".join(item.nodeid for item in _session.items[:5]) or "nothing"
            errors = "\n".join(collector.errors)
            raise CollectionFailed(
                f"pytest did not collect `{node_id}` (it collected {collected})"
                + (f":\n{errors}" if errors else "")
            )
        _item = found[0]
    if not _per_iteration:
        _check([_runner.call_and_report(_item, "setup", False)])


def _session_for(argv, plugin=None):
    """A configured pytest session that has collected ``argv``, built as ``pytest.main``
    builds one, with pytest's terminal reporter blocked."""
    from _pytest.config import _prepareconfig
    from _pytest.main import Session

    config = _prepareconfig(argv, plugins=[plugin] if plugin is not None else None)
    try:
        config.pluginmanager.set_blocked("terminalreporter")
        config._do_configure()
        session = Session.from_config(config)
        config.hook.pytest_sessionstart(session=session)
        config.hook.pytest_collection(session=session)
    except BaseException:
        config._ensure_unconfigure()
        raise
    return config, session


def iterate(i):
    """Run the test once; raise ``TestDidNotPass`` with pytest's report when it did not pass."""
    if _per_iteration:
        reports = _runner.runtestprotocol(_item, log=False, nextitem=_item.parent)
    else:
        reports = [_runner.call_and_report(_item, "call", False)]
    _forget_repeated_state()
    _check(reports)


def finish():
    """Tear down what is still set up (the test's own fixtures with ``fixtures: scenario``, the
    module's and session's always) and end the session as ``pytest.main`` would."""
    try:
        if not _per_iteration:
            _check([_runner.call_and_report(_item, "teardown", False, nextitem=None)])
        _session._setupstate.teardown_exact(None)
        _config.hook.pytest_sessionfinish(session=_session, exitstatus=0)
    finally:
        _config._ensure_unconfigure()


def _check(reports):
    """Raise ``TestDidNotPass`` for the first report that did not pass (an ``xfail`` counts as
    a skip; a non-strict unexpected pass passes)."""
    for report in reports:
        if report.passed:
            continue
        xfail = getattr(report, "wasxfail", None)
        if report.skipped and xfail is not None:
            summary = f"xfail: {xfail}" if xfail else "xfail"
        elif report.skipped:
            summary = _skip_reason(report)
        else:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)
            first = message.strip().splitlines()[0] if message.strip() else "failed"
            what = "failed" if report.when == "call" else f"errored in {report.when}"
            summary = f"test {what}: {first}"
        text = _skip_place(report) if report.skipped and xfail is None else report.longreprtext
        for title, content in report.sections:
            text += f"\n{'-' * 20} {title} {'-' * 20}\n{content}"
        raise TestDidNotPass(summary, text, report.skipped)


def _skip_reason(report):
    """``skipped: <reason>`` from a skip report, whose ``longrepr`` is (path, line, reason)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return "skipped: " + reason.removeprefix("Skipped: ")
    return "skipped"


def _skip_place(report):
    """Where a skip happened, ``path:line: reason``, from its ``longrepr`` (path, line, reason)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        return f"{path}:{line + 1}: {reason}"
    return str(longrepr)


def _forget_repeated_state():
    """Drop what pytest keeps per run of an item, which a real session makes once per test.

    - ``item._report_sections``: the captured output of each phase, appended to by the capture
      and logging plugins and read by the reports, which this run does not keep;
    - finalizers that finish a fixture, registered again at every setup: a fixture that
      depends on a wider-scoped one adds ``functools.partial(dependent.finish, request=...)``
      to the wider one's finalizers (a real session grows those by one per test, too), and
      before pytest 8 each request of a wider-scoped fixture adds ``lambda:
      fixturedef.finish(...)`` to its node. One finalizer per fixture definition is kept, the
      first, in its place: finishing a fixture twice does nothing more than once.
    """
    sections = getattr(_item, "_report_sections", None)
    if sections:
        sections.clear()
    stack = getattr(_session._setupstate, "stack", None)
    if isinstance(stack, dict):
        for node, entry in stack.items():
            if node is not _item and isinstance(entry, tuple) and isinstance(entry[0], list):
                _dedupe(entry[0])
    info = getattr(_item, "_fixtureinfo", None)
    for definitions in getattr(info, "name2fixturedefs", {}).values():
        for definition in definitions:
            finalizers = getattr(definition, "_finalizers", None)
            if isinstance(finalizers, list):
                _dedupe(finalizers)


def _dedupe(finalizers):
    """Keep the first of the finalizers that finish the same fixture definition."""
    if len(finalizers) < 2:
        return
    seen = set()
    kept = []
    for finalizer in finalizers:
        definition = _finished_fixture(finalizer)
        if definition is not None:
            if id(definition) in seen:
                continue
            seen.add(id(definition))
        kept.append(finalizer)
    if len(kept) != len(finalizers):
        finalizers[:] = kept


def _finished_fixture(finalizer):
    """The fixture definition a finalizer finishes, or None for any other finalizer:
    ``functools.partial(fixturedef.finish, ...)`` or, before pytest 8, ``lambda:
    fixturedef.finish(request=...)``."""
    if isinstance(finalizer, functools.partial):
        method = finalizer.func
        owner = getattr(method, "__self__", None)
        if getattr(method, "__name__", None) == "finish" and _is_fixture_definition(owner):
            return owner
        return None
    code = getattr(finalizer, "__code__", None)
    if code is None or code.co_name != "<lambda>" or "fixturedef" not in code.co_freevars:
        return None
    try:
        owner = finalizer.__closure__[code.co_freevars.index("fixturedef")].cell_contents
    except ValueError:
        return None
    return owner if _is_fixture_definition(owner) else None


def _is_fixture_definition(obj):
    """Whether ``obj`` is a pytest ``FixtureDef``."""
    return type(obj).__name__ == "FixtureDef" and type(obj).__module__ == "_pytest.fixtures"


def keep(argv, plugin):
    """Collect ``argv`` in a fork server, as the run's collection of a ``pytest:`` selection,
    and keep the session for the workers the server forks; pytest's exit status, as
    ``pytest.main`` would return it (0, 2 for collection errors, 4 for a usage error, 5 for
    no tests; 3 for anything else).

    The server forks one worker per test from here: a worker whose test is in a kept session
    adopts it instead of starting pytest and collecting again (``start``), so a selection of N
    tests pays one pytest start-up and one collection in all, the runner's included, and no
    worker imports what the collection imported. Only pytest's global output capture is stopped
    again (its temporary files and saved descriptors would be shared by every worker); each
    worker starts its own.
    """
    from _pytest.config import ConftestImportFailure, UsageError

    try:
        config, session = _session_for(argv, plugin)
    except KeyboardInterrupt:
        # pytest's ``Session.Interrupted``: collection errors.
        return 2
    except (UsageError, ConftestImportFailure):
        return 4
    except (Exception, SystemExit):
        return 3
    _stop_capture(config)
    if not session.items:
        config._ensure_unconfigure()
        return 5
    rootdir = str(config.rootpath)
    _kept.append((rootdir, config, session, {item.nodeid: item for item in session.items}))
    return 0


def warm(selections):
    """Collect each ``(args, rootdir)`` selection once, in a fork server, and keep its session
    as ``keep`` does, unless the run's own collection kept a session of that rootdir already.
    The working directory is put back. Returns how many sessions are kept; a worker whose test
    is not in one collects it itself, and reports what fails.
    """
    import gc

    cwd = os.getcwd()
    for args, rootdir in selections:
        if any(kept[0] == rootdir for kept in _kept):
            continue
        try:
            os.chdir(rootdir)
            keep([*args, "--rootdir", rootdir, "-p", "no:cacheprovider"], None)
        except Exception:
            pass
        finally:
            os.chdir(cwd)
    gc.collect()
    return len(_kept)


def _stop_capture(config):
    """Stop pytest's global capture of the process's output (started while it configured)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()


def _adopt(node_id, rootdir):
    """Take the test ``node_id`` from a session ``keep`` kept, in a worker forked after it;
    whether it was there."""
    global _config, _session, _item
    for kept_rootdir, config, session, items in _kept:
        if kept_rootdir == rootdir and node_id in items:
            break
    else:
        return False
    _config, _session, _item = config, session, items[node_id]
    os.chdir(rootdir)
    capture = _config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.start_global_capturing()
    return True


def version():
    """pytest's version, for the scenario's record."""
    module = sys.modules.get("pytest")
    return getattr(module, "__version__", "unknown")
