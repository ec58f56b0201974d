"""A plain pylsl stimulus program listening to a ``<name>-gate`` Markers stream:
imports nothing of sleepstream.

It resolves the stream by name, opens an inlet with ``recover=True`` (so it comes back
to a restarted scorer, as a stimulus program should), prints ``subscribed`` and then
one JSON line per marker: ``{"event", "reason", "stamp", "received"}`` (stamp: the
marker's timestamp; received: this process's ``local_clock()`` when pulled).

It honours the gate's lease, as the listener of docs/tutorials/closed_loop.md does: the window is open only while
the newest marker is an ``open`` whose stamp (plus the inlet's ``time_correction()``) is
younger than ``lease_s`` (the stream's description says it; ``--lease-s`` overrides). The
scorer re-sends ``open`` with reason ``lease`` while a window stays open: those renewals
are not printed unless they open the window again for this listener (its lease had
lapsed). When the lease runs out it prints ``{"event": "expired", "received"}`` (the
window is to be taken as closed: the scorer hung, or the network dropped).

It stops after ``--timeout`` s or when the file ``--stop-file`` exists.

With ``--no-recover`` it opens the inlet with ``recover=False`` instead, so the
scorer's outlet vanishing (a killed scorer) raises ``LostError`` at once: it then
prints ``{"event": "lost", "received"}`` (the window is to be taken as closed), resolves
the stream by name again and goes on with the new outlet (``subscribed`` again).

Resolving sends queries, so run it with an lsl_api.cfg (LSLAPICFG) that keeps it on
this machine (the test run's, as the other test processes).

    python gate_listener.py --name sleepstream-gate [--timeout 60] [--stop-file F] [--lease-s 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import pylsl
from pylsl.util import LostError  # pylsl 1.18.6: not exported as pylsl.LostError


def subscribe(name: str, timeout: float, recover: bool):
    """An open inlet on the stream named ``name``, its clock offset and its lease (s)
    (None, said on stdout, when not found)."""
    found = pylsl.resolve_byprop("name", name, 1, timeout)
    if not found:
        print(json.dumps({"error": f"stream {name!r} not found"}), flush=True)
        return None
    inlet = pylsl.StreamInlet(found[0], recover=recover)
    inlet.open_stream(10.0)
    offset = inlet.time_correction(10.0)
    lease_s = float(inlet.info(10.0).desc().child_value("lease_s") or 2.0)
    print("subscribed", flush=True)
    return inlet, offset, lease_s


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--stop-file")
    p.add_argument("--no-recover", action="store_true")
    p.add_argument("--lease-s", type=float)
    a = p.parse_args()
    t_end = time.monotonic() + a.timeout
    got = subscribe(a.name, a.timeout, recover=not a.no_recover)
    if got is None:
        return 1
    inlet, offset, lease_s = got
    lease_s = a.lease_s or lease_s
    last = ("close", -float("inf"))        # the newest marker: event, stamp on this clock
    window_open = False
    while time.monotonic() < t_end and not (a.stop_file and os.path.exists(a.stop_file)):
        try:
            sample, stamp = inlet.pull_sample(timeout=0.05)
        except LostError:
            print(json.dumps({"event": "lost", "received": pylsl.local_clock()}), flush=True)
            del inlet
            got = subscribe(a.name, max(0.1, t_end - time.monotonic()), recover=False)
            if got is None:
                return 1
            inlet, offset, _ = got
            last, window_open = ("close", -float("inf")), False
            continue
        if sample is not None:
            last = (sample[0], stamp + offset)
            renewal = sample[0] == "open" and sample[1] == "lease"
            if not (renewal and window_open):
                print(json.dumps({"event": sample[0], "reason": sample[1], "stamp": stamp,
                                  "received": pylsl.local_clock()}), flush=True)
        now_open = last[0] == "open" and pylsl.local_clock() - last[1] < lease_s
        if window_open and not now_open and last[0] == "open":
            print(json.dumps({"event": "expired", "received": pylsl.local_clock()}), flush=True)
        window_open = now_open
    return 0


if __name__ == "__main__":
    sys.exit(main())
