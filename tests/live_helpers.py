"""Shared pieces for the live-path tests (streamer, replay, live, hypnogram file,
reliability): the model under test (the repository's weights/), simulated recordings, a
sink that keeps what it is given, one function that replays a source and scores it live
over real LSL on loopback, the live == batch comparison, an event wait, a pipe read
while its process runs and a process stopped as Ctrl-C would."""
from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sleepnet.io.recordings import Recording, write_continuous_npz
from sleepnet.models.base import CONFIG_FILE
from sleepnet.weights import default_weights_dir, load_model

REPO = Path(__file__).resolve().parent.parent


def weights_dir() -> Path:
    """The default model's folder (the model the live path ships with)."""
    d = default_weights_dir()
    if not (d / CONFIG_FILE).exists():
        pytest.fail(f"{d} holds no {CONFIG_FILE}: the live tests score with the shipped default model")
    return d


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return weights_dir()


@pytest.fixture(scope="module")
def model(model_dir: Path):
    return load_model(model_dir)


def batch_scores(x_uv: np.ndarray, fs: float, model) -> list:
    """Batch scoring of ``x_uv`` (µV, NaN where samples are missing): the live path's reference."""
    from sleepnet.batch import score_recording

    return score_recording(Recording(np.asarray(x_uv, dtype=np.float32), fs, "Fpz-Cz", "reference"), model)


def assert_same_as_batch(records, batch) -> None:
    """The live records equal the batch predictions: epochs, stages, flags, and
    probabilities to 1e-5 (NaN where unscored)."""
    assert [r.epoch for r in records] == [p.epoch for p in batch]
    assert [r.stage for r in records] == [p.stage for p in batch]
    assert [tuple(r.flags) for r in records] == [tuple(p.flags) for p in batch]
    np.testing.assert_allclose(np.array([r.probabilities for r in records], dtype=float),
                               np.array([p.probabilities for p in batch], dtype=float),
                               rtol=0, atol=1e-5, equal_nan=True)


def wait_for(cond, timeout: float, what: str) -> None:
    """Poll ``cond`` every 20 ms until it holds; fail naming ``what`` after ``timeout`` s."""
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """Stop ``proc`` as Ctrl-C would (SIGTERM) when it still runs; kill it when it has not
    ended after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def stop_in_bounded_time(proc: subprocess.Popen, timeout: float, hung: str) -> tuple[int, float]:
    """Stop ``proc`` as Ctrl-C would (SIGTERM) and wait for it to end: the test fails with
    ``hung`` (what hung, where) when it still runs after ``timeout`` s. Returns its exit code
    and the seconds it took to end."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(hung)
    return rc, time.monotonic() - t0


class PipeText:
    """What a process writes to one of its pipes, read on a thread as it comes (so the
    pipe never fills, and a test can wait for a line while the process runs)."""

    def __init__(self, pipe) -> None:
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self._lines.append(line)

    def text(self) -> str:
        """Everything read so far."""
        return "".join(list(self._lines))

    def rest(self, timeout: float = 30.0) -> str:
        """Everything, once the pipe is closed (the process ended)."""
        self._thread.join(timeout)
        return self.text()


def unique_ids() -> tuple[str, str]:
    """A stream name and source_id no other test uses."""
    tag = uuid.uuid4().hex[:10]
    return f"test-{tag}", f"test-src-{uuid.uuid4().hex}"


def simulated_eeg(sfreq: float, n_epochs: int, seed: int = 7, skip_epochs: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """``n_epochs`` of simulated Fpz-Cz (µV, float32) at ``sfreq`` and their labels, cut
    from a simulated 2-h night past sleep onset (its hypnogram depends on the night's
    length, so the length is fixed), so the stages vary."""
    from sleepnet.sim.night import simulate_night

    hours = max(2.0, (skip_epochs + n_epochs + 10) * 30.0 / 3600.0)
    night = simulate_night(hours, seed, float(sfreq))
    n_ep = int(round(30 * sfreq))
    a = skip_epochs * n_ep
    return night.eeg_uv[a:a + n_epochs * n_ep].copy(), night.labels[skip_epochs:skip_epochs + n_epochs].copy()


def write_simulated(path: Path, sfreq: float, n_epochs: int, seed: int = 7, extra_s: float = 0.0) -> Path:
    """A continuous npz recording with labels (and ``extra_s`` of signal past the last epoch)."""
    eeg, labels = simulated_eeg(sfreq, n_epochs + (1 if extra_s else 0), seed)
    eeg = eeg[:int(round((n_epochs * 30 + extra_s) * sfreq))]
    write_continuous_npz(path, eeg, sfreq, labels[:n_epochs])
    return path


@dataclass
class CollectSink:
    """A real sink that keeps everything it is given (records, truths, statuses)."""

    records: list = field(default_factory=list)
    truths: list = field(default_factory=list)
    statuses: list = field(default_factory=list)
    closed: bool = False

    def publish(self, record) -> None:
        self.records.append(record)

    def truth(self, epoch: int, stage: str) -> None:
        self.truths.append((epoch, stage))

    def status(self, status) -> None:
        self.statuses.append(status)

    def close(self) -> None:
        self.closed = True


@dataclass
class LiveRun:
    records: list
    truths: list
    summary: object
    player: object
    sink: CollectSink
    scorer: object = None


def score_live(source, model, speed: float | None = None, chunk: int | None = None,
               channel: str = "Fpz-Cz", extra_sinks: list | None = None, n_epochs: int | None = None,
               timeout_s: float = 60.0, state_path: Path | None = None, session_start: str | None = None) -> LiveRun:
    """Replay ``source`` in a background thread and score it live until every complete
    epoch is scored (or the stream stays silent for 5 s)."""
    from replay.player import Player
    from scorer.live import LiveScorer, connect_stream
    from streamer.resolve import StreamQuery

    name, sid = unique_ids()
    player = Player(source, name=name, source_id=sid, speed=speed, chunk=chunk, linger_s=30.0)
    stop_player = threading.Event()
    player.start(stop_player)
    stream, truth = connect_stream(StreamQuery(source_id=sid), channel=channel, timeout_s=10.0,
                                   buffer_s=int(source.duration_s) + 60)
    sink = CollectSink()
    scorer = LiveScorer(stream, model, [sink, *(extra_sinks or [])], truth, state_path=state_path,
                        session_start=session_start)
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)
    timer.start()
    try:
        summary = scorer.run(stop=stop, max_epochs=n_epochs or source.n_epochs, idle_exit_s=5.0)
    finally:
        timer.cancel()
        stop_player.set()
        scorer.close()
        player.join(10.0)
    assert player.error is None, player.error
    return LiveRun(sink.records, sink.truths, summary, player, sink, scorer)


class Valve:
    """A tap on a :class:`replay.player.Player` (its ``consumer_position``, with
    ``max_lead_s=Valve.MAX_LEAD_S``): while held, the player sends nothing more; released,
    it sends at its speed again from that moment (not what fell due meanwhile in one
    burst), its clock carrying on (no gap: a held stream is only silent, then late).

    A test holds a replay until the peers it watches are listening, so what they hear
    does not depend on which process a loaded machine started first."""

    MAX_LEAD_S = 0.01           # the player's max_lead_s: with a held valve, not one chunk more

    def __init__(self, held: bool = True) -> None:
        self.player = None       # set it to the Player the valve taps, before releasing it
        self._held_at: int | None = 0 if held else None
        self._from, self._since, self._rate = 0, 0.0, float("inf")

    def position(self) -> int:
        """The player's ``consumer_position``: how far it may send now."""
        held = self._held_at
        if held is not None:
            return held
        if self._rate == float("inf"):
            return 2 ** 62
        return self._from + int((time.perf_counter() - self._since) * self._rate)

    @property
    def held(self) -> bool:
        return self._held_at is not None

    def hold(self) -> None:
        """Send nothing past what was sent so far."""
        self._held_at = self.player.samples_sent

    def release(self) -> None:
        """Send again, at the player's speed from now."""
        p = self.player
        self._from, self._since = p.samples_sent, time.perf_counter()
        self._rate = float("inf") if p.speed is None else p.source.sfreq * p.speed
        self._held_at = None
