"""No reader can stop the night (issue 19): the screen, ``--status-json`` lines and log
output are handed to writer threads through bounded queues; what a stalled reader cannot
take is dropped and counted, and scoring, the TSV, the outlets and the gate keep their pace.

Measured before: ``live --status-json`` into an unread pipe scored 169 of 960 epochs into
the TSV; a Ctrl-S'd terminal, 0 of 960 (NOTES.md, "Failing closed"). Here with real
``sleepstream live`` processes: stdout a pipe nobody reads, and stdout a pty nobody reads
(what a Ctrl-S'd or SIGSTOPped terminal is to the scorer)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from live_helpers import REPO, simulated_eeg, stop_in_bounded_time, unique_ids, wait_for

from scorer.bounded_output import BoundedWriter
from scorer.hypnogram_file import read_rows
from sleepstream.testing import UnreadTerminal

N_EPOCHS = 300              # a few hundred epochs at --speed max: seconds (the pipe holds ~190 epochs of lines)


def replay(n_epochs: int = N_EPOCHS):
    """A simulated night replayed at max speed on loopback (started; stop it with the event)."""
    from replay.player import Player, ReplaySource

    x, _ = simulated_eeg(100.0, n_epochs, seed=19)
    name, sid = unique_ids()
    player = Player(ReplaySource.from_arrays(x[:, None], 100.0, ["Fpz-Cz"]), name=name, source_id=sid,
                    speed=None, linger_s=120.0)
    stop = threading.Event()
    player.start(stop)
    return player, stop, sid


def live_cmd(sid: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sleepstream.cli", "live", "--source-id", sid, "--out", str(out), "--no-outlets",
            "--timeout", "20", *extra]


def read_what_is_there(fd: int) -> bytes:
    """Everything the pipe ``fd`` holds now, without waiting for more (``fd`` is left non-blocking)."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_bounded_writer_never_blocks_on_an_unread_pipe_counts_what_it_drops_and_closes_in_bounded_time():
    r, w = os.pipe()
    try:
        out = BoundedWriter(w, max_queued=8, name="test")
        line = "x" * 20_000 + "\n"
        t0 = time.monotonic()
        accepted = sum(out.offer(line) for _ in range(100))       # 2 MB into a 64-kB pipe
        offered_s = time.monotonic() - t0
        assert offered_s < 1.0                                    # it never waited for the reader
        assert out.dropped == 100 - accepted > 0
        t0 = time.monotonic()
        assert out.close(timeout_s=0.5) is False                  # the reader is dead: give up
        assert time.monotonic() - t0 < 1.5
        got = read_what_is_there(r)
        assert got.startswith(line.encode() * 3)                  # whole lines, in order
    finally:
        os.close(r)


def test_bounded_writer_counts_every_line_offered_from_several_threads_once_written_or_dropped():
    """Four threads log through one writer into a pipe a fifth drains, while its writer
    thread writes what was queued: every line offered is counted once, written or dropped.
    The threads are made to switch between any two bytecodes of ``offer`` and the writer
    thread's loop (an opcode tracer yields the GIL), so a counter bumped without the
    writer's lock loses counts (it did: about a third of them)."""
    offered, threads_n = 300, 4
    codes = {BoundedWriter.offer.__code__, BoundedWriter._run.__code__}

    def switch_often(frame, event, arg):
        if frame.f_code not in codes:
            return None
        frame.f_trace_opcodes, frame.f_trace_lines = True, False

        def each_opcode(frame, event, arg):
            if event == "opcode":
                time.sleep(0)                  # let another thread run here
            return each_opcode
        return each_opcode

    r, w = os.pipe()
    os.set_blocking(r, False)
    done = threading.Event()

    def drain():
        while not done.is_set():
            try:
                os.read(r, 1 << 16)
            except BlockingIOError:
                time.sleep(0.001)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    threading.settrace(switch_often)           # threads started from here on (the writer's too)
    try:
        writer = BoundedWriter(w, max_queued=20, name="test-counts")
        callers = [threading.Thread(target=lambda: [writer.offer("line\n") for _ in range(offered)])
                   for _ in range(threads_n)]
        for t in callers:
            t.start()
    finally:
        threading.settrace(None)
    try:
        for t in callers:
            t.join(60)
        assert writer.close(10), writer
        assert writer.written + writer.dropped == offered * threads_n, writer
        assert writer.written > 0, writer
    finally:
        done.set()
        reader.join(5)
        os.close(r)
        os.close(w)


def test_log_lines_to_a_stream_nobody_reads_never_block_and_are_counted():
    """While live runs, the root logger's console handlers are swapped for bounded ones on the
    same streams (and put back after)."""
    import logging

    from scorer.bounded_output import BoundedLogHandler, logging_without_blocking

    r, w = os.pipe()
    stream = os.fdopen(w, "w")
    plain = logging.StreamHandler(stream)
    lg = logging.getLogger("test-stalled-log")
    lg.addHandler(plain)
    lg.propagate = False
    try:
        with logging_without_blocking(("test-stalled-log",), wait_s=0.3) as handlers:
            assert plain not in lg.handlers and [type(h) for h in lg.handlers] == [BoundedLogHandler]
            t0 = time.monotonic()
            for k in range(3000):                                 # ~300 kB into a 64-kB pipe
                lg.warning("line %d %s", k, "x" * 90)
            assert time.monotonic() - t0 < 5.0
            assert handlers[0].dropped > 0
        assert lg.handlers == [plain]
    finally:
        lg.removeHandler(plain)
        os.close(r)                                               # the writer thread gets EPIPE
        stream.close()


@pytest.mark.lsl
@pytest.mark.timeout(120)
def test_status_json_into_a_pipe_nobody_reads_scores_every_epoch_into_the_tsv(tmp_path):
    player, stop, sid = replay()
    out = tmp_path / "night.tsv"
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(live_cmd(sid, out, "--status-json", "--epochs", str(N_EPOCHS)), cwd=REPO,
                                env=dict(os.environ), stdout=w, stderr=open(tmp_path / "live.stderr", "w"))
        os.close(w)
        try:
            rc = proc.wait(90)              # a bounded wait for the dead reader at the end, never a hang
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rows = len(read_rows(out)) if out.exists() else 0
            pytest.fail(f"live hung on its unread stdout: {rows} of {N_EPOCHS} epochs in the TSV")
        assert rc == 0, (tmp_path / "live.stderr").read_text()[-2000:]
        rows = read_rows(out)
        assert [r_["epoch"] for r_ in rows] == list(range(N_EPOCHS))
        data = read_what_is_there(r)
    finally:
        os.close(r)
        stop.set()
        player.join(10)
    lines = [json.loads(ln) for ln in data.decode().splitlines()]
    seqs = [ln["seq"] for ln in lines]
    assert seqs[0] == 0 and seqs == sorted(set(seqs))             # numbered from 0, in order
    statuses = [ln for ln in lines if ln["event"] == "status"]
    assert statuses and all({"dropped_lines", "recording", "rows_pending", "samples_received"} <= set(s)
                            for s in statuses)
    # what the pipe held is the first ~64 kB: the rest was dropped and numbered, not waited for
    assert len(data) <= 1 << 17 and len(lines) < 2 * N_EPOCHS


@pytest.mark.lsl
@pytest.mark.timeout(150)
def test_the_screen_on_a_pty_nobody_reads_never_stops_scoring_and_catches_up_when_read(tmp_path):
    """The terminal (stdout and stderr, a pty) is not read: every epoch reaches the TSV; a
    second scorer on the same file is refused; read again, the screen shows the latest
    epoch; left unread again and stopped, the scorer ends in bounded time (the final screen
    and summary wait at most 2 s each for a dead terminal)."""
    player, stop, sid = replay()
    out = tmp_path / "night.tsv"
    terminal = UnreadTerminal(live_cmd(sid, out), cwd=REPO)
    proc = terminal.proc
    try:
        # nobody reads the terminal: the pty's buffer (~17 kB) fills within a few frames
        wait_for(lambda: out.exists() and len(read_rows(out)) >= N_EPOCHS, 90,
                 f"{N_EPOCHS} epochs in the TSV behind a terminal nobody reads")
        assert proc.poll() is None
        assert [r["epoch"] for r in read_rows(out)] == list(range(N_EPOCHS))
        # a second scorer on the same --out is refused at once, with one line, and touches nothing
        state = out.with_name(out.name + ".state.json")

        def state_saved() -> bool:            # the state is written after each batch's rows
            try:
                saved = json.loads(state.read_text())["last_end_time"]
            except (OSError, ValueError, KeyError):
                return False
            return abs(saved - read_rows(out)[-1]["end_time"]) < 1e-3

        wait_for(state_saved, 10, "the night state of the last epoch")
        before = (out.read_bytes(), state.read_bytes())
        second = subprocess.run(live_cmd(sid, out, "--no-display"), cwd=REPO, env=dict(os.environ),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert str(out) in second.stderr and "another scorer" in second.stderr
        assert (out.read_bytes(), state.read_bytes()) == before
        # the terminal is read again: the screen catches up with the latest epoch
        last = f"epoch {N_EPOCHS - 1} "

        def read_some() -> bool:
            terminal.read()
            return last.encode() in terminal.screen[-200_000:]

        wait_for(read_some, 30, f"'{last}' on the screen once the terminal is read")
        # unread again until the pty is full (the 1-Hz redraws), then stopped: a bounded end
        wait_for(lambda: not terminal.takes_output(), 30, "the terminal to fill up again")
        rc, took_s = stop_in_bounded_time(proc, 30, "live hung on its way out behind a terminal nobody reads")
        assert rc == 0 and took_s < 15, (rc, bytes(terminal.screen[-3000:]))
    finally:
        terminal.close()
        stop.set()
        player.join(10)
