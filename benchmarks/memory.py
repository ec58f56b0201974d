"""Figure 4, memory: peak RSS of ``sleepstream live`` over a 24-hour simulated stream,
and how fast it grows.

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

    .venv/bin/python -m benchmarks.memory [--hours 24] [--speed 1000]
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np

from .common import (
    Figure, configure_lsl, count_rows, popen, progress, rss_mb, scratch_dir, shell,
                     simulated_night_file, sleepstream, stop, script_main, this_command, unique, wait_until)

MODULE = "benchmarks.memory"
PEAK_TARGET_MB = 500.0
GROWTH_TARGET_MB_H = 5.0


def watch(proc, out: Path, n_epochs: int, timeout_s: float, every_s: float = 0.25) -> list[tuple]:
    """(wall s, epochs on disk, VmRSS MB, VmHWM MB) until ``n_epochs`` are on disk."""
    samples = []
    t0 = time.perf_counter()
    while True:
        rows = count_rows(out)
        rss, hwm = rss_mb(proc.pid)
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


def run(args: argparse.Namespace) -> dict:
    from replay.player import Player, load_source

    configure_lsl()
    night = simulated_night_file(8.0, seed=1)
    n_epochs = int(round(args.hours * 120))
    name, sid = unique("memory")
    src = load_source(night)
    player = Player(src, name=name, source_id=sid, speed=args.speed, loop=True)
    stop_player = threading.Event()
    tmp = scratch_dir("bench-memory-")
    out = tmp / "night.tsv"
    cmd = sleepstream("live", "--source-id", sid, "--no-display", "--out", out, "--epochs", n_epochs,
                      "--outlet-name", name + "-scorer", *(("--weights", args.weights) if args.weights else ()))
    progress(f"memory: {args.hours:g} h of signal at {args.speed:g}x into sleepstream live "
             f"(~{args.hours * 3600 / args.speed:.0f} s)")
    player.start(stop_player)
    proc = popen(cmd)
    try:
        wait_until(lambda: player.started.is_set(), 120, "the scorer to subscribe", proc=proc)
        samples = watch(proc, out, n_epochs, timeout_s=60 + 3 * args.hours * 3600 / args.speed)
        stop(proc, 30)
    finally:
        stop(proc)
        stop_player.set()
        player.join(10)
    g = growth(samples)
    command = f"{this_command(MODULE, args.argv)}  # scorer: {shell(cmd)}"
    figures = [
        Figure(f"memory: peak RSS of sleepstream live over {args.hours:g} h", g["peak_mb"], "MB",
               f"< {PEAK_TARGET_MB:g} MB", g["peak_mb"] < PEAK_TARGET_MB, command,
               note=f"RSS {g['rss_at_1h_mb']:.0f} MB at 1 h, {g['rss_end_mb']:.0f} MB at {g['hours']:.1f} h; "
                    f"stream at {args.speed:g}x",
               detail=g),
        Figure("memory: RSS growth per hour of signal (after the first hour)", g["growth_mb_per_h"], "MB/h",
               f"< {GROWTH_TARGET_MB_H:g} MB/h", abs(g["growth_mb_per_h"]) < GROWTH_TARGET_MB_H, command,
               note=f"least-squares slope over {g['n_samples']} samples", detail=g),
    ]
    return {"figures": figures, "samples": samples}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hours", type=float, default=24.0, help="hours of signal (default: 24)")
    p.add_argument("--speed", type=float, default=1000.0, help="replay speed (default: 1000)")
    p.add_argument("--weights", help="weights folder (default: weights/)")


def main(argv: list[str] | None = None) -> None:
    script_main("memory", __doc__, add_arguments, run, argv, ".1f")


if __name__ == "__main__":
    main()
