"""A stand-in for a ward worker (`sleepstream live --status-json`) that misbehaves on cue,
for the ward's supervision tests (tests/test_ward_faults.py): a real process with a real
stdout pipe, writing the lines `live` writes (the protocol of scorer/json_lines.py, with
the per-process `seq`) and, where it scores epochs, real rows through the real
hypnogram file writer.

    python ward_fake_worker.py drop OUT GO       rows 0-7 in OUT; lines of 3-5 dropped (seq
                                                 jumps), a status line, then, once file GO
                                                 exists, the lines of 6-7
    python ward_fake_worker.py drop-noseq OUT GO the same without seq (an older worker)
    python ward_fake_worker.py late-open OUT DIR first start: gate close/restart, open; a
                                                 grandchild in a session of its own keeps
                                                 stdout and writes `open` once DIR/late
                                                 exists; later starts: close/restart
    python ward_fake_worker.py flood OUT N       N status lines as fast as the pipe takes them
    python ward_fake_worker.py slow-start OUT S  silent S s (starting), 5 status lines, then
                                                 silent for ever (hung)

Every mode then writes a status line every 0.2 s until it is killed or stopped (SIGTERM).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scorer.hypnogram_file import HypnogramFile  # noqa: E402
from scorer.json_lines import epoch_event  # noqa: E402
from scorer.records import ScoredEpoch  # noqa: E402

STAGES = ("W", "N1", "N2", "N3", "REM")


class Out:
    """stdout lines numbered as `live` numbers them (seq +1 per line written or dropped)."""

    def __init__(self, numbered: bool = True) -> None:
        self.seq = 0
        self.dropped = 0
        self.numbered = numbered

    def line(self, obj: dict, drop: bool = False) -> None:
        if self.numbered:
            obj = {**obj, "seq": self.seq}
        self.seq += 1
        if drop:
            self.dropped += 1
            return
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def status(self) -> None:
        self.line({"event": "status", "source_name": "fake", "sfreq_hz": 100.0, "channel": "Fpz-Cz",
                   "samples_received": 0, "samples_missing": 0, "gaps": 0, "stalled": False, "elapsed_s": 0.0,
                   "last_latency_ms": 1.0, **({"dropped_lines": self.dropped} if self.numbered else {})})


def record(k: int) -> ScoredEpoch:
    p = [0.05] * 5
    p[k % 5] = 0.8
    return ScoredEpoch(k, 30.0 * k, 30.0 * k + 29.99, STAGES[k % 5], tuple(p), 0.8, ("warmup",) if k < 4 else (),
                       2.5)


def gate(kind: str, reason: str, t: float, epoch: int | None = None) -> dict:
    return {"event": "gate", "kind": kind, "reason": reason, "time": t, "stamp": t, "epoch": epoch}


def wait_file(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)


def main() -> None:
    mode, out_path = sys.argv[1], Path(sys.argv[2])
    out = Out(numbered=mode != "drop-noseq")
    if mode in ("drop", "drop-noseq"):
        go = Path(sys.argv[3])
        hyp = HypnogramFile(out_path, "fake", "fake-model")
        out.status()
        for k in range(8):
            if k == 6:
                out.status()                   # after the lost lines: seq shows the gap
                wait_file(go)
            hyp.publish(record(k))             # the row first, as live's sinks do
            out.line(epoch_event(record(k)), drop=3 <= k <= 5)
        hyp.close()
    elif mode == "late-open":
        cue = Path(sys.argv[3])
        first = not (cue / "started").exists()
        (cue / "started").touch()
        out.line(gate("close", "restart", 1.0))
        if first:
            # the grandchild is forked before the `open` the test waits for: the test kills this
            # worker as soon as the ward has that line, which on a starved machine came before a
            # fork made after it (no grandchild, no late line)
            if os.fork() == 0:                 # the grandchild: out of the worker's process group
                os.setsid()
                wait_file(cue / "late")
                out.line(gate("open", "N2/N3 p>=0.80 x2", 3.0, 2))
                os._exit(0)
            out.line(gate("open", "N2/N3 p>=0.80 x2", 2.0, 1))
    elif mode == "flood":
        for _ in range(int(sys.argv[3])):
            out.status()
    elif mode == "slow-start":
        time.sleep(float(sys.argv[3]))
        for _ in range(5):
            out.status()
            time.sleep(0.1)
        while True:
            time.sleep(1.0)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        out.status()
        time.sleep(0.2)


if __name__ == "__main__":
    main()
