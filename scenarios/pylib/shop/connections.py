"""Connections in a reference cycle (connection <-> cursor) with a finalizer (`__del__`).

Since Python 3.4 (PEP 442) the collector frees cycles through objects with `__del__`; what
still leaks is a `__del__` that keeps its object, which brings the whole cycle back to life."""

# Leaky: connections "to be closed later by a reaper" that never runs.
_pending_close = []


class Cursor:
    def __init__(self, connection):
        self.connection = connection


class Connection:
    def __init__(self, number):
        self.number = number
        self.buffer = bytearray(512)
        self.cursor = Cursor(self)


class DeferredClose(Connection):
    def __del__(self):
        # Resurrects self (and its cursor): the list keeps what the collector was freeing.
        _pending_close.append(self)


class ClosesItself(Connection):
    def __del__(self):
        # Releases what it holds and keeps nothing: the collector frees the cycle.
        self.buffer = None


def open_leaky(number):
    return DeferredClose(number).number


def open_fixed(number):
    return ClosesItself(number).number
