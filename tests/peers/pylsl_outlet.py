"""A plain pylsl EEG outlet, as an amplifier app makes one: imports nothing of
sleepstream and uses whatever LSL configuration its environment gives it (none: liblsl's
defaults and default session).

It publishes ``--channels`` at ``--rate`` Hz, unit ``--unit`` in the usual
``desc/channels/channel`` fields, waits for a consumer, then sends an EEG-like signal
(a 10-Hz rhythm plus noise, in µV; a flat line on the channels named by ``--flat``)
``--speed`` times faster than real time with explicit timestamps, until killed or
``--seconds`` of signal have gone. It prints
``ready`` once the outlet exists and ``consumer`` once one has subscribed.

    python pylsl_outlet.py --name NAME --source-id ID [--channels Fp1,Fpz-Cz] [--rate 250]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pylsl
from paced import add_pacing_arguments, serve


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--source-id", required=True)
    p.add_argument("--type", default="EEG")
    p.add_argument("--channels", default="Fp1,Fpz-Cz")
    p.add_argument("--rate", type=float, default=250.0)
    p.add_argument("--unit", default="microvolts")
    add_pacing_arguments(p, speed=10.0)
    p.add_argument("--flat", default="", help="comma-separated channels that carry a flat line")
    a = p.parse_args()
    labels = a.channels.split(",")
    flat = [i for i, label in enumerate(labels) if label in a.flat.split(",")]
    info = pylsl.StreamInfo(a.name, a.type, len(labels), a.rate, "float32", a.source_id)
    chans = info.desc().append_child("channels")
    for label in labels:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", a.unit)
        ch.append_child_value("type", "EEG")
    info.desc().append_child("acquisition").append_child_value("manufacturer", "plain-pylsl-peer")
    outlet = pylsl.StreamOutlet(info, 32, 3600)
    rng = np.random.default_rng(0)
    chunk = 32

    def push(i: np.ndarray, stamps: np.ndarray) -> None:
        alpha = 20.0 * np.sin(2 * np.pi * 10.0 * i / a.rate)
        data = alpha[:, None] + rng.normal(0.0, 15.0, (chunk, len(labels)))
        data[:, flat] = 0.0
        outlet.push_chunk(data.astype(np.float32), stamps.tolist())

    serve(outlet, a.rate, chunk, a.speed, a.seconds, push)


if __name__ == "__main__":
    sys.exit(main())
