"""Figure 1, latency: an epoch's last sample entering the LSL outlet -> its stage
arriving at a consumer of the scorer's ``<name>-stage`` outlet.

Three processes' worth of real parts, two processes: this one is the EEG source (an
LSL outlet it pushes into with drift-free pacing and explicit timestamps, chunks of
about 40 ms of signal as ``sleepstream replay`` sends them) and the consumer of the
stage outlet (another LSL app, as a recorder would be); the scorer is ``sleepstream
live`` as a user runs it (``--no-display``, hypnogram file fsync'ed per epoch, stage
outlets). Both clock readings are this process's ``local_clock()``:

    latency = (stage sample pulled from the stage inlet) - (push_chunk holding the
              epoch's last sample returned)

so it covers LSL transport both ways, the scorer's pull loop, preprocessing, the
model, the hypnogram file's fsync and the stage outlet. Epochs are matched by their
timestamps (the stage is stamped at the epoch's last sample).

Real time (``--speed 1``) costs 30 s per epoch: the default run scores 5 epochs
(2.5 min) and says how many epochs its percentiles rest on. The fast replay runs at
``--fast-speed`` (30x: an epoch a second) for ``--fast-epochs``.

    .venv/bin/python -m benchmarks.latency [--epochs 5] [--fast-epochs 60] [--fast-speed 30]
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from . import common

MODULE = "benchmarks.latency"
TARGET_MS = 50.0
FS = 100.0


class StageConsumer:
    """Another LSL app: pulls every stage the scorer publishes, noting when it arrived."""

    def __init__(self, source_id: str) -> None:
        import pylsl

        found = pylsl.resolve_byprop("source_id", source_id, 1, 60.0)
        if not found:
            raise RuntimeError(f"stage outlet {source_id} not found")
        self.inlet = pylsl.StreamInlet(found[0], recover=False)
        self.inlet.open_stream(10.0)
        self.got: list[tuple[float, str, float]] = []   # (stamp, stage, arrival local_clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pull, daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        import pylsl
        from pylsl.util import LostError

        while not self._stop.is_set():
            try:
                sample, stamp = self.inlet.pull_sample(timeout=0.05)
            except LostError:          # the scorer ended and closed its outlets
                return
            if sample is not None:
                self.got.append((stamp, sample[0], pylsl.local_clock()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        del self.inlet


def session(eeg: np.ndarray, speed: float, n_epochs: int, weights: str | None) -> dict:
    """Stream ``n_epochs`` at ``speed`` into a fresh `sleepstream live`; per-epoch latencies."""
    import pylsl

    from scorer.hypnogram_file import read_rows
    from scorer.lsl_outlets import STAGE_SUFFIX, outlet_source_id

    name, sid = common.unique("latency")
    info = pylsl.StreamInfo(name, "EEG", 1, FS, "float32", sid)
    info.set_channel_labels(["Fpz-Cz"])
    info.set_channel_units(["microvolts"])
    outlet = pylsl.StreamOutlet(info, 0, 360)
    tmp = common.scratch_dir("bench-latency-")
    cmd = common.sleepstream("live", "--source-id", sid, "--no-display", "--out", tmp / "night.tsv",
                             "--outlet-name", name + "-scorer", "--epochs", n_epochs,
                             *(("--weights", weights) if weights else ()))
    proc = common.popen(cmd)
    consumer = None
    try:
        common.wait_until(outlet.have_consumers, 120, "the scorer to subscribe", proc=proc)
        consumer = StageConsumer(outlet_source_id(name + "-scorer", STAGE_SUFFIX))
        per_epoch = int(round(30 * FS))
        total = n_epochs * per_epoch
        chunk = max(1, int(round(FS * speed * 0.04)))          # what `sleepstream replay` sends
        pushed_at: dict[int, float] = {}                         # epoch -> local_clock after its last sample
        t0 = pylsl.local_clock()
        start = time.perf_counter()
        sent = 0
        while sent < total:
            n = min(chunk, total - sent)
            elapsed = time.perf_counter() - start
            if int(FS * speed * elapsed) - sent < n:               # not due yet: drift-free pacing
                time.sleep(max(0.0, min(0.005, (sent + n) / (FS * speed) - elapsed)))
                continue
            stamps = t0 + (sent + np.arange(n)) / FS
            outlet.push_chunk(eeg[sent:sent + n, None], stamps.tolist())
            now = pylsl.local_clock()
            sent += n
            for k in range((sent - n) // per_epoch, sent // per_epoch):
                if (k + 1) * per_epoch <= sent and k not in pushed_at:
                    pushed_at[k] = now
        common.wait_until(lambda: len(consumer.got) >= n_epochs, 60 + 30 * n_epochs / speed, "the last stages",
                          proc=None)
        _, err = common.stop(proc, 30)
    finally:
        if proc.poll() is None:
            common.stop(proc)
        if consumer is not None:
            consumer.close()
        del outlet
    lat, scorer_ms = [], []
    for stamp, _stage, arrived in consumer.got:
        k = int(round((stamp - t0) * FS + 1)) // per_epoch - 1     # its last sample is (k+1)*E - 1
        if k in pushed_at:
            lat.append((arrived - pushed_at[k]) * 1000.0)
    rows = read_rows(tmp / "night.tsv")
    scorer_ms = [r["latency_ms"] for r in rows]
    return {"speed": speed, "epochs": n_epochs, "latency_ms": lat, "scorer_record_latency_ms": scorer_ms,
            "stages": [g[1] for g in consumer.got], "command": common.shell(cmd)}


def run(args: argparse.Namespace) -> dict:
    from sleepnet.sim.night import simulate_night

    common.configure_lsl()
    n_max = max(args.epochs, args.fast_epochs)
    eeg = simulate_night((n_max + 1) * 30 / 3600, seed=3, sfreq=FS).eeg_uv.astype(np.float32)
    figures, sessions = [], {}
    command = common.this_command(MODULE, args.argv)
    for label, speed, n in (("real time", 1.0, args.epochs), (f"fast replay {args.fast_speed:g}x", args.fast_speed,
                                                                args.fast_epochs)):
        if n <= 0:
            continue
        common.progress(f"latency: {n} epochs at {speed:g}x ({n * 30 / speed:.0f} s)")
        s = session(eeg, speed, n, args.weights)
        sessions[label] = s
        pc = common.percentiles(s["latency_ms"])
        inner = common.percentiles(s["scorer_record_latency_ms"])
        note = (f"p50 {pc['p50']:.1f} ms, p99 {pc['p99']:.1f} ms, max {pc['max']:.1f} ms over {pc['n']} epochs "
                f"(the first includes torch's first forward pass); inside the scorer (pull -> record) "
                f"p50 {inner['p50']:.1f} ms")
        figures.append(common.Figure(f"latency p99, {label}: last sample in -> stage at a consumer", pc["p99"], "ms",
                                     f"p99 < {TARGET_MS:g} ms", pc["p99"] < TARGET_MS,
                                     f"{command}  # scorer: {s['command']}", note=note,
                                     detail={"p50_ms": pc["p50"], "p99_ms": pc["p99"], "max_ms": pc["max"],
                                             "n_epochs": pc["n"], "scorer_record_ms": inner}))
    return {"figures": figures, "sessions": sessions}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=5, help="epochs at real time (30 s each; default: 5)")
    p.add_argument("--fast-epochs", type=int, default=60, help="epochs of the fast replay (default: 60)")
    p.add_argument("--fast-speed", type=float, default=30.0, help="speed of the fast replay (default: 30)")
    common.add_weights_argument(p)


if __name__ == "__main__":
    common.script_main("latency", __doc__, add_arguments, run, value_format=".1f")
