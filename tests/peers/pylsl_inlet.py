"""A plain pylsl consumer of other apps' streams: imports nothing of sleepstream.

It resolves each ``--name`` (by name), subscribes, reads ``--count`` samples from each
(or until ``--timeout`` s), and prints one JSON object: per stream its full description
as ``info().as_xml()``, the samples and their timestamps. It prints ``subscribed`` once
every inlet is open.

Resolving sends queries, so run it with an lsl_api.cfg (LSLAPICFG) that keeps it on
this machine (see tests/test_lsl_interop.py).

    python pylsl_inlet.py --name A --name B [--count 2] [--timeout 60]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import pylsl


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", action="append", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    t_end = time.monotonic() + a.timeout
    inlets = {}
    for name in a.name:
        found = pylsl.resolve_byprop("name", name, 1, max(0.1, t_end - time.monotonic()))
        if not found:
            print(json.dumps({"error": f"stream {name!r} not found"}), flush=True)
            return 1
        inlet = pylsl.StreamInlet(found[0], recover=False)
        inlet.open_stream(10.0)
        inlets[name] = inlet
    print("subscribed", flush=True)
    out = {name: {"xml": inlet.info(10.0).as_xml(), "samples": [], "timestamps": []}
           for name, inlet in inlets.items()}
    while time.monotonic() < t_end and any(len(o["samples"]) < a.count for o in out.values()):
        for name, inlet in inlets.items():
            samples, stamps = inlet.pull_chunk(timeout=0.05)
            out[name]["samples"] += [list(s) for s in samples]
            out[name]["timestamps"] += list(stamps)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
