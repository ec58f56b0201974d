"""A Brain Products amplifier's stream as the BrainAmpSeries LSL connector publishes it:
imports nothing of sleepstream and uses liblsl's defaults.

Copied from the connector's source (brain-products/App-BrainAmpSeries ``mainwindow.cpp``,
``BrainAmpSeries.cfg``): name ``BrainAmpSeries-Dev_1``, type ``EEG``, the 32 channels of its
default configuration (an actiCAP 10-20 layout: Fp1 ... TP9 ... TP10 ... PO10; the
recording reference, FCz on that cap, is not a channel), 500 Hz, float32, source_id
``BrainAmpSeries-Dev_1_SR-500.000000``; per channel ``label``, ``type`` EEG, ``unit``
microvolts and ``scaling_factor`` 1; ``amplifier/settings`` (low_impedance_mode,
resolution, resolutionfactor, dc_coupling), ``acquisition`` (manufacturer ``Brain
Products``, serial_number) and ``versions``; chunks of 50 samples (the configuration's
chunk size) pushed at once.

Every channel is its electrode against the common reference, so every channel carries the
reference's own activity (here a 650-µV 0.7-Hz wave, as a poorly attached reference or
sweat gives) on top of its own signal; F4 carries an EEG-like signal (a 10-Hz rhythm plus
noise, µV), the other electrodes small noise. A derivation between two electrodes cancels
the reference's part; a single channel keeps it.

Faster than real time (``--speed``) each sample is stamped ``t0 + i / 500`` (the connector
stamps the chunk's last sample with the clock when pushed, which cannot run faster).
Prints ``ready`` once the outlet exists, ``consumer`` once one subscribed.

    python brainamp_series.py [--source-id ID] [--speed 20]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pylsl
from paced import add_pacing_arguments, serve

LABELS = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
          "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10"]
RATE = 500.0
CHUNK = 50


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--source-id", default="BrainAmpSeries-Dev_1_SR-500.000000")
    p.add_argument("--name", default="BrainAmpSeries-Dev_1")
    add_pacing_arguments(p)
    a = p.parse_args()
    info = pylsl.StreamInfo(a.name, "EEG", len(LABELS), RATE, "float32", a.source_id)
    chans = info.desc().append_child("channels")
    for label in LABELS:
        chans.append_child("channel").append_child_value("label", label).append_child_value(
            "type", "EEG").append_child_value("unit", "microvolts").append_child_value("scaling_factor", "1")
    info.desc().append_child("amplifier").append_child("settings").append_child_value(
        "low_impedance_mode", "false").append_child_value("resolution", "100 nV").append_child_value(
        "resolutionfactor", "0.100000").append_child_value("dc_coupling", "AC")
    info.desc().append_child("acquisition").append_child_value("manufacturer", "Brain Products").append_child_value(
        "serial_number", "0")
    info.desc().append_child("versions").append_child_value("lsl_protocol", "1.10").append_child_value(
        "liblsl", "1.16").append_child_value("App", "1.16.0")
    outlet = pylsl.StreamOutlet(info)
    rng = np.random.default_rng(2)
    f4 = LABELS.index("F4")

    def push(i: np.ndarray, stamps: np.ndarray) -> None:
        reference = 650.0 * np.sin(2 * np.pi * 0.7 * i / RATE)
        data = rng.normal(0.0, 3.0, (CHUNK, len(LABELS))) + reference[:, None]
        data[:, f4] += 20.0 * np.sin(2 * np.pi * 10.0 * i / RATE) + rng.normal(0.0, 15.0, CHUNK)
        outlet.push_chunk(data.astype(np.float32), stamps.tolist())

    serve(outlet, RATE, CHUNK, a.speed, a.seconds, push)


if __name__ == "__main__":
    sys.exit(main())
