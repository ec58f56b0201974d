"""Reliability: the faults of real nights thrown at the live path, bad input thrown at
every command, and the scorer killed in the middle of a night.

Everything runs for real: LSL outlets and inlets on loopback, the real streamer and
scorer objects, the real model, and the ``sleepstream`` command line as subprocesses.
The live-path tests push the signal into an outlet by hand with explicit timestamps, so
each fault (a freeze, a clock jump, a rate that is not the nominal one...) is exactly
what the test says; the reference is always batch scoring of the same samples with the
missing ones as NaN, which is what the live path must equal to 1e-5.

Faults already pinned elsewhere are not repeated here: a clean outlet restart, NaN/Inf
and one clipped epoch (test_live), gaps and stalls at the stream level (test_streamer).
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl
import pytest
from live_helpers import (  # noqa: F401
    REPO,
    CollectSink,
    PipeText,
    assert_same_as_batch,
    batch_scores,
    model,
    model_dir,
    simulated_eeg,
    unique_ids,
    wait_for,
    write_simulated,
)

from scorer.hypnogram_file import COLUMNS, HEADER, HypnogramFile, read_rows
from scorer.live import LiveScorer
from scorer.records import ScoredEpoch
from sleepnet.io.recordings import write_continuous_npz
from sleepnet.stages import STAGES, UNSCORED_NAME
from streamer.resolve import StreamQuery, resolve_stream
from streamer.stream import EEGStream

pytestmark = pytest.mark.timeout(120)

EPOCH = 3000  # samples per 30-s epoch at 100 Hz


# --------------------------------------------------------------------------- helpers

def assert_never_invented(records) -> None:
    """Unscored epochs carry no stage and no probabilities; scored ones are proper."""
    for r in records:
        if r.stage == UNSCORED_NAME:
            assert np.isnan(r.probabilities).all() and np.isnan(r.confidence) and r.flags, r
        else:
            assert r.stage in STAGES and sum(r.probabilities) == pytest.approx(1.0, abs=1e-6)


@dataclass
class Scoring:
    stream: EEGStream
    scorer: LiveScorer
    sink: CollectSink
    thread: threading.Thread | None = None
    summary: list = field(default_factory=list)
    errors: list = field(default_factory=list)


class Rig:
    """An LSL outlet this test pushes into by hand, and one live scorer per entry of
    ``scorers`` (keyword arguments of :class:`EEGStream`) reading it in threads."""

    def __init__(self, model, labels=("EEG Fpz-Cz",), fs: float = 100.0, units: str = "microvolts",
                 scorers: tuple[dict, ...] = ({},)) -> None:
        self.fs = fs
        self.name, self.sid = unique_ids()
        info = pylsl.StreamInfo(self.name, "EEG", len(labels), fs, "float32", self.sid)
        info.set_channel_labels(list(labels))
        info.set_channel_units([units] * len(labels))
        self.outlet = pylsl.StreamOutlet(info, 0, 3600)
        found = resolve_stream(StreamQuery(source_id=self.sid), 5.0)
        self.stop = threading.Event()
        self.runs: list[Scoring] = []
        for kw in scorers:
            kw = {"max_buflen_s": 3600, "stall_timeout_s": 0.5, **kw}
            stream = EEGStream(found, **kw)
            stream.connect(5.0)
            # subscribed before anything is pushed: connect() goes on (with a warning) when
            # the outlet answers the subscription late, and samples pushed before the
            # answer never reach this inlet (liblsl's open_stream waits for the answer,
            # at once when it came)
            stream._inlet.open_stream(timeout=30.0)
            sink = CollectSink()
            scorer = LiveScorer(stream, model, [sink], status_every_s=0.1)
            run = Scoring(stream, scorer, sink)
            run.thread = threading.Thread(target=self._score, args=(run,), daemon=True)
            self.runs.append(run)
        for run in self.runs:
            run.thread.start()

    def _score(self, run: Scoring) -> None:
        try:
            run.summary.append(run.scorer.run(stop=self.stop, poll_s=0.05))
        except BaseException as exc:  # surfaced by finish()
            run.errors.append(exc)

    def push(self, x: np.ndarray, stamps: np.ndarray, chunk: int = 250) -> None:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        for a in range(0, len(x), chunk):
            self.outlet.push_chunk(x[a:a + chunk], np.asarray(stamps[a:a + chunk], dtype=float).tolist())

    def wait_epochs(self, n: int, timeout: float = 30.0) -> None:
        wait_for(lambda: all(len(r.sink.records) >= n or r.errors for r in self.runs), timeout, f"{n} epochs")

    def finish(self) -> list:
        self.stop.set()
        for run in self.runs:
            run.thread.join(10)
            run.scorer.close()
        for run in self.runs:
            assert not run.errors, run.errors
        del self.outlet
        return [run.summary[0] for run in self.runs]

    @property
    def records(self) -> list[ScoredEpoch]:
        return self.runs[0].sink.records


@pytest.fixture
def make_rig(model):
    """Rig factory; whatever a failing test leaves running is stopped afterwards."""
    made: list[Rig] = []

    def make(**kw) -> Rig:
        made.append(Rig(model, **kw))
        return made[-1]

    yield make
    for rig in made:
        rig.stop.set()
        for run in rig.runs:
            run.thread.join(10)


def night(fs: float, n_epochs: int, seed: int) -> np.ndarray:
    return simulated_eeg(fs, n_epochs, seed=seed)[0].astype(np.float64)


# --------------------------------------------------------------------------- live-path faults

@pytest.mark.lsl
def test_frozen_outlet_is_signal_lost_then_its_silence_becomes_an_unscored_gap(make_rig, model):
    """An amplifier that freezes for 12 s (the outlet stays up, nothing flows, no LSL
    error ever comes) and then resumes on its own clock."""
    fs = 100.0
    x = night(fs, 8, seed=31)
    cut, frozen = int(2.5 * EPOCH), 1200                  # freezes mid-epoch 2 for 12 s of signal
    # the product's 2-s stall timer (not the rig's 0.5 s): the scorer is stopped well before
    # the silence after the last sample could count as a second stall
    rig = make_rig(scorers=({"stall_timeout_s": 2.0},))
    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(len(x)) / fs
    stamps[cut:] += frozen / fs
    rig.push(x[:cut], stamps[:cut])
    rig.wait_epochs(2)
    sink = rig.runs[0].sink
    wait_for(lambda: any(s.stalled for s in sink.statuses), 10, "'signal lost'")
    rig.push(x[cut:], stamps[cut:])
    expected = (len(x) + frozen) // EPOCH
    rig.wait_epochs(expected)
    wait_for(lambda: any(s.samples_received == len(x) for s in sink.statuses), 10,
             "a status after every sample came back")
    (summary,) = rig.finish()
    ref = np.insert(x, cut, np.full(frozen, np.nan))
    assert_same_as_batch(rig.records, batch_scores(ref, fs, model))
    r = rig.records
    assert len(r) == expected == 8
    assert r[2].stage == UNSCORED_NAME and "gap" in r[2].flags    # 40 % of it missing
    assert r[3].stage in STAGES and "warmup" in r[3].flags         # context restarted after it
    assert summary.stalls == 1 and summary.gaps == 1 and summary.samples_missing == frozen
    assert not sink.statuses[-1].stalled
    assert_never_invented(r)


@pytest.mark.lsl
def test_bursts_of_nan_are_gaps_scored_below_a_quarter_missing_and_unscored_above(make_rig, model):
    """Dropouts of 0.2 s scattered through the night, across chunk and epoch boundaries,
    on the scored channel (and worse on a channel that is not scored)."""
    fs = 250.0
    n = int(30 * fs)
    fpz = night(fs, 6, seed=32)
    other = night(fs, 6, seed=33)
    rng = np.random.default_rng(0)

    def bursts(sig: np.ndarray, epoch: int, count: int, length: int) -> None:
        starts = rng.choice(np.arange(epoch * n, (epoch + 1) * n - length, length), count, replace=False)
        for s in starts:
            sig[s:s + length] = rng.choice([np.nan, np.inf, -np.inf])

    bursts(fpz, 1, 30, 50)            # 1500 of 7500 samples: 20 % missing -> scored, flagged
    bursts(fpz, 3, 40, 50)            # 2000 of 7500: 27 % missing -> unscored
    fpz[2 * n - 20: 2 * n + 20] = np.nan  # across the epoch 1/2 boundary
    other[:] = np.where(rng.random(len(other)) < 0.5, np.nan, other)  # half of the other channel lost
    rig = make_rig(labels=("EEG Pz-Oz", "EEG Fpz-Cz"), fs=fs)
    rig.push(np.stack([other, fpz], axis=1), pylsl.local_clock() + np.arange(len(fpz)) / fs, chunk=97)
    rig.wait_epochs(6)
    (summary,) = rig.finish()
    assert_same_as_batch(rig.records, batch_scores(fpz, fs, model))
    r = rig.records
    assert r[1].stage in STAGES and "gap" in r[1].flags
    assert r[3].stage == UNSCORED_NAME and "gap" in r[3].flags
    assert "warmup" in r[4].flags and r[4].stage in STAGES
    assert "gap" not in r[0].flags and "gap" not in r[5].flags     # the other channel's losses never leak in
    assert summary.gaps == 0                                         # NaN sent is not a timestamp gap
    assert_never_invented(r)


@pytest.mark.lsl
def test_saturating_amplifier_is_flagged_clipped_and_unscored_once_mostly_railed(make_rig, model):
    """An amplifier with a +-187.5 µV range (e.g. a 16-bit, 5.7 nV/bit front end): a loud
    epoch clips now and then, a louder one sits on the rails, spikes of movement
    artefact reach thousands of µV."""
    fs = 100.0
    x = night(fs, 7, seed=34)
    rail = 187.5
    loud = x[1 * EPOCH:2 * EPOCH]
    loud *= rail / np.percentile(np.abs(loud), 90)                  # ~10 % of it clips
    x[3 * EPOCH + 900:4 * EPOCH] *= 1e3                              # 70 % of it on the rails
    x = np.clip(x, -rail, rail)
    x[5 * EPOCH + 100:5 * EPOCH + 160] += 3000                      # a movement artefact
    rig = make_rig()
    rig.push(x, pylsl.local_clock() + np.arange(len(x)) / fs)
    rig.wait_epochs(7)
    rig.finish()
    assert_same_as_batch(rig.records, batch_scores(x, fs, model))
    r = rig.records
    assert r[1].stage in STAGES and "clipped" in r[1].flags
    assert r[3].stage == UNSCORED_NAME and "clipped" in r[3].flags
    assert "artefact" in r[5].flags
    assert set(r[0].flags) <= {"warmup"} and set(r[6].flags) <= {"warmup"}   # clean epochs stay clean
    assert_never_invented(r)


@pytest.mark.lsl
def test_unplugged_electrode_flat_then_railing_is_never_given_a_stage(make_rig, model):
    """The electrode comes off: the amplifier first reads a flat DC offset, then drifts
    onto its positive rail, then the electrode is put back."""
    fs = 256.0
    n = int(30 * fs)
    x = night(fs, 9, seed=36)
    off, back = int(2.4 * n), int(6.3 * n)
    x[off:off + int(1.7 * n)] = -41.0                               # flat: DC offset only
    x[off + int(1.7 * n):back] = 3276.7                             # stuck on the rail
    rig = make_rig(fs=fs)
    rig.push(x, pylsl.local_clock() + np.arange(len(x)) / fs, chunk=512)
    rig.wait_epochs(9)
    rig.finish()
    assert_same_as_batch(rig.records, batch_scores(x, fs, model))
    r = rig.records
    assert [e.stage for e in r[3:6]] == [UNSCORED_NAME] * 3
    assert "flat" in r[3].flags and "flat" in r[5].flags     # DC offset; then the rail, constant too
    assert "clipped" in r[4].flags                           # from the offset onto the rail
    assert "clipped" in r[6].flags and r[6].stage in STAGES  # 30 % still on the rail: flagged, scored
    assert r[0].stage in STAGES and r[1].stage in STAGES
    assert r[7].stage in STAGES and "warmup" in r[7].flags        # scoring restarts once it is back
    assert_never_invented(r)


@pytest.mark.lsl
def test_volts_announced_as_microvolts_are_unscored_flat_and_the_units_override_scores_them(make_rig, model):
    """A driver that sends volts but labels them µV: amplitudes of 1e-5 'µV' look like a
    flat line and nothing is scored; ``--units V`` (EEGStream(units='V')) fixes it."""
    fs = 100.0
    x_uv = night(fs, 4, seed=37)
    rig = make_rig(scorers=({}, {"units": "V"}))
    rig.push(x_uv * 1e-6, pylsl.local_clock() + np.arange(len(x_uv)) / fs)
    rig.wait_epochs(4)
    declared, overridden = rig.finish()
    as_declared = rig.runs[0].sink.records
    assert [e.stage for e in as_declared] == [UNSCORED_NAME] * 4
    assert all("flat" in e.flags for e in as_declared)
    assert rig.runs[0].stream.description.scale_to_uv == 1.0
    assert rig.runs[1].stream.description.scale_to_uv == 1e6
    # float32 volts carry ~7 digits: the override equals batch of the µV signal closely
    as_sent = (x_uv * 1e-6).astype(np.float32).astype(np.float64) * 1e6
    assert_same_as_batch(rig.runs[1].sink.records, batch_scores(as_sent, fs, model))
    assert declared.epochs == overridden.epochs == 4


@pytest.mark.lsl
@pytest.mark.parametrize("real_rate", [97.0, 103.0])
def test_stream_whose_real_rate_is_not_its_nominal_rate_is_cut_by_counting_without_false_gaps(make_rig, model,
                                                                                             real_rate):
    """A 100-Hz amplifier whose crystal runs 3 % slow or fast, stamping its samples by its
    own clock: no gaps are invented, epochs hold 3000 samples each, and their times are
    the real ones."""
    fs = 100.0
    x = night(fs, 4, seed=38)
    rig = make_rig(fs=fs)
    t0 = pylsl.local_clock()
    rig.push(x, t0 + np.arange(len(x)) / real_rate)
    rig.wait_epochs(4)
    (summary,) = rig.finish()
    assert_same_as_batch(rig.records, batch_scores(x, fs, model))
    assert summary.gaps == 0 and summary.samples_missing == 0
    spans = [r.end_time - r.start_time for r in rig.records]
    np.testing.assert_allclose(spans, (EPOCH - 1) / real_rate, atol=1e-4)
    np.testing.assert_allclose(rig.records[3].start_time - t0, 3 * EPOCH / real_rate, atol=2e-3)


@pytest.mark.lsl
@pytest.mark.parametrize("jump_s, fill_cap_s, filled", [
    (95.5, None, 9550),               # the clock steps forward: 95.5 s are missing
    (-600.0, None, 1),                # steps back (a source restarted on another clock): a break,
                                      # one missing sample (gap flag, the gate closes), then counted on
    (3 * 86400.0, 60.0, 6000),        # forward by days: only max_gap_fill_s is filled
])
def test_clock_jump_in_the_timestamps_is_a_bounded_gap_forward_and_a_one_sample_break_backward(
        make_rig, model, jump_s, fill_cap_s, filled):
    fs = 100.0
    x = night(fs, 6, seed=39)
    at = int(2.2 * EPOCH) + 17
    kw = {} if fill_cap_s is None else {"max_gap_fill_s": fill_cap_s}
    rig = make_rig(fs=fs, scorers=(kw,))
    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(len(x)) / fs
    stamps[at:] += jump_s
    rig.push(x, stamps)
    expected = (len(x) + filled) // EPOCH
    rig.wait_epochs(expected)
    (summary,) = rig.finish()
    ref = np.insert(x, at, np.full(filled, np.nan)) if filled else x
    assert_same_as_batch(rig.records, batch_scores(ref, fs, model))
    assert len(rig.records) == expected
    assert summary.samples_missing == filled and summary.gaps == (1 if filled else 0)
    assert_never_invented(rig.records)
    if jump_s < 0:
        assert rig.records[3].start_time < rig.records[1].start_time   # times follow the source's clock


# --------------------------------------------------------------------------- processes killed

def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sleepstream.cli", *map(str, args)]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(cli(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_once(path: Path) -> list[dict]:
    """The epoch rows of a live hypnogram file, after checking that every line is whole
    and no epoch number appears twice."""
    text = path.read_text()
    assert text.startswith(HEADER + "\n") and text.endswith("\n")
    body = [ln for ln in text.splitlines()[1:] if ln and not ln.startswith("#")]
    assert all(len(ln.split("\t")) == len(COLUMNS) for ln in body), "a torn or partial row"
    rows = read_rows(path)
    epochs = [r["epoch"] for r in rows]
    assert epochs == list(range(len(rows))), "every epoch on disk exactly once, in order"
    return rows


def stop_all(*procs: subprocess.Popen | None) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)


@pytest.mark.lsl
def test_scorer_outlives_its_source_killed_with_sigkill_and_carries_on_when_it_returns(tmp_path, model_dir):
    """`sleepstream replay` killed -9 in the middle of the night (no clean close, the
    TCP link just dies), started again later with the same source_id: the running
    `sleepstream live` says the signal is lost, keeps its hypnogram, and resumes."""
    rec = write_simulated(tmp_path / "night.npz", 100.0, 6, seed=12)
    name, sid = unique_ids()
    out = tmp_path / "night.tsv"
    replay_args = ("replay", rec, "--speed", "100", "--loop", "--name", name, "--source-id", sid, "--quiet")
    source = start(*replay_args)
    scorer = subprocess.Popen(cli("live", "--source-id", sid, "--out", out, "--no-display", "--weights", model_dir,
                                  "--outlet-name", name + "-scorer", "--timeout", "30"),
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = PipeText(scorer.stderr)
    source2 = None
    try:
        wait_for(lambda: out.exists() and len(read_rows(out)) >= 3 or scorer.poll() is not None, 90,
                 "the first epochs")
        assert scorer.poll() is None, stderr.rest()
        source.send_signal(signal.SIGKILL)
        source.wait(10)
        # past the 2-s stall timer ("signal lost"), the scorer is still running
        wait_for(lambda: "signal lost" in stderr.text() or scorer.poll() is not None, 30, "'signal lost'")
        assert scorer.poll() is None, f"the scorer must outlive its source: {stderr.rest()}"
        n_before = len(read_rows(out))
        source2 = start(*replay_args)
        wait_for(lambda: len(read_rows(out)) >= n_before + 3 or scorer.poll() is not None, 60,
                 "epochs after the source came back")
        assert scorer.poll() is None, stderr.rest()
        scorer.send_signal(signal.SIGTERM)                # a clean stop, as Ctrl-C
        scorer.wait(30)
        err = stderr.rest()
    finally:
        stop_all(scorer, source, source2)
    assert scorer.returncode == 0, err
    assert "Traceback" not in err
    assert "lost" in err and "is back" in err
    rows = rows_once(out)
    assert len(rows) >= n_before + 3
    assert all(r["stage"] in STAGES or r["flags"] for r in rows)   # unscored rows say why


@pytest.mark.lsl
def test_scorer_killed_mid_night_restarts_on_the_same_out_with_every_epoch_on_disk_once(tmp_path, model_dir):
    """SIGKILL while epochs arrive several times a second (a fast replay), then the same
    command again: what was on disk stays byte for byte, nothing is scored twice (the
    new session starts where the stream is now), and scoring goes on."""
    rec = write_simulated(tmp_path / "night.npz", 100.0, 6, seed=13)
    name, sid = unique_ids()
    out = tmp_path / "night.tsv"
    source = start("replay", rec, "--speed", "300", "--loop", "--name", name, "--source-id", sid, "--quiet")
    args = ("live", "--source-id", sid, "--out", out, "--no-display", "--weights", model_dir,
            "--outlet-name", name + "-scorer", "--timeout", "30")
    scorer = start(*args)
    try:
        wait_for(lambda: out.exists() and len(read_rows(out)) >= 12 or scorer.poll() is not None, 90,
                 "a dozen epochs")
        scorer.send_signal(signal.SIGKILL)
        scorer.wait(10)
        before = out.read_bytes()
        first = rows_once(out)
        again = subprocess.run(cli(*args, "--epochs", "4"), cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        stop_all(scorer, source)
    assert again.returncode == 0, again.stderr
    assert out.read_bytes().startswith(before), "the restart appends, never rewrites"
    rows = rows_once(out)
    assert len(rows) == len(first) + 4
    assert rows[len(first)]["start_time"] > first[-1]["end_time"], "no stretch of signal is scored twice"
    assert out.read_text().count("# session ") == 2


# --------------------------------------------------------------------------- bad input to every command

@dataclass(frozen=True)
class Case:
    """One command line fed something bad. ``expect``: text of the one error line (or,
    with ``rc=0``, of the one WARNING line); ``files``: files that must be untouched."""

    id: str
    args: tuple[str, ...]
    expect: str
    rc: int = 2
    untouched: tuple[str, ...] = ()


def _write_edf(path: Path, label: str, x_uv: np.ndarray, sfreq: float) -> Path:
    from edfio import Edf, EdfSignal

    lim = float(np.ceil(np.abs(x_uv).max() * 1.1 + 1))
    Edf([EdfSignal(np.asarray(x_uv, dtype=np.float64), sfreq, label=label, physical_dimension="uV",
                   physical_range=(-lim, lim))], data_record_duration=1.0).write(path)
    return path


def bad_inputs(d: Path, weights: Path) -> dict[str, Path]:
    """Every bad file of the matrix, made once."""
    import torch

    from sleepnet.models.cnn_lstm import CausalSleepNet, ModelConfig

    fs = 100.0
    x = simulated_eeg(fs, 3, seed=41)[0]
    f: dict[str, Path] = {}
    f["good.npz"] = d / "good.npz"
    write_continuous_npz(f["good.npz"], x, fs, np.array([0, 1, 2], dtype=np.int8))
    f["unlabelled.npz"] = d / "unlabelled.npz"
    write_continuous_npz(f["unlabelled.npz"], x, fs)
    f["good.edf"] = _write_edf(d / "good.edf", "EEG Fpz-Cz", x, fs)
    data = f["good.edf"].read_bytes()
    f["truncated.edf"] = d / "truncated.edf"
    f["truncated.edf"].write_bytes(data[: len(data) * 2 // 3])
    f["c3.edf"] = _write_edf(d / "c3.edf", "EEG C3", x, fs)
    f["nosignal.npz"] = d / "nosignal.npz"
    np.savez(f["nosignal.npz"], y=np.zeros(3))
    f["windows.npz"] = d / "windows.npz"
    np.savez(f["windows.npz"], X=np.zeros((3, 2999), dtype=np.float32))       # not 3000 samples
    f["eeg2d.npz"] = d / "eeg2d.npz"
    np.savez(f["eeg2d.npz"], eeg=np.zeros((2, 4500), dtype=np.float32), sfreq=100.0)
    for name, text in {"unknown.txt": "W\nN1\nS5\n", "short.txt": "W\n", "long.txt": "W\nN1\nN2\nN2\nN3\nN3\n",
                       "outside.txt": "?\n?\n?\n"}.items():
        f[name] = d / name
        f[name].write_text(text)
    # folders for `train --dataset folder`: a recording beside its hypnogram
    for name, src in (("folder-truncated", "truncated.edf"), ("folder-c3", "c3.edf")):
        f[name] = d / name
        f[name].mkdir()
        shutil.copy(f[src], f[name] / "night1.edf")
        shutil.copy(f["short.txt"], f[name] / "night1-hypnogram.txt")
    from sleepnet.weights import weights_root

    cnn = weights_root() / "cnn-lstm-simulated-v2"
    f["corrupt-weights"] = d / "corrupt-weights"
    shutil.copytree(cnn, f["corrupt-weights"])
    (f["corrupt-weights"] / "model_weights.pth").write_bytes(b"PK\x03\x04 this is not a state dict")
    f["other-weights"] = d / "other-weights"                 # a state dict of another architecture
    shutil.copytree(cnn, f["other-weights"])
    torch.save(CausalSleepNet(ModelConfig(embed_dim=64)).state_dict(), f["other-weights"] / "model_weights.pth")
    f["corrupt-trees"] = d / "corrupt-trees"                   # the default model, its trees damaged
    shutil.copytree(weights, f["corrupt-trees"])
    (trees,) = f["corrupt-trees"].rglob("model.txt")           # the ensemble's trees are in its gbm/ member
    trees.write_text("tree\nversion=v4\nnum_class=5\n")
    f["unknown-kind"] = d / "unknown-kind"                     # a kind this code does not run
    shutil.copytree(weights, f["unknown-kind"])
    cfg = json.loads((f["unknown-kind"] / "config.json").read_text())
    (f["unknown-kind"] / "config.json").write_text(json.dumps({**cfg, "kind": "transformer"}))
    for name, X, y in (("features-wrong-shape", np.zeros((40, 5)), np.zeros(40)),          # 5 columns, not 72
                       ("features-no-scored", np.zeros((40, 72)), -np.ones(40)),         # nothing scored
                       ("features-good", np.zeros((40, 72)), np.arange(40) % 5)):
        f[name] = d / name
        f[name].mkdir()
        np.savez(f[name] / "SC4991E0.npz", X=X, y=y.astype(np.int64))
    f["afile"] = d / "afile"                                   # a file where a folder is needed
    f["afile"].write_text("not a folder\n")
    f["notes.tsv"] = d / "notes.tsv"                           # somebody's file, not a hypnogram
    f["notes.tsv"].write_text("my precious notes\n")
    f["night.tsv"] = d / "night.tsv"                           # a scored night for `report`
    hf = HypnogramFile(f["night.tsv"], "s", "m")
    for i, stage in enumerate(("W", "N1", "N2")):
        p = tuple(0.9 if s == stage else 0.025 for s in STAGES)
        hf.publish(ScoredEpoch(i, 30.0 * i, 30.0 * i + 29.99, stage, p, 0.9, (), 1.0))
    hf.close()
    return f


def cases(f: dict[str, Path], sid: str, w: Path) -> list[Case]:
    s = {k: str(v) for k, v in f.items()}
    W = ("--weights", str(w))
    out = str(f["afile"] / "out")              # under a file: cannot be written
    return [
        # score
        Case("score-truncated-edf", ("score", s["truncated.edf"], "--quiet", *W), "truncated"),
        Case("score-wrong-shape", ("score", s["windows.npz"], "--quiet", *W), "has shape (3, 2999)"),
        Case("score-unknown-hypnogram", ("score", s["good.npz"], "--hypnogram", s["unknown.txt"], *W),
             "unknown stage 'S5' on epoch 2"),
        Case("score-hypnogram-outside", ("score", s["good.npz"], "--hypnogram", s["outside.txt"], *W),
             "no scored epoch inside the recording's 3 epochs"),
        Case("score-hypnogram-short", ("score", s["good.npz"], "--hypnogram", s["short.txt"], "--quiet", *W,
                                       "--out", str(f["good.npz"].parent / "short.csv")),
             "hypnogram has 1 epochs, the recording 3 complete 30-s epochs; the last 2 epochs are unscored", rc=0),
        Case("score-corrupt-weights", ("score", s["good.npz"], "--weights", s["corrupt-weights"], "--quiet",
                                       "--out", str(f["good.npz"].parent / "c.csv")), "corrupt or unreadable"),
        # train
        Case("train-truncated-edf", ("train", "--dataset", "folder", "--folder", s["folder-truncated"],
                                     "--quiet", "--out", str(f["good.npz"].parent / "wt")), "truncated"),
        Case("train-edf-without-channel", ("train", "--dataset", "folder", "--folder", s["folder-c3"],
                                           "--quiet", "--out", str(f["good.npz"].parent / "wt")),
             "no channel matching 'Fpz-Cz'; it has: EEG C3"),
        Case("train-features-wrong-shape", ("train", "--folder", s["features-wrong-shape"], "--quiet",
                                            "--out", str(f["good.npz"].parent / "wt")), "expected X (n_epochs, 72)"),
        Case("train-features-no-scored-epoch", ("train", "--folder", s["features-no-scored"], "--subjects", "99",
                                                "--quiet", "--out", str(f["good.npz"].parent / "wt")),
             "no scored epoch in y"),
        Case("train-unwritable-out", ("train", "--dataset", "simulated", "--subjects", "0-1", "--hours", "0.5",
                                      "--max-passes", "1", "--quiet", "--out", out), "afile"),
        # evaluate
        Case("evaluate-no-labels", ("evaluate", s["unlabelled.npz"], "--quiet", *W), "no labels to evaluate against"),
        Case("evaluate-wrong-shape", ("evaluate", s["eeg2d.npz"], "--quiet", *W), "'eeg' must be 1-D"),
        Case("evaluate-features-with-a-cnn", ("evaluate", "--dataset", "features", "--folder", s["features-good"],
                                              "--subjects", "99", "--quiet", "--weights", s["corrupt-weights"]),
             "corrupt or unreadable"),
        Case("evaluate-features-other-kind", ("evaluate", "--dataset", "features", "--folder", s["features-good"],
                                              "--subjects", "99", "--quiet", "--weights", "cnn-lstm-simulated-v2"),
             "feature nights are scored by models of per-epoch features only"),
        Case("evaluate-unknown-model-kind", ("evaluate", s["good.npz"], "--quiet", "--weights", s["unknown-kind"]),
             "unknown model kind 'transformer'"),
        Case("evaluate-unwritable-out", ("evaluate", s["good.npz"], "--quiet", *W, "--out", out + ".json"),
             "afile"),
        # simulate
        Case("simulate-unwritable-out", ("simulate", "--hours", "0.1", "--out", out + ".npz"), "does not exist"),
        Case("simulate-bad-hours", ("simulate", "--hours", "-1", "--out", str(f["good.npz"].parent / "s.npz")),
             "--hours must be more than 0"),
        # replay
        Case("replay-truncated-edf", ("replay", s["truncated.edf"], "--no-wait"), "truncated"),
        Case("replay-edf-without-channel", ("replay", s["c3.edf"], "--no-wait"),
             "no channel matching 'Fpz-Cz'; it has: EEG C3"),
        Case("replay-npz-without-signal", ("replay", s["nosignal.npz"], "--no-wait"), "no signal found"),
        Case("replay-unknown-hypnogram", ("replay", s["good.npz"], "--hypnogram", s["unknown.txt"], "--no-wait"),
             "unknown stage 'S5'"),
        Case("replay-hypnogram-outside", ("replay", s["good.npz"], "--hypnogram", s["outside.txt"], "--no-wait"),
             "no scored epoch inside"),
        Case("replay-hypnogram-long", ("replay", s["good.npz"], "--hypnogram", s["long.txt"], "--no-wait",
                                       "--speed", "max", "--quiet", "--linger", "0", "--name", f"bad-{sid}"),
             "hypnogram has 6 epochs, the recording 3 complete 30-s epochs; using the first 3", rc=0),
        # live (a stream is up, so the failure is the weights, not the search)
        Case("live-corrupt-weights", ("live", "--source-id", sid, "--no-display", "--no-outlets",
                                      "--weights", s["corrupt-weights"]), "corrupt or unreadable"),
        Case("live-corrupt-trees", ("live", "--source-id", sid, "--no-display", "--no-outlets",
                                    "--weights", s["corrupt-trees"]), "not a usable LightGBM text model"),
        Case("live-mismatched-weights", ("live", "--source-id", sid, "--no-display", "--no-outlets",
                                         "--weights", s["other-weights"]), "do not fit the architecture"),
        Case("live-out-is-someone-elses-file", ("live", "--source-id", sid, "--no-display", "--out", s["notes.tsv"]),
             "not a sleepstream hypnogram", untouched=("notes.tsv",)),
        Case("live-out-is-a-folder", ("live", "--source-id", sid, "--no-display", "--out", str(f["afile"].parent)),
             "not a regular file"),
        Case("live-unknown-units", ("live", "--source-id", sid, "--no-display", "--units", "furlongs"),
             "--units 'furlongs': use uV, mV or V"),
        Case("live-channel-index-out-of-range", ("live", "--source-id", sid, "--no-display", "--no-outlets",
                                                 "--channel-index", "3", *W),
             "--channel-index 3 is out of range: stream '"),
        # report
        Case("report-unknown-hypnogram", ("report", s["night.tsv"], "--hypnogram", s["unknown.txt"], "--quiet",
                                          "--out", str(f["good.npz"].parent / "r1")), "unknown stage 'S5'",
             untouched=("night.tsv",)),
        Case("report-truncated-recording", ("report", s["night.tsv"], "--recording", s["truncated.edf"], "--quiet",
                                            "--out", str(f["good.npz"].parent / "r2")), "truncated"),
        Case("report-unwritable-out", ("report", s["night.tsv"], "--quiet", "--out", out), "afile"),
        Case("report-hypnogram-short", ("report", s["night.tsv"], "--hypnogram", s["short.txt"], "--quiet",
                                        "--out", str(f["good.npz"].parent / "r3")),
             "hypnogram has 1 epochs", rc=0),
        # demo
        Case("demo-truncated-edf", ("demo", "--recording", s["truncated.edf"], "--no-display", *W), "truncated"),
        Case("demo-npz-without-signal", ("demo", "--recording", s["nosignal.npz"], "--no-display", *W),
             "no signal found"),
        Case("demo-unknown-hypnogram", ("demo", "--recording", s["good.npz"], "--hypnogram", s["unknown.txt"],
                                        "--no-display", *W), "unknown stage 'S5'"),
        Case("demo-unwritable-out", ("demo", "--recording", s["good.npz"], "--no-display", *W, "--out",
                                     out + ".tsv"), "does not exist"),
        # ward
        Case("ward-out-is-a-file", ("ward", "--out", s["notes.tsv"], "--no-display"), "exists and is not a folder",
             untouched=("notes.tsv",)),
        Case("ward-bad-find-timeout", ("ward", "--find-timeout", "0", "--no-display", "--out",
                                       str(f["good.npz"].parent / "ward")), "--find-timeout must be positive"),
    ]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, model_dir):
    """Every case run as its own `sleepstream` process, three at a time."""
    d = tmp_path_factory.mktemp("bad-inputs")
    files = bad_inputs(d, model_dir)
    name, sid = unique_ids()
    info = pylsl.StreamInfo(name, "EEG", 1, 100.0, "float32", sid)
    info.set_channel_labels(["Fpz-Cz"])
    outlet = pylsl.StreamOutlet(info)                  # something for `live` to find
    all_cases = cases(files, sid, model_dir)
    before = {k: files[k].read_bytes() for c in all_cases for k in c.untouched}

    def run(case: Case):
        return case, subprocess.run(cli(*case.args), cwd=d, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = {c.id: r for c, r in zip(all_cases, pool.map(run, all_cases))}
    del outlet
    after = {k: files[k].read_bytes() for k in before}
    return results, before, after


def _case_ids() -> list[str]:
    dummy = {k: Path(k) for k in ("good.npz", "unlabelled.npz", "good.edf", "truncated.edf", "c3.edf",
                                  "nosignal.npz", "windows.npz", "eeg2d.npz", "unknown.txt", "short.txt",
                                  "long.txt", "outside.txt", "folder-truncated", "folder-c3", "corrupt-weights",
                                  "other-weights", "afile", "notes.tsv", "night.tsv", "corrupt-trees",
                                  "unknown-kind", "features-wrong-shape", "features-no-scored", "features-good")}
    return [c.id for c in cases(dummy, "sid", Path("w"))]


@pytest.mark.slow
@pytest.mark.lsl
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_id", _case_ids())
def test_bad_input_gets_one_clear_line_and_an_exit_code_never_a_traceback(bad_runs, case_id):
    results, before, after = bad_runs
    case, p = results[case_id]
    command = case.args[0]
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    assert p.returncode == case.rc, p.stderr
    if case.rc:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith(f"sleepstream {command}: error: ") and case.expect in lines[0], lines[0]
    else:
        warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("WARNING")]
        assert len(warnings) == 1 and case.expect in warnings[0], p.stderr
    for k in case.untouched:
        assert after[k] == before[k], f"{k} was changed"


def test_bad_input_matrix_covers_every_command():
    from sleepstream.cli import COMMANDS

    assert {i.split("-")[0] for i in _case_ids()} == set(COMMANDS)
