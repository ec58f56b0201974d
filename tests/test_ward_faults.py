"""`sleepstream ward` supervises hangs and reads what a slow pipe lost (issue 19).

Over real processes: a real `live` worker SIGSTOPped is killed and restarted within
--hang-timeout + 5 s, the bed shows it and the summary counts it, and a stream past
--max-beds is refused with one line and no worker (the ward command over real LSL, the
shipped model). With a stand-in worker (tests/ward_fake_worker.py: a real process
writing `live`'s lines, and real rows through the real hypnogram writer): epochs whose
lines were dropped (`seq` jumps, or for a worker without `seq` the epoch numbers) are
read from the bed's file; a line of a worker the ward already replaced (a dead worker's
late `open`) does not re-open the bed; a worker that floods holds at most
MAX_QUEUED_LINES lines in the ward's queue. And the file tail on real hypnogram files."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from live_helpers import REPO, model_dir, simulated_eeg, stop_in_bounded_time, wait_for  # noqa: F401

from scorer.hypnogram_file import HypnogramFile, read_rows
from scorer.records import ScoredEpoch
from scorer.ward.beds import BedSelector, StreamSeen
from scorer.ward.catchup import LineCount, TsvTail

pytestmark = pytest.mark.timeout(180)

FAKE = Path(__file__).resolve().parent / "ward_fake_worker.py"


def rec(k: int, stage: str = "N2") -> ScoredEpoch:
    p = [0.05] * 5
    p[("W", "N1", "N2", "N3", "REM").index(stage)] = 0.8
    return ScoredEpoch(k, 30.0 * k, 30.0 * k + 29.99, stage, tuple(p), 0.8, ("gap",) if k == 2 else (), 3.5)


# --------------------------------------------------------------------------- pure parts

def test_tsv_tail_reads_only_rows_appended_since_the_bed_was_found_complete_lines_only(tmp_path):
    path = tmp_path / "bed.tsv"
    h = HypnogramFile(path, "s", "m")               # an earlier session: 3 rows
    for k in range(3):
        h.publish(rec(k))
    h.close()
    tail = TsvTail(path)                            # the bed is found now
    h = HypnogramFile(path, "s", "m")               # its worker: session 2, epochs 3..7
    for k in range(5):
        h.publish(rec(k))
    h.close()
    with open(path, "a") as fh:
        fh.write("8\t240.0\t269.99\tN2")            # a row being written (no newline yet)
    got = tail.rows_after(3, before=6)              # the bed has up to 3; line 6 arrived
    assert [r.epoch for r in got] == [4, 5]
    assert got[0] == ScoredEpoch(4, 30.0, 59.99, "N2", (0.05, 0.05, 0.8, 0.05, 0.05), 0.8, (), 3.5)
    assert tail.rows_after(None) == [replace(rec(k), epoch=k + 3) for k in (3, 4)]   # 6 was left unread
    with open(path, "a") as fh:                     # the torn row completes
        fh.write("\t0.05\t0.05\t0.8\t0.05\t0.05\t0.8\t\t3.5\n")
    assert [r.epoch for r in tail.rows_after(7)] == [8]
    assert tail.rows_after(None) == []              # nothing new
    assert [r["epoch"] for r in read_rows(path)] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert TsvTail(tmp_path / "absent.tsv").rows_after(None) == []


def test_line_count_finds_dropped_lines_per_generation_and_ignores_lines_without_seq():
    c = LineCount()
    assert c.see(1, 0) == (True, 0)
    assert c.see(1, 1) == (False, 0)
    assert c.see(1, 5) == (False, 3)                # 2, 3, 4 dropped
    assert c.see(1, None) == (False, 0)             # an older worker: no seq, no verdict
    assert c.see(2, 0) == (True, 0)                 # a new worker numbers from its start
    assert c.see(2, 2) == (False, 1)
    assert c.lost == 4


@pytest.mark.parametrize("width", [80, 200])
def test_the_screen_shows_a_hung_worker_and_the_streams_refused_past_max_beds(width):
    from test_ward import screen_text, ward_state

    from scorer.ward.screen import render
    from scorer.ward.state import HUNG

    state = ward_state(n_beds=3, n_epochs=20)
    state.max_beds, state.refused_total = 3, 2
    b = state.beds[1]
    b.worker, b.retry_in_s, b.restarts, b.hangs = HUNG, 1.0, 1, 1
    lines = screen_text(render(state, width, 24, now_wall_s=1.8e9), width, 24)
    assert "3 beds · 2 refused (--max-beds 3)" in lines[0]
    row = next(ln for ln in lines if " bed-2 " in ln)
    assert "HUNG rst 1s" in row and row.rstrip().endswith("1")
    detail = screen_text(render(state, width, 24, selected=1, now_wall_s=1.8e9), width, 24)
    assert "worker hung, 1 restarts (1 hung)" in detail[-1]


# --------------------------------------------------------------------------- stand-in workers

def fake_ward(tmp_path: Path, mode: str, *args: str, **kw):
    """A real Ward whose one bed's worker is tests/ward_fake_worker.py MODE, its loop on a thread."""
    from scorer.ward.supervisor import Ward
    from scorer.ward.worker import WorkerOptions

    def command(sid, out, bed, opts, gate_file):
        return [sys.executable, str(FAKE), mode, str(out), *args]

    out = tmp_path / "ward"
    out.mkdir(exist_ok=True)
    ward = Ward(out, BedSelector(name_patterns=(f"none-{uuid.uuid4().hex}",)), WorkerOptions(find_timeout_s=5.0),
                command=command, **kw)
    return ward, ward.add_bed(StreamSeen("bed-1", "EEG", f"sid-{uuid.uuid4().hex}", 100.0))


def run_ward(ward) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    th = threading.Thread(target=ward.run, args=(stop,), daemon=True)
    th.start()
    return stop, th


@pytest.mark.lsl
@pytest.mark.parametrize("mode", ["drop", "drop-noseq"])
def test_epochs_whose_lines_a_worker_dropped_are_read_from_the_beds_file(tmp_path, mode):
    go = tmp_path / "go"
    ward, bed = fake_ward(tmp_path, mode, str(go))
    stop, th = run_ward(ward)
    try:
        if mode == "drop":   # seq jumped on the status line: epochs 3-5 from the file before any later epoch
            wait_for(lambda: bed.epochs == 6, 20, "the lost epochs from the file")
            assert bed.rows_from_file == 3 and bed.lines_lost == 3
        else:                # no seq: only epoch 6's number shows the hole
            wait_for(lambda: bed.epochs == 3 and ward.workers[bed.name].beat.lines >= 5, 20, "epochs 0-2")
        go.touch()
        wait_for(lambda: bed.epochs == 8, 20, "every epoch on the bed")
    finally:
        stop.set()
        th.join(30)
    rows = read_rows(bed.out_path)
    assert [r["epoch"] for r in rows] == list(range(8))
    assert bed.display.codes == [("W", "N1", "N2", "N3", "REM").index(r["stage"]) for r in rows]
    assert bed.rows_from_file == 3 and bed.duplicates == 0
    assert bed.last_record.epoch == 7 and bed.display.n_unscored == 0


@pytest.mark.lsl
def test_a_dead_workers_late_open_does_not_reopen_its_bed_after_the_restart(tmp_path):
    from scorer.ward.state import GateState

    ward, bed = fake_ward(tmp_path, "late-open", str(tmp_path), backoff_s=0.2)
    bed.gate = GateState("N2/N3 p>=0.80 x2")
    stop, th = run_ward(ward)
    w = ward.workers[bed.name]
    try:
        wait_for(lambda: bed.gate.open is True, 20, "the first worker's window to open")
        first = w.pid
        os.kill(first, signal.SIGKILL)               # its grandchild keeps the pipe (and a late `open`)
        wait_for(lambda: w.generation == 2 and bed.gate.reason == "restart", 20, "the restart's close")
        assert bed.gate.open is False and w.pid != first
        (tmp_path / "late").touch()                  # now the dead worker's `open` comes through its pipe
        wait_for(lambda: bed.stale_lines >= 1 or bed.gate.open, 20, "the late line to reach the ward")
        assert bed.gate.open is False, "a replaced worker's line re-opened the bed"
        assert bed.stale_lines == 1 and bed.gate.opens == 1
    finally:
        stop.set()
        th.join(30)
        (tmp_path / "late").touch()


@pytest.mark.lsl
def test_a_flooding_worker_holds_at_most_its_share_of_the_wards_queue_and_loses_nothing(tmp_path):
    from scorer.ward.worker import MAX_QUEUED_LINES

    n = 20 * MAX_QUEUED_LINES
    ward, bed = fake_ward(tmp_path, "flood", str(n))
    w = ward.workers[bed.name]
    try:   # the ward does not turn yet: its queue fills, then the reader waits on the worker's pipe
        wait_for(lambda: ward._events.qsize() > MAX_QUEUED_LINES or w.beat.waiting, 20, "the queue to fill")
        assert ward._events.qsize() == MAX_QUEUED_LINES
        assert w.silent_s(time.monotonic() + 3600) == 0.0        # a waiting reader is no hang
        stop, th = run_ward(ward)
        wait_for(lambda: w.beat.lines > n, 30, "every flooded line")
        stop.set()
        th.join(30)
    finally:
        ward.close()
    assert bed.lines_lost == 0 and ward._lines[bed.name].last_seq >= n
    assert bed.display.status is not None and bed.worker != "hung"


class Notes:
    """A ward view that keeps its notes (the real protocol; the log and screen views do the same)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, bed, message: str) -> None:
        self.notes.append(message)


@pytest.mark.lsl
def test_a_starting_worker_is_not_hung_a_silent_one_is_and_a_pause_of_the_ward_itself_is_no_hang(tmp_path):
    from scorer.ward.state import HUNG
    from scorer.ward.supervisor import PAUSE_S

    view = Notes()
    ward, bed = fake_ward(tmp_path, "slow-start", "2", hang_timeout_s=1.0, views=[view])
    w = ward.workers[bed.name]
    try:
        # 2 s without a line while it starts: within --find-timeout + 20 s, not a hang of 1 s
        wait_for(lambda: ward.step(0.05) or w.beat.lines >= 5, 20, "the worker's first lines")
        assert w.hangs == 0 and w.generation == 1 and w.running
        time.sleep(PAUSE_S + 0.5)       # the ward itself does not turn (stopped, suspended): its workers go unheard
        ward.step(0.0)
        assert w.silent_s(time.monotonic()) < 1.0, "a pause of the ward was taken for the worker's silence"
        t_resumed = time.monotonic()
        wait_for(lambda: ward.step(0.05) or bed.worker == HUNG, 20, "the silent worker to be killed as hung")
        assert time.monotonic() - t_resumed >= 1.0
    finally:
        ward.close()
    assert w.hangs == 1 and bed.hangs == 1 and bed.last_exit == "hung: no line for 1 s; killed"
    assert any(n.startswith("worker hung: no line for 1 s; killed; restart in ") for n in view.notes), view.notes


# --------------------------------------------------------------------------- the ward command, real LSL

class StdoutLines:
    """The ward's stdout lines, each with the monotonic time it was read."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.got: list[tuple[float, str]] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.got.append((time.monotonic(), line.rstrip("\n")))

    def having(self, text: str) -> list[tuple[float, str]]:
        return [(t, ln) for t, ln in list(self.got) if text in ln]


@pytest.mark.slow
@pytest.mark.lsl
def test_a_sigstopped_worker_is_killed_and_restarted_and_a_bed_past_max_beds_is_refused_once(tmp_path, model_dir):
    from test_ward_gate import ward_children

    from replay.player import Player, ReplaySource

    hang = 4.0
    tag = f"wh{uuid.uuid4().hex[:8]}"
    x, _ = simulated_eeg(100.0, 4, seed=61)
    stop = threading.Event()
    players = [Player(ReplaySource.from_arrays(x[:, None], 100.0, ["Fpz-Cz"]), name=f"{tag}-{b}",
                      source_id=f"{tag}-sid-{b}", speed=30.0, loop=True) for b in "AB"]
    for p in players:
        p.start(stop)
    out = tmp_path / "ward"
    ward = subprocess.Popen([sys.executable, "-m", "sleepstream.cli", "ward", "--name", f"{tag}-*", "--out", str(out),
                             "--no-display", "--no-outlets", "--weights", str(model_dir), "--find-timeout", "20",
                             "--hang-timeout", f"{hang:g}", "--max-beds", "1"], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = StdoutLines(ward)
    try:
        wait_for(lambda: lines.having(" epoch ") or ward.poll() is not None, 90, "the bed's first epoch")
        workers = ward_children(ward.pid)
        assert len(workers) == 1, workers              # one bed, one worker: the other stream refused
        (bed, pid), = workers.items()
        n_rows = len(read_rows(out / f"{bed}.tsv"))
        os.kill(pid, signal.SIGSTOP)                   # alive, silent: a hang
        t_stop = time.monotonic()
        wait_for(lambda: ward_children(ward.pid).get(bed, pid) != pid, hang + 30, "the hung worker's restart")
        restart_s = time.monotonic() - t_stop
        wait_for(lambda: len(read_rows(out / f"{bed}.tsv")) > n_rows + 1, 60, "the restarted worker's epochs")
    finally:
        if ward.poll() is None:
            ward.send_signal(signal.SIGTERM)
        try:
            _, stderr = ward.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            ward.kill()
            _, stderr = ward.communicate()
        stop.set()
        for p in players:
            p.join(10)
    assert restart_s <= hang + 5, f"restarted {restart_s:.1f} s after the SIGSTOP"
    assert not Path(f"/proc/{pid}").exists()           # the stopped process was killed (and reaped)
    hung = lines.having(f"{bed}")
    hung = [ln for _, ln in hung if f"worker hung: no line for {hang:g} s; killed; restart in " in ln]
    assert len(hung) == 1, lines.got
    refused = [ln for _, ln in lines.having("not followed: the ward follows 1 bed already (--max-beds 1)")]
    assert len(refused) == 1, lines.got                # once, though the ward looked every 0.5 s
    other = ({f"{tag}-A", f"{tag}-B"} - {bed}).pop()
    assert f"stream '{other}' (source_id {tag}-sid-{other[-1]})" in refused[0]
    assert not (out / f"{other}.tsv").exists()
    assert ward.returncode == 0, stderr[-2000:]
    summary = re.search(r"ward: 1 beds, \d+ epochs, (\d+) worker restarts, 1 worker killed as hung.*"
                        r"1 stream refused \(--max-beds 1\)", stderr)
    assert summary and int(summary.group(1)) >= 1, stderr[-1000:]


@pytest.mark.lsl
@pytest.mark.parametrize("flag, value, words", [("--hang-timeout", "1", "0 (off) or at least 2 s"),
                                                ("--hang-timeout", "nan", "0 (off) or at least 2 s"),
                                                ("--max-beds", "0", "at least 1")])
def test_bad_supervision_options_are_one_line_exit_2_before_any_folder(tmp_path, flag, value, words):
    out = tmp_path / "ward"
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "ward", "--out", str(out), "--no-display", flag, value],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    assert flag in r.stderr and words in r.stderr and not out.exists()


def fill_terminal(slave_path: str) -> int:
    """Write to the terminal until it takes no more (what a terminal nobody reads becomes).

    Through a descriptor of its own (non-blocking here only: the ward's stdout stays as it
    is). The kernel moves what waits in the pty's buffer to the master's line discipline a
    moment later, which makes room once more: filled again until two fills after a pause take
    nothing, so the terminal stays full. Returns the bytes written."""
    fd = os.open(slave_path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    n = 0
    empty = 0
    try:
        for _ in range(100):
            took = 0
            while True:
                try:
                    took += os.write(fd, b"." * 1024)
                except BlockingIOError:
                    break
            n += took
            empty = empty + 1 if not took and n else 0
            if empty == 2:
                return n
            time.sleep(0.1)              # let the kernel move the buffer on, then fill what it freed
        raise AssertionError("the terminal kept taking output: is somebody reading it?")
    finally:
        os.close(fd)


@pytest.mark.lsl
@pytest.mark.parametrize("view", ["screen", "no-display"])
def test_a_ward_whose_terminal_nobody_reads_still_finds_new_beds_and_stops_in_bounded_time(tmp_path, view):
    """The ward's stdout and stderr are a pty: once the ward is up, the terminal is filled
    and nobody reads it (a Ctrl-S'd or unread terminal). A bed that appears then still gets
    its worker (the ward's loop turns: scans, hang checks, restarts), the screen catches up
    when the terminal is read again, and SIGTERM ends the ward in bounded time."""
    from test_ward_gate import ward_children

    from replay.player import Player, ReplaySource
    from sleepstream.testing import UnreadTerminal

    tag = f"wt{uuid.uuid4().hex[:8]}"
    out = tmp_path / "ward"
    terminal = UnreadTerminal([sys.executable, "-m", "sleepstream.cli", "ward", "--name", f"{tag}-*", "--out",
                               str(out), "--no-outlets", "--find-timeout", "20",
                               *(["--no-display"] if view != "screen" else [])], cwd=REPO)
    ward, slave_path, seen = terminal.proc, terminal.tty_path, terminal.screen

    def read_some(text: bytes) -> bool:
        terminal.read()
        return text in seen

    stop = threading.Event()
    player = None
    try:
        up = b"waiting for streams" if view == "screen" else b"ward: following"
        wait_for(lambda: read_some(up) or ward.poll() is not None, 60, "the ward to start")
        assert ward.poll() is None, bytes(seen[-2000:])
        fill_terminal(slave_path)                  # from now on nobody reads the terminal
        assert not terminal.takes_output()
        x, _ = simulated_eeg(100.0, 4, seed=71)
        player = Player(ReplaySource.from_arrays(x[:, None], 100.0, ["Fpz-Cz"]), name=f"{tag}-new",
                        source_id=f"{tag}-sid", speed=1.0, loop=True)
        player.start(stop)
        wait_for(lambda: f"{tag}-new" in ward_children(ward.pid), 30,
                 "a worker for the bed that appeared while the terminal was stalled")
        assert not terminal.takes_output() and ward.poll() is None      # still stalled: the ward was not held up
        if view == "screen":                       # read again: the screen catches up with the new bed
            wait_for(lambda: read_some(f"{tag}-new".encode()), 30, "the new bed on the screen once read")
            fill_terminal(slave_path)              # and unread again for the ward's way out
        rc, took_s = stop_in_bounded_time(ward, 40, "the ward hung on its way out behind a terminal nobody reads")
        assert rc == 0 and took_s < 30
    finally:
        if ward.poll() is None:
            for pid in ward_children(ward.pid).values():
                os.kill(pid, signal.SIGKILL)
        terminal.close()
        stop.set()
        if player is not None:
            player.join(10)
