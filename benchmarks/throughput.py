"""Figure 2, throughput: an 8-hour night replayed at ``--speed max`` through LSL and
scored live, compared with batch scoring of the same file.

Two commands as a user runs them, each its own process:

    sleepstream replay night.npz --speed max --name N --source-id S --quiet
    sleepstream live --source-id S --out night.tsv --no-display --epochs 960

Wall time runs from the moment the scorer is ready (its hypnogram file holds the
session line; the replay starts sending when the scorer subscribes, a few ms before)
to the moment the 960th epoch is on disk (fsync'ed). Multiple of real time = 8 h /
wall time. The stages of the live hypnogram are then compared with ``sleepstream score``
on the same file: mismatching stages are counted, and the largest probability
difference reported. Median wall time over ``--repeats`` runs.

    .venv/bin/python -m benchmarks.throughput [--repeats 3]
"""
from __future__ import annotations

import argparse
import csv
import subprocess
from pathlib import Path

import numpy as np

from . import common

MODULE = "benchmarks.throughput"
TARGET_X = 1000.0
HOURS = 8.0


def batch_stages(night: Path, tmp: Path, weights: str | None) -> tuple[list[str], np.ndarray]:
    out = tmp / "batch.csv"
    cmd = common.sleepstream("score", night, "--out", out, "--quiet", *(("--weights", weights) if weights else ()))
    subprocess.run(cmd, cwd=common.REPO, check=True, capture_output=True, timeout=600)
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    probs = np.array([[float(r[f"p_{s}"] or "nan") for s in ("W", "N1", "N2", "N3", "REM")] for r in rows])
    return [r["stage"] for r in rows], probs


def one_run(night: Path, n_epochs: int, tmp: Path, weights: str | None) -> dict:
    from scorer.hypnogram_file import read_rows

    name, sid = common.unique("throughput")
    out = tmp / f"{name}.tsv"
    replay = common.sleepstream("replay", night, "--speed", "max", "--name", name, "--source-id", sid, "--quiet")
    live = common.sleepstream("live", "--source-id", sid, "--out", out, "--no-display", "--epochs", n_epochs,
                              "--outlet-name", name + "-scorer", "--timeout", "60",
                              *(("--weights", weights) if weights else ()))
    rp = common.popen(replay)
    lp = common.popen(live)
    try:
        def ready() -> bool:
            try:
                return b"# session 1 started" in out.read_bytes()
            except OSError:
                return False

        t_ready = common.wait_until(ready, 120, "the scorer to be ready", poll_s=0.002, proc=lp)
        t_done = common.wait_until(lambda: common.count_rows(out) >= n_epochs, 600, f"{n_epochs} epochs on disk", poll_s=0.005,
                                   proc=lp)
        _, live_err = common.stop(lp, 60)
        _, replay_err = common.stop(rp, 60)
    finally:
        common.stop(lp)
        common.stop(rp)
    rows = read_rows(out)
    wall = t_done - t_ready
    return {"wall_s": wall, "x_real_time": HOURS * 3600 / wall, "rows": rows,
            "commands": [common.shell(replay), common.shell(live)], "live_stderr_tail": live_err[-400:]}


def run(args: argparse.Namespace) -> dict:
    common.configure_lsl()
    night = common.simulated_night_file(HOURS, seed=1)
    tmp = common.scratch_dir("bench-throughput-")
    common.progress("throughput: batch reference (sleepstream score)")
    ref_stages, ref_probs = batch_stages(night, tmp, args.weights)
    n = len(ref_stages)
    runs = []
    for i in range(args.repeats):
        common.progress(f"throughput: 8-h night at --speed max through LSL, run {i + 1}/{args.repeats}")
        runs.append(one_run(night, n, tmp, args.weights))
    walls = [r["wall_s"] for r in runs]
    wall = float(np.median(walls))
    mismatches, max_dp = [], []
    for r in runs:
        stages = [row["stage"] for row in r["rows"]][:n]
        probs = np.array([[row[f"p_{s}"] for s in ("W", "N1", "N2", "N3", "REM")] for row in r["rows"]][:n])
        mismatches.append(sum(a != b for a, b in zip(stages, ref_stages)) + abs(len(stages) - n))
        both = np.isfinite(probs) & np.isfinite(ref_probs[:len(probs)])
        max_dp.append(float(np.max(np.abs(probs[both] - ref_probs[:len(probs)][both]))) if both.any() else 0.0)
        del r["rows"]
    x = HOURS * 3600 / wall
    command = common.this_command(MODULE, args.argv)
    figures = [
        common.Figure("throughput: 8-h night via LSL at --speed max, multiple of real time", x, "x",
                      f">= {TARGET_X:g}x", x >= TARGET_X, f"{command}  # runs: {runs[0]['commands'][0]} & "
                      f"{runs[0]['commands'][1]}",
                      note=f"wall {wall:.1f} s for {n} epochs ({n / wall:.0f} epochs/s); median of {args.repeats}",
                      detail={"wall_s": walls, "epochs": n}),
        common.Figure("throughput: stages differing from sleepstream score (all runs)", float(sum(mismatches)), "epochs",
                      "0", sum(mismatches) == 0, command,
                      note=f"{n} epochs x {args.repeats} runs; largest probability difference {max(max_dp):.1e}",
                      detail={"mismatches_per_run": mismatches, "max_abs_prob_diff_per_run": max_dp}),
    ]
    return {"figures": figures, "runs": runs, "night": str(night)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=3)
    common.add_weights_argument(p)


if __name__ == "__main__":
    common.script_main("throughput", __doc__, add_arguments, run, value_format=".1f")
