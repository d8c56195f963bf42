"""Tests of the shop's event registry, as a project's own suite would have them.

Plain pytest tests: `pytest scenarios/pylib` runs them once; leakcheck runs each many times
(scenarios/pytest_suite.yaml) and finds the one whose code path leaks.
"""

import pytest

from shop import events


@pytest.fixture
def request_number():
    """A fresh request number per test (set up and torn down around every iteration)."""
    return 42


@pytest.mark.leaky
def test_leaky_handler_answers(request_number):
    # The handler is never unsubscribed: each run keeps a Request alive in events._handlers.
    assert events.handle_request_leaky(request_number) is None


def test_fixed_handler_answers(request_number):
    assert events.handle_request_fixed(request_number) == (request_number, "done")


@pytest.mark.parametrize("event", ["ping", "tick"])
def test_publish_without_subscribers(event):
    events.publish(event)
