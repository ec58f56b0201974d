"""One live session (issue 22 item 3): :class:`scorer.session.LiveSession` builds what
``live``, ``demo`` and the benchmarks score with, in one order, and releases it all, also
when a step fails half-way; sinks are called through typed methods; the stateful objects
of the live path say what they are (``__repr__``).

Real parts: the failures are real LSL streams on loopback (a stream without the channel
asked for, a hypnogram file another scorer takes after the stream opened), the release is
seen from the other end (the truth outlet loses its consumer, the stage outlet's listener
loses its stream, the file's lock is free again), and the demo runs as a process."""
from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pylsl
import pytest
from live_helpers import REPO, unique_ids, wait_for
from pylsl.util import LostError

from scorer.records import ScoredEpoch
from scorer.session import VIEWS, LiveSession, SessionOptionError, SessionOptions
from scorer.sinks import SafeCaller, Sink, StreamStatus, as_sink
from streamer.errors import StreamError
from streamer.resolve import StreamQuery


def record(k: int) -> ScoredEpoch:
    return ScoredEpoch(epoch=k, start_time=30.0 * k, end_time=30.0 * k + 29.99, stage="N2",
                       probabilities=(0.0, 0.1, 0.8, 0.1, 0.0), confidence=0.8, flags=(), latency_ms=2.0)


# -- options and their errors (pure) ----------------------------------------------------------

@pytest.mark.parametrize("kw, library, command", [
    ({"channel_index": -1}, "channel_index must be 0 or more, got -1", "--channel-index must be 0 or more, got -1"),
    ({"units": "furlongs"}, "units 'furlongs': use uV, mV or V", "--units 'furlongs': use uV, mV or V"),
    ({"epochs": 0}, "epochs must be at least 1, got 0", "--epochs must be at least 1, got 0"),
])
def test_options_errors_name_the_parameter_and_the_live_command_says_its_flag(kw, library, command):
    from sleepstream.cli import build_parser

    with pytest.raises(SessionOptionError) as got:
        SessionOptions(**kw)
    assert str(got.value) == library and got.value.parameter == next(iter(kw))
    live_flags = build_parser().parse_args(["live"])._flags
    assert got.value.naming(live_flags) == command
    with pytest.raises(SessionOptionError, match="view 'tv': use one of " + ", ".join(VIEWS)):
        SessionOptions(view="tv")


# -- sinks: typed methods, one safe caller (pure) ---------------------------------------------

class Collector:
    """A sink written without the base class (as the tests' and older code's sinks are)."""

    def __init__(self) -> None:
        self.got: list = []

    def publish(self, r) -> None:
        self.got.append(("publish", r.epoch))

    def truth(self, e, s) -> None:
        self.got.append(("truth", e, s))

    def status(self, s) -> None:
        self.got.append(("status", s.source_name))

    def close(self) -> None:
        self.got.append(("close",))


def test_every_sink_has_every_method_an_older_sink_is_adapted_and_a_failing_one_is_logged_once(caplog):
    from scorer.display import DisplaySink
    from scorer.gate.sink import GateSink
    from scorer.hypnogram_file import HypnogramFile
    from scorer.json_lines import JsonLinesSink
    from scorer.log_sink import LogSink
    from scorer.lsl_outlets import LslOutletSink

    for cls in (HypnogramFile, GateSink, LslOutletSink, JsonLinesSink, DisplaySink, LogSink):
        assert issubclass(cls, Sink), cls
    old = Collector()
    sink = as_sink(old)
    assert isinstance(sink, Sink) and repr(sink) == repr(old)
    sink.samples(None)                                  # what it lacks does nothing
    sink.tick(1.0)
    sink.publish(record(0))
    sink.truth(0, "N2")
    sink.status(StreamStatus("eeg", 100.0, "Fpz-Cz"))
    sink.close()
    assert old.got == [("publish", 0), ("truth", 0, "N2"), ("status", "eeg"), ("close",)]
    with pytest.raises(TypeError, match="not a sink: it has no publish, truth, status, close"):
        as_sink(object())

    class Broken(Sink):
        def publish(self, r) -> None:
            raise OSError("disk on fire")

    call, broken, good = SafeCaller(logging.getLogger("test-session")), Broken(), as_sink(Collector())
    with caplog.at_level(logging.ERROR, logger="test-session"):
        for k in range(3):
            for s in (broken, good):
                call(s.publish, record(k))
    assert [e for _, e in good.inner.got] == [0, 1, 2]            # the next sink still gets every record
    assert [r.getMessage() for r in caplog.records] == ["sink Broken.publish failed; scoring goes on"]


# -- __repr__ before connecting and after closing (pure where possible) -----------------------

def test_reprs_say_what_each_object_is_before_it_starts():
    from replay.player import Player, ReplaySource
    from sleepnet.preprocess import Preprocessor
    from streamer.stream import EEGStream

    pre = Preprocessor(256.0)
    assert repr(pre) == ("<Preprocessor 256 -> 100 Hz, causal band-pass 0.3-35 Hz (order 4), 30-s epochs: "
                         "0 samples in, 0 epochs out>")
    pre.push(np.zeros(256 * 31))
    assert repr(pre).endswith("7936 samples in, 1 epochs out>")
    stream = EEGStream(pylsl.StreamInfo("amp", "EEG", 2, 250.0, "float32", "amp-1"), channel="C4-M1")
    assert repr(stream) == "<EEGStream 'amp' @ 250 Hz, channel C4-M1, not connected>"
    stream.disconnect()                                            # safe before connecting
    assert repr(stream) == "<EEGStream 'amp' @ 250 Hz, channel C4-M1, not connected>"
    src = ReplaySource.from_arrays(np.zeros((3000, 1), np.float32), 100.0, ["Fpz-Cz"], labels=np.array([0]))
    assert repr(Player(src, name="r", speed=None)) == ("<Player 'r' @ 100 Hz max, 1 ch, with truth: "
                                                       "not started, 0 of 3000 samples sent>")
    session = LiveSession(SessionOptions(query=StreamQuery(source_id="amp-1"), out="night.tsv", view="log"))
    assert repr(session) == ("<LiveSession source_id='amp-1', model default model: new; out night.tsv, "
                             "outlets 'sleepstream', view log>")
    session.close()                                                # safe before opening
    assert repr(session).endswith(": closed; out night.tsv, outlets 'sleepstream', view log>")
    with pytest.raises(RuntimeError, match="closed"):
        session.open()


# -- the builder on real LSL: everything released, however it ends ----------------------------

@pytest.fixture
def eeg_with_truth():
    """An EEG outlet (one channel, ``label``) and its truth outlet, as a replay makes them."""
    made = []

    def make(label: str = "Fpz-Cz") -> tuple[str, pylsl.StreamOutlet, pylsl.StreamOutlet]:
        name, sid = unique_ids()
        info = pylsl.StreamInfo(name, "EEG", 1, 100.0, "float32", sid)
        info.set_channel_labels([label])
        info.set_channel_units(["microvolts"])
        eeg = pylsl.StreamOutlet(info)                   # in a replay's order: EEG, then truth
        truth = pylsl.StreamOutlet(pylsl.StreamInfo(name + "-truth", "Markers", 1, pylsl.IRREGULAR_RATE,
                                                    "string", sid + "-truth"))
        made.append((eeg, truth))
        return sid, eeg, truth

    yield make
    made.clear()


def no_consumer(outlet: pylsl.StreamOutlet) -> bool:
    return not outlet.have_consumers()


@pytest.mark.lsl
def test_a_stream_without_the_channel_asked_for_releases_its_truth_stream(eeg_with_truth):
    sid, _, truth = eeg_with_truth(label="C3")
    session = LiveSession(SessionOptions(query=StreamQuery(source_id=sid), timeout_s=5.0, channel="Fpz-Cz",
                                         outlets=False, view="none"))
    with pytest.raises(StreamError, match="no channel matching 'Fpz-Cz'") as failed:
        session.open()
    assert session.closed and session.model is None         # failed before the model was chosen
    # released, not left to the garbage collector: the error (and its frames) is still held here
    wait_for(lambda: no_consumer(truth), 5.0, "the truth outlet to lose its consumer")
    assert failed.value.__traceback__ is not None


@pytest.mark.lsl
def test_a_hypnogram_file_taken_after_the_stream_opened_releases_the_stream_and_its_truth(eeg_with_truth, tmp_path):
    from scorer.hypnogram_file import HypnogramFile, HypnogramFileError

    sid, _, truth = eeg_with_truth()
    out = tmp_path / "night.tsv"
    session = LiveSession(SessionOptions(query=StreamQuery(source_id=sid), timeout_s=5.0, out=out, outlets=False,
                                         view="none"))
    session.open()
    wait_for(truth.have_consumers, 5.0, "the session to read the truth stream")
    assert session.stream.connected and "connected" in repr(session.stream)
    other = HypnogramFile(out, "another scorer", "m")           # takes the file meanwhile
    try:
        with pytest.raises(HypnogramFileError, match="another scorer is writing this hypnogram"):
            session.build()
        assert session.closed and session.sinks == () and not session.stream.connected
        assert "disconnected" in repr(session.stream)
        wait_for(lambda: no_consumer(truth), 5.0, "the truth outlet to lose its consumer")
    finally:
        other.close()


@pytest.mark.lsl
def test_sinks_are_built_file_first_then_gate_then_outlets_and_all_released_when_the_block_fails(
        eeg_with_truth, tmp_path):
    from scorer.gate.rules import DEFAULT_RULE
    from scorer.hypnogram_file import check_writable

    sid, _, truth = eeg_with_truth()
    out, outlet = tmp_path / "night.tsv", f"sess-{unique_ids()[0]}"
    session = LiveSession(SessionOptions(query=StreamQuery(source_id=sid), timeout_s=5.0, out=out,
                                         outlet_name=outlet, gate=DEFAULT_RULE, view="none"),
                          last_sinks=[Collector()])

    class Crash(Exception):
        pass

    with pytest.raises(Crash), session:
        session.build()
        assert [type(s).__name__ for s in session.sinks] == ["HypnogramFile", "GateSink", "LslOutletSink", "_Adapted"]
        assert session.gate.recording is not None                # the gate asks the file (NOT RECORDING)
        assert repr(session).endswith(": built, 0 epochs; sinks HypnogramFile, GateSink, LslOutletSink, Collector>")
        assert repr(session.scorer).endswith(": 0 epochs (0 scored), 4 sinks (HypnogramFile, GateSink, "
                                             "LslOutletSink, Collector), open>")
        listener = pylsl.StreamInlet(pylsl.resolve_byprop("name", outlet + "-stage", 1, 5.0)[0], recover=False)
        listener.open_stream(5.0)
        raise Crash                                               # the block ends early

    def gone(inlet: pylsl.StreamInlet) -> bool:
        try:
            inlet.pull_sample(timeout=0.0)
        except LostError:
            return True
        return False

    wait_for(lambda: gone(listener), 5.0, "the stage outlet to close")
    check_writable(out)                                           # the file's lock is free again
    wait_for(lambda: no_consumer(truth), 5.0, "the truth outlet to lose its consumer")
    assert session.sinks[-1].inner.got == [("close",)]            # the sinks handed over are closed too
    assert repr(session).endswith(": closed, 0 epochs; sinks HypnogramFile, GateSink, LslOutletSink, Collector>")
    assert repr(session.scorer).endswith("closed>") and "disconnected" in repr(session.stream)


# -- who builds sessions ----------------------------------------------------------------------

def _calls_and_imports(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    calls = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return calls, imports


def test_live_demo_and_the_live_benchmarks_build_their_sessions_only_through_live_session():
    by_hand = {"LiveScorer", "connect_stream", "open_resolved", "EEGStream", "TruthStream", "HypnogramFile",
               "LslOutletSink"}
    for rel in ("sleepstream/commands/live.py", "sleepstream/commands/demo.py", "benchmarks/live_latency.py",
                "benchmarks/gate.py"):
        calls, imports = _calls_and_imports(REPO / rel)
        assert "LiveSession" in calls, rel
        assert not calls & by_hand, (rel, calls & by_hand)
        assert "sleepstream.commands.live" not in imports, rel     # no command borrows another's helpers


@pytest.mark.lsl
def test_demo_scores_through_the_session_end_to_end(tmp_path):
    """The demo as a process, on a recording of its own: every epoch in the file, the
    session's own log line (``-v``) shows it was built by LiveSession."""
    from sleepnet.io.recordings import write_continuous_npz

    rng = np.random.default_rng(0)
    rec = tmp_path / "n.npz"
    write_continuous_npz(rec, rng.normal(0, 20, 100 * 30 * 6).astype(np.float32), 100.0, np.array([0, 1, 2, 2, 3, 2]))
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "-v", "demo", "--recording", str(rec),
                        "--speed", "max", "--no-display", "--out", str(tmp_path / "n.tsv")], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "INFO scorer.session: <LiveSession 'sleepstream-demo-" in r.stderr and "view log>" in r.stderr
    rows = [ln for ln in (tmp_path / "n.tsv").read_text().splitlines() if ln[:1].isdigit()]
    assert [int(ln.split("\t")[0]) for ln in rows] == list(range(6))
    assert r.stdout.count("epoch ") == 6 and "6 epochs (6 scored" in r.stderr
    assert not list(tmp_path.glob("*.state.json"))                 # the demo keeps no night state
