"""Archive scoring: nights per minute on 1 and 2 local worker processes and on a 2-worker
Dask ``LocalCluster``, all on the same set of simulated EDF+ nights.

What is timed: :meth:`~sleepnet.archive.LocalRunner.run` / :meth:`~sleepnet.archive.DaskRunner.run`
over every night of the set (reading only the EEG channel, scoring with the shipped
model, writing the stage CSV and the night's row), with the workers already started and
their model loaded (the start-up is timed on its own, once per runner). Each setting
scores the set ``--repeats`` times, the settings taking turns pass by pass so that load
from other work falls on them alike; the fastest pass counts.

* ``speedup_2_workers``: time on 1 local worker / time on 2 local workers, each worker
  with one torch thread as ``sleepstream score --jobs N`` runs them (Dask's workers get
  one thread from Dask's own OMP_NUM_THREADS=1).
* ``parallel_efficiency``: speedup / 2.
* ``dask_overhead_fraction``: (time through the 2-worker LocalCluster - time on 2 local
  workers) / time on 2 local workers: the extra time per night of going through Dask
  (scheduler round trips, serialisation, the worker's own threads), as a share of a night's
  time, with Dask's defaults as a user gets them (its nannies give workers
  MALLOC_TRIM_THRESHOLD_=65536, which would make glibc map and unmap every large array
  anew; the worker sets glibc's thresholds itself, ``sleepnet.archive.night.prepare_worker_process``;
  and Dask's statistical profiler, which the runner pauses while a run lasts).
  ``dask_overhead_fraction_trim_unset``: the same with MALLOC_TRIM_THRESHOLD_ unset in
  Dask's configuration: equal within noise when the worker's own setting works.

Nights: ``--nights`` simulated nights of ``--hours`` h at 100 Hz (seeds 500...), written
once as EDF+ under ``benchmarks/results/data/``.

    .venv/bin/python -m benchmarks.archive [--nights 16] [--hours 8] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from . import common

MODULE = "benchmarks.archive"
TARGET_SPEEDUP = 1.7
TARGET_DASK_OVERHEAD = 0.10
#: Dask's nannies give workers MALLOC_TRIM_THRESHOLD_=65536; without the worker's own
#: thresholds glibc would map and unmap every large array (a night's signal) anew. None unsets it.
MALLOC_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def night_files(n: int, hours: float) -> list[Path]:
    """``n`` simulated EDF+ nights of ``hours`` (made once per simulator version)."""
    from sleepnet.sim.night import simulate_night, write_night_edf

    folder = common.DATA / f"archive-{hours:g}h-{common.params_key()}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"night{i:03d}.edf"
        if not path.exists():
            common.progress(f"archive: simulating night {i + 1}/{n} ({hours:g} h)")
            tmp = path.with_name(path.stem + ".tmp.edf")
            write_night_edf(tmp, simulate_night(hours, 500 + i))
            tmp.replace(path)
        paths.append(path)
    return paths


def _one_pass(runner, jobs: list, label: str) -> tuple[float, list]:
    """Seconds for one pass of ``runner`` over ``jobs``, and its rows."""
    common.progress(f"archive: {label} ({len(jobs)} nights)")
    t = time.perf_counter()
    rows = list(runner.run(jobs))
    wall = time.perf_counter() - t
    failed = [r.error for r in rows if not r.ok]
    if failed:
        raise RuntimeError(f"{label}: {len(failed)} nights failed, e.g. {failed[0]}")
    return wall, rows


def run(args: argparse.Namespace) -> dict:
    import dask
    from distributed import Client, LocalCluster

    from sleepnet.archive import DaskRunner, LocalRunner, find_nights, model_identity, plan_jobs
    from sleepstream.commands.score_archive import TORCH_THREADS_PER_WORKER

    paths = night_files(args.nights, args.hours)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    nights = find_nights([str(p) for p in paths])
    model = model_identity(args.weights)
    scratch = common.scratch_dir("bench-archive-")
    cores = os.cpu_count() or 1

    def make_jobs(torch_threads):
        def jobs_for(label: str):
            out = scratch / label
            out.mkdir()
            return plan_jobs(nights, out, "EEG Fpz-Cz", model, torch_threads=torch_threads, force=True)[0]
        return jobs_for

    runners: dict[str, tuple] = {}   # label -> (runner, torch threads, start-up s, peak RSS function)
    with ExitStack() as stack:
        for workers in (1, 2):
            t = time.perf_counter()
            local = stack.enter_context(LocalRunner(workers, model.weights_dir, torch_threads=TORCH_THREADS_PER_WORKER))
            local.warm()
            runners[f"local-{workers}"] = (local, TORCH_THREADS_PER_WORKER, time.perf_counter() - t,
                                           lambda r=local, w=workers: max(r.pool.submit(peak_rss_mb).result()
                                                                          for _ in range(w)))
        for label, environ in (("dask-2", {}), ("dask-2-no-malloc-trim", {MALLOC_TRIM_KEY: None})):
            # A LocalCluster's nannies run in this process and leave their pre-spawn environment
            # in os.environ, which wins over the configuration: start each from a clean one.
            os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            t = time.perf_counter()
            with dask.config.set(environ):
                cluster = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                           dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
            trim = set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values())
            if trim != ({None} if environ else {"65536"}):
                raise RuntimeError(f"{label}: the workers' MALLOC_TRIM_THRESHOLD_ is {trim}, not what this run sets")
            dask_runner = DaskRunner(client)
            dask_runner.warm(model.weights_dir)
            runners[label] = (dask_runner, None, time.perf_counter() - t,
                              lambda c=client: max(c.run(peak_rss_mb).values()))
        passes: dict[str, list[float]] = {k: [] for k in runners}
        last_rows: dict[str, list] = {}
        for i in range(args.repeats):          # settings interleaved: load from other work hits them alike
            for label, (runner, threads, _s, _rss) in runners.items():
                wall, last_rows[label] = _one_pass(runner, make_jobs(threads)(f"{label}-{i}"), f"{label}, pass "
                                                   f"{i + 1}/{args.repeats}")
                passes[label].append(wall)
        results = {label: {**_summary(min(passes[label]), passes[label], start_s, last_rows[label]),
                           "worker_peak_rss_mb": rss()}
                   for label, (_r, _t, start_s, rss) in runners.items()}
    same = all(_same_stages(scratch / f"local-2-{args.repeats - 1}", scratch / f"{k}-{args.repeats - 1}")
               for k in ("dask-2", "dask-2-no-malloc-trim"))
    shutil.rmtree(scratch, ignore_errors=True)

    n = len(nights)
    t1, t2, td, tn = (results[k]["best_s"] for k in ("local-1", "local-2", "dask-2", "dask-2-no-malloc-trim"))
    speedup = t1 / t2
    overhead, overhead_unset = (td - t2) / t2, (tn - t2) / t2
    per_night_overhead_s = (td - t2) * 2 / n          # two workers: each night holds one for its time
    loads = {k: sorted({r.model_loads for r in last_rows[k]}) for k in last_rows}
    command = common.this_command(MODULE, args.argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = "/".join(f"{results[k]['night_cpu_s_mean']:.2f}" for k in results)
    shared = (f"load average {load_before:.1f} before, {load:.1f} after, on {cores} cores; CPU s per night "
              f"{cpu} (1 / 2 local / Dask / Dask with MALLOC_TRIM_THRESHOLD_ unset); model loads per worker "
              f"process {loads}")
    figures = [
        common.Figure("archive: nights/min, 1 local worker", n / t1 * 60, "/min", command=command,
                      note=f"{n} nights of {args.hours:g} h; {t1:.2f} s; {results['local-1']['night_s_mean']:.2f} s "
                    f"per night in its worker", detail=results["local-1"]),
        common.Figure("archive: nights/min, 2 local workers", n / t2 * 60, "/min", command=command,
                      note=f"{t2:.2f} s; start-up {results['local-2']['startup_s']:.1f} s (not in the rate); worker peak "
                    f"RSS {results['local-2']['worker_peak_rss_mb']:.0f} MB",
                      detail=results["local-2"]),
        common.Figure("archive: nights/min, 2-worker Dask LocalCluster", n / td * 60, "/min", command=command,
                      note=f"{td:.2f} s; Dask's defaults (workers get MALLOC_TRIM_THRESHOLD_=65536); start-up "
                    f"{results['dask-2']['startup_s']:.1f} s (not in the rate); stages equal to the local run: {same}",
                      detail=results["dask-2"]),
        common.Figure("archive: nights/min, 2-worker Dask LocalCluster, MALLOC_TRIM_THRESHOLD_ unset", n / tn * 60, "/min",
                      command=command, note=f"{tn:.2f} s; pre-spawn-environ MALLOC_TRIM_THRESHOLD_ unset in Dask's "
                                     "configuration (no longer needed: compare)",
                      detail=results["dask-2-no-malloc-trim"]),
        common.Figure("archive: speedup_2_workers", speedup, "ratio", f">= {TARGET_SPEEDUP:g}x",
                      speedup >= TARGET_SPEEDUP, command, note=f"parallel efficiency {speedup / 2:.2f}; {shared}"),
        common.Figure("archive: dask_overhead_fraction", overhead, "ratio", f"< {TARGET_DASK_OVERHEAD:.0%}",
                      overhead < TARGET_DASK_OVERHEAD, command,
                      note=f"Dask's defaults: {per_night_overhead_s * 1000:.0f} ms per night of "
                    f"{results['local-2']['night_s_mean']:.2f} s; with MALLOC_TRIM_THRESHOLD_ unset "
                    f"{overhead_unset:.1%}; {shared}"),
    ]
    return {"figures": figures, "nights": n, "hours": args.hours, "model_id": model.model_id,
            "speedup_2_workers": speedup, "parallel_efficiency": speedup / 2,
            "dask_overhead_fraction": overhead, "dask_overhead_per_night_s": per_night_overhead_s,
            "dask_overhead_fraction_trim_unset": overhead_unset, "model_loads_per_worker": loads,
            "stages_equal_local_and_dask": same, "runs": results}


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _summary(best: float, walls: list[float], start_s: float, rows: list) -> dict:
    return {"best_s": best, "passes_s": walls, "startup_s": start_s,
            "night_s_mean": sum(r.seconds for r in rows) / len(rows),
            "night_cpu_s_mean": sum(r.cpu_seconds for r in rows) / len(rows)}


def _same_stages(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in a.glob("*_stages.csv"))
    return bool(files) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nights", type=int, default=16, help="simulated nights in the set (default: %(default)s)")
    p.add_argument("--hours", type=float, default=8.0, help="hours per night (default: %(default)s)")
    common.add_repeats_argument(p, 3, "passes per setting", counts="the fastest counts")
    common.add_weights_argument(p)


if __name__ == "__main__":
    common.script_main("archive", __doc__, add_arguments, run, value_format=".3f")
