"""Stimulation windows (``live --gate``): the pure state machine on records, the rules,
the arousal guard on signals, and over real LSL a plain pylsl stimulus program (a peer
process that imports nothing of ours) listening to ``<name>-gate``."""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import eeg_like
from live_helpers import REPO, Valve, score_live, terminate, unique_ids
from scipy import signal as sps

from scorer.gate.guard import ArousalGuard, GuardThresholds
from scorer.gate.rules import DEFAULT_RULE, GateRule, GateRuleError, parse_rule
from scorer.gate.window import CLOSE, OPEN, GateWindow
from scorer.records import ScoredEpoch
from sleepnet.stages import STAGES

PEERS = Path(__file__).resolve().parent / "peers"
FS = 100.0
AROUSAL_CLOSE_BOUND_S = 3.0   # the target for arousal onset -> close


def rec(k: int, stage: str = "N2", p: float = 0.9, flags: tuple[str, ...] = ()) -> ScoredEpoch:
    probs = tuple(p if s == stage else (1 - p) / 4 for s in STAGES) if stage in STAGES else (np.nan,) * 5
    return ScoredEpoch(epoch=k, start_time=30.0 * k, end_time=30.0 * k + 29.99, stage=stage, probabilities=probs,
                       confidence=p if stage in STAGES else float("nan"), flags=flags, latency_ms=1.0)


def run(window: GateWindow, records: list[ScoredEpoch]) -> list[tuple[int, str, str]]:
    out = []
    for r in records:
        out += [(r.epoch, e.kind, e.reason) for e in window.on_epoch(r)]
    return out


# -- the pure state machine ---------------------------------------------------------------

def test_window_starts_closed_and_says_restart():
    w = GateWindow()
    ev = w.start(12.5)
    assert (ev.kind, ev.reason, ev.time) == (CLOSE, "restart", 12.5)
    assert not w.is_open


def test_window_opens_after_the_rules_consecutive_confident_epochs_only():
    w = GateWindow(GateRule(stages=frozenset({"N2", "N3"}), min_probability=0.8, epochs=2))
    ev = run(w, [rec(0, "N2"), rec(1, "W"), rec(2, "N3"), rec(3, "N2")])
    assert ev == [(3, OPEN, "N2/N3 p>=0.80 x2")]
    assert w.is_open


def test_window_never_opens_during_warmup():
    w = GateWindow(GateRule(epochs=1))
    assert run(w, [rec(k, "N3", 0.99, ("warmup",)) for k in range(4)]) == []
    assert run(w, [rec(4, "N3", 0.99)]) == [(4, OPEN, "N2/N3 p>=0.80 x1")]


@pytest.mark.parametrize("bad, reason", [
    (rec(3, "REM"), "stage REM"), (rec(3, "W"), "stage W"), (rec(3, "N2", 0.6), "confidence 0.60"),
    (rec(3, "N2", 0.95, ("gap",)), "flag gap"), (rec(3, "N2", 0.95, ("flat",)), "flag flat"),
    (rec(3, "N2", 0.95, ("clipped",)), "flag clipped"), (rec(3, "N2", 0.95, ("artefact",)), "flag artefact"),
    (rec(3, "UNS", float("nan"), ("gap",)), "unscored"),
])
def test_window_closes_on_other_stage_confidence_drop_any_flag_or_unscored(bad, reason):
    w = GateWindow()
    run(w, [rec(0), rec(1)])
    assert w.is_open
    assert run(w, [rec(2), bad]) == [(3, CLOSE, reason)]
    # the rule must be met again from scratch: one good epoch is not enough
    assert run(w, [rec(4)]) == []
    assert run(w, [rec(5)]) == [(5, OPEN, "N2/N3 p>=0.80 x2")]


def test_stage_set_is_per_rule_n3_only():
    w = GateWindow(GateRule(stages=frozenset({"N3"}), min_probability=0.9, epochs=1))
    assert run(w, [rec(0, "N2", 0.99), rec(1, "N3", 0.85)]) == []
    assert run(w, [rec(2, "N3", 0.95)]) == [(2, OPEN, "N3 p>=0.90 x1")]
    assert run(w, [rec(3, "N2", 0.99)]) == [(3, CLOSE, "stage N2")]


def test_guard_alarm_closes_at_once_and_the_epoch_it_fell_in_does_not_count():
    from scorer.gate.guard import GuardVerdict

    w = GateWindow()
    run(w, [rec(0), rec(1)])
    ev = w.on_alarm(GuardVerdict("arousal: hf", 75.0, 75.001))
    assert [(e.kind, e.reason, e.time) for e in ev] == [(CLOSE, "arousal: hf", 75.0)]
    assert w.on_alarm(GuardVerdict("arousal: hf", 76.0, 76.0)) == []   # already closed
    # epoch 2 (60-90 s) held the arousal: epochs 3 and 4 must meet the rule
    assert run(w, [rec(2), rec(3)]) == []
    assert run(w, [rec(4)]) == [(4, OPEN, "N2/N3 p>=0.80 x2")]


def test_gap_or_signal_lost_closes_and_no_open_until_rule_met_after_it():
    w = GateWindow()
    run(w, [rec(0), rec(1)])
    assert [(e.kind, e.reason) for e in w.on_break("signal lost", 70.0)] == [(CLOSE, "signal lost")]
    assert run(w, [rec(2), rec(3)]) == []          # epoch 2 began before the loss
    assert run(w, [rec(4)]) == [(4, OPEN, "N2/N3 p>=0.80 x2")]
    w.on_break("gap", 160.0)                        # inside epoch 5 (150-180 s)
    assert not w.is_open
    assert run(w, [rec(5), rec(6)]) == []
    assert run(w, [rec(7)]) == [(7, OPEN, "N2/N3 p>=0.80 x2")]


def test_max_open_time_closes_the_window():
    w = GateWindow(GateRule(epochs=1, max_open_s=45.0))
    run(w, [rec(0)])
    assert w.on_time(60.0) == []
    assert [(e.kind, e.reason) for e in w.on_time(75.0)] == [(CLOSE, "max open time")]
    assert run(w, [rec(2)]) == []                  # began before the close
    assert run(w, [rec(3)]) == [(3, OPEN, "N2/N3 p>=0.80 x1")]


def test_gate_sink_calls_listeners_and_closes_on_a_gap_at_once_and_on_signal_lost():
    from scorer.gate.sink import GateSink
    from scorer.sinks import StreamStatus
    from streamer.stream import SampleChunk

    heard = []
    gate = GateSink(FS, GateRule(epochs=1, guard=False), outlet_name=None, listeners=[lambda e, t: heard.append(e)])
    assert not gate.is_open and gate.history[0][0].reason == "restart"
    gate.publish(rec(0))
    assert gate.is_open and [(e.kind, e.epoch) for e in heard] == [(CLOSE, None), (OPEN, 0)]  # restart, open
    ts = 35.0 + np.arange(10) / FS
    gate.samples(SampleChunk(np.zeros(10), ts, 7, 100.0))           # 7 samples missing before 35 s
    assert not gate.is_open and (heard[-1].kind, heard[-1].reason, heard[-1].time) == (CLOSE, "gap", 35.0)
    gate.publish(rec(1))                                             # began before the gap
    assert not gate.is_open
    gate.publish(rec(2))
    assert gate.is_open
    lost = StreamStatus(source_name="x", sfreq_hz=FS, channel="Fpz-Cz", stalled=True)
    gate.status(lost)
    gate.status(lost)
    assert [(e.kind, e.reason) for e in heard[-2:]] == [(OPEN, "N2/N3 p>=0.80 x1"), (CLOSE, "signal lost")]
    gate.close()
    assert len(heard) == 5                                           # closed already: nothing more


# -- rules --------------------------------------------------------------------------------

def test_rules_default_inline_and_toml(tmp_path):
    assert parse_rule(None) == DEFAULT_RULE == parse_rule("")
    r = parse_rule("stages=N3,min_probability=0.9,epochs=3,max_open_s=600,guard=false")
    assert (r.stages, r.min_probability, r.epochs, r.max_open_s, r.guard) == (frozenset({"N3"}), 0.9, 3, 600.0, False)
    f = tmp_path / "gate.toml"
    f.write_text('[gate]\nstages = ["N2", "N3"]\nepochs = 4\n[guard]\nhf_ratio = 5.0\n')
    r = parse_rule(str(f))
    assert r.epochs == 4 and r.thresholds.hf_ratio == 5.0 and r.stages == frozenset({"N2", "N3"})
    f.write_text('[guard]\nsustained_ratio = false\nalpha_weight = 0.5\nbaseline_s = 10\n')
    th = parse_rule(str(f)).thresholds
    assert (th.sustained_ratio, th.alpha_weight, th.baseline_s) == (None, 0.5, 10)
    assert th.hf_ratio == GuardThresholds().hf_ratio


@pytest.mark.parametrize("line, words", [
    ("alpha_weight = 2.0", "alpha_weight must be within 0-1"), ("hf_ratio = false", "hf_ratio must be a positive"),
    ("sustained_hops = 0", "at least 1"), ("spindle_ratio = 3", "unknown \\[guard\\] setting"),
])
def test_bad_guard_settings_in_a_rules_file_name_the_problem(tmp_path, line, words):
    f = tmp_path / "gate.toml"
    f.write_text(f"[guard]\n{line}\n")
    with pytest.raises(GateRuleError, match=words):
        parse_rule(str(f))


@pytest.mark.parametrize("text, words", [
    ("stages=N4", "unknown stage"), ("min_probability=1.5", "within 0-1"), ("epochs=0", "at least 1"),
    ("colour=red", "unknown setting"), ("N2", "key=value"),
])
def test_bad_inline_rules_name_the_problem(text, words):
    with pytest.raises(GateRuleError, match=words):
        parse_rule(text)


@pytest.mark.parametrize("line, words", [
    ("epochs = 2.5", "epochs must be a whole number, got 2.5"), ("epochs = 2.0", "epochs must be a whole number"),
    ("epochs = true", "epochs must be a whole number, got True"), ('epochs = "two"', "epochs must be a whole"),
    ("min_probability = true", "min_probability must be a number, got True"),
    ("max_open_s = false", "max_open_s must be a number, got False"),
])
def test_a_float_or_bool_where_a_rules_file_wants_a_whole_number_is_refused_naming_the_field(tmp_path, line, words):
    """epochs = 2.5 was taken as 2 and epochs = true as 1, silently; now one line names the
    file and the field (inline text too)."""
    f = tmp_path / "gate.toml"
    f.write_text(f"[gate]\n{line}\n")
    with pytest.raises(GateRuleError, match=words) as err:
        parse_rule(str(f))
    assert str(err.value).startswith(f"{f}: ") and "\n" not in str(err.value)
    with pytest.raises(GateRuleError, match="epochs must be a whole number, got '2.5'"):
        parse_rule("epochs=2.5")
    assert parse_rule("epochs= 3 ").epochs == 3


@pytest.mark.lsl
def test_bad_rules_file_is_one_line_and_exit_2(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[gate]\nepochs = [\n")
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "live", "--gate", str(f), "--stream-name", "x",
                        "--timeout", "0.1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and str(f) in r.stderr and "not valid TOML" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- the arousal guard ----------------------------------------------------------------------

def hf_burst(n: int, rms_uv: float, seed: int = 1) -> np.ndarray:
    """Muscle-like noise 20-40 Hz, µV."""
    sos = sps.butter(4, (20, 40), "bandpass", fs=FS, output="sos")
    x = sps.sosfilt(sos, np.random.default_rng(seed).standard_normal(n))
    return x / x.std() * rms_uv


def feed(guard: ArousalGuard, x: np.ndarray, t0: float = 0.0, chunk: int = 10) -> list:
    out = []
    for i in range(0, len(x), chunk):
        out += guard.push(x[i:i + chunk], t0 + (i + len(x[i:i + chunk]) - 1) / FS)
    return out


def test_guard_is_silent_on_steady_sleep_like_signal_and_when_disarmed():
    x = eeg_like(120, FS, seed=3).astype(np.float64)
    g = ArousalGuard(FS)
    assert feed(g, x[:3000]) == []        # disarmed: never
    g.arm()
    assert feed(g, x[3000:], t0=30.0) == []


def test_guard_catches_a_muscle_burst_within_two_seconds_relative_to_its_baseline():
    x = eeg_like(90, FS, seed=4).astype(np.float64)
    onset = 60.0
    i0 = int(onset * FS)
    x[i0:i0 + 800] += hf_burst(800, 4.0 * np.std(x[:i0]))
    g = ArousalGuard(FS)
    feed(g, x[:3000])
    g.arm()
    alarms = feed(g, x[3000:], t0=30.0)
    assert alarms, "no alarm on a burst of muscle activity"
    assert alarms[0].reason == "arousal: hf"
    assert onset <= alarms[0].time <= onset + 2.0


def quiet_simulated_sleep() -> tuple[np.ndarray, float]:
    """34 min of stable simulated N2/N3 (night seed 7, epochs 102-170) with no simulated
    arousal or movement artefact in it or in the 10 s before (checked here, not assumed),
    and the time (s) of its first sample in the night."""
    from sleepnet.sim.night import simulate_night, simulated_arousals, simulated_movements

    night = simulate_night(2.0, 7, FS)
    a, b = 102, 170
    assert np.all(np.isin(night.labels[a:b], (2, 3)))
    for e0, e1 in np.concatenate([simulated_arousals(2.0, 7), simulated_movements(2.0, 7, FS)]):
        assert e1 < a * 30.0 - 10.0 or e0 > b * 30.0, (e0, e1)
    return night.eeg_uv[a * 3000:b * 3000].astype(np.float64), a * 30.0


def alarm_hops(x: np.ndarray) -> set[float]:
    """Times (s) of every hop an armed guard (default thresholds, armed after 30 s) judges
    over its thresholds on ``x``."""
    g = ArousalGuard(FS)
    feed(g, x[:3000])
    g.arm()
    return {round(a.time, 2) for a in feed(g, x[3000:], t0=30.0)}


def test_guard_closes_within_the_bound_on_an_arousal_injected_into_simulated_n2():
    """An arousal shaped like the simulator's (alpha and 20-40 Hz activity rising over a
    1-s ramp, 8 s long) added to quiet simulated N2 at several onsets: the armed guard
    judges a hop over its thresholds within the issue's bound after each onset, where
    the same signal without the arousal had none (so the alarm is the arousal's)."""
    x, _ = quiet_simulated_sleep()
    x = x[:300 * int(FS)]
    n = int(8 * FS)
    ramp = np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / FS, 0.0, 1.0)
    sos = sps.butter(4, (20, 40), "bandpass", fs=FS, output="sos")
    t = np.arange(n) / FS
    base = alarm_hops(x)
    for k, onset in enumerate((75.0, 135.0, 205.0, 265.0)):
        i0 = int(onset * FS)
        own_hf = np.std(sps.sosfilt(sos, x[i0 - 3000:i0]))
        y = x.copy()
        y[i0:i0 + n] += ramp * (hf_burst(n, 1.5 * own_hf, seed=9 + k) + 8.0 * np.sin(2 * np.pi * 9.5 * t))
        within = lambda hops, onset=onset: [h for h in hops if onset <= h <= onset + AROUSAL_CLOSE_BOUND_S]  # noqa: E731
        assert not within(base), (onset, within(base))
        assert within(alarm_hops(y)), f"no alarm within {AROUSAL_CLOSE_BOUND_S} s of the arousal at {onset} s"


def test_guard_false_alarms_on_quiet_simulated_sleep_stay_rare_and_never_flat_or_railing():
    """34 min of stable simulated N2/N3 without arousals or movements, the guard re-armed
    60 s after each alarm as the gate would (the rule needs two more epochs): fewer than 25
    alarms per hour (11 in these 34 min, 19/h, with the defaults; the guard before its
    calibration gave 17, 30/h; the benchmark's false-close figure is the measurement, this
    pins its order), and flat / railing / missing never fire on simulated EEG."""
    x, t0 = quiet_simulated_sleep()
    g = ArousalGuard(FS)
    g.arm()
    alarms, rearm_at = [], None
    for i in range(0, len(x), 50):
        t = t0 + (i + 49) / FS
        if rearm_at is not None and t >= rearm_at:
            g.arm()
            rearm_at = None
        got = g.push(x[i:i + 50], t)
        if got:
            alarms += got
            g.disarm()
            rearm_at = t + 60.0
    hours = len(x) / FS / 3600.0
    assert not [a for a in alarms if a.reason in ("flat", "railing", "missing samples")]
    assert len(alarms) / hours < 25.0, [(round(a.time - t0, 1), a.reason) for a in alarms]


def test_spindles_and_k_complexes_do_not_trigger_the_guard():
    """Quiet simulated N2 with a slow frontal spindle (11.5-13 Hz, 0.8-1.8 s, 15-25 µV,
    the simulator's frontal range) every 8 s and a K-complex (100-140 µV peak to peak)
    every 20 s added: no hop within an event (or 1 s after it) is over the thresholds
    unless the same hop already was without the events (the stretch's own false alarms,
    a benchmark figure, are not the events' doing)."""
    x, _ = quiet_simulated_sleep()
    x = x[:300 * int(FS)].copy()
    y = x.copy()
    rng = np.random.default_rng(3)
    spans = []
    for t_s in np.arange(40.0, 295.0, 8.0):
        dur = rng.uniform(0.8, 1.8)
        tt = np.arange(int(dur * FS)) / FS
        i = int(t_s * FS)
        y[i:i + len(tt)] += rng.uniform(15, 25) * np.sin(np.pi * tt / dur) ** 2 * np.sin(
            2 * np.pi * rng.uniform(11.5, 13.0) * tt)
        spans.append((t_s, t_s + dur + 1.0))
    for t_s in np.arange(44.0, 295.0, 20.0):
        tt = np.arange(int(1.6 * FS)) / FS
        wave = -np.exp(-0.5 * ((tt - 0.25) / 0.08) ** 2) + 0.55 * np.exp(-0.5 * ((tt - 0.7) / 0.18) ** 2)
        i = int(t_s * FS)
        y[i:i + len(tt)] += rng.uniform(100, 140) * wave / np.ptp(wave)
        spans.append((t_s, t_s + 2.6))
    without, with_events = alarm_hops(x), alarm_hops(y)
    inside = lambda hops: {t for t in hops if any(a <= t <= b for a, b in spans)}  # noqa: E731
    assert inside(with_events) <= inside(without), sorted(inside(with_events) - inside(without))


@pytest.mark.parametrize("make, reason", [
    (lambda x: np.full_like(x, 3.0), "flat"),
    (lambda x: np.full_like(x, 1200.0) * np.sign(np.sin(np.arange(len(x)))), "railing"),
    (lambda x: np.full_like(x, np.nan), "missing samples"),
])
def test_guard_flags_flat_railing_and_missing_signal(make, reason):
    x = eeg_like(40, FS, seed=5).astype(np.float64)
    x[3500:] = make(x[3500:])
    g = ArousalGuard(FS, GuardThresholds())
    feed(g, x[:3000])
    g.arm()
    alarms = feed(g, x[3000:], t0=30.0)
    assert alarms and alarms[0].reason == reason
    assert 35.0 <= alarms[0].time <= 36.5


def test_simulated_arousal_times_are_the_nights_own():
    """The known truth the benchmark uses: high-frequency power inside the simulator's
    arousals (asleep) is well above the same night's sleep outside them."""
    from sleepnet.sim.night import simulate_night, simulated_arousals

    night = simulate_night(3.0, 5)
    ar = simulated_arousals(3.0, 5)
    assert len(ar) >= 3
    sos = sps.butter(4, (20, 40), "bandpass", fs=FS, output="sos")
    hf = sps.sosfilt(sos, night.eeg_uv.astype(np.float64)) ** 2
    t = np.arange(len(hf)) / FS
    inside = np.zeros(len(hf), bool)
    for a0, a1 in ar:
        inside |= (t >= a0) & (t < a1)
    asleep = np.repeat(night.labels > 0, int(30 * FS))[:len(hf)]
    inside, asleep, hf = inside[:len(asleep)], asleep, hf[:len(asleep)]
    assert np.mean(hf[inside & asleep]) > 2.0 * np.mean(hf[~inside & asleep])


def test_simulated_movement_times_are_the_nights_own():
    """The movement truth the benchmark uses (re-synthesised movement component): 2-8 s
    runs where the night's 0.3-2.5 Hz activity is well above the 10 s before them."""
    from sleepnet.sim.night import simulate_night, simulated_movements

    night = simulate_night(3.0, 5)
    mv = simulated_movements(3.0, 5)
    assert len(mv) >= 5
    dur = mv[:, 1] - mv[:, 0]
    assert np.all((dur >= 1.9) & (dur <= 16.0)), dur
    sos = sps.butter(2, (0.3, 2.5), "bandpass", fs=FS, output="sos")
    y = sps.sosfiltfilt(sos, night.eeg_uv.astype(np.float64))
    ratio = [np.std(y[int(a * FS):int(b * FS)]) / np.std(y[int(a * FS) - 1000:int(a * FS)]) for a, b in mv if a > 10]
    assert np.median(ratio) > 2.0, ratio


# -- over real LSL, with a plain pylsl stimulus program -------------------------------------

WAKE_EPOCHS = 4
SLEEP_EPOCHS = 14
AROUSAL_AT_S = (WAKE_EPOCHS + 3) * 30.0 + 10.0      # inside epoch 7
GAP_AT_S = (WAKE_EPOCHS + 7) * 30.0 + 5.0           # 5 s of missing samples inside epoch 11
GAP_S = 5.0


def gated_source(with_events: bool = True):
    """Wake, then N2/N3 that the shipped model scores confidently (cut from a simulated
    night), with a muscle/alpha arousal and a 5-s gap of missing samples injected.
    Returns the replay source, the true labels and the segment's signal."""
    from replay.player import ReplaySource
    from sleepnet.sim.night import simulate_night

    night = simulate_night(2.0, 7, FS)
    lab = night.labels
    n = int(30 * FS)
    w0 = int(np.flatnonzero(lab == 0)[0])
    s0 = next(i for i in range(60, len(lab) - SLEEP_EPOCHS) if np.all(np.isin(lab[i:i + SLEEP_EPOCHS], (2, 3))))
    x = np.concatenate([night.eeg_uv[w0 * n:(w0 + WAKE_EPOCHS) * n],
                        night.eeg_uv[s0 * n:(s0 + SLEEP_EPOCHS) * n]]).astype(np.float64)
    labels = np.concatenate([lab[w0:w0 + WAKE_EPOCHS], lab[s0:s0 + SLEEP_EPOCHS]])
    if with_events:
        i = int(AROUSAL_AT_S * FS)
        t = np.arange(800) / FS
        x[i:i + 800] += hf_burst(800, 1.0 * np.std(x[i - 3000:i])) + 20.0 * np.sin(2 * np.pi * 10 * t)
        g = int(GAP_AT_S * FS)
        x[g:g + int(GAP_S * FS)] = np.nan
    src = ReplaySource.from_arrays(x[:, None].astype(np.float32), FS, ["Fpz-Cz"], labels=labels)
    return src, labels


def start_sleep_player(speed: float, valve: Valve | None = None):
    """A looping replay of :func:`gated_source`'s sleep part (no arousal, no gap) on a stream of
    its own, started (tapped by ``valve`` when given: held, it sends nothing). Returns the
    player, the event that stops it, its stream name and source_id."""
    from replay.player import Player

    src, _ = gated_source(with_events=False)
    sleep_only = type(src).from_arrays(src.data_uv[WAKE_EPOCHS * 3000:], FS, ["Fpz-Cz"])
    name, sid = unique_ids()
    tap = {} if valve is None else {"consumer_position": valve.position, "max_lead_s": Valve.MAX_LEAD_S}
    player = Player(sleep_only, name=name, source_id=sid, speed=speed, loop=True, **tap)
    if valve is not None:
        valve.player = player
    stop_player = threading.Event()
    player.start(stop_player)
    return player, stop_player, name, sid


def held_gated_scorer(speed: float, epochs: int):
    """A sleep replay held by its valve (:func:`start_sleep_player`) and the command of a gated
    ``sleepstream live`` on it: ``--gate epochs=<epochs>,guard=false`` (the window opens after
    ``epochs`` epochs meeting the stages and probability rule), no display, no stage outlets,
    ``--timeout 20`` (s). Returns the valve (held: release it once the listeners are ready),
    the player, the event that stops it, the gate's ``--outlet-name`` (the marker stream is
    that name + ``-gate``) and the command, not started."""
    valve = Valve(held=True)
    player, stop_player, name, sid = start_sleep_player(speed=speed, valve=valve)
    gname = name + "-stim"
    cmd = [sys.executable, "-m", "sleepstream.cli", "live", "--no-display", "--no-outlets", "--source-id", sid,
           "--outlet-name", gname, "--gate", f"epochs={epochs},guard=false", "--timeout", "20"]
    return valve, player, stop_player, gname, cmd


class Lines:
    """The JSON lines a peer prints, read on a thread (a pipe is never left unread)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.q: queue.Queue[str] = queue.Queue()
        self.got: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.q.put(line.strip())

    def wait(self, cond, timeout: float, what: str):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            try:
                line = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            if line == "subscribed":
                item = {"event": "subscribed"}
            else:
                item = json.loads(line)
                self.got.append(item)
            if cond(item):
                return item
        raise AssertionError(f"timed out waiting for {what}; peer saw {self.got}")


def start_listener(name: str, tmp_path: Path, timeout: float = 120.0) -> tuple[subprocess.Popen, Lines, Path]:
    stop = tmp_path / f"stop-{name}"
    err = open(tmp_path / f"{name}.stderr", "w")
    proc = subprocess.Popen([sys.executable, str(PEERS / "gate_listener.py"), "--name", name, "--timeout",
                             str(timeout), "--stop-file", str(stop)], cwd=tmp_path, env=dict(os.environ),
                            text=True, stdout=subprocess.PIPE, stderr=err)
    return proc, Lines(proc), stop


@pytest.mark.slow
@pytest.mark.lsl
@pytest.mark.timeout(150)
def test_stimulus_program_sees_open_only_in_sleep_close_after_arousal_and_gap(tmp_path):
    from scorer.gate.sink import GateSink
    from sleepnet.weights import load_model, weights_root

    # The simulated segment was cut where the CNN-LSTM trained on simulated nights is
    # confident, so its windows reopen after each close: this pins the gate's machinery
    # (the default feature model's windows on simulated EEG are a benchmark figure).
    model = load_model(weights_root() / "cnn-lstm-simulated-v2")
    src, labels = gated_source()
    gname, _ = unique_ids()
    # Guard thresholds high enough that the segment's own fluctuations never close the
    # window (the default's false closes are a benchmark figure: benchmarks.gate), so the
    # window is open when the injected arousal comes.
    rule = dataclasses.replace(DEFAULT_RULE, thresholds=GuardThresholds(hf_ratio=30.0, ptp_ratio=8.0,
                                                                      sustained_ratio=None))
    gate = GateSink(FS, rule, outlet_name=gname, linger_s=1.0)
    seen_in_process = []
    gate.add_listener(lambda ev, stamp: seen_in_process.append(ev))
    proc, lines, stop = start_listener(gname + "-gate", tmp_path)
    try:
        lines.wait(lambda m: m["event"] == "subscribed", 30, "the listener to subscribe")
        live = score_live(src, model, speed=30.0, extra_sinks=[gate], timeout_s=90.0)
        lines.wait(lambda m: m["event"] == "close" and m["reason"] == "scorer stopped" or
                   len(lines.got) >= len(gate.history), 10, "the last marker")
    finally:
        stop.touch()
        proc.wait(20)
    assert len(live.records) == WAKE_EPOCHS + SLEEP_EPOCHS
    t0 = live.records[0].start_time
    events = [ev for ev, _, _ in gate.history]
    assert events[0].reason == "restart" and seen_in_process == events[1:]
    opens = [e for e in events if e.kind == OPEN]
    assert len(opens) >= 3, events
    for e in opens:                                    # open only in (true) sleep, after its rule was met
        assert labels[e.epoch] in (2, 3) and labels[e.epoch - 1] in (2, 3)
        assert all(not live.records[k].flags for k in (e.epoch - 1, e.epoch))
    # the injected arousal closes the open window within the bound (data time)
    arousal = next(e for e in events if e.kind == CLOSE and e.time - t0 >= AROUSAL_AT_S)
    assert arousal.reason.startswith("arousal") or arousal.reason == "movement", events
    assert arousal.time - t0 - AROUSAL_AT_S <= AROUSAL_CLOSE_BOUND_S, [(e.kind, e.reason, e.epoch, round(e.time - t0, 2)) for e in events]
    # the gap closes at once, and nothing opens until two whole epochs after it met the rule
    gap_close = next(e for e in events if e.kind == CLOSE and e.time - t0 >= GAP_AT_S - 0.5)
    assert gap_close.reason in ("missing samples", "gap") and gap_close.time - t0 <= GAP_AT_S + 1.5
    gap_epoch = int(GAP_AT_S // 30)
    after = [e for e in opens if e.time > gap_close.time]
    assert after and after[0].epoch >= gap_epoch + 2
    # the stimulus program saw the same events, in order, stamped in the LSL clock
    peer = [(m["event"], m["reason"]) for m in lines.got if m["event"] in (OPEN, CLOSE)]
    assert peer[0] == (CLOSE, "restart")
    assert peer[1:] == [(e.kind, e.reason) for e in events[1:]]
    stamps = [m["stamp"] for m in lines.got]
    assert stamps == sorted(stamps)
    assert events[-1].reason == "scorer stopped"             # closed on the way out
    latency_ms = [lat for ev, _, lat in list(gate.history)[1:-1]]   # deciding data's arrival -> push
    assert all(np.isfinite(latency_ms)) and min(latency_ms) >= 0


@pytest.mark.slow
@pytest.mark.lsl
@pytest.mark.timeout(170)
def test_killed_scorer_leaves_no_window_open_the_restarted_one_starts_closed_and_says_so(tmp_path):
    import pylsl

    # The replay is held until the listener has heard the scorer say close/restart (at the
    # start, and again after the kill): a window can open only then, so what the listener
    # hears first does not depend on whether it or the (restarted) scorer got going first
    # on a loaded machine (a listener that reconnects after the restarted scorer opened a
    # window hears ('open', ...) instead: right, but a race for this test).
    valve, player, stop_player, gname, cmd = held_gated_scorer(speed=20.0, epochs=2)
    procs: list[subprocess.Popen] = []

    def scorer() -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / f"scorer{len(procs)}.stderr", "w"))
        procs.append(p)
        return p

    first = scorer()
    proc, lines, stop = start_listener(gname + "-gate", tmp_path, timeout=160)
    try:
        said = lines.wait(lambda m: m["event"] in (OPEN, CLOSE), 90, "the scorer's first event")
        assert (said["event"], said["reason"]) == (CLOSE, "restart"), lines.got
        released_at = pylsl.local_clock()
        valve.release()
        opened = lines.wait(lambda m: m["event"] == OPEN, 90, "a window to open in sleep")
        assert opened["stamp"] > released_at, lines.got
        first.send_signal(signal.SIGKILL)              # no chance to close anything
        first.wait(10)
        killed_at = pylsl.local_clock()                # every marker of the first scorer is stamped before
        valve.hold()                                   # the restarted scorer stays closed until heard
        n_before = len(lines.got)
        scorer()
        # the first scorer may have pushed more (a close, an open again) between the open
        # heard and the kill: the restarted scorer's markers are those stamped after the kill
        said = lines.wait(lambda m: m["event"] in (OPEN, CLOSE) and m["stamp"] > killed_at, 90,
                          "the restarted scorer's first event")
        assert (said["event"], said["reason"]) == (CLOSE, "restart"), lines.got
        released_at = pylsl.local_clock()
        valve.release()
        again = lines.wait(lambda m: m["event"] == OPEN, 90, "a window to open again once the rule is met")
        assert again["stamp"] > released_at > said["stamp"], lines.got
        # heard in the order pushed: nothing of the first scorer after the restarted one spoke
        markers = [m for m in lines.got if m["event"] in (OPEN, CLOSE)]
        assert [m["stamp"] for m in markers] == sorted(m["stamp"] for m in markers), lines.got
        assert lines.got.index(said) >= n_before and lines.got.index(again) > lines.got.index(said)
    finally:
        for p in procs:
            terminate(p, 20)
        stop.touch()
        proc.wait(20)
        stop_player.set()
        player.join(10.0)


# -- on the real Sleep-EDF feature nights (scorer.gate.evaluation, benchmarks.gate's real_feature_nights) --

def test_gate_on_real_subject0_feature_nights_opens_only_on_records_meeting_the_rule(shared_data, model):
    from scorer.gate.evaluation import gate_events, measure, open_by_stage, subject0_sessions

    sessions = subject0_sessions(model, shared_data / "sleep-edf-features")
    assert [s.name for s in sessions] == ["SC4001E0", "SC4002E0"]
    for s in sessions:
        assert len(s.records) == len(s.labels) and "warmup" in s.records[0].flags   # a fresh stager, as live
        by_epoch = {r.epoch: r for r in s.records}
        events = gate_events(s.records, DEFAULT_RULE)
        opens = [e for e in events if e.kind == OPEN]
        assert opens
        for e in opens:                        # the rule's epochs before each open all met it
            for k in range(e.epoch - DEFAULT_RULE.epochs + 1, e.epoch + 1):
                r = by_epoch[k]
                assert r.stage in DEFAULT_RULE.stages and r.confidence >= DEFAULT_RULE.min_probability and not r.flags
        seconds = open_by_stage(s.labels, events)
        assert sum(seconds.values()) > 0
    m = measure(sessions, DEFAULT_RULE)
    assert 0.0 <= m["window_precision"] <= 1.0 and 0.0 <= m["coverage"] <= 1.0 and m["open_h"] > 0
    shares = m["open_share_by_true_stage"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert shares["N2"] + shares["N3"] == pytest.approx(m["window_precision"], abs=1e-3)


def test_gate_real_nights_refuses_a_model_trained_on_the_held_out_subject(shared_data, model, tmp_path):
    from scorer.gate.evaluation import subject0_sessions
    from sleepnet.errors import SleepstreamError

    (tmp_path / "metrics.json").write_text(json.dumps({"train_nights": ["SC4011E0", "SC4001E0"]}))
    with pytest.raises(SleepstreamError, match="SC4001E0"):
        subject0_sessions(dataclasses.replace(model, source=tmp_path), shared_data / "sleep-edf-features")
