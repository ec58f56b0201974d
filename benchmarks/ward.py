"""How many beds one machine follows: ``sleepstream ward`` with N simulated beds.

For each N in ``--beds`` (default 1, 8, 16): N simulated nights at ``--rate`` Hz are
replayed at real time (speed 1) from this process, their starts spread over one epoch
(beds are not in step in a real ward), and a :class:`scorer.ward.supervisor.Ward` runs
one ``sleepstream live`` worker per bed, as ``sleepstream ward`` does. Once every bed
has scored its first epoch, for ``--window`` seconds: CPU of each worker process
(``/proc/PID/stat`` user+system time), its RSS (``/proc/PID/status``), and the latency
of every epoch scored in the window (the hypnogram's ``latency_ms``: last sample pulled
-> record made). N passes when the p99 latency is under 100 ms and no bed fell behind
(each scored the epochs its signal allowed). ``beds_at_real_time``: the largest N that
passed (steps stop at the first failure). Then ``--fast-beds`` beds at 30x real time
for ``--fast-window`` s: CPU per bed. With ``--gate [RULES]`` every worker also runs
``live --gate RULES`` (as ``sleepstream ward --gate``: the ``<bed>-gate`` outlet and the
arousal guard on every pulled chunk while a window is open), and the windows opened and
closed in each measuring window are counted.

    .venv/bin/python -m benchmarks.ward [--beds 1,8,16] [--window 95] [--rate 100] [--gate [RULES]]

Writes ``benchmarks/results/ward.json``. The model is the shipped one (weights/); each
worker imports torch when the shipped model is the CNN-LSTM. The figures depend on
what else runs on the machine: the load average is recorded with them.
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import numpy as np

from sleepstream.lsl_config import CONFIG_ENV, MACHINE_ONLY, MACHINE_PORT_RANGE, with_session

from .common import Figure, configure_lsl, percentiles, progress, rss_mb, scratch_dir, script_main, this_command, unique

LATENCY_TARGET_MS = 100.0
TARGET_BEDS = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beds", default="1,8,16", help="bed counts to try at real time (default: %(default)s)")
    p.add_argument("--window", type=float, default=95.0, metavar="S",
                   help="measuring window per bed count at real time (default: %(default)s)")
    p.add_argument("--rate", type=float, default=100.0, help="sampling rate of the beds (default: %(default)s)")
    p.add_argument("--fast-beds", type=int, default=2, help="beds at 30x (default: %(default)s)")
    p.add_argument("--fast-window", type=float, default=40.0, metavar="S", help="window at 30x (default: %(default)s)")
    p.add_argument("--port-range", type=int, default=1024, metavar="N",
                   help=f"liblsl [ports] PortRange for this run (default: %(default)s; 0: sleepstream's machine-only "
                        f"default, {MACHINE_PORT_RANGE}; 32: liblsl's own, with which the ward found only 7 of 8 replayed beds on our "
                        "shared 2-core machine)")
    p.add_argument("--gate", nargs="?", const="", metavar="RULES",
                   help="every worker runs live --gate RULES (no value: the default rule), as ward --gate")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (NaN when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_ward(n_beds: int, speed: float, window_s: float, rate: float, stagger_s: float,
             gate: str | None = None) -> dict:
    """N beds at ``speed``: per-worker CPU %, RSS MB and the latencies over the window;
    ``gate``: every worker runs ``live --gate gate`` (None: no gate)."""
    from replay.player import Player, ReplaySource
    from scorer.hypnogram_file import read_rows
    from scorer.ward.beds import BedSelector
    from scorer.ward.gates import gate_plan
    from scorer.ward.supervisor import Ward
    from scorer.ward.worker import WorkerOptions
    from sleepnet.sim.night import simulate_night

    tag = unique("ward")[0]
    night = simulate_night(2.0, 3, rate)
    x = night.eeg_uv[: int(60 * 30 * rate)]
    out = scratch_dir(f"ward-{n_beds}-")
    stop_players = threading.Event()
    players: list[Player] = []
    ward = Ward(out, BedSelector(name_patterns=(f"{tag}-*",)),
                WorkerOptions(find_timeout_s=60.0, gate=gate_plan(gate)), [])
    stop_ward = threading.Event()
    th = threading.Thread(target=ward.run, args=(stop_ward,), daemon=True)
    th.start()
    try:
        for k in range(n_beds):
            src = ReplaySource.from_arrays(np.roll(x, k * 997)[:, None], rate, ["EEG Fpz-Cz"])
            p = Player(src, name=f"{tag}-{k}", source_id=f"{tag}:{k}", speed=speed, loop=True)
            p.start(stop_players)
            players.append(p)
            time.sleep(stagger_s / max(1, n_beds))
        t_end = time.monotonic() + 120 + 10 * n_beds
        while not (len(ward.state.beds) == n_beds and all(b.epochs >= 1 for b in ward.state.beds)):
            if time.monotonic() > t_end:
                errors = [str(p.error) for p in players if p.error is not None]
                raise TimeoutError(f"{n_beds} beds: {len(ward.state.beds)} found, "
                                   f"{sum(b.epochs >= 1 for b in ward.state.beds)} scored an epoch in time; "
                                   f"replay errors: {errors or 'none'}")
            time.sleep(0.2)
        pids = [ward.workers[b.name].pid for b in ward.state.beds]
        c0 = [cpu_s(p) for p in pids]
        rows0 = {b.name: b.epochs for b in ward.state.beds}
        gate0 = sum(b.gate.opens + b.gate.closes for b in ward.state.beds if b.gate is not None)
        t0 = time.monotonic()
        time.sleep(window_s)
        dt = time.monotonic() - t0
        c1 = [cpu_s(p) for p in pids]
        rss = [rss_mb(p)[0] for p in pids]
        restarts = sum(b.restarts for b in ward.state.beds)
        gate_events = sum(b.gate.opens + b.gate.closes for b in ward.state.beds if b.gate is not None) - gate0
        lat: list[float] = []
        scored = []
        for b in ward.state.beds:
            rows = read_rows(b.out_path)[rows0[b.name]:]
            lat += [float(r["latency_ms"]) for r in rows]
            scored.append(len(rows))
    finally:
        stop_ward.set()
        th.join(60)
        stop_players.set()
        for p in players:
            p.join(10)
    cpu_pct = [100.0 * (b - a) / dt for a, b in zip(c0, c1)]
    expected = dt * speed / 30.0
    return {"beds": n_beds, "speed": speed, "window_s": round(dt, 1), "rate_hz": rate,
            "cpu_pct_per_bed": percentiles(cpu_pct, (50,)) | {"mean": float(np.mean(cpu_pct))},
            "rss_mb_per_bed": percentiles(rss, (50,)) | {"mean": float(np.mean(rss))},
            "latency_ms": percentiles(lat, (50, 95, 99)), "epochs_per_bed": scored,
            "epochs_expected_per_bed": round(expected, 1), "restarts": restarts,
            "gate": gate, "gate_events": gate_events,
            "kept_up": bool(min(scored) >= int(expected) - 1), "load_avg_1": round(os.getloadavg()[0], 2)}


def configure_lsl_ports(port_range: int) -> None:
    """This machine only, a session of its own (as :func:`benchmarks.common.configure_lsl`),
    and liblsl's ``[ports] PortRange`` set to ``port_range`` instead of sleepstream's
    :data:`~sleepstream.lsl_config.MACHINE_PORT_RANGE`: with liblsl's own (32 ports from
    16572) a resolver that asks KnownPeers = 127.0.0.1 finds only the outlets that got a port
    in that range, shared with every other LSL process on the machine, and each bed adds two
    outlets (its stage and probability streams) besides its EEG stream."""
    import atexit
    import shutil
    import tempfile
    import uuid

    folder = Path(tempfile.mkdtemp(prefix="sleepstream-bench-lsl-"))
    atexit.register(shutil.rmtree, folder, True)
    text = with_session(MACHINE_ONLY.replace(f"PortRange = {MACHINE_PORT_RANGE}\n", f"PortRange = {port_range}\n"),
                        f"sleepstream-bench-{uuid.uuid4().hex[:10]}")
    (folder / "lsl_api.cfg").write_text(text)
    os.environ[CONFIG_ENV] = str(folder / "lsl_api.cfg")


def run(args: argparse.Namespace) -> dict:
    if args.port_range:
        configure_lsl_ports(args.port_range)
    else:
        configure_lsl()
    from sleepnet.weights import load_model

    model_id = load_model().model_id
    cmd = this_command("benchmarks.ward", getattr(args, "argv", None))
    steps = []
    best = 0
    for n in [int(v) for v in args.beds.split(",") if v.strip()]:
        progress(f"ward: {n} beds at real time, {args.window:g} s window")
        r = run_ward(n, 1.0, args.window, args.rate, stagger_s=30.0, gate=args.gate)
        r["passed"] = bool(r["kept_up"] and r["latency_ms"]["p99"] < LATENCY_TARGET_MS)
        steps.append(r)
        progress(f"ward: {n} beds: p99 {r['latency_ms']['p99']:.1f} ms, CPU/bed {r['cpu_pct_per_bed']['mean']:.1f} %, "
                 f"RSS/bed {r['rss_mb_per_bed']['mean']:.0f} MB, kept up {r['kept_up']}")
        if not r["passed"]:
            break
        best = n
    progress(f"ward: {args.fast_beds} beds at 30x, {args.fast_window:g} s window")
    fast = run_ward(args.fast_beds, 30.0, args.fast_window, args.rate, stagger_s=1.0, gate=args.gate)
    one = steps[0]
    gated = "" if args.gate is None else f"; every worker with live --gate {args.gate or '(default rule)'}"
    figures = [
        Figure("ward: beds followed at real time (p99 < 100 ms)", float(best), "beds", f">= {TARGET_BEDS}",
               best >= TARGET_BEDS, cmd, f"tried {args.beds}; model {model_id}; LSL PortRange {args.port_range or MACHINE_PORT_RANGE}; machine shared with other work"
               f"{gated}",
               {"steps": steps}),
        Figure("ward: RSS per bed (worker)", one["rss_mb_per_bed"]["mean"], "MB", "", None, cmd,
               f"{one['beds']} bed(s), model {model_id}{gated}"),
        Figure("ward: CPU per bed at real time", one["cpu_pct_per_bed"]["mean"], "%", "", None, cmd,
               f"% of one core, {one['beds']} bed(s) at {args.rate:g} Hz{gated}"),
        Figure("ward: CPU per bed at 30x", fast["cpu_pct_per_bed"]["mean"], "%", "", None, cmd,
               f"% of one core, {fast['beds']} beds at {args.rate:g} Hz{gated}"
               + (f"; {fast['gate_events']} gate events in the window" if args.gate is not None else "")),
    ]
    return {"model_id": model_id, "gate": args.gate, "lsl_port_range": args.port_range or MACHINE_PORT_RANGE, "beds_at_real_time": best, "rss_mb_per_bed": one["rss_mb_per_bed"]["mean"],
            "cpu_pct_per_bed_real_time": one["cpu_pct_per_bed"]["mean"],
            "cpu_pct_per_bed_30x": fast["cpu_pct_per_bed"]["mean"], "real_time": steps, "fast": fast,
            "figures": figures}


if __name__ == "__main__":
    script_main("ward", __doc__, add_arguments, run)
