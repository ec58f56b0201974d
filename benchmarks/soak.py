"""The soak: a 24-hour stream with random faults, accelerated, into ``sleepstream live``.

This process is the EEG source: an LSL outlet (100 Hz, Fpz-Cz in µV) it paces at
``--speed`` (default 1000x) with explicit timestamps on one clock, looping an 8-hour
simulated night. About every ``--every-min`` minutes of signal (randomly, fixed seed) it
does one of these to the stream:

* data faults, written into the signal: bursts of NaN/Inf (dropouts), a flat line
  (electrode off, DC only), the amplifier stuck on its rail, clipping at +-187.5 µV,
  movement artefacts of thousands of µV;
* timing faults: samples never sent (a radio dropout: the timestamps jump), the outlet
  frozen for 2.5 s of wall time (nothing flows, nothing fails: "signal lost"), the
  outlet destroyed and created again with the same source_id, the clock stepping
  back by 5 minutes.

The scorer is ``sleepstream live --no-display --out night.tsv --buffer-s 3600``. At the
end every epoch of the clock must be in the file exactly once, in order: scored, or
``UNS`` with its reason in the flags. Knowing what it sent, this process also checks
that no epoch that had to be unscored (more than a quarter missing, or flat, or on the
rail throughout) was given a stage, and counts the epochs that were clean when sent but
flagged anyway. The scorer's memory is sampled throughout.

    .venv/bin/python -m benchmarks.soak [--hours 24] [--speed 1000] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import common
from .memory import growth

MODULE = "benchmarks.soak"
FS = 100.0
E = 3000                      # samples per 30-s epoch at 100 Hz
RAIL_UV = 3276.7
CLIP_UV = 187.5
# what each clock sample was when sent
CLEAN, NAN, FLAT, RAIL, CLIPPED, ARTEFACT, SKIPPED = range(7)
DATA_FAULTS = ("nan_bursts", "flat", "rail", "clipping", "artefact")
TIMING_FAULTS = ("dropout", "freeze", "outlet_restart", "clock_back")


@dataclass(frozen=True)
class Fault:
    kind: str
    at: int          # clock sample where it starts
    length: int      # clock samples it covers (data faults, dropouts)


def plan(total: int, every_min: float, rng: np.random.Generator) -> list[Fault]:
    """Random faults, one every ``every_min`` minutes of signal on average; none in the
    last hour (the end of the stream must be sent, or the scorer cannot see it)."""
    faults, t = [], 0
    mean = every_min * 60 * FS
    weights = {"nan_bursts": 3, "flat": 2, "rail": 2, "clipping": 2, "artefact": 2,
               "dropout": 3, "freeze": 1, "outlet_restart": 1, "clock_back": 1}
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    while True:
        t += int(rng.exponential(mean)) + E
        if t > total - 3600 * FS:
            return faults
        kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
        length = {"nan_bursts": E, "flat": int(rng.integers(1, 4)) * E, "rail": int(rng.integers(1, 3)) * E,
                  "clipping": int(rng.integers(1, 4)) * E, "artefact": int(rng.integers(100, 250)),
                  "dropout": int(rng.integers(5, 120) * FS)}.get(kind, 0)
        faults.append(Fault(kind, t, length))
        t += length


def signal_with_faults(base: np.ndarray, total: int, faults: list[Fault], rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The clock's samples (µV, float32) with the data faults written in, and what each is."""
    x = np.resize(base, total).astype(np.float32)
    what = np.zeros(total, dtype=np.int8)
    for f in faults:
        a, b = f.at, f.at + f.length
        if f.kind == "nan_bursts":
            for _ in range(int(rng.integers(5, 40))):
                s = int(rng.integers(a, b - 100))
                n = int(rng.integers(20, 100))
                x[s:s + n] = rng.choice([np.nan, np.inf, -np.inf])
                what[s:s + n] = NAN
        elif f.kind == "flat":
            x[a:b] = float(rng.uniform(-50, 50))
            what[a:b] = FLAT
        elif f.kind == "rail":
            x[a:b] = RAIL_UV
            what[a:b] = RAIL
        elif f.kind == "clipping":
            x[a:b] = np.clip(x[a:b] * 3, -CLIP_UV, CLIP_UV)
            what[a:b] = CLIPPED
        elif f.kind == "artefact":
            x[a:b] += float(rng.uniform(2000, 4000)) * np.sign(rng.standard_normal(b - a))
            what[a:b] = ARTEFACT
        elif f.kind == "dropout":
            what[a:b] = SKIPPED
    return x, what


class Source:
    """The LSL outlet this process streams into (and destroys and makes again)."""

    def __init__(self, name: str, sid: str) -> None:
        self.name, self.sid = name, sid
        self.outlet = None
        self.open()

    def open(self) -> None:
        import pylsl

        info = pylsl.StreamInfo(self.name, "EEG", 1, FS, "float32", self.sid)
        info.set_channel_labels(["EEG Fpz-Cz"])
        info.set_channel_units(["microvolts"])
        self.outlet = pylsl.StreamOutlet(info, 0, 3600)

    def close(self) -> None:
        self.outlet = None


def stream(src: Source, x: np.ndarray, what: np.ndarray, faults: list[Fault], speed: float, proc,
           on_tick) -> tuple[int, Counter]:
    """Send the clock's samples at ``speed``, doing the timing faults; returns the final
    clock position (every sample before it was sent, skipped or lost on the clock)."""
    import pylsl

    total = len(x)
    chunk = int(min(4096, max(1, round(FS * speed * 0.04))))
    pending = sorted((f for f in faults if f.kind in TIMING_FAULTS), key=lambda f: f.at)
    done: Counter = Counter()
    offset = 0.0
    t0 = pylsl.local_clock()
    start = time.perf_counter()
    k = 0

    def due() -> int:
        return int(FS * speed * (time.perf_counter() - start))

    while k < total:
        on_tick(k)
        if pending and k >= pending[0].at:
            f = pending.pop(0)
            done[f.kind] += 1
            if f.kind == "dropout":
                k = min(total, k + f.length)
            elif f.kind == "clock_back":
                offset -= 300.0
            elif f.kind == "freeze":
                time.sleep(2.5)                   # nothing flows; the device's clock runs on
                jump = min(total, due())
                what[k:jump] = SKIPPED
                k = jump
            elif f.kind == "outlet_restart":
                time.sleep(0.3)                   # let the scorer drain what was queued
                src.close()
                time.sleep(0.5)
                src.open()
                common.wait_until(src.outlet.have_consumers, 30, "the scorer to reconnect", proc=proc, poll_s=0.02)
                jump = min(total, due())
                what[k:jump] = SKIPPED
                k = jump
            continue
        n = min(chunk, total - k, (pending[0].at - k) if pending else chunk)
        if due() - k < n:
            time.sleep(0.002)
            continue
        stamps = t0 + offset + (k + np.arange(n)) / FS
        src.outlet.push_chunk(x[k:k + n, None], stamps.tolist())
        k += n
    return k, done


def verdicts(what: np.ndarray, x: np.ndarray, n_epochs: int) -> dict[str, np.ndarray]:
    """What each clock epoch must be, from what was sent."""
    w = what[:n_epochs * E].reshape(n_epochs, E)
    missing = np.isin(w, (NAN, SKIPPED)).mean(axis=1)
    valid = ~np.isin(w, (NAN, SKIPPED))
    all_flat = np.array([v.any() and np.all(np.isin(r[v], (FLAT,))) for r, v in zip(w, valid)])
    all_rail = np.array([v.any() and np.all(np.isin(r[v], (RAIL,))) for r, v in zip(w, valid)])
    must_uns = (missing > 0.25) | all_flat | all_rail | ~valid.any(axis=1)
    clean = (w == CLEAN).all(axis=1)
    return {"must_uns": must_uns, "clean": clean, "missing": missing}


def run(args: argparse.Namespace) -> dict:
    from scorer.hypnogram_file import read_rows
    from sleepnet.io.recordings import read_recording
    from sleepnet.stages import STAGES

    common.configure_lsl()
    rng = np.random.default_rng(args.seed)
    total = int(args.hours * 3600 * FS)
    base = read_recording(common.simulated_night_file(8.0, seed=1)).eeg_uv
    faults = plan(total, args.every_min, rng)
    x, what = signal_with_faults(base, total, faults, rng)
    name, sid = common.unique("soak")
    tmp = common.scratch_dir("bench-soak-")
    out = tmp / "night.tsv"
    cmd = common.sleepstream("live", "--source-id", sid, "--no-display", "--out", out, "--buffer-s", 3600,
                             "--outlet-name", name + "-scorer", *(("--weights", args.weights) if args.weights else ()))
    common.progress(f"soak: {args.hours:g} h with {len(faults)} faults at {args.speed:g}x into sleepstream live")
    src = Source(name, sid)
    proc = common.popen(cmd)
    samples: list[tuple] = []
    t_start = time.perf_counter()
    last = [0.0]

    def tick(_k: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 0.25:
            last[0] = now
            rss, hwm = common.rss_mb(proc.pid)
            samples.append((now - t_start, common.count_rows(out), rss, hwm))

    try:
        common.wait_until(src.outlet.have_consumers, 120, "the scorer to subscribe", proc=proc)
        end, done = stream(src, x, what, faults, args.speed, proc, tick)
        n_expected = end // E
        common.wait_until(lambda: (tick(0) or True) and common.count_rows(out) >= n_expected, 120, f"{n_expected} epochs",
                          proc=proc, poll_s=0.05)
        alive = proc.poll() is None
        _, err = common.stop(proc, 30)
    finally:
        if proc.poll() is None:
            common.stop(proc)
        src.close()
    rows = read_rows(out)
    epochs = [r["epoch"] for r in rows]
    in_order_once = epochs == list(range(len(rows)))
    v = verdicts(what, x, min(len(rows), n_expected))
    stages = np.array([r["stage"] for r in rows[:len(v["must_uns"])]])
    flags = [set(r["flags"]) for r in rows[:len(v["must_uns"])]]
    scored = np.isin(stages, STAGES)
    accounted = sum(1 for s, f in zip(stages, flags) if s in STAGES or (s == "UNS" and f))
    invented = int(np.sum(scored & v["must_uns"]))
    clean_flagged_flags = Counter(",".join(sorted(f - {"warmup"})) for c, f in zip(v["clean"], flags)
                                  if c and (f - {"warmup"}))
    clean_flagged = sum(clean_flagged_flags.values())
    reasons = Counter(",".join(sorted(f - {"warmup"})) or "-" for s, f in zip(stages, flags) if s == "UNS")
    g = growth(samples)
    traceback = "Traceback" in err
    ok = (alive and not traceback and proc.returncode == 0 and in_order_once and len(rows) == n_expected
          and accounted == len(rows) and invented == 0)
    command = f"{common.this_command(MODULE, args.argv)}  # scorer: {common.shell(cmd)}"
    detail = {"faults_planned": dict(Counter(f.kind for f in faults)), "timing_faults_done": dict(done),
              "epochs_expected": n_expected, "epochs_on_disk": len(rows), "in_order_once": in_order_once,
              "accounted": accounted, "scored": int(scored.sum()), "unscored_by_reason": dict(reasons),
              "invented_stages": invented, "clean_epochs_flagged": clean_flagged,
              "clean_epochs_flagged_by_flags": dict(clean_flagged_flags),
              "scorer_alive_at_end": alive, "exit_code": proc.returncode, "traceback": traceback,
              "memory": g, "stderr_tail": err[-600:], "wall_s": time.perf_counter() - t_start}
    lost = n_expected - accounted
    figures = [
        common.Figure(f"soak: {args.hours:g} h, {len(faults)} random faults: epochs lost", float(lost), "epochs",
                      "0, no crash, no made-up stage", ok, command,
                      note=(f"{len(rows)}/{n_expected} epochs on disk once, {int(scored.sum())} scored, "
                            f"{len(rows) - int(scored.sum())} unscored with a reason; {invented} stages given to epochs "
                            f"that had to be unscored; {clean_flagged} epochs clean when sent but flagged "
                            f"({', '.join(f'{k} {c}' for k, c in clean_flagged_flags.items()) or '-'}); faults: "
                            + ", ".join(f"{k} {c}" for k, c in sorted(Counter(f.kind for f in faults).items()))),
                      detail=detail),
        common.Figure("soak: peak RSS / growth per hour of signal", g["peak_mb"], "MB", "< 500 MB, < 5 MB/h",
                      g["peak_mb"] < 500 and abs(g["growth_mb_per_h"]) < 5, command,
                      note=f"growth {g['growth_mb_per_h']:.2f} MB/h over {g['hours']:.1f} h of signal", detail=g),
    ]
    return {"figures": figures, "faults": [f.__dict__ for f in faults]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hours", type=float, default=24.0, help="hours of signal (default: 24)")
    p.add_argument("--speed", type=float, default=1000.0, help="stream speed (default: 1000)")
    p.add_argument("--every-min", type=float, default=30.0, help="mean minutes of signal between faults (default: 30)")
    p.add_argument("--seed", type=int, default=0)
    common.add_weights_argument(p)


if __name__ == "__main__":
    common.script_main("soak", __doc__, add_arguments, run, value_format="g")
