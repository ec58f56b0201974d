"""A Muse headband's EEG stream as ``muselsl stream`` publishes it: imports nothing of
sleepstream and uses liblsl's defaults.

Copied from muselsl (``muselsl/stream.py``): name ``Muse``, type ``EEG``, 5 channels at
256 Hz, float32, source_id ``Muse<MAC address>``; description ``manufacturer`` = Muse and
``channels/channel`` with labels ``TP9 AF7 AF8 TP10 Right AUX``, unit ``microvolts``, type
``EEG``; each sample pushed on its own with ``push_sample`` and its timestamp, 12 samples
per Bluetooth packet. The Muse's reference electrode sits at Fpz, so each channel is that
electrode against Fpz: TP9 here carries an EEG-like signal (a 10-Hz rhythm plus noise, µV),
AF7, AF8 and TP10 smaller ones, and the unconnected Right AUX input floats (large noise).

Faster than real time (``--speed``) the timestamps still run at 256 Hz of signal
(``t0 + i / 256``). Prints ``ready`` once the outlet exists, ``consumer`` once one subscribed.

    python muselsl_stream.py --address 00:55:DA:B0:06:D6 [--speed 20]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pylsl
from paced import add_pacing_arguments, serve

LABELS = ["TP9", "AF7", "AF8", "TP10", "Right AUX"]
RATE = 256.0
PACKET = 12


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", default="00:55:DA:B0:06:D6")
    add_pacing_arguments(p)
    a = p.parse_args()
    info = pylsl.StreamInfo("Muse", "EEG", len(LABELS), RATE, "float32", f"Muse{a.address}")
    info.desc().append_child_value("manufacturer", "Muse")
    chans = info.desc().append_child("channels")
    for c in LABELS:
        chans.append_child("channel").append_child_value("label", c).append_child_value(
            "unit", "microvolts").append_child_value("type", "EEG")
    outlet = pylsl.StreamOutlet(info, PACKET)
    rng = np.random.default_rng(1)

    def push(i: np.ndarray, stamps: np.ndarray) -> None:
        alpha = 20.0 * np.sin(2 * np.pi * 10.0 * i / RATE)
        data = np.column_stack([alpha + rng.normal(0.0, 15.0, PACKET),
                                (0.3 * alpha)[:, None] + rng.normal(0.0, 8.0, (PACKET, 2)),
                                alpha + rng.normal(0.0, 15.0, PACKET),
                                rng.normal(0.0, 400.0, PACKET)])
        for k in range(PACKET):
            outlet.push_sample(data[k].astype(np.float32), stamps[k])

    serve(outlet, RATE, PACKET, a.speed, a.seconds, push)


if __name__ == "__main__":
    sys.exit(main())
