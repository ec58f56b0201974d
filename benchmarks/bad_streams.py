"""Bounded input, for the fault matrix: streams ``sleepstream live`` must refuse, and its
memory on the largest fast stream it takes.

Each bad stream is a real LSL outlet in this process; ``sleepstream live --source-id S
--no-display --no-outlets`` is pointed at it in its own process. Refused means: exit
code 2, one line on stderr, no traceback, within ``--timeout`` + 60 s. The streams:
a NaN and an infinite nominal rate, 1e-6 Hz, 30 kHz, 100 kHz x 64 channels (pushing
samples all the while), 2000 channels, an irregular rate, text samples and an undefined
channel format. (liblsl 1.18 makes of a NaN or infinite rate and of an undefined format a
description it cannot read, named ``(invalid: ...)`` with no source_id: ``live`` then
finds no stream with that source_id and says so, listing it as such; that is the refusal
a user sees.)

Peak RSS is the command's own VmHWM (/proc/self/status), written by an exit hook as it
ends (the ``ru_maxrss`` that ``wait4`` gives is no use here: Linux carries the parent's
peak over into a child's through fork and exec), for the 100-kHz stream (refused before
the model loads) and for a 20 kHz x 64-channel float32 stream that is accepted and
scored for ``--epochs`` epochs, its samples pushed at ``--speed`` times real time (1: an
amplifier; the scorer's CPU time, from ``wait4``, is reported too: at 20 kHz the
resampler's 4001 taps cost most of it).

    .venv/bin/python -m benchmarks.bad_streams [--epochs 2] [--speed 1]

For ``benchmarks.faults``: :func:`measure` returns ``bad_streams_refused``,
``bad_streams_tried``, ``rss_mb_100khz_stream`` and the accepted stream's figures as a dict.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import common

HWM_ENV = "SLEEPSTREAM_BENCH_HWM_FILE"
#: ``python -c`` this, then the command's arguments: the ``sleepstream`` command, which
#: writes its VmHWM line to the file named by HWM_ENV when it exits.
_WITH_HWM = ("import atexit, os, sys\n"
             "def _hwm():\n"
             "    with open('/proc/self/status') as st, open(os.environ['" + HWM_ENV + "'], 'w') as f:\n"
             "        f.write(next(ln for ln in st if ln.startswith('VmHWM')))\n"
             "atexit.register(_hwm)\n"
             "sys.argv[0] = 'sleepstream'\n"
             "from sleepstream.cli import main\n"
             "sys.exit(main())\n")

MODULE = "benchmarks.bad_streams"
RSS_TARGET_MB = 300.0


@dataclass(frozen=True)
class BadStream:
    """One stream that must be refused: rate (Hz), channels, LSL format, pushing samples."""

    label: str
    rate: float
    channels: int = 1
    fmt: object = "float32"
    push: bool = False


BAD_STREAMS = (
    BadStream("NaN rate", float("nan")),
    BadStream("infinite rate", float("inf")),
    BadStream("1e-6 Hz", 1e-6),
    BadStream("30 kHz", 30_000.0),
    BadStream("100 kHz x 64 channels", 100_000.0, 64, push=True),
    BadStream("2000 channels", 100.0, 2000),
    BadStream("irregular rate", 0.0),
    BadStream("text samples", 100.0, 1, "string"),
    BadStream("undefined channel format", 100.0, 1, 0),
)


def _outlet(bad: BadStream, name: str, sid: str):
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", bad.channels, bad.rate, bad.fmt, sid)
    if bad.channels > 1:
        info.set_channel_labels([f"ch{i}" for i in range(bad.channels - 1)] + ["Fpz-Cz"])
    elif bad.fmt != 0:
        info.set_channel_labels(["Fpz-Cz"])
    return pylsl.StreamOutlet(info, 0, 2)


def run_until_exit(cmd: list[str], timeout_s: float) -> dict:
    """Run the ``sleepstream`` command ``cmd`` to its end (killed after ``timeout_s``):
    exit code, stdout, stderr, peak RSS (MB, its VmHWM at exit; NaN when killed) and CPU
    time (s)."""
    hwm = common.scratch_dir("bench-hwm-") / "vmhwm"
    proc = common.popen([sys.executable, "-c", _WITH_HWM, *cmd[1:]], env={**os.environ, HWM_ENV: str(hwm)})
    t_end = time.perf_counter() + timeout_s
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > t_end and not killed:
            proc.kill()
            killed = True
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = common.outputs(proc)
    try:
        peak = int(hwm.read_text().split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        peak = float("nan")
    return {"rc": proc.returncode, "killed": killed, "stdout": out, "stderr": err,
            "peak_rss_mb": peak, "cpu_s": usage.ru_utime + usage.ru_stime}


def _pusher(outlet, channels: int, rate: float, stop: threading.Event, speed: float = 1.0,
            chunk_s: float = 0.05, dtype=np.float32) -> threading.Thread:
    """Push noise (µV, Fpz-Cz last) at ``speed`` x ``rate`` with explicit stamps, until ``stop``."""
    import pylsl

    def go() -> None:
        n = max(1, int(rate * chunk_s))
        x = (np.random.default_rng(0).standard_normal((n, channels)) * 30).astype(dtype)
        t0, sent, start = pylsl.local_clock(), 0, time.perf_counter()
        while not stop.is_set():
            if sent >= rate * speed * (time.perf_counter() - start):
                time.sleep(0.002)
                continue
            outlet.push_chunk(x, (t0 + (sent + np.arange(n)) / rate).tolist())
            sent += n

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def try_bad(bad: BadStream, timeout_s: float) -> dict:
    """Point ``sleepstream live`` at one bad stream; was it refused as it should be?"""
    name, sid = common.unique("bad")
    outlet = _outlet(bad, name, sid)
    stop = threading.Event()
    pusher = _pusher(outlet, bad.channels, bad.rate, stop, chunk_s=0.01) if bad.push else None
    cmd = common.sleepstream("live", "--source-id", sid, "--timeout", timeout_s, "--no-display", "--no-outlets")
    try:
        r = run_until_exit(cmd, timeout_s + 60.0)
    finally:
        stop.set()
        if pusher is not None:
            pusher.join(5)
        del outlet
    lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
    refused = r["rc"] == 2 and len(lines) == 1 and "Traceback" not in r["stderr"] and not r["killed"]
    return {"stream": bad.label, "refused": refused, "rc": r["rc"], "line": lines[-1] if lines else "",
            "peak_rss_mb": r["peak_rss_mb"], "command": common.shell(cmd)}


def score_wide_stream(tmp, epochs: int, speed: float, weights: str | None) -> dict:
    """``sleepstream live`` on a 20 kHz x 64-channel float32 stream, ``epochs`` epochs."""
    import pylsl

    name, sid = common.unique("wide")
    info = pylsl.StreamInfo(name, "EEG", 64, 20_000.0, "float32", sid)
    info.set_channel_labels([f"ch{i}" for i in range(63)] + ["Fpz-Cz"])
    info.set_channel_units(["microvolts"] * 64)
    outlet = pylsl.StreamOutlet(info, 0, 10)
    out = tmp / f"{name}.tsv"
    cmd = common.sleepstream("live", "--source-id", sid, "--no-display", "--no-outlets", "--out", out,
                             "--epochs", epochs, *(("--weights", weights) if weights else ()))
    stop = threading.Event()
    pusher = None
    try:
        def start_pushing() -> None:
            nonlocal pusher
            if outlet.wait_for_consumers(120):
                pusher = _pusher(outlet, 64, 20_000.0, stop, speed=speed)

        starter = threading.Thread(target=start_pushing, daemon=True)
        starter.start()
        r = run_until_exit(cmd, 120 + epochs * 30.0 / speed * 3)
        starter.join(1)
    finally:
        stop.set()
        if pusher is not None:
            pusher.join(5)
        outlet = None                # the outlet goes (what `del` did; the closure above still names it)
    from scorer.hypnogram_file import read_rows

    rows = read_rows(out) if out.exists() else []
    return {"epochs_scored": len(rows), "epochs_asked": epochs, "rc": r["rc"], "peak_rss_mb": r["peak_rss_mb"],
            "cpu_s": r["cpu_s"], "cpu_s_per_signal_s": r["cpu_s"] / (epochs * 30.0),
            "stderr_tail": r["stderr"][-400:], "command": common.shell(cmd)}


def measure(epochs: int = 2, speed: float = 1.0, timeout_s: float = 3.0, weights: str | None = None) -> dict:
    """The bounded-input figures, as a dict for the fault matrix (``benchmarks.faults``).

    Returns
    -------
    dict
        ``bad_streams_refused``, ``bad_streams_tried``, ``rss_mb_100khz_stream`` (peak RSS
        of ``sleepstream live`` pointed at a 100 kHz x 64-channel outlet, MB),
        ``refused_100khz``, ``rss_mb_20khz_64ch_stream`` and ``cpu_s_per_signal_s_20khz_64ch``
        (the accepted stream, scored for ``epochs`` epochs at ``speed`` x real time),
        ``epochs_scored_20khz_64ch``, and ``cases`` (each bad stream's outcome).
    """
    common.configure_lsl()
    cases = []
    for bad in BAD_STREAMS:
        common.progress(f"bad streams: sleepstream live on a stream with {bad.label}")
        cases.append(try_bad(bad, timeout_s))
    hundred = next(c for c in cases if c["stream"].startswith("100 kHz"))
    common.progress(f"bad streams: sleepstream live scoring a 20 kHz x 64-channel stream, {epochs} epochs at {speed:g}x")
    wide = score_wide_stream(common.scratch_dir("bench-bad-streams-"), epochs, speed, weights)
    return {"bad_streams_refused": sum(c["refused"] for c in cases), "bad_streams_tried": len(cases),
            "rss_mb_100khz_stream": hundred["peak_rss_mb"], "refused_100khz": hundred["refused"],
            "rss_mb_20khz_64ch_stream": wide["peak_rss_mb"], "epochs_scored_20khz_64ch": wide["epochs_scored"],
            "cpu_s_per_signal_s_20khz_64ch": wide["cpu_s_per_signal_s"], "cases": cases, "wide": wide}


def run(args: argparse.Namespace) -> dict:
    m = measure(args.epochs, args.speed, args.timeout, args.weights)
    command = common.this_command(MODULE, args.argv)
    refused, tried = m["bad_streams_refused"], m["bad_streams_tried"]
    missed = [c["stream"] for c in m["cases"] if not c["refused"]]
    wide = m["wide"]
    figures = [
        common.Figure("bad streams refused by `sleepstream live` (exit 2, one line)", float(refused), "streams",
                      f"{tried} of {tried}", refused == tried, command,
                      note=f"{refused}/{tried}" + (f"; not refused: {', '.join(missed)}" if missed else ""),
                      detail={"bad_streams_refused": refused, "bad_streams_tried": tried, "cases": m["cases"]}),
        common.Figure("peak RSS of `sleepstream live` pointed at a 100 kHz x 64-channel stream", m["rss_mb_100khz_stream"],
                      "MB", f"< {RSS_TARGET_MB:g} MB, or refused",
                      m["refused_100khz"] or m["rss_mb_100khz_stream"] < RSS_TARGET_MB, command,
                      note="refused before the model loads" if m["refused_100khz"] else "NOT refused",
                      detail={"rss_mb_100khz_stream": m["rss_mb_100khz_stream"], "refused": m["refused_100khz"]}),
        common.Figure(f"peak RSS of `sleepstream live` scoring a 20 kHz x 64-channel stream ({args.epochs} epochs, "
                      f"{args.speed:g}x real time)", wide["peak_rss_mb"], "MB", f"< {RSS_TARGET_MB:g} MB",
                      wide["peak_rss_mb"] < RSS_TARGET_MB and wide["epochs_scored"] == args.epochs, command,
                      note=(f"{wide['epochs_scored']}/{args.epochs} epochs scored; scorer CPU "
                            f"{wide['cpu_s_per_signal_s']:.2f} s per s of signal; inlet queue bounded at 256 MiB"),
                      detail=wide),
    ]
    return {"figures": figures, **{k: v for k, v in m.items() if k not in ("cases", "wide")}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=2, help="epochs of the accepted 20-kHz stream (default: 2)")
    p.add_argument("--speed", type=float, default=1.0, help="its pace, x real time (default: 1)")
    p.add_argument("--timeout", type=float, default=3.0, help="live's --timeout for the bad streams (default: 3)")
    common.add_weights_argument(p)


if __name__ == "__main__":
    common.script_main("bad_streams", __doc__, add_arguments, run, value_format=".1f")
