"""CPU cost of drawing the live screen: ms per frame at a few terminal sizes and night lengths.

A frame is what :class:`scorer.display.DisplaySink` does on each epoch and status tick:
``render(state, w, h)`` then writing it, with colours, to a terminal-like console (here a
StringIO, so the terminal's own drawing is not counted). The night is a real expert
hypnogram (Sleep-EDF SC4001E0 from ../shared/data when present, else a synthetic one),
with truth present so the agreement table is drawn too.

    .venv/bin/python -m benchmarks.display_cost [--frames 30]
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from scorer.display_state import DisplayState
from scorer.records import ScoredEpoch
from scorer.screen import render
from scorer.sinks import StreamStatus
from sleepnet.stages import stage_name

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SIZES = ((80, 24), (120, 40), (200, 60))
NIGHTS = (120, 960, 2880)


def _night_codes(n: int) -> np.ndarray:
    txt = SHARED / "hypnograms" / "sleep-edf-sc" / "SC4001E0.txt"
    if txt.exists():
        from sleepnet.io.hypnograms import read_hypnogram

        codes = read_hypnogram(txt)
        sleep = np.flatnonzero(codes > 0)
        codes = codes[max(0, sleep[0] - 60):]
    else:
        rng = np.random.default_rng(0)
        codes = np.repeat(rng.integers(-1, 5, 400), 8)
    return np.resize(codes, n)


def build_state(n_epochs: int, truth: bool = True) -> DisplayState:
    rng = np.random.default_rng(1)
    state = DisplayState()
    codes = _night_codes(n_epochs)
    t0 = 1_700_000_000.0
    for i, c in enumerate(codes):
        c = int(c)
        p = rng.dirichlet(np.ones(5))
        if c >= 0:
            p = 0.4 * p
            p[c] += 0.6
        probs = tuple(float(v) for v in p) if c >= 0 else (float("nan"),) * 5
        rec = ScoredEpoch(i, 30.0 * i, 30.0 * (i + 1), stage_name(c), probs,
                          max(probs) if c >= 0 else float("nan"), ("warmup",) if i < 4 else (), 10.0)
        state.add_record(rec, t0 + 30.0 * (i + 1))
        if truth:
            state.add_truth(i, stage_name(c if rng.random() < 0.8 else int(rng.integers(0, 5))))
    x = (30 * np.sin(np.arange(3000) * 2 * np.pi * 1.2 / 100) + 8 * rng.standard_normal(3000)).astype(np.float32)
    state.set_status(StreamStatus("eeg", 256.0, "Fpz-Cz", samples_received=n_epochs * 7680, gaps=1,
                                  samples_missing=300, elapsed_s=n_epochs * 30.0, last_latency_ms=10.0,
                                  recent_uv=x, recent_sfreq_hz=100.0))
    return state


def frame_ms(state: DisplayState, width: int, height: int, frames: int) -> tuple[float, float]:
    """(median ms of render() alone, median ms of render + writing with colours)."""
    console = Console(file=io.StringIO(), width=width, height=height, color_system="truecolor",
                      force_terminal=True, legacy_windows=False)
    render(state, width, height)                                   # warm up
    t_render, t_frame = [], []
    for _ in range(frames):
        t = time.perf_counter()
        r = render(state, width, height)
        t_render.append(time.perf_counter() - t)
        console.file = io.StringIO()
        console.print(r)
        t_frame.append(time.perf_counter() - t)
    return 1000 * float(np.median(t_render)), 1000 * float(np.median(t_frame))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    print(f"{'night':>12} {'size':>8} {'render ms':>10} {'frame ms':>9}  (median of {args.frames})")
    for n in NIGHTS:
        state = build_state(n)
        for w, h in SIZES:
            r_ms, f_ms = frame_ms(state, w, h, args.frames)
            print(f"{n:>6} epochs {w:>4}x{h:<3} {r_ms:>10.2f} {f_ms:>9.2f}")


if __name__ == "__main__":
    main()
