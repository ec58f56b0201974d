"""`sleepstream ward`: follow many beds at once, one supervised `live` worker per bed."""
from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import command_doc

HELP = ("follow every EEG stream (bed) in sight at once: one supervised `sleepstream live` worker per bed, "
        "one screen")
EXAMPLE = "sleepstream ward --name 'bed-*' --out ward-tonight"


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream ward``: which streams are beds, the outputs, the stimulation
    windows (``--gate``, ``--gate-bed``), ``--channel``, ``--weights``, the supervision limits
    and the LSL options.
    """
    g = p.add_argument_group("which streams are beds (each needs a source_id; default: every EEG stream)")
    g.add_argument("--stream-type", default="EEG", help="LSL content type of a bed's stream (default: %(default)s; "
                                                        "'any' for every type)")
    g.add_argument("--name", action="append", default=[], metavar="PATTERN",
                   help="follow streams whose name matches this shell pattern, e.g. 'bed-*' (repeatable)")
    g.add_argument("--source-id", action="append", default=[], metavar="SID",
                   help="follow only this source_id (repeatable; e.g. the beds of one machine)")
    o = p.add_argument_group("outputs (per bed: <bed>-stage and <bed>-probabilities on LSL, <bed>.tsv, <bed>.log)")
    o.add_argument("--out", metavar="DIR", help="folder of the beds' hypnograms and worker logs "
                                                "(default: ./ward-<date>); made when missing")
    o.add_argument("--no-outlets", action="store_true",
                   help="do not publish stages on LSL (the <bed>-gate outlets of --gate stay: they are what "
                        "--gate is for)")
    o.add_argument("--no-display", action="store_true", help="one log line per epoch and event instead of the screen")
    s = p.add_argument_group("stimulation windows (closed loop; per bed: the LSL Markers stream <bed>-gate, "
                             "<bed>.gate.toml)")
    s.add_argument("--gate", nargs="?", const="", metavar="RULES",
                   help="every bed's worker runs `live --gate RULES`: open/close markers on <bed>-gate, with an "
                        "arousal guard; RULES as for live: a .toml file or key=value pairs, e.g. "
                        "stages=N3,min_probability=0.9,epochs=3 (no value: N2 or N3 with probability >= 0.8 "
                        "for 2 epochs, at most 1800 s open). Parsed once, when the ward starts: each bed's "
                        "rule is written to <bed>.gate.toml, which its worker (and any restart) reads")
    s.add_argument("--gate-bed", action="append", default=[], metavar="PATTERN=RULES",
                   help="beds whose name matches the shell pattern PATTERN run their own RULES, or no gate "
                        "with PATTERN=off, e.g. 'bed-3=stages=N3,epochs=3' or 'bed-4=off' (repeatable; the "
                        "first that matches a bed decides; works without --gate, gating only those beds)")
    p.add_argument("--channel", default=DEFAULT_CHANNEL,
                   help="channel label scored in every bed, or a derivation of referential channels such as "
                        "F4-M1 or C4-(M1+M2)/2, computed by each bed's worker (default: %(default)s)")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help="a shipped model's name or a weights folder, for every bed (default: the default "
                        "model named in weights/__init__.py)")
    p.add_argument("--find-timeout", type=float, default=30.0, metavar="S",
                   help="a (re)started worker looks for its stream this long before it ends and is started "
                        "again (default: %(default)s)")
    p.add_argument("--hang-timeout", type=float, default=20.0, metavar="S",
                   help="a worker alive but silent this long (s of wall time; a worker writes a status line "
                        "about once a second) is taken for hung: its process group is killed and it is started "
                        "again, and the bed shows it. Before its first line a worker is given --find-timeout "
                        "+ 20 s more (finding its stream, connecting, loading the model). 0: never "
                        "(default: %(default)s)")
    p.add_argument("--max-beds", type=int, default=32, metavar="N",
                   help="follow at most N beds; a new stream past them is refused with one line and gets no "
                        "worker (default: %(default)s)")
    from sleepstream.lsl_config import add_lsl_arguments

    add_lsl_arguments(p)


def out_folder(out: str | None) -> Path:
    """The ward's output folder, made when missing.

    Parameters
    ----------
    out : str or None
        ``--out``; None for ``./ward-<YYYY-MM-DD>`` (today's date).

    Returns
    -------
    Path
        The folder, which exists.

    Raises
    ------
    scorer.hypnogram_file.HypnogramFileError
        One line when it exists and is not a folder, or cannot be made.
    """
    from scorer.hypnogram_file import HypnogramFileError

    d = Path(out) if out else Path(f"ward-{datetime.now():%Y-%m-%d}")
    if d.exists() and not d.is_dir():
        raise HypnogramFileError(f"--out {d}: exists and is not a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HypnogramFileError(f"--out {d}: cannot make the folder ({exc.strerror or exc})") from None
    return d


def check_supervision(hang_timeout_s: float, max_beds: int) -> None:
    """Refuse, in one line, supervision limits that cannot work.

    Parameters
    ----------
    hang_timeout_s : float
        ``--hang-timeout``, s: 0 (off) or at least 2 s and finite (a worker writes a
        status line about once a second).
    max_beds : int
        ``--max-beds``: at least 1.

    Raises
    ------
    SleepstreamError
        Either is out of range.
    """
    import math

    from sleepnet.errors import SleepstreamError

    if not (hang_timeout_s == 0 or (math.isfinite(hang_timeout_s) and hang_timeout_s >= 2.0)):
        raise SleepstreamError(f"--hang-timeout must be 0 (off) or at least 2 s (a worker writes a status line "
                               f"about once a second), got {hang_timeout_s}")
    if max_beds < 1:
        raise SleepstreamError(f"--max-beds must be at least 1, got {max_beds}")


def summary_line(ward, out: Path, log_handlers=()) -> str:
    """The ward's closing line.

    Parameters
    ----------
    ward : scorer.ward.supervisor.Ward
        The ward that ran (its state, ``max_beds`` and views).
    out : Path
        Its output folder.
    log_handlers : sequence of scorer.bounded_output.BoundedLogHandler
        The console handlers the ward logged through (their lines dropped are said).

    Returns
    -------
    str
        Beds, epochs, restarts (and hangs), windows, refusals, lost lines, where the
        hypnograms are, and what the terminal did not take (screen frames, log lines).
    """
    beds = ward.state.beds
    gated = [b.gate for b in beds if b.gate is not None]
    opened = sum(g.opens for g in gated)
    windows = (f", {len(gated)} gated bed{'s' if len(gated) != 1 else ''} opened {opened} "
               f"window{'s' if opened != 1 else ''}" if gated else "")
    hangs = sum(b.hangs for b in beds)
    extra = f", {hangs} worker{'s' if hangs != 1 else ''} killed as hung" if hangs else ""
    from_file = sum(b.rows_from_file for b in beds)
    if from_file:
        extra += f", {from_file} epoch{'s' if from_file != 1 else ''} read from the files (worker lines lost)"
    refused = ward.state.refused_total
    if refused:
        extra += f", {refused} stream{'s' if refused != 1 else ''} refused (--max-beds {ward.max_beds})"
    dropped = {"screen frames not drawn": sum(getattr(v, "frames_dropped", 0) for v in ward.views),
               "log lines dropped": sum(getattr(v, "log_dropped", 0) for v in ward.views)
               + sum(getattr(h, "dropped", 0) for h in log_handlers)}
    lost = [f"{n} {what}" for what, n in dropped.items() if n]
    behind = f"; the terminal did not keep up: {', '.join(lost)} (the ward was not held up)" if lost else ""
    return (f"ward: {len(beds)} beds, {sum(b.epochs for b in beds)} epochs, "
            f"{sum(b.restarts for b in beds)} worker restarts{windows}{extra}; hypnograms in {out}{behind}")


def setup_ward_log() -> None:
    """Route the ward's lines to stdout, plainly (like `live --no-display`), through a
    bounded handler: a stdout nobody reads loses lines (counted), never holds up the ward."""
    from scorer.bounded_output import route_logger_to_stdout
    from scorer.ward.log_view import WARD_LOGGER

    route_logger_to_stdout(WARD_LOGGER, bounded=True)


@command_doc
def run(args: argparse.Namespace) -> int:
    """Follow the beds until stopped (Ctrl-C, SIGTERM), then print the summary line.

    Every option is checked (gate rules, weights, supervision limits, the folder) before
    any worker starts.

    Returns
    -------
    int
        0 once the ward has stopped.

    Raises
    ------
    SleepstreamError
        A ``--find-timeout`` that is not positive, supervision limits out of range, gate
        rules or weights that cannot be used, or an ``--out`` that cannot be made.
    """
    from sleepstream.lsl_config import configure_lsl
    from sleepstream.signals import stop_on_signals

    if not args.find_timeout > 0:
        from sleepnet.errors import SleepstreamError

        raise SleepstreamError(f"--find-timeout must be positive, got {args.find_timeout}")
    check_supervision(args.hang_timeout, args.max_beds)
    from scorer.ward.gates import gate_plan

    gates = gate_plan(args.gate, args.gate_bed)   # every rule checked once, before any worker starts
    weights = None
    if args.weights:   # a shipped model's name or a folder, checked before any worker starts
        from sleepnet.weights import resolve_weights_dir

        weights = str(resolve_weights_dir(args.weights).resolve())
    out = out_folder(args.out)
    lsl = configure_lsl(network=args.network, session_id=args.session_id)

    from scorer.ward.beds import BedSelector
    from scorer.ward.supervisor import Ward
    from scorer.ward.worker import WorkerOptions

    stype = None if args.stream_type.lower() == "any" else args.stream_type
    selector = BedSelector(stype, tuple(args.name), tuple(args.source_id))
    opts = WorkerOptions(channel=args.channel, weights=weights, outlets=not args.no_outlets,
                         network=args.network, session_id=args.session_id, find_timeout_s=args.find_timeout,
                         gate=gates)
    from rich.console import Console

    from scorer.bounded_output import logging_without_blocking
    from scorer.ward.log_view import WARD_LOGGER
    from sleepstream.console import print_bounded

    if args.no_display:
        setup_ward_log()
    # While the ward runs, no log line or screen frame may hold up its loop (hangs, restarts, new beds).
    with logging_without_blocking() as log_handlers:
        if args.no_display:
            from scorer.ward.log_view import WardLog

            view = WardLog()
            logging.getLogger(WARD_LOGGER).info("ward: following %s on %s; writing to %s", selector.describe(),
                                                lsl.describe(), out)
            if gates.any:
                logging.getLogger(WARD_LOGGER).info("ward: stimulation windows: %s", gates.describe())
        else:
            from scorer.ward.display import WardDisplay

            view = WardDisplay()
        logging.getLogger(__name__).info("ward: following %s on %s; writing to %s", selector.describe(),
                                         lsl.describe(), out)
        ward = Ward(out, selector, opts, [view], hang_timeout_s=args.hang_timeout, max_beds=args.max_beds)
        with stop_on_signals() as stop:
            ward.run(stop)
        ward_log = [h for h in logging.getLogger(WARD_LOGGER).handlers if hasattr(h, "dropped")]
        line = summary_line(ward, out, [*log_handlers, *ward_log])
        for h in ward_log:                  # the ward's last lines, a bounded wait for a dead reader
            h.writer.flush()
        print_bounded(Console(stderr=True), lambda c: c.print(line, highlight=False, markup=False, soft_wrap=True))
    return 0
