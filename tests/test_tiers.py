"""The test tiers: the guard that keeps ``pytest -m "not lsl and not slow"`` free of LSL
streams and processes (``tests/tier_guard.py``), run on small tests in an inner pytest
session (pytester, in this process)."""
from __future__ import annotations

import pytest

CONFTEST = "from tier_guard import pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown  # noqa: F401\n"
INI = '[pytest]\nmarkers =\n    lsl: starts LSL streams or processes\n    slow: long\n'

UNMARKED = '''
import multiprocessing
import subprocess
import sys

import pylsl
import pytest


def test_popen():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_outlet():
    pylsl.StreamOutlet(pylsl.StreamInfo("guard-test", "EEG", 1, 100.0, "float32", "guard-test-src"))


def test_inlet_from_a_name_imported_elsewhere():
    from pylsl import resolve_byprop
    resolve_byprop("source_id", "guard-test-nothing", 1, 0.1)


def test_continuous_resolver():
    pylsl.ContinuousResolver(prop="source_id", value="guard-test-nothing")


def test_a_process():
    multiprocessing.get_context("spawn").Process(target=print).start()


def test_swallowed():
    try:
        subprocess.run(["true"])
    except Exception:
        pass                         # the code under test catches it: the test fails all the same


@pytest.fixture
def process():
    return subprocess.run(["true"])


def test_in_a_fixture(process):
    pass


def test_stream_info_and_clock_are_allowed():
    info = pylsl.StreamInfo("guard-test", "EEG", 1, 100.0, "float32", "guard-test-src")
    assert info.name() == "guard-test" and pylsl.local_clock() > 0
'''


def test_an_unmarked_test_that_opens_lsl_or_starts_a_process_fails_naming_the_marker(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.makepyfile(test_unmarked=UNMARKED)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    outcomes = {r.nodeid.split("::")[-1]: r.outcome
                for r in result.reprec.getreports("pytest_runtest_logreport") if r.when in ("setup", "call")
                and not (r.when == "setup" and r.passed)}
    assert outcomes == {"test_popen": "failed", "test_outlet": "failed",
                        "test_inlet_from_a_name_imported_elsewhere": "failed", "test_continuous_resolver": "failed",
                        "test_a_process": "failed", "test_swallowed": "failed", "test_in_a_fixture": "failed",
                        "test_stream_info_and_clock_are_allowed": "passed"}, outcomes
    text = result.stdout.str()
    for what in ("subprocess.Popen", "pylsl.StreamOutlet", "pylsl.resolve_byprop", "pylsl.ContinuousResolver",
                 "multiprocessing Process.start"):
        assert f"calls {what} but is not marked 'lsl': add @pytest.mark.lsl" in text, (what, text[-3000:])


def test_the_guard_restores_every_call_after_each_test():
    import multiprocessing.process
    import subprocess

    from pylsl.lib import lib
    from tier_guard import LSL_CALLS, TierGuard

    before = {"popen": subprocess.Popen._execute_child, "start": multiprocessing.process.BaseProcess.start,
              **{fn: getattr(lib, fn) for fn in LSL_CALLS if hasattr(lib, fn)}}
    guard = TierGuard("inner")
    guard.install()
    assert subprocess.Popen._execute_child is not before["popen"]
    guard.remove()
    after = {"popen": subprocess.Popen._execute_child, "start": multiprocessing.process.BaseProcess.start,
             **{fn: getattr(lib, fn) for fn in LSL_CALLS if hasattr(lib, fn)}}
    assert after == before and guard.violations == []


@pytest.mark.lsl
def test_a_test_marked_lsl_gets_the_real_outlets_and_processes(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.makepyfile(test_marked="import pytest\npytestmark = pytest.mark.lsl\n" + UNMARKED.replace(
        "import pytest\n", "", 1))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist",
                                          "-k", "not test_a_process")   # a spawned child would rerun the file
    result.assert_outcomes(passed=7)
