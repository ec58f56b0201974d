"""A plain pylsl stimulus program listening to a ``<name>-gate`` Markers stream:
imports nothing of sleepstream.

It resolves the stream by name, opens an inlet with ``recover=True`` (so it comes back
to a restarted scorer, as a stimulus program should), prints ``subscribed`` and then
one JSON line per marker: ``{"event", "reason", "stamp", "received"}`` (stamp: the
marker's timestamp; received: this process's ``local_clock()`` when pulled). It stops
after ``--timeout`` s or when the file ``--stop-file`` exists.

With ``--no-recover`` it opens the inlet with ``recover=False`` instead, so the
scorer's outlet vanishing (a killed scorer) raises ``LostError`` at once: it then
prints ``{"event": "lost", "received"}`` (the window is to be taken as closed), resolves
the stream by name again and goes on with the new outlet (``subscribed`` again).

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
from pylsl.util import LostError   # pylsl 1.18.6: not exported as pylsl.LostError


def subscribe(name: str, timeout: float, recover: bool):
    """An open inlet on the stream named ``name`` (None, said on stdout, when not found)."""
    found = pylsl.resolve_byprop("name", name, 1, timeout)
    if not found:
        print(json.dumps({"error": f"stream {name!r} not found"}), flush=True)
        return None
    inlet = pylsl.StreamInlet(found[0], recover=recover)
    inlet.open_stream(10.0)
    print("subscribed", flush=True)
    return inlet


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--stop-file")
    p.add_argument("--no-recover", action="store_true")
    a = p.parse_args()
    t_end = time.monotonic() + a.timeout
    inlet = subscribe(a.name, a.timeout, recover=not a.no_recover)
    if inlet is None:
        return 1
    while time.monotonic() < t_end and not (a.stop_file and os.path.exists(a.stop_file)):
        try:
            sample, stamp = inlet.pull_sample(timeout=0.05)
        except LostError:
            print(json.dumps({"event": "lost", "received": pylsl.local_clock()}), flush=True)
            del inlet
            inlet = subscribe(a.name, max(0.1, t_end - time.monotonic()), recover=False)
            if inlet is None:
                return 1
            continue
        if sample is not None:
            print(json.dumps({"event": sample[0], "reason": sample[1], "stamp": stamp,
                              "received": pylsl.local_clock()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
