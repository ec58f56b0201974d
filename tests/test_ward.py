"""`sleepstream ward`: many beds at once, each scored by its own supervised `live` worker.

Real LSL on loopback, the shipped model, real worker processes: four beds replayed at
once at four rates (one with a signal dropout, one whose outlet dies and comes back with
the same source_id) all give the batch stages in their own hypnogram files; a worker
SIGKILLed mid-night is started again on the same file and no epoch is lost or repeated
in it; a bed that appears later is picked up and publishes on its own outlets what its
file holds. Plus bed naming and selection, and the screen at 80x24 and 200x60."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from live_helpers import REPO, model, model_dir, simulated_eeg, wait_for  # noqa: F401
from replay.player import Player, ReplaySource
from scorer.hypnogram_file import read_rows
from scorer.lsl_outlets import STAGE_SUFFIX, outlet_source_id
from scorer.ward.beds import BedSelector, StreamSeen, bed_name, sanitise
from sleepnet.batch import score_recording
from sleepnet.readers import Recording

pytestmark = pytest.mark.timeout(240)


# --------------------------------------------------------------------------- pure parts

def test_bed_names_are_safe_for_files_and_streams_and_unique():
    assert sanitise("Bed 3 / Fpz-Cz (Nihon Kohden)") == "Bed-3-Fpz-Cz-Nihon-Kohden"
    assert sanitise("../..") == "bed"
    assert len(sanitise("x" * 200)) == 40
    taken: set[str] = set()
    a = bed_name("EEG amp", "sid-1", taken)
    taken.add(a)
    b = bed_name("EEG amp", "sid-2", taken)
    taken.add(b)
    c = bed_name("EEG amp", "sid-2", taken)
    assert (a, b) == ("EEG-amp", "EEG-amp-sid-2")
    assert c not in taken and c.startswith("EEG-amp-")


def test_beds_are_chosen_by_type_name_pattern_and_source_id():
    s = StreamSeen("bed-4", "EEG", "amp-4", 256.0)
    assert BedSelector().matches(s)
    assert not BedSelector().matches(StreamSeen("bed-4", "EEG", "", 256.0))          # no source_id: no bed
    assert not BedSelector().matches(StreamSeen("bed-4-stage", "Markers", "x", 0.0))  # our own outlets
    assert BedSelector(name_patterns=("bed-*",)).matches(s)
    assert not BedSelector(name_patterns=("ward2-*", "icu-?")).matches(s)
    assert BedSelector(source_ids=("amp-1", "amp-4")).matches(s)
    assert not BedSelector(source_ids=("amp-1",)).matches(s)
    assert BedSelector(stream_type=None).matches(StreamSeen("x", "ExG", "y", 500.0))


# --------------------------------------------------------------------------- the ward

def batch_of(x_uv: np.ndarray, fs: float, model) -> list:
    return score_recording(Recording(np.asarray(x_uv, dtype=np.float32), fs, "Fpz-Cz", "bed"), model)


def assert_rows_are_batch(rows: list[dict], batch: list, what: str) -> None:
    """A bed's hypnogram rows equal batch scoring: epochs, stages, flags, probabilities
    (the file keeps 6 decimals)."""
    assert [r["epoch"] for r in rows] == [p.epoch for p in batch], what
    assert [r["stage"] for r in rows] == [p.stage for p in batch], what
    assert [tuple(r["flags"]) for r in rows] == [tuple(p.flags) for p in batch], what
    np.testing.assert_allclose([[r[f"p_{s}"] for s in ("W", "N1", "N2", "N3", "REM")] for r in rows],
                               [p.probabilities for p in batch], rtol=0, atol=2e-6, equal_nan=True,
                               err_msg=what)


def n_rows(path: Path) -> int:
    return len(read_rows(path)) if path.exists() else 0


def test_four_beds_at_once_each_scored_like_batch_a_killed_worker_restarts_losing_no_row_and_a_new_bed_joins(
        tmp_path, model, model_dir):
    from scorer.ward.log_view import WardLog
    from scorer.ward.supervisor import Ward
    from scorer.ward.worker import WorkerOptions

    tag = f"wt{uuid.uuid4().hex[:8]}"
    stop_all = threading.Event()
    players: list[Player] = []

    def play(x: np.ndarray, fs: float, bed: str, speed: float | None, **kw) -> Player:
        src = ReplaySource.from_arrays(x[:, None], fs, ["EEG Fpz-Cz"])
        stop = kw.pop("stop", stop_all)
        p = Player(src, name=f"{tag} {bed}", source_id=f"{tag}-{bed}", speed=speed, **kw)
        p.start(stop)
        players.append(p)
        return p

    # bed A, 100 Hz, as fast as it goes
    xa, _ = simulated_eeg(100.0, 5, seed=31)
    # bed B, 128 Hz, a dropout: the amplifier sends NaN for 12 s of epoch 2
    xb, _ = simulated_eeg(128.0, 5, seed=32)
    xb[2 * 3840 + 500: 2 * 3840 + 500 + 12 * 128] = np.nan
    # bed C, 250 Hz, 30x real time, looping: its worker is SIGKILLed mid-night
    xc, _ = simulated_eeg(250.0, 12, seed=33)
    # bed D, 256 Hz: the outlet dies in epoch 2 and returns with the same source_id, 250 samples on
    fs_d = 256.0
    xd, _ = simulated_eeg(fs_d, 6, seed=34)
    n1 = int(2.5 * 30 * fs_d)
    stop_d1 = threading.Event()
    play(xa, 100.0, "A", None, linger_s=60.0)
    play(xb, 128.0, "B", None, linger_s=60.0)
    pc = play(xc, 250.0, "C", 30.0, loop=True)
    pd1 = play(xd[:n1], fs_d, "D", None, linger_s=60.0, stop=stop_d1)

    out = tmp_path / "ward"
    out.mkdir()
    log_view = WardLog()
    ward = Ward(out, BedSelector(name_patterns=(f"{tag} *",)),
                WorkerOptions(weights=str(model_dir), find_timeout_s=20.0), [log_view], backoff_s=0.5)
    stop_ward = threading.Event()
    th = threading.Thread(target=ward.run, args=(stop_ward,), daemon=True)
    th.start()
    names = {b: sanitise(f"{tag} {b}") for b in "ABCDE"}
    tsv = {b: out / f"{names[b]}.tsv" for b in names}
    try:
        wait_for(lambda: len(ward.state.beds) == 4, 20, "four beds to be found")
        bed = {b.name: b for b in ward.state.beds}
        assert set(bed) == {names[b] for b in "ABCD"}

        # D: the first outlet's samples all arrive, then it dies; the stream returns 250 samples later
        bd = bed[names["D"]]
        wait_for(lambda: bd.display.status is not None and bd.display.status.samples_received == n1, 60,
                 "bed D's first outlet to be read")
        stop_d1.set()
        pd1.join(10)
        wait_for(lambda: bd.display.status.stalled, 20, "bed D's signal to be lost")
        play(xd[n1:], fs_d, "D", None, linger_s=60.0, t0=pd1.t0 + (n1 + 250) / fs_d)

        # C: SIGKILL its worker once it has written 3 epochs
        bc, wc = bed[names["C"]], ward.workers[names["C"]]
        wait_for(lambda: n_rows(tsv["C"]) >= 3, 60, "bed C's first epochs")
        pid = wc.pid
        os.kill(pid, signal.SIGKILL)
        before = tsv["C"].read_bytes()
        n_before = n_rows(tsv["C"])

        # E: a bed that appears while the ward runs; another LSL app follows its stage outlet
        xe, _ = simulated_eeg(100.0, 4, seed=35)
        pe = play(xe, 100.0, "E", 6.0, linger_s=30.0)
        wait_for(lambda: ward.state.bed(names["E"]) is not None, 20, "bed E to be found")
        sid_e = outlet_source_id(names["E"], STAGE_SUFFIX)
        found: list = []
        wait_for(lambda: found.extend(pylsl.resolve_byprop("source_id", sid_e, 1, 5.0)) or found, 20,
                 "bed E's stage outlet")
        inlet = pylsl.StreamInlet(found[0], recover=False)
        inlet.open_stream(5.0)
        stages_e: list[str] = []

        def all_done() -> bool:
            s, _ = inlet.pull_chunk(timeout=0.0)
            stages_e.extend(v[0] for v in s)
            return (n_rows(tsv["A"]) == 5 and n_rows(tsv["B"]) == 5 and n_rows(tsv["D"]) == 6
                    and n_rows(tsv["E"]) == 4 and len(stages_e) == 4 and wc.restarts == 1
                    and n_rows(tsv["C"]) >= n_before + 3)

        wait_for(all_done, 120, "every bed's epochs and bed C's restart")
        assert pe.error is None and pc.error is None
        del inlet
    finally:
        stop_ward.set()
        th.join(60)
        stop_all.set()
        for p in players:
            p.join(10)
    assert not th.is_alive()

    # every bed: exactly what batch scoring of its recording gives
    assert_rows_are_batch(read_rows(tsv["A"]), batch_of(xa, 100.0, model), "bed A (100 Hz)")
    rows_b = read_rows(tsv["B"])
    assert_rows_are_batch(rows_b, batch_of(xb, 128.0, model), "bed B (128 Hz, dropout)")
    assert "gap" in rows_b[2]["flags"]
    xd_gap = np.concatenate([xd[:n1], np.full(250, np.nan, np.float32), xd[n1:]])
    rows_d = read_rows(tsv["D"])
    assert_rows_are_batch(rows_d, batch_of(xd_gap, fs_d, model)[:6], "bed D (256 Hz, outlet died)")
    assert "gap" in rows_d[2]["flags"] and bd.display.status.gaps == 1
    assert_rows_are_batch(read_rows(tsv["E"]), batch_of(xe, 100.0, model), "bed E (added while running)")
    assert stages_e == [r["stage"] for r in read_rows(tsv["E"])]

    # C: the killed worker's rows stay as they were; the restart appends, numbering on
    after = tsv["C"].read_bytes()
    assert after.startswith(before) and "# session 2 started " in after.decode()
    rows_c = read_rows(tsv["C"])
    assert [r["epoch"] for r in rows_c] == list(range(len(rows_c)))           # none lost, none repeated
    ends = [r["end_time"] for r in rows_c]
    starts = [r["start_time"] for r in rows_c]
    assert all(s > e for s, e in zip(starts[1:], ends[:-1]))                  # no stretch scored twice
    assert_rows_are_batch(rows_c[:n_before], batch_of(xc, 250.0, model)[:n_before], "bed C before the kill")
    assert bc.restarts == 1 and bc.duplicates == 0 and "killed by signal 9" in (bc.last_exit or "")
    for b in ward.state.beds:
        assert b.duplicates == 0 and b.epochs == n_rows(b.out_path), b.name
    assert log_view.lines > 0


def test_ward_command_with_a_file_as_out_fails_in_one_line(tmp_path):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "ward", "--out", str(f), "--no-display"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "exists and is not a folder" in r.stderr
