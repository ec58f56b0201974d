"""Figure 3, batch: one 8-hour night scored with ``sleepstream score``.

* with start-up: the wall time of the command as a user runs it (Python,
  imports (torch only for a CNN–LSTM), model load, reading the file, scoring, writing the CSV);
* without model start-up: the same work in a process where the model is already
  loaded and warm: read the npz, preprocess, score every epoch, write the CSV;
* the stager alone: the night's epochs preprocessed beforehand, scored one epoch per
  call as live scoring calls it (median CPU ms of the calling thread per epoch, which other
  jobs on a shared machine disturb less than wall time; the whole night in one call in
  ``detail``): what the model itself costs, apart from reading and preprocessing.

Medians over ``--repeats`` runs; the night is simulated once (seed 1, 100 Hz).

    .venv/bin/python -m benchmarks.batch [--repeats 3] [--weights NAME]
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np

from . import common

MODULE = "benchmarks.batch"
TARGET_S = 3.0


def score_in_process(model, path: Path, out: Path) -> tuple[float, int]:
    """Seconds to read, preprocess, score and write one night with a loaded model."""
    from sleepnet.io.exports import write_stage_csv
    from sleepnet.io.recordings import read_recording
    from sleepnet.preprocess import Preprocessor

    t = time.perf_counter()
    rec = read_recording(path)
    preds = model.new_stager().score(Preprocessor(rec.sfreq, model.preprocess).push(rec.eeg_uv))
    write_stage_csv(out, preds)
    return time.perf_counter() - t, len(preds)


def stager_alone(model, path: Path, repeats: int) -> tuple[np.ndarray, float]:
    """The stager's own cost on one night's epochs (preprocessed beforehand): CPU ms of this
    thread per epoch scored one per call (as live), pooled over ``repeats`` fresh stagers;
    and the median CPU seconds of the whole night in one call."""
    from sleepnet.io.recordings import read_recording
    from sleepnet.preprocess import Preprocessor

    rec = read_recording(path)
    epochs = Preprocessor(rec.sfreq, model.preprocess).push(rec.eeg_uv)
    per, whole = [], []
    for _ in range(repeats):
        stager = model.new_stager()
        for e in epochs:
            t = time.thread_time()
            stager.score([e])
            per.append(time.thread_time() - t)
        t = time.thread_time()
        model.new_stager().score(epochs)
        whole.append(time.thread_time() - t)
    return np.array(per) * 1e3, float(np.median(whole))


def run(args: argparse.Namespace) -> dict:
    from sleepnet.weights import load_model

    night = common.simulated_night_file(8.0, seed=1)
    tmp = common.scratch_dir("bench-batch-")
    cmd = common.sleepstream("score", night, "--out", tmp / "night.csv", "--quiet",
                             *(("--weights", args.weights) if args.weights else ()))
    walls = []
    for i in range(args.repeats):
        common.progress(f"batch: sleepstream score, run {i + 1}/{args.repeats}")
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True, timeout=600)
        walls.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise RuntimeError(f"sleepstream score failed: {p.stderr.strip()[-500:]}")
    n_rows = sum(1 for _ in open(tmp / "night.csv")) - 1
    t = time.perf_counter()
    model = load_model(None if args.weights is None else args.weights)
    load_s = time.perf_counter() - t
    score_in_process(model, night, tmp / "warm.csv")            # warm-up (first forward passes)
    inner = []
    for _ in range(args.repeats):
        s, n = score_in_process(model, night, tmp / "warm.csv")
        inner.append(s)
    per_epoch_ms, whole_s = stager_alone(model, night, args.repeats)
    with_s, without_s = float(np.median(walls)), float(np.median(inner))
    command = common.this_command(MODULE, args.argv)
    figures = [
        common.Figure("batch: 8-h night, sleepstream score (with start-up)", with_s, "s", f"< {TARGET_S:g} s",
                      with_s < TARGET_S, f"{command}  # times: {common.shell(cmd)}",
                      note=f"{n_rows / with_s:.0f} epochs/s; {n_rows} epochs; of which ~{with_s - without_s:.1f} s is "
                    f"start-up (Python, imports (torch only for a CNN–LSTM), model); median of {args.repeats}",
                      detail={"runs_s": walls, "epochs": n_rows, "epochs_per_s": n_rows / with_s}),
        common.Figure("batch: 8-h night, model already loaded", without_s, "s", f"< {TARGET_S:g} s",
                      without_s < TARGET_S, command,
                      note=f"{n / without_s:.0f} epochs/s (read+preprocess+score+CSV); model load {load_s:.2f} s",
                      detail={"runs_s": inner, "epochs": n, "epochs_per_s": n / without_s, "model_load_s": load_s}),
        common.Figure("batch: the stager alone, one epoch per call (as live), CPU", float(np.median(per_epoch_ms)), "ms",
                      "", None, command,
                      note=f"CPU of the calling thread, median per epoch over {len(per_epoch_ms)} epochs, p99 "
                    f"{np.percentile(per_epoch_ms, 99):.2f} ms; the whole night in one call {whole_s:.2f} s of CPU "
                    f"(median of {args.repeats})",
                      detail={"p99_ms": float(np.percentile(per_epoch_ms, 99)), "whole_night_s": whole_s}),
    ]
    return {"figures": figures, "night": str(night), "model_id": model.model_id}


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_repeats_argument(p, 3, "runs of `sleepstream score`, of scoring in a warm process and of the stager alone")
    common.add_weights_argument(p)


if __name__ == "__main__":
    common.script_main("batch", __doc__, add_arguments, run, value_format=".2f")
