"""`sleepstream live`: score a live LSL EEG stream epoch by epoch.

The session itself (resolve, open the stream and its truth, choose the model, build the
sinks in order, run, release) is :class:`scorer.session.LiveSession`; this command turns
its flags into :class:`scorer.session.SessionOptions` and says what the session does; the
session's errors name parameters, which the command line says as this command's flags
(:data:`FLAGS`, :func:`sleepstream.cli.parameter_flags`)."""
from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import command_doc
from weights import DEFAULT_MODEL

if TYPE_CHECKING:  # pragma: no cover - typing only
    from scorer.session import SessionOptions

HELP = "score a live LSL EEG stream every 30 s: on screen, on LSL stage outlets and in a hypnogram file"
EXAMPLE = "sleepstream live --stream-name sleepstream-replay --out night.tsv"


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream live``: which stream, which channel and its units, the
    model, the outputs (hypnogram file, LSL outlets, screen, log or JSON status), the gate and
    the LSL configuration.
    """
    g = p.add_argument_group("which stream (none given: the first stream of type EEG)")
    g.add_argument("--stream-name", help="LSL stream name")
    g.add_argument("--stream-type", help="LSL stream type (e.g. EEG)")
    g.add_argument("--source-id", help="LSL source_id (most specific; survives outlet restarts)")
    g.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="give up finding the stream after S seconds (default: %(default)s)")
    c = p.add_argument_group("which channel")
    c.add_argument("--channel", default=DEFAULT_CHANNEL,
                   help="channel label in the stream description (default: %(default)s; case, spaces, an 'EEG' "
                        "prefix and a '-Ref' suffix are ignored), or a derivation of referential channels computed "
                        "sample by sample: F4-M1, C4-(M1+M2)/2 (a channel with that exact label wins)")
    c.add_argument("--channel-index", type=int, metavar="I", help="pick the channel by 0-based index instead")
    c.add_argument("--units", help="override the channel's declared unit: uV, mV or V")
    c.add_argument("--normalized", action="store_true",
                   help="the signal is per-epoch normalised (each 30-s epoch z-scored): score it with the scale-free "
                        "model and level-free quality checks (a sleepstream replay of such a file says so itself)")
    o = p.add_argument_group("outputs")
    o.add_argument("--out", metavar="FILE", help="hypnogram TSV, one row per epoch, fsync'ed; appended to "
                                                 "when it exists (a new session), never truncated; locked while "
                                                 "scoring (a second scorer on it is refused); rows that cannot be "
                                                 "written are kept and written when the disk comes back (NOT "
                                                 "RECORDING meanwhile)")
    o.add_argument("--outlet-name", default="sleepstream",
                   help="LSL outlets <name>-stage and <name>-probabilities (default: %(default)s)")
    o.add_argument("--no-outlets", action="store_true", help="do not publish stages on LSL")
    o.add_argument("--no-display", action="store_true", help="one log line per epoch instead of the live screen")
    o.add_argument("--status-json", action="store_true",
                   help="instead of the screen or the log: one JSON line per epoch, truth label, status "
                        "tick and (with --gate) window event on stdout (for a supervisor; sleepstream ward "
                        "runs its workers this way); numbered by 'seq': a reader that does not keep up loses "
                        "lines, never holds up scoring")
    o.add_argument("--gate", nargs="?", const="", metavar="RULES",
                   help="stimulation windows on the LSL Markers stream <outlet-name>-gate (open/close and "
                        "why) with an arousal guard; RULES: a .toml file or key=value pairs, e.g. "
                        "stages=N3,min_probability=0.9,epochs=3,max_open_s=600 (no value: N2 or N3 "
                        "with probability >= 0.8 for 2 epochs, at most 1800 s open); see docs/tutorials/closed_loop.md")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help=f"a shipped model's name or a weights folder (default: {DEFAULT_MODEL}, the default "
                        "model named in weights/__init__.py)")
    add_session_start_argument(p)
    p.add_argument("--buffer-s", type=int, default=360, metavar="S",
                   help="inlet buffer in seconds of signal (default: %(default)s; fewer where liblsl's queue "
                        "would hold more than 256 MiB: a fast or wide stream); a sleepstream replay "
                        "faster than real time says how fast and long it is, and the buffer grows to match")
    p.add_argument("--epochs", type=int, metavar="N", help="stop after N epochs (default: run until Ctrl-C)")
    from sleepstream.lsl_config import add_lsl_arguments

    add_lsl_arguments(p)


def add_session_start_argument(p: argparse.ArgumentParser, live: bool = True) -> None:
    """Add ``--session-start lights-off|unknown`` (live, score, evaluate).

    Parameters
    ----------
    p : argparse.ArgumentParser
        The command's parser.
    live : bool
        Say in the help that a restart keeps its state file's session start (``live``).
    """
    where = ("; a restart on the same --out carries on with the session start of its state file"
             if live else "")
    p.add_argument("--session-start", choices=("lights-off", "unknown"),
                   help="did the recording start at lights-off? 'lights-off': the time since the start counts "
                        "as the night's clock (what the model learned of when REM and deep sleep come); "
                        "'unknown': no clock, for a session started mid-night or a nap (default: the model's "
                        "own: unknown for the default model" + where + ")")


def session_start_line(session_start: str | None) -> str:
    """What the session start means, in one line for the console.

    Parameters
    ----------
    session_start : str or None
        ``lights-off``, ``unknown``, or None for a model that keeps no night clock.

    Returns
    -------
    str
        The line (``session start: ...``).
    """
    if session_start is None:
        return "session start: not used by this model (it keeps no night clock)"
    if session_start == "lights-off":
        return "session start: lights-off (the time since this session started is the night's clock)"
    return ("session start: unknown (no night clock; pass --session-start lights-off when the recording "
            "started at lights-off)")


#: Each option of a live session (:class:`scorer.session.SessionOptions`) as this command's flag
#: (the command line says the session's errors with them: :func:`sleepstream.cli.parameter_flags`).
FLAGS = {"channel_index": "--channel-index", "units": "--units", "epochs": "--epochs", "weights": "--weights",
         "out": "--out", "channel": "--channel", "buffer_s": "--buffer-s", "timeout_s": "--timeout",
         "outlet_name": "--outlet-name", "normalized": "--normalized", "gate": "--gate",
         "session_start": "--session-start"}


@command_doc
def session_options(args: argparse.Namespace) -> SessionOptions:
    """The live session these arguments ask for (the gate's rules parsed here).

    Returns
    -------
    scorer.session.SessionOptions
        The options of :class:`scorer.session.LiveSession`, with the gate's rule
        (:func:`scorer.gate.rules.parse_rule`) when ``--gate`` is given.
    """
    from scorer.session import SessionOptions
    from streamer.resolve import StreamQuery

    gate_rule = None
    view = "json" if args.status_json else "log" if args.no_display else "screen"
    options = SessionOptions(
        query=StreamQuery.from_options(args.stream_name, args.stream_type, args.source_id),
        timeout_s=args.timeout, channel=args.channel, channel_index=args.channel_index, units=args.units,
        normalized=args.normalized, weights=args.weights, session_start=args.session_start, out=args.out,
        outlet_name=args.outlet_name, outlets=not args.no_outlets, view=view, epochs=args.epochs,
        buffer_s=args.buffer_s)
    if getattr(args, "gate", None) is not None:
        from scorer.gate.rules import parse_rule

        gate_rule = parse_rule(args.gate)
    return dataclasses.replace(options, gate=gate_rule) if gate_rule is not None else options


@command_doc
def run(args: argparse.Namespace) -> int:
    """Score the live stream until it ends, ``--epochs`` are scored or Ctrl-C; print the summary.

    Configures LSL, checks the hypnogram file, opens the session
    (:class:`scorer.session.LiveSession`), runs it with no log line or screen frame blocking
    the loop, releases it, then prints the session's summary.

    Returns
    -------
    int
        0 once the session has ended (the stream ended, ``--epochs`` were scored, or Ctrl-C /
        SIGTERM) and its summary is printed; errors are raised.

    Raises
    ------
    streamer.errors.StreamNotFoundError
        No matching stream found in ``--timeout`` seconds (with a hint on the LSL configuration).
    """
    from sleepstream.lsl_config import configure_lsl

    lsl = configure_lsl(network=args.network, session_id=args.session_id)

    from rich.console import Console

    from scorer.bounded_output import logging_without_blocking
    from scorer.session import LiveSession
    from sleepstream.console import output_notes, print_bounded, print_live_summary
    from sleepstream.signals import ignore_file_size_signal, stop_on_signals
    from streamer.errors import StreamNotFoundError

    options = session_options(args)
    session = LiveSession(options)
    session.check()                 # the hypnogram file (another scorer holds it?), before anything starts
    ignore_file_size_signal()
    console = Console(stderr=True)
    # While the night runs, no log line, screen frame or status line may block the loop.
    with logging_without_blocking() as log_handlers:
        try:
            try:
                session.open()
            except StreamNotFoundError as exc:
                raise StreamNotFoundError(f"{exc}; {lsl.search_hint()}") from None
            model = session.model
            print_bounded(console, lambda c: c.print(f"sleepstream live: model {model.summary}", highlight=False,
                                                     soft_wrap=True))
            if session.normalised_by:
                from sleepnet.normalised import describe_input, is_level_free

                why = FLAGS.get(session.normalised_by, session.normalised_by)
                line = describe_input(why, model.model_id, is_level_free(model))
                print_bounded(console, lambda c: c.print(line, highlight=False, soft_wrap=True))
            session.build()
            start = session.scorer.session_start
            print_bounded(console, lambda c: c.print(session_start_line(start), highlight=False, soft_wrap=True))
            with stop_on_signals() as stop:
                summary = session.run(stop)
        finally:
            session.close()
        notes = output_notes(session.sinks, log_handlers)
        print_bounded(console, lambda c: print_live_summary(c, summary, args.out, notes))
    return 0
