"""`sleepstream report`: the morning-after report of a scored night."""
from __future__ import annotations

import argparse
import math

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import command_doc

HELP = "report on a scored night: sleep statistics, hypnogram PNG, EDF+/BIDS exports, agreement, features"
EXAMPLE = ("sleepstream report night.tsv --hypnogram ../shared/data/sleep-edf/SC4001EC-Hypnogram.edf "
           "--recording ../shared/data/sleep-edf/SC4001E0-PSG-first300s.edf --out night_report")


#: library parameters whose flag has another name (see :func:`sleepstream.cli.parameter_flags`)
FLAGS = {"offset_s": "--offset"}

@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream report``: the night file, ``--hypnogram``, ``--recording``,
    ``--channel``, ``--offset``, ``--out`` and ``--quiet``.
    """
    p.add_argument("night", help="the live hypnogram TSV (sleepstream live --out) or the stage CSV of sleepstream score")
    p.add_argument("--hypnogram", help="true stages to compare with (EDF+ annotations, Sleep-EDF txt, text/CSV/TSV)")
    p.add_argument("--recording", help="the scored recording (npz, EDF, BDF): adds the EEG-features view; "
                        "labels inside an npz are the truth when --hypnogram is not given")
    p.add_argument("--channel", default=DEFAULT_CHANNEL,
                   help="EEG channel of --recording (default: %(default)s; Fpz-Cz matches too)")
    p.add_argument("--offset", type=float, default=0.0, metavar="SECONDS",
                   help="where the night's first epoch starts in --recording and --hypnogram (a live session "
                        "that joined a replay late); default 0")
    p.add_argument("--out", help="folder for the report files (default: <night name>_report beside the night file)")
    p.add_argument("--quiet", action="store_true", help="print only the folder written")


@command_doc
def run(args: argparse.Namespace) -> int:
    """Write the night's report (:func:`sleepnet.report.night_report.write_report`) and print it.

    Returns
    -------
    int
        0 (with ``--quiet`` only the folder written is printed).

    Raises
    ------
    SleepstreamError
        A night, hypnogram or recording that cannot be read, or a folder that cannot be
        written.
    """
    from rich.console import Console

    from sleepnet.report.night_report import write_report

    result = write_report(args.night, out_dir=args.out, hypnogram=args.hypnogram,
                          recording=args.recording, channel=args.channel, offset_s=args.offset)
    console = Console()
    if args.quiet:
        console.print(str(result.out_dir))
        return 0
    print_summary(console, result)
    return 0


def _v(x: float, digits: int = 1) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def print_summary(console, result) -> None:
    """The report as Rich tables (also used by ``sleepstream demo`` at its end).

    Sleep statistics, minutes and latencies per stage, the agreement with the truth when
    there is one, the EEG features per predicted stage when the recording was given, and
    the files written.

    Parameters
    ----------
    console : rich.console.Console
        Where to print.
    result : sleepnet.report.night_report.ReportResult
        What :func:`sleepnet.report.night_report.write_report` made.
    """
    from rich import box
    from rich.table import Table

    from sleepnet.report.sleep_stats import STAT_DEFINITIONS, STAT_UNITS
    from sleepnet.stages import STAGES
    from sleepstream.console import agreement_tables

    night, s = result.night, result.stats
    start = f", starting {night.start_wall:%Y-%m-%d %H:%M:%S}" if night.start_wall else ""
    console.print(f"[bold]{night.source}[/]: {night.kind} night, {night.n_epochs} epochs of 30 s{start}"
                  + (f", {len(night.sessions)} sessions" if len(night.sessions) > 1 else ""))
    for note in result.notes:
        console.print(f"  [yellow]note:[/] {note}")
    d = s.as_dict()
    t = Table(title="Sleep statistics", show_header=True, title_justify="left")
    t.add_column("statistic")
    t.add_column("value", justify="right")
    t.add_column("definition", style="dim")
    for key in ("TIB", "SPT", "TST", "WASO", "SOL", "SE", "SME", "Lat_REM", "N_awakenings"):
        unit = STAT_UNITS[key]
        value = str(d[key]) if unit == "count" else (f"{_v(d[key])} {unit}" if math.isfinite(d[key]) else "—")
        t.add_row(key, value, STAT_DEFINITIONS[key])
    console.print(t)
    st = Table(title="Stages", show_header=True, title_justify="left")
    for col in ("stage", "minutes", "% of TST", "latency from sleep onset (min)"):
        st.add_column(col, justify="right")
    for name in STAGES:
        st.add_row(name, _v(d[name]), _v(d.get(f"%{name}", math.nan)), _v(d.get(f"Lat_{name}", math.nan)))
    st.add_row("unscored", _v(d["UNS"]), "", "")
    console.print(st)
    if result.agreement is not None:
        for table in agreement_tables(result.agreement, title=f"Agreement with {result.truth_source}"):
            console.print(table)
    fs = result.features
    if fs is not None:
        short = {"delta": "delta%", "theta": "theta%", "alpha": "alpha%", "sigma": "sigma%", "beta": "beta%",
                 "slow_wave_index": "SW idx", "spindle_index": "sp idx"}
        ft = Table(title=f"EEG features per predicted stage ({fs.channel}, {fs.recording})",
                   title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                   caption="band power as % of 0.5-30 Hz; SW idx = delta/(alpha+beta), "
                           "sp idx = sigma/(alpha+theta), geometric means", caption_justify="left")
        ft.add_column("stage")
        ft.add_column("epochs", justify="right")
        for f in fs.names:
            ft.add_column(short.get(f, f), justify="right")
        for name in STAGES:
            if name not in fs.means:
                ft.add_row(name, "0", *[""] * len(fs.names))
                continue
            ft.add_row(name, str(fs.counts[name]), *(
                f"{100 * fs.means[name][f]:.1f}" if not f.endswith("_index") else f"{fs.means[name][f]:.2f}"
                for f in fs.names))
        console.print(ft)
        console.print("[bold]What sets each predicted stage apart[/] (Cohen's d against the other stages):")
        if not any(fs.distinctive.values()):
            console.print("  (needs at least two predicted stages with two epochs or more each)")
        for name in STAGES:
            top = fs.distinctive.get(name)
            if top:
                console.print(f"  {name:<4} " + ", ".join(
                    f"{f} {'↑' if dv > 0 else '↓'} (d={dv:+.1f})" for f, dv in top))
    console.print(f"[bold]report written to {result.out_dir}[/]:")
    for key, path in result.files.items():
        console.print(f"  {key:<18} {path}")
