"""The OpenBCI GUI's LSL output as its Networking widget makes it: imports nothing of
sleepstream and uses liblsl's defaults.

Copied from the GUI's source (OpenBCI_GUI, ``NetworkStreamOutLSL.openNetwork`` and
``W_Networking``'s defaults): stream name ``obci_eeg1``, type ``EEG``, one channel per
board channel (8 for a Cyton) at the board's rate (250 Hz), float32, source_id
``openbcigui``, and NO description at all (no channel labels, no units): the data type
``TimeSeriesRaw`` carries µV. Each update pushes the new samples with ``push_chunk`` and no
timestamps (liblsl stamps them when pushed). A Cyton channel with nothing connected rails
at the ADC's limit, +187 500 µV: channels 2-8 here do, channel 1 carries an EEG-like
signal (a 10-Hz rhythm plus noise, µV), as when one electrode is wired to N1P against SRB2.

Faster than real time (``--speed`` > 1) it stamps each sample ``t0 + i / rate`` itself:
liblsl's own stamps, taken when a chunk is pushed, cannot run faster than the clock.
``--name`` and ``--source-id`` are there so parallel test runs keep apart; the GUI's
are the defaults. Prints ``ready`` once the outlet exists, ``consumer`` once one subscribed.

    python openbci_gui.py [--name obci_eeg1] [--source-id openbcigui] [--speed 20]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pylsl
from paced import add_pacing_arguments, serve

RAILED_UV = 187500.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="obci_eeg1")
    p.add_argument("--source-id", default="openbcigui")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--rate", type=float, default=250.0)
    add_pacing_arguments(p)
    a = p.parse_args()
    info = pylsl.StreamInfo(a.name, "EEG", a.channels, a.rate, "float32", a.source_id)
    outlet = pylsl.StreamOutlet(info)
    rng = np.random.default_rng(0)
    chunk = 25   # the GUI pushes what arrived since its last frame

    def push(i: np.ndarray, stamps: np.ndarray) -> None:
        data = np.full((chunk, a.channels), RAILED_UV)
        data[:, 0] = 20.0 * np.sin(2 * np.pi * 10.0 * i / a.rate) + rng.normal(0.0, 15.0, chunk)
        if a.speed > 1.0:
            outlet.push_chunk(data.astype(np.float32), stamps.tolist())
        else:
            outlet.push_chunk(data.astype(np.float32))

    serve(outlet, a.rate, chunk, a.speed, a.seconds, push)


if __name__ == "__main__":
    sys.exit(main())
