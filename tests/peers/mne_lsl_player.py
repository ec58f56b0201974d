"""mne-lsl's PlayerLSL playing an EDF file as a producer, as labs replay recordings:
imports nothing of sleepstream, uses whatever LSL configuration its environment gives it.

It reads ``--edf`` with MNE, keeps ``--picks``, crops it to ``--seconds`` and plays it
(float64 volts, in real time only, looping, without waiting for consumers) as stream
``--name`` until killed. It prints ``playing`` once the stream is up.

    python mne_lsl_player.py --edf FILE --name NAME --source-id ID [--seconds 40]
"""
from __future__ import annotations

import argparse
import sys
import time

import mne
from mne_lsl.player import PlayerLSL


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--edf", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--source-id", required=True)
    p.add_argument("--picks", default="EEG Fpz-Cz,EEG Pz-Oz")
    p.add_argument("--seconds", type=float, default=40.0)
    a = p.parse_args()
    raw = mne.io.read_raw_edf(a.edf, include=a.picks.split(","), preload=True, verbose="error")
    raw.crop(0.0, a.seconds, include_tmax=False)
    player = PlayerLSL(raw, chunk_size=10, name=a.name, source_id=a.source_id, annotations=False)
    player.start()
    print("playing", flush=True)
    try:
        while True:
            time.sleep(0.5)
    finally:
        player.stop()


if __name__ == "__main__":
    sys.exit(main())
