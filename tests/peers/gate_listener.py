"""A plain pylsl stimulus program listening to a ``<name>-gate`` Markers stream:
imports nothing of sleepstream.

It resolves the stream by name, opens an inlet with ``recover=True`` (so it comes back
to a restarted scorer, as a stimulus program should), prints ``subscribed`` and then
one JSON line per marker: ``{"event", "reason", "stamp", "received"}`` (stamp: the
marker's timestamp; received: this process's ``local_clock()`` when pulled). It stops
after ``--timeout`` s or when the file ``--stop-file`` exists.

Resolving sends queries, so run it with an lsl_api.cfg (LSLAPICFG) that keeps it on
this machine (the test run's, as the other test processes).

    python gate_listener.py --name sleepstream-gate [--timeout 60] [--stop-file F]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import pylsl


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--stop-file")
    a = p.parse_args()
    t_end = time.monotonic() + a.timeout
    found = pylsl.resolve_byprop("name", a.name, 1, a.timeout)
    if not found:
        print(json.dumps({"error": f"stream {a.name!r} not found"}), flush=True)
        return 1
    inlet = pylsl.StreamInlet(found[0], recover=True)
    inlet.open_stream(10.0)
    print("subscribed", flush=True)
    while time.monotonic() < t_end and not (a.stop_file and os.path.exists(a.stop_file)):
        sample, stamp = inlet.pull_sample(timeout=0.05)
        if sample is not None:
            print(json.dumps({"event": sample[0], "reason": sample[1], "stamp": stamp,
                              "received": pylsl.local_clock()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
