"""Never lose the record silently (issue 19): a hypnogram write that fails turns the session
into NOT RECORDING (the file sink keeps the rows and catches up when the disk comes back;
the gate closes and cannot open meanwhile), and one file has one writer.

Real failures, unprivileged: ``RLIMIT_FSIZE`` (with SIGXFSZ ignored, a write past the limit
fails with EFBIG exactly as a full disk fails with ENOSPC: the same OSError path), a file
removed or replaced under the scorer, and a real ``sleepstream live`` process whose limit
the test lifts from outside (``prlimit``)."""
from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from live_helpers import REPO, wait_for
from test_gate import FS, rec, start_sleep_player

from scorer.gate.rules import GateRule
from scorer.gate.sink import GateSink
from scorer.gate.window import CLOSE, OPEN
from scorer.hypnogram_file import HypnogramFile, HypnogramFileError, check_writable, inspect_file, read_rows


@contextmanager
def file_size_limit(limit: int):
    """This process may not write a file past ``limit`` bytes (EFBIG, SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def epochs_in(path: Path) -> list[int]:
    return [r["epoch"] for r in read_rows(path)]


def test_a_failing_write_is_not_recording_keeps_the_rows_and_catches_up_in_order_without_a_torn_row(tmp_path):
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path, "eeg", "m")
    for k in range(3):
        hf.publish(rec(k))
    assert hf.recording and hf.rows_written == 3
    with file_size_limit(path.stat().st_size + 60):          # room for half a row
        hf.publish(rec(3))                                   # cut short by the limit, then EFBIG
        st = hf.recording_state()
        assert not st.recording and st.rows_pending == 1 and "too large" in st.error.lower()
        assert st.since is not None
        for k in range(4, 7):                                # each epoch retries, and fails again
            hf.publish(rec(k))
        assert hf.recording_state().rows_pending == 4 and not hf.recording
        assert epochs_in(path) == [0, 1, 2]                  # the torn row is not a row (yet)
    # the disk is back: between epochs the status tick retries (at most once a second)
    wait_for(lambda: (hf.status(None), hf.recording)[1], 5, "the retry on a status tick")
    st = hf.recording_state()
    assert st.recording and st.rows_pending == 0 and st.rows_written == 7 and st.error is None
    hf.publish(rec(7))
    hf.close()
    assert epochs_in(path) == list(range(8))
    assert not inspect_file(path).torn
    body = [ln for ln in path.read_text().splitlines()[1:] if not ln.startswith("#")]
    assert all(len(ln.split("\t")) == 12 for ln in body)    # the row cut short was finished, not torn


def test_rows_past_the_bound_are_given_up_counted_logged_and_said_in_the_file(tmp_path, caplog):
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path, max_pending=3)
    hf.publish(rec(0))
    with file_size_limit(path.stat().st_size):
        for k in range(1, 7):
            hf.publish(rec(k))
        st = hf.recording_state()
        assert (st.rows_pending, st.rows_lost) == (3, 3)
    assert "the oldest are given up from epoch 1" in caplog.text
    hf.publish(rec(7))
    hf.close()
    assert epochs_in(path) == [0, 4, 5, 6, 7]
    assert "# rows of epochs 1-3 were lost" in path.read_text()


def test_a_removed_file_is_made_again_and_a_replaced_foreign_file_is_never_written(tmp_path):
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path, "eeg", "m")
    hf.publish(rec(0))
    path.unlink()                                            # removed while scoring
    hf.publish(rec(1))
    assert hf.recording and epochs_in(path) == [1]
    assert "# session 1 continued after the file was removed" in path.read_text()
    path.unlink()
    path.write_text("my precious notes\n")                   # replaced by somebody's file
    hf.publish(rec(2))
    st = hf.recording_state()
    assert not st.recording and "not a hypnogram" in st.error and st.rows_pending == 1
    assert path.read_text() == "my precious notes\n"
    path.unlink()                                            # the mistake undone
    hf.publish(rec(3))
    hf.close()
    assert hf.recording and epochs_in(path) == [2, 3]


def test_one_file_one_writer_a_second_sink_on_a_locked_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "night.tsv"
    first = HypnogramFile(path)
    first.publish(rec(0))
    before = path.read_bytes()
    for attempt in (lambda: check_writable(path), lambda: HypnogramFile(path)):
        with pytest.raises(HypnogramFileError, match="another scorer is writing this hypnogram") as e:
            attempt()
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    assert path.read_bytes() == before
    first.close()
    HypnogramFile(path).close()                              # free again once the first has stopped


def test_the_gate_never_opens_on_an_epoch_whose_row_is_not_on_disk_and_reopens_after_catching_up(tmp_path):
    """The live command's order (the file, then the gate) with a real failing file."""
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path)
    gate = GateSink(FS, GateRule(epochs=1, guard=False), outlet_name=None, recording=lambda: hf.recording)
    sinks = [hf, gate]

    def publish(k: int) -> None:
        for s in sinks:
            s.publish(rec(k))

    publish(0)
    assert gate.is_open
    with file_size_limit(path.stat().st_size):
        publish(1)                                           # its row cannot be written: closes at once
        assert not gate.is_open and gate.history[-1][0].reason == "not recording"
        publish(2)
        publish(3)
        assert not gate.is_open
    publish(4)                                               # caught up: rows 1-4 on disk, then the gate
    assert hf.recording and gate.is_open and epochs_in(path) == [0, 1, 2, 3, 4]
    kinds = [(ev.kind, ev.reason, ev.epoch) for ev, _, _ in gate.history]
    assert kinds == [(CLOSE, "restart", None), (OPEN, "N2/N3 p>=0.80 x1", 0), (CLOSE, "not recording", 1),
                     (OPEN, "N2/N3 p>=0.80 x1", 4)]
    hf.close()


WRAPPER = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY)); "
           "from sleepstream.cli import main; sys.exit(main(sys.argv[2:]))")


@pytest.mark.lsl
@pytest.mark.timeout(150)
def test_live_process_with_a_failing_disk_says_not_recording_keeps_the_gate_closed_and_loses_no_row(tmp_path):
    player, stop_player, name, sid = start_sleep_player(speed=120.0)
    out = tmp_path / "night.tsv"
    n = 36
    limit = 1400                                             # the header and about 8 rows
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(limit), "live", "--source-id", sid, "--out", str(out),
                             "--no-outlets", "--status-json", "--gate", "epochs=1,guard=false,min_probability=0.5",
                             "--outlet-name", name + "-stim", "--epochs", str(n), "--timeout", "20"],
                            cwd=REPO, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "live.stderr", "w"), text=True)
    lines: queue.Queue[dict] = queue.Queue()
    got: list[dict] = []
    threading.Thread(target=lambda: [lines.put(json.loads(ln)) for ln in proc.stdout], daemon=True).start()

    def seen(cond) -> bool:
        while not lines.empty():
            got.append(lines.get())
        return any(cond(ln) for ln in got)

    try:
        wait_for(lambda: seen(lambda ln: ln["event"] == "status" and not ln["recording"] and ln["rows_pending"] >= 3),
                 90, "a status line saying NOT RECORDING with rows kept")
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        wait_for(lambda: seen(lambda ln: ln["event"] == "end"), 90, "the end of the session")
        assert proc.wait(30) == 0, (tmp_path / "live.stderr").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_player.set()
        player.join(10)
    assert epochs_in(out) == list(range(n))                  # every row, in order: nothing lost
    stderr = (tmp_path / "live.stderr").read_text()
    assert "NOT RECORDING" in stderr and "RECORDING again" in stderr
    statuses = [ln for ln in got if ln["event"] == "status"]
    assert statuses[-1]["recording"] and statuses[-1]["rows_pending"] == 0 and statuses[-1]["rows_lost"] == 0
    assert statuses[-1]["rows_written"] == n
    # no window opened on an epoch whose row was not on disk, and one open when it failed closed at once
    recorded = {ln["epoch"]: ln["recording"] for ln in got if ln["event"] == "epoch"}
    assert False in recorded.values()
    gates = [ln for ln in got if ln["event"] == "gate"]
    assert not [g for g in gates if g["kind"] == OPEN and not recorded[g["epoch"]]], gates
    first_bad = min(e for e, ok in recorded.items() if not ok)
    open_before = False                                      # was a window open when the disk failed?
    for ln in got:
        if ln["event"] in ("gate", "epoch") and ln["epoch"] is not None and ln["epoch"] >= first_bad:
            break
        if ln["event"] == "gate":
            open_before = ln["kind"] == OPEN
    if open_before:
        assert [g for g in gates if (g["kind"], g["reason"], g["epoch"]) == (CLOSE, "not recording", first_bad)]
