"""Live path latency and throughput over real LSL on loopback (this machine only).

Latency: a simulated night at ``--rate`` Hz is replayed at ``--speed`` (default 30x: a
new epoch every second; each epoch takes the same path as at 1x) in a background thread
and scored live with the sinks of a real session except the display (hypnogram file
with fsync per row, LSL stage and probability outlets). Reported per epoch:

* record latency: the epoch's last sample pulled -> its record made (what the
  hypnogram's ``latency_ms`` column holds);
* publish latency: the same, up to the last sink having returned;
* scorer CPU: CPU seconds of the scoring thread per epoch.

Throughput: the same night at ``--speed max``, with the replay kept at most a minute
ahead of the scorer (as in ``sleepstream demo``): epochs scored per wall second.

    .venv/bin/python -m benchmarks.live_latency [--epochs 60] [--rate 256] [--speed 30] [--threads 1]

Writes ``benchmarks/results/live_latency.json``. Needs the weights in ``weights/`` (or
``--weights DIR``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "live_latency.json"


class _Stamp:
    """A sink that notes when each record reaches it (local LSL clock)."""

    def __init__(self) -> None:
        import pylsl

        self.clock = pylsl.local_clock
        self.at: dict[int, float] = {}

    def publish(self, record) -> None:
        self.at[record.epoch] = self.clock()

    def truth(self, epoch, stage) -> None: ...

    def status(self, status) -> None: ...

    def close(self) -> None: ...


def _session(model, eeg: np.ndarray, rate: float, speed: float | None, n_epochs: int, with_sinks: bool) -> dict:
    from replay.player import Player, ReplaySource
    from scorer.session import LiveSession, SessionOptions
    from streamer.resolve import StreamQuery

    tag = uuid.uuid4().hex[:8]
    src = ReplaySource.from_arrays(eeg[:, None], rate, ["Fpz-Cz"])
    reader: dict = {}
    player = Player(src, name=f"bench-{tag}", source_id=f"bench:{tag}", speed=speed, linger_s=float("inf"),
                    consumer_position=(lambda: reader["s"].samples_received if reader else 0))
    stop = threading.Event()
    player.start(stop)
    lat: list[float] = []

    class _Lat:
        def publish(self, r) -> None:
            lat.append(r.latency_ms)

        def truth(self, e, s) -> None: ...

        def status(self, s) -> None: ...

        def close(self) -> None: ...

    first, last = _Stamp(), _Stamp()
    tmp = tempfile.TemporaryDirectory()
    # the file and the outlets (with_sinks) between the two stamps: what they cost is measured
    session = LiveSession(SessionOptions(query=StreamQuery(source_id=player.source_id), auto_buffer=False,
                                         out=Path(tmp.name) / "night.tsv" if with_sinks else None, keep_state=False,
                                         outlets=with_sinks, outlet_name=f"bench-{tag}-scorer", view="none",
                                         epochs=n_epochs, idle_exit_s=10.0),
                          model=model, first_sinks=[_Lat(), first], last_sinks=[last])
    reader["s"] = session
    session.build()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    summary = session.run()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    session.close()
    player.join(10)
    tmp.cleanup()
    pub = [lat[i] + (last.at[e] - first.at[e]) * 1000.0 for i, e in enumerate(sorted(first.at))]
    return {"epochs": summary.epochs, "gaps": summary.gaps, "wall_s": wall,
            "record_latency_ms": _pct(lat), "publish_latency_ms": _pct(pub),
            "scorer_cpu_ms_per_epoch": 1000.0 * cpu / max(1, summary.epochs),
            "epochs_per_s": summary.epochs / wall}


def _pct(x: list[float]) -> dict[str, float]:
    a = np.asarray(x[4:] if len(x) > 8 else x)   # the first epochs include torch's warm-up
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--rate", type=float, default=256.0)
    ap.add_argument("--speed", type=float, default=30.0)
    ap.add_argument("--weights")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default: 1, what sleepstream live and demo use)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from benchmarks.common import configure_lsl

    configure_lsl()
    import torch

    from sleepnet.sim.night import simulate_night
    from sleepnet.weights import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    night = simulate_night((args.epochs + 2) * 30 / 3600, seed=1, sfreq=args.rate)
    eeg = night.eeg_uv[: int(args.epochs * 30 * args.rate)]
    paced = _session(model, eeg, args.rate, args.speed, args.epochs, with_sinks=True)
    fast = _session(model, eeg, args.rate, None, args.epochs, with_sinks=True)
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
           "model_id": model.model_id, "rate_hz": args.rate, "epochs": args.epochs,
           f"paced_{args.speed:g}x": paced, "max_speed": fast}
    print(json.dumps(out, indent=2))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
