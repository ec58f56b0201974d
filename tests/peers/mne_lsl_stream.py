"""mne-lsl's StreamLSL as a consumer of another app's stream: imports nothing of
sleepstream.

It connects to the stream named ``--name`` (an irregular-rate numeric stream, so its
buffer is ``--bufsize`` samples), waits until ``--count`` samples have arrived (or
``--timeout`` s), and prints one JSON object: the channel names, types and units MNE
made of the stream's description, the samples and their timestamps. It prints
``connected`` once connected.

Resolving sends queries, so run it with an lsl_api.cfg (LSLAPICFG) that keeps it on
this machine (see tests/test_lsl_interop.py).

    python mne_lsl_stream.py --name NAME [--count 1] [--timeout 90]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from mne_lsl.stream import StreamLSL


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--bufsize", type=int, default=64)
    p.add_argument("--timeout", type=float, default=90.0)
    a = p.parse_args()
    t_end = time.monotonic() + a.timeout
    stream = None
    while stream is None:
        try:
            stream = StreamLSL(a.bufsize, name=a.name).connect(acquisition_delay=0.01, timeout=2)
        except RuntimeError:
            if time.monotonic() > t_end:
                print(json.dumps({"error": f"stream {a.name!r} not found"}), flush=True)
                return 1
    print("connected", flush=True)
    while stream.n_new_samples < a.count and time.monotonic() < t_end:
        time.sleep(0.05)
    n = min(stream.n_new_samples, a.bufsize)
    data, ts = stream.get_data(winsize=n) if n else ([], [])
    info = stream.info
    out = {"ch_names": list(info["ch_names"]), "ch_types": stream.get_channel_types(),
           "units": stream.get_channel_units(), "sfreq": float(info["sfreq"]),
           "samples": [list(map(float, col)) for col in getattr(data, "T", [])],
           "timestamps": [float(t) for t in ts]}
    stream.disconnect()
    print(json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
