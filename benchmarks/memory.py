"""Figure 4, memory: peak RSS of ``sleepstream live`` over a 24-hour simulated stream,
and how fast it grows; then its peak RSS while a whole 8-hour night arrives at once
(``--flood``: that figure alone).

The stream is the real replay code (:class:`replay.player.Player`, in this process)
looping an 8-hour simulated night at ``--speed`` (default 1000x: 24 h in 86 s); the
scorer is ``sleepstream live --no-display --out night.tsv --epochs 2880`` in its own
process. Every 0.25 s this process reads the scorer's VmRSS and VmHWM from
/proc/PID/status together with the epochs on disk so far. Peak = the largest VmHWM;
growth = the least-squares slope of VmRSS against hours of signal scored, after the
first hour (start-up allocations excluded).

At 1000x, things the scorer does per second of wall time (the 1-Hz status tick) happen
1000 times less often per hour of signal than in a real night; per-epoch work is the
same. The inlet buffer grows with the replay's advertised speed (10 000 s of signal at
1000x, preallocated by liblsl) and is part of the figure.

For the flood figure the player streams the 8-hour night once at ``--speed max`` (as fast as
LSL takes it: the whole night is in the scorer's inlet within a second or two, as after
a long disconnection), and the figure is the scorer's peak RSS (VmHWM) until all 960
epochs are on disk.

    .venv/bin/python -m benchmarks.memory [--hours 24] [--speed 1000]
    .venv/bin/python -m benchmarks.memory --flood
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np

from . import common

MODULE = "benchmarks.memory"
PEAK_TARGET_MB = 500.0
FLOOD_PEAK_TARGET_MB = 400.0
GROWTH_TARGET_MB_H = 5.0


def watch(proc, out: Path, n_epochs: int, timeout_s: float, every_s: float = 0.25) -> list[tuple]:
    """(wall s, epochs on disk, VmRSS MB, VmHWM MB) until ``n_epochs`` are on disk."""
    samples = []
    t0 = time.perf_counter()
    while True:
        rows = common.count_rows(out)
        rss, hwm = common.rss_mb(proc.pid)
        samples.append((time.perf_counter() - t0, rows, rss, hwm))
        if rows >= n_epochs:
            return samples
        if proc.poll() is not None:
            raise RuntimeError(f"the scorer ended early (rc {proc.returncode}) after {rows} epochs")
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"{rows} of {n_epochs} epochs after {timeout_s:g} s")
        time.sleep(every_s)


def growth(samples: list[tuple], skip_h: float = 1.0) -> dict:
    """Peak, RSS at the start and end, and the slope (MB per hour of signal) after ``skip_h``."""
    a = np.array([s for s in samples if np.isfinite(s[2])], dtype=float)
    hours = a[:, 1] * 30.0 / 3600.0
    keep = hours >= skip_h
    slope = float(np.polyfit(hours[keep], a[keep, 2], 1)[0]) if keep.sum() >= 3 else float("nan")
    first = a[np.argmax(keep), 2] if keep.any() else float("nan")
    return {"peak_mb": float(np.nanmax(a[:, 3])), "rss_at_1h_mb": float(first), "rss_end_mb": float(a[-1, 2]),
            "growth_mb_per_h": slope, "hours": float(hours[-1]), "n_samples": int(len(a))}


def scorer_memory(tag: str, src, n_epochs: int, speed: float | None, weights: str | None, timeout_s: float,
                  every_s: float = 0.25) -> tuple[list[tuple], str, list[str], object]:
    """``sleepstream live --no-display --out`` in its own process, fed ``src`` by a replay
    player in this process (looping unless ``speed`` is None: the night once, as fast as LSL
    takes it), its memory sampled with :func:`watch` every ``every_s`` s until ``n_epochs``
    are on disk (at most ``timeout_s`` s). ``tag`` names the stream and the scratch folder.
    LSL must be configured first (:func:`configure_lsl`, before any LSL call). Returns the
    samples, the scorer's stderr, its command and the (stopped) player."""
    from replay.player import Player

    name, sid = common.unique(tag)
    player = Player(src, name=name, source_id=sid, speed=speed, loop=speed is not None)
    stop_player = threading.Event()
    out = common.scratch_dir(f"bench-{tag}-") / "night.tsv"
    cmd = common.sleepstream("live", "--source-id", sid, "--no-display", "--out", out, "--epochs", n_epochs,
                             "--outlet-name", name + "-scorer", *(("--weights", weights) if weights else ()))
    player.start(stop_player)
    proc = common.popen(cmd)
    try:
        common.wait_until(lambda: player.started.is_set(), 120, "the scorer to subscribe", proc=proc)
        samples = watch(proc, out, n_epochs, timeout_s=timeout_s, every_s=every_s)
        _, err = common.stop(proc, 30)
    finally:
        common.stop(proc)
        stop_player.set()
        player.join(10)
    return samples, err, cmd, player


def run_flood(args: argparse.Namespace) -> dict:
    """Peak RSS of the scorer while a whole 8-h night arrives at ``--speed max``."""
    from replay.player import load_source

    common.configure_lsl()
    src = load_source(common.simulated_night_file(8.0, seed=1))
    n_epochs = src.n_epochs
    common.progress(f"memory: a whole {src.duration_s / 3600:.0f}-h night ({n_epochs} epochs) at --speed max "
                    "into sleepstream live")
    samples, err, cmd, player = scorer_memory("memory-flood", src, n_epochs, None, args.weights,
                                              timeout_s=180, every_s=0.05)   # ~10 s when nothing is lost
    n_gaps = err.count("marked as a gap")    # samples liblsl dropped show as gaps
    a = np.array([s for s in samples if np.isfinite(s[3])], dtype=float)
    peak = float(np.nanmax(a[:, 3]))
    wall = float(samples[-1][0])
    command = f"{common.this_command(MODULE, args.argv)}  # scorer: {common.shell(cmd)}"
    detail = {"peak_mb": peak, "rss_start_mb": float(a[0, 2]), "rss_end_mb": float(a[-1, 2]),
              "epochs": n_epochs, "gaps": n_gaps, "wall_s": wall,
              "sent_in_s": player.result.elapsed_s if player.result else float("nan")}
    figures = [
        common.Figure("memory: peak RSS of sleepstream live under a flood (8-h night at --speed max)", peak, "MB",
                      f"< {FLOOD_PEAK_TARGET_MB:g} MB, no gap", peak < FLOOD_PEAK_TARGET_MB and n_gaps == 0, command,
                      note=f"{n_epochs} epochs scored in {wall:.0f} s with {n_gaps} gaps (dropped samples); "
                    f"RSS {a[0, 2]:.0f} MB when the flood began, {a[-1, 2]:.0f} MB at the end",
                      detail=detail),
    ]
    return {"figures": figures, "samples": samples}


def run(args: argparse.Namespace) -> dict:
    from replay.player import load_source

    if getattr(args, "flood", False):
        return run_flood(args)
    common.configure_lsl()
    src = load_source(common.simulated_night_file(8.0, seed=1))
    n_epochs = int(round(args.hours * 120))
    common.progress(f"memory: {args.hours:g} h of signal at {args.speed:g}x into sleepstream live "
                    f"(~{args.hours * 3600 / args.speed:.0f} s)")
    samples, _, cmd, _ = scorer_memory("memory", src, n_epochs, args.speed, args.weights,
                                       timeout_s=60 + 3 * args.hours * 3600 / args.speed)
    g = growth(samples)
    command = f"{common.this_command(MODULE, args.argv)}  # scorer: {common.shell(cmd)}"
    figures = [
        common.Figure(f"memory: peak RSS of sleepstream live over {args.hours:g} h", g["peak_mb"], "MB",
                      f"< {PEAK_TARGET_MB:g} MB", g["peak_mb"] < PEAK_TARGET_MB, command,
                      note=f"RSS {g['rss_at_1h_mb']:.0f} MB at 1 h, {g['rss_end_mb']:.0f} MB at {g['hours']:.1f} h; "
                    f"stream at {args.speed:g}x",
                      detail=g),
        common.Figure("memory: RSS growth per hour of signal (after the first hour)", g["growth_mb_per_h"], "MB/h",
                      f"< {GROWTH_TARGET_MB_H:g} MB/h", abs(g["growth_mb_per_h"]) < GROWTH_TARGET_MB_H, command,
                      note=f"least-squares slope over {g['n_samples']} samples", detail=g),
    ]
    flood = run_flood(args)
    return {"figures": figures + flood["figures"], "samples": samples, "flood_samples": flood["samples"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hours", type=float, default=24.0, help="hours of signal (default: 24)")
    p.add_argument("--speed", type=float, default=1000.0, help="replay speed (default: 1000)")
    common.add_weights_argument(p)
    p.add_argument("--flood", action="store_true",
                   help="only the flood figure: peak RSS while a whole 8-h night arrives at --speed max")


def main(argv: list[str] | None = None) -> None:
    import sys

    flood = "--flood" in (sys.argv[1:] if argv is None else argv)
    common.script_main("memory-flood" if flood else "memory", __doc__, add_arguments, run, argv, ".1f")


if __name__ == "__main__":
    main()
