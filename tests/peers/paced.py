"""The device peers' common clock (``brainamp_series``, ``muselsl_stream``, ``openbci_gui``,
``pylsl_outlet``): announce the outlet, wait for a consumer, then hand out blocks of sample
indices at the stream's rate, paced in wall time. Imports nothing of sleepstream (plain
pylsl and numpy), like the peers that run it; each peer decides what a block carries and
how it is pushed (chunk, sample by sample, stamped or not).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pylsl


def add_pacing_arguments(p: argparse.ArgumentParser, speed: float = 1.0) -> None:
    """The options :func:`serve` takes from a peer's command line: ``--speed`` and ``--seconds``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The peer's parser.
    speed : float
        ``--speed``'s default, x real time.
    """
    p.add_argument("--speed", type=float, default=speed,
                   help=f"pace, x real time: 20 sends 20 s of signal per second (default: {speed:g})")
    p.add_argument("--seconds", type=float, default=3600.0,
                   help="seconds of signal to send, then the peer ends (default: 3600)")


def serve(outlet: pylsl.StreamOutlet, rate_hz: float, block: int, speed: float, seconds: float,
          push: Callable[[np.ndarray, np.ndarray], None]) -> None:
    """Print ``ready``, wait for a consumer, print ``consumer``, then call ``push`` once per block.

    Parameters
    ----------
    outlet : pylsl.StreamOutlet
        The peer's outlet, already created.
    rate_hz : float
        The stream's nominal rate (Hz): block ``k`` is due ``(k + 1) * block / (rate_hz * speed)``
        seconds after the consumer came.
    block : int
        Samples per push (the device's chunk or packet size).
    speed : float
        Pace, x real time (``1.0``: real time; ``20.0``: 20 s of signal per second).
    seconds : float
        Seconds of signal in all (rounded down to whole samples, then up to whole blocks).
    push : callable
        ``push(i, stamps)``: ``i`` the block's sample indices since the start (int array of
        ``block``), ``stamps`` their LSL times ``t0 + i / rate_hz`` (s) on the clock of the
        first push. Two seconds after the last block this returns, so the last one is fetched.
    """
    print("ready", flush=True)
    while not outlet.wait_for_consumers(1.0):
        pass
    print("consumer", flush=True)
    t0 = pylsl.local_clock()
    start = time.perf_counter()
    sent, total = 0, int(seconds * rate_hz)
    while sent < total:
        if int((time.perf_counter() - start) * rate_hz * speed) < sent + block:
            time.sleep(0.002)
            continue
        i = sent + np.arange(block)
        push(i, t0 + i / rate_hz)
        sent += block
    time.sleep(2.0)
