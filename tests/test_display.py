"""The live screen, rendered headless from known states at several terminal sizes."""
from __future__ import annotations

import io
import logging
import math
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
from rich.console import Console

from scorer.display import DisplaySink
from scorer.display_state import DisplayState
from scorer.records import ScoredEpoch
from scorer.screen import SEPARATOR, big_text, braille_trace, render, strip_columns
from scorer.sinks import StreamStatus
from sleepnet.metrics import agreement
from sleepnet.stages import STAGES, stage_name

NAN = float("nan")
T0 = 1_700_000_000.0          # wall clock (POSIX s) when the first record arrives
SIZES = [(80, 24), (100, 30), (120, 40), (160, 50), (220, 60)]
# The hand-scored night of test_sleep_stats: TST 4.5 min, SE 45 %, WASO 2 min, 2 awakenings.
NIGHT = [0, 0, 0, 1, 2, 2, 0, 0, 2, -1, 3, 3, 0, -1, 0, 2, 4, 4, 0, 0]


def _console(w: int, h: int) -> Console:
    return Console(file=io.StringIO(), width=w, height=h, record=True, color_system=None,
                   force_terminal=False)


def _text(state: DisplayState, w: int = 80, h: int = 24) -> str:
    con = _console(w, h)
    con.print(render(state, w, h))
    return con.export_text()


def _probs(code: int, conf: float = 0.6) -> tuple[float, ...]:
    if code < 0:
        return (NAN,) * 5
    p = [(1 - conf) / 4] * 5
    p[code] = conf
    return tuple(p)


def _record(i: int, code: int, conf: float = 0.6, flags: tuple[str, ...] = (), latency: float = 12.0) -> ScoredEpoch:
    p = _probs(code, conf)
    return ScoredEpoch(i, 1000.0 + 30 * i, 1030.0 + 30 * i, stage_name(code), p,
                       conf if code >= 0 else NAN, flags, latency)


def _status(**kw) -> StreamStatus:
    base = dict(source_name="test-eeg", sfreq_hz=256.0, channel="EEG Fpz-Cz", samples_received=153_600,
                samples_missing=512, gaps=2, elapsed_s=605.0, last_latency_ms=14.0,
                recent_uv=(40 * np.sin(np.arange(3000) * 2 * np.pi / 100)).astype(np.float32))
    base.update(kw)
    return StreamStatus(**base)


def _state(codes, truth=None, last_conf: float = 0.6, flags=()) -> DisplayState:
    st = DisplayState()
    for i, c in enumerate(codes):
        last = i == len(codes) - 1
        st.add_record(_record(i, c, last_conf if last else 0.6, flags if last else ()), T0 + 30 * (i + 1) + 0.012)
        if truth is not None:
            st.add_truth(i, stage_name(truth[i]))
    st.set_status(_status())
    return st


def _night(n: int) -> list[int]:
    base = [0] * 20 + [1] * 4 + [2] * 30 + [3] * 40 + [2] * 20 + [4] * 16 + [0, 0] + [2] * 40 + [4] * 30
    return (base * (n // len(base) + 1))[:n]


def test_current_stage_probabilities_and_confidence_are_shown_at_80x24():
    text = _text(_state([0, 0, 1, 2, 2, 3], last_conf=0.72))
    assert "N3  NREM 3" in text and "confidence 72 %" in text
    assert " 72%" in text and "  7%" in text        # the stage's bar and the four others
    assert "epoch 5 · " + datetime.fromtimestamp(T0 + 5 * 30).strftime("%H:%M:%S") in text


@pytest.mark.parametrize("w,h", SIZES + [(60, 24)])
def test_screen_fits_the_terminal_at_every_size(w, h):
    st = _state(_night(960), truth=_night(960))
    text = _text(st, w, h - 1)          # the sink leaves the last row to the cursor
    lines = text.rstrip("\n").split("\n")
    assert len(lines) <= h - 1
    assert max(len(ln) for ln in lines) <= w
    for must in ("N2", "TST", "hypnogram" if h > 24 or w >= 80 else "W", "signal", "samples received"):
        assert must in text, (must, w, h)


def test_running_sleep_statistics_of_a_hand_scored_night():
    text = _text(_state(NIGHT))
    assert "TIB      10.0 min" in text and "TST          4.5 min" in text
    assert "SE         45.0 %" in text and "SME           60.0 %" in text
    assert "SOL       1.5 min" in text and "WASO         2.0 min" in text
    assert "REM lat   6.5 min" in text and "awakenings         2" in text
    # minutes per stage W N1 N2 N3 REM and % of TST
    assert "min      4.5    0.5    2.0    1.0    1.0" in text
    assert "%TST           11.1   44.4   22.2   22.2" in text


def test_signal_lost_is_shown_with_how_long_it_has_been_lost():
    st = _state([2, 2, 2])
    st.set_status(_status(stalled=True, elapsed_s=700.0))
    st.set_status(_status(stalled=True, elapsed_s=712.0))
    text = _text(st)
    assert "SIGNAL LOST 12 s" in text and "no samples arriving" in text
    st.set_status(_status(stalled=False, elapsed_s=713.0))
    text = _text(st)
    assert "SIGNAL LOST" not in text and "receiving" in text


def test_truth_gives_running_accuracy_kappa_and_a_confusion_matrix():
    pred = [0, 0, 1, 2, 2, 2, 3, 3, 4, 4]
    true = [0, 0, 2, 2, 2, 2, 3, 2, 4, 4]
    a = agreement(np.array(true), np.array(pred))
    st = _state(pred, truth=true)
    small = _text(st, 80, 24)
    assert f"acc {a.accuracy * 100:.1f}%" in small and "acc 80.0%" in small
    assert f"kappa {a.kappa:.2f}" in small and "n=10" in small
    wide = _text(st, 160, 40)
    assert "truth (rows) vs predicted (columns)" in wide
    # row N2 (true): 1 predicted N1, 3 N2, 1 N3 -> recall 60 %
    assert "N2            0     1     3     1     0     60%" in wide


def test_truth_of_unscored_epochs_is_excluded_and_said():
    st = _state([-1, -1], truth=[2, 2])
    assert "vs truth: 0 scored pairs (2 unscored)" in _text(st)


def test_flags_of_the_current_epoch_and_an_unscored_stage():
    st = _state([2, 2, -1], flags=("gap", "flat"))
    text = _text(st)
    assert "UNS  unscored" in text and "flags: gap flat" in text and "confidence —" in text
    assert "signal ok" in _text(_state([2, 2]))


def test_waiting_for_the_first_epoch_shows_how_much_signal_has_arrived():
    st = DisplayState()
    st.set_status(_status(samples_received=256 * 15, sfreq_hz=256.0, elapsed_s=15.0))
    text = _text(st)
    assert "waiting for the first 30-s epoch" in text and " 50%" in text


def test_stream_health_line():
    st = _state([2, 2, 2])
    for i, lat in enumerate((10.0, 30.0)):
        st.add_record(_record(3 + i, 2, latency=lat), T0 + 200)
    text = _text(st)
    assert "153,600 samples received · 2 gaps · 512 missing (2.0 s)" in text
    assert "latency 14 ms (median 12, max 30)" in text and "5 epochs (0 unscored)" in text
    assert "test-eeg · 256 Hz · EEG Fpz-Cz" in text and "up 0:10:05" in text


def test_hypnogram_rows_show_each_epoch_while_the_night_fits():
    st = _state([0, 0, 1, 2, 3, 4, -1, 2])
    # The probability bars also start with stage names; the hypnogram rows come last.
    text_lines = [ln for ln in _text(st).split("\n") if ln[:4].strip() in STAGES][-5:]
    rows = {ln[:4].strip(): ln[4:12] for ln in text_lines}
    assert rows["W"] == "██    · "
    assert rows["N1"] == "  █   · "
    assert rows["N2"] == "   █  ·█"
    assert rows["N3"] == "    █ · "
    assert rows["REM"] == "     █· "


def test_hypnogram_axis_has_clock_times():
    st = _state(_night(240))       # 2 h from T0
    text = _text(st, 120, 40)
    start = datetime.fromtimestamp(T0).strftime("%H:%M")
    assert "╵" + start in text


def test_strip_summarises_older_epochs_and_keeps_recent_ones_one_per_column():
    codes = np.array(_night(2880))
    for width in (20, 76, 150, 300):
        cols = strip_columns(codes, width)
        assert len(cols) <= width
        seps = [j for j, c in enumerate(cols) if c.major == SEPARATOR]
        assert len(seps) == 1
        real = [c for c in cols if c.major != SEPARATOR]
        # every epoch exactly once, in order, newest at the right
        assert real[0].start == 0 and real[-1].stop == len(codes)
        assert all(a.stop == b.start for a, b in zip(real, real[1:]))
        recent = cols[seps[0] + 1:]
        assert all(c.stop - c.start == 1 and c.major == codes[c.start] for c in recent)
        assert len(recent) >= (width - 1) // 3
    fits = strip_columns(codes[:50], 60)
    assert len(fits) == 50 and all(c.stop - c.start == 1 for c in fits)


def test_a_summarised_column_shows_its_most_frequent_stage_and_the_others_present():
    codes = [2, 2, 0, 2] * 10 + [-1, -1, -1, 2] * 10 + [3] * 40
    cols = strip_columns(codes, 31)
    old = [c for c in cols if c.major != SEPARATOR][: len(cols) // 2]
    assert any(c.major == 2 and c.present == {0, 2} for c in old)
    assert any(c.major == -1 and c.present == {2} for c in old)


def test_braille_trace_draws_min_to_max_and_leaves_gaps_blank():
    top = braille_trace(np.full(100, 100.0), 4, 2, 100.0)
    assert top == ["⠉⠉⠉⠉", "⠀⠀⠀⠀"]                      # only the top dot row
    gap = braille_trace(np.full(100, np.nan), 4, 2, 100.0)
    assert gap == ["⠀⠀⠀⠀", "⠀⠀⠀⠀"]
    x = np.concatenate([np.linspace(-100, 100, 50), np.full(50, np.nan)])
    rows = braille_trace(x, 4, 2, 100.0)
    assert rows[0][2:] == "⠀⠀" and rows[1][2:] == "⠀⠀" and rows[0][:2] != "⠀⠀"


def test_big_letters_have_three_rows_of_equal_width():
    for word in (*STAGES, "UNS"):
        rows = big_text(word)
        assert len(rows) == 3 and len({len(r) for r in rows}) == 1 and any(ch != " " for ch in rows[0])


def test_render_does_not_change_the_state():
    st = _state(_night(300), truth=_night(300))
    before = (list(st.codes), st.stats.as_dict().__repr__(), dict(st.truth))
    a, b = _text(st, 120, 40), _text(st, 120, 40)
    assert a == b
    assert before == (list(st.codes), st.stats.as_dict().__repr__(), dict(st.truth))


@pytest.mark.lsl
def test_the_renderer_and_the_state_never_load_the_terminal_owner():
    """Only the sink owns the terminal: importing the renderer and the state (in a fresh
    interpreter) loads neither rich.live nor scorer.display, and the state loads no rich."""
    code = ("import sys, scorer.display_state; no_rich = not any(m.startswith('rich') for m in sys.modules); "
            "import scorer.screen; print(no_rich, 'rich.live' in sys.modules, 'scorer.display' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]


def test_display_sink_draws_the_final_frame_and_routes_logging_through_the_console():
    con = _console(100, 31)
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        sink = DisplaySink(console=con, wall_clock=lambda: T0)
        assert handler not in root.handlers                  # replaced while drawing
        for i, c in enumerate([0, 0, 1, 2, 2]):
            sink.publish(_record(i, c))
            sink.truth(i, stage_name(c))
            sink.status(_status(elapsed_s=30.0 * (i + 1)))
        logging.getLogger("scorer.test").warning("a message while the screen is up")
        sink.close()
        sink.close()                                         # idempotent
        assert handler in root.handlers
        assert not any(type(h).__name__ == "RichHandler" for h in root.handlers)
    finally:
        root.removeHandler(handler)
    text = con.export_text()
    assert "a message while the screen is up" in text
    assert "N2  NREM 2" in text and "acc 100.0%" in text and "5 epochs" in text
    # every redraw asked for is drawn or, when the terminal was still taking the one before,
    # counted as dropped (the writer thread owns the terminal; the loop never waits for it)
    assert sink.frames >= 1 and sink.frames + sink.frames_dropped >= 5


def test_epochs_that_never_arrived_count_as_unscored():
    st = DisplayState()
    st.add_record(_record(10, 2), T0)
    st.add_record(_record(13, 2), T0 + 90)
    assert st.codes == [2, -1, -1, 2] and st.n_unscored == 2
    assert st.stats.tib_min == 2.0 and st.stats.tst_min == 1.0
    assert math.isclose(st.anchor_wall_s, T0 - 0.012 - 30.0)


def test_display_sink_as_a_context_manager_closes_and_leaves_the_last_frame():
    con = _console(80, 25)
    with DisplaySink(console=con, capture_logging=False, wall_clock=lambda: T0) as sink:
        sink.status(_status(stalled=True))
    text = con.export_text()
    assert "SIGNAL LOST 0 s" in text and "waiting for the first 30-s epoch" in text


def test_a_first_record_without_latency_still_anchors_the_clock():
    st = DisplayState()
    st.add_record(_record(0, 2, latency=NAN), T0)
    assert st.anchor_wall_s == T0 - 30.0
    assert "epoch 0 · " + datetime.fromtimestamp(T0 - 30).strftime("%H:%M:%S") in _text(st)


def test_a_seven_day_session_keeps_the_last_48_h_on_screen_and_whole_session_figures():
    """20 160 epochs (7 days) with truth, a repeat and a late truth label: the state holds
    at most 49 h of codes and truth labels, while the epoch count, sleep statistics and
    agreement on screen are those of every epoch (the reference: all codes kept here)."""
    from sleepnet.report.sleep_stats import sleep_statistics

    n = 7 * 24 * 120
    rng = np.random.default_rng(11)
    codes = rng.integers(-1, 5, n)
    truth = np.where(rng.random(n) < 0.8, codes, rng.integers(-1, 5, n))
    st = DisplayState()
    for i in range(n):
        if i % 3 == 0:
            st.add_truth(i, stage_name(truth[i]))             # truth before its record...
        st.add_record(_record(i, int(codes[i]), latency=float(i % 50)), T0 + 30 * i)
        if i % 3:
            st.add_truth(i, stage_name(truth[i]))             # ...or after it
        if i == n - 10:
            codes[n - 20] = (codes[n - 20] + 1) % 5           # an epoch scored again
            st.add_record(_record(n - 20, int(codes[n - 20])), T0 + 30 * i)
        assert len(st.codes) <= 49 * 120 and len(st.truth) <= len(st.codes) + 1   # 48 h kept, dropped hourly
    assert st.n_epochs == n and st.dropped_epochs == n - len(st.codes)
    assert st.codes == codes[-len(st.codes):].tolist() and st.first_epoch == st.dropped_epochs
    assert st.n_unscored == int(np.sum(codes < 0))
    assert st.stats.as_dict() == pytest.approx(sleep_statistics(codes).as_dict(), nan_ok=True)
    assert st.agreement() == agreement(truth, codes)
    assert math.isclose(st.anchor_wall_s, T0 - 0.0 - 30.0 + 30 * st.dropped_epochs)
    st.set_status(_status())
    text = _text(st, 120, 40)
    assert "hypnogram · 20,160 epochs (168 h 00 min), the last 48 h" in text   # it says what it shows
    assert f"20,160 epochs ({int(np.sum(codes < 0))} unscored)" in text
