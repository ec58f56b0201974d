"""The fast tier's guard: a test not marked ``lsl`` may not open LSL streams or start processes.

``make test-fast`` (``pytest -m "not lsl and not slow"``) is what a developer runs while
working; it stays fast and quiet only while every test that starts an LSL outlet, inlet
or resolver, or a process, carries the ``lsl`` marker. These hooks (imported by
``tests/conftest.py``) enforce that: while an unmarked test's fixtures are set up, the
test runs and its fixtures are torn down, the calls below raise :class:`UnmarkedLslUse`
naming the marker to add, and the test fails even where the code under test catches
the error (a failing sink is logged and scoring goes on, for instance):

* ``pylsl.StreamOutlet``, ``pylsl.StreamInlet``, ``pylsl.resolve_streams`` /
  ``resolve_byprop`` / ``resolve_bypred``, ``pylsl.ContinuousResolver``: guarded where
  liblsl is called (``pylsl.lib.lib.lsl_create_outlet`` ...), so a name imported with
  ``from pylsl import ...`` anywhere is caught too;
* ``subprocess.Popen`` (and with it ``subprocess.run``/``check_output``): its
  ``_execute_child``;
* ``multiprocessing`` processes (process pools, Dask's local workers): ``BaseProcess.start``.

A guard, not a mock: a marked test gets the real thing, an unmarked one an error.
Everything is restored after each phase. ``pylsl.StreamInfo`` and ``local_clock`` stay
allowed (no network, no thread).
"""
from __future__ import annotations

import multiprocessing.process
import subprocess
import threading
from contextlib import contextmanager

import pytest

MARKER = "lsl"

#: liblsl entry points that open an outlet, an inlet or a resolver, and what they are called in pylsl.
LSL_CALLS = {
    "lsl_create_outlet": "pylsl.StreamOutlet",
    "lsl_create_outlet_ex": "pylsl.StreamOutlet",
    "lsl_create_inlet": "pylsl.StreamInlet",
    "lsl_resolve_all": "pylsl.resolve_streams",
    "lsl_resolve_byprop": "pylsl.resolve_byprop",
    "lsl_resolve_bypred": "pylsl.resolve_bypred",
    "lsl_create_continuous_resolver": "pylsl.ContinuousResolver",
    "lsl_create_continuous_resolver_byprop": "pylsl.ContinuousResolver",
    "lsl_create_continuous_resolver_bypred": "pylsl.ContinuousResolver",
}


class UnmarkedLslUse(RuntimeError):
    """A test not marked ``lsl`` opened an LSL stream or started a process."""


class TierGuard:
    """Replaces the guarded calls with ones raising :class:`UnmarkedLslUse` until :meth:`remove`.

    Parameters
    ----------
    nodeid : str
        The test's id, named in the error.
    """

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._undo: list = []

    def __repr__(self) -> str:
        return f"<TierGuard {self.nodeid} | {len(self.violations)} violation(s)>"

    def _refuse(self, what: str):
        def refused(*_args, **_kwargs):
            msg = (f"{self.nodeid} calls {what} but is not marked '{MARKER}': add @pytest.mark.{MARKER} to the test "
                   f"(or pytestmark = pytest.mark.{MARKER} for a whole file); the fast tier "
                   f"(pytest -m \"not {MARKER} and not slow\") opens no LSL stream and starts no process")
            with self._lock:
                self.violations.append(msg)
            raise UnmarkedLslUse(msg)
        return refused

    def _swap(self, owner, name: str, new) -> None:
        # the instance's (or class's) own attribute, restored as it was; for the ctypes
        # library this is the cached function pointer (created by the getattr)
        old = getattr(owner, name)
        setattr(owner, name, new)
        self._undo.append((owner, name, old))

    def install(self) -> None:
        """Put the refusing calls in place."""
        self._swap(subprocess.Popen, "_execute_child", self._refuse("subprocess.Popen"))
        self._swap(multiprocessing.process.BaseProcess, "start", self._refuse("multiprocessing Process.start"))
        try:
            from pylsl.lib import lib
        except Exception:  # pylsl without its library: nothing of LSL can run anyway
            return
        for fn, what in LSL_CALLS.items():
            if hasattr(lib, fn):
                self._swap(lib, fn, self._refuse(what))

    def remove(self) -> None:
        """Restore every replaced call."""
        while self._undo:
            owner, name, old = self._undo.pop()
            setattr(owner, name, old)


@contextmanager
def _guarded(item: pytest.Item):
    if item.get_closest_marker(MARKER) is not None:
        yield
        return
    guard = TierGuard(item.nodeid)
    guard.install()
    try:
        yield
    finally:
        guard.remove()
    if guard.violations:                 # also when the code under test caught the error
        pytest.fail(guard.violations[0], pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    with _guarded(item):
        return (yield)
