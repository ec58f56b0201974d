"""`sleepstream replay`: stream a recording into LSL as if it were live."""
from __future__ import annotations

import argparse

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import add_normalized_argument, command_doc

HELP = "stream a recording (npz, EDF, BDF) into LSL as live EEG, with its true stages when known"
EXAMPLE = ("sleepstream replay ../shared/data/sleep-edf/SC4001E0-PSG-first300s.edf "
           "--hypnogram ../shared/data/sleep-edf/SC4001EC-Hypnogram.edf --speed 10")


def parse_speed(text: str) -> float | None:
    """The ``--speed`` option's type.

    Parameters
    ----------
    text : str
        ``max`` (any case) or a positive finite number.

    Returns
    -------
    float or None
        The speed factor (1 = real time); None for ``max`` (as fast as possible).

    Raises
    ------
    argparse.ArgumentTypeError
        Anything else (argparse turns it into a usage error).
    """
    if text.strip().lower() == "max":
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a positive number or 'max', got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be a positive number or 'max', got {text!r}")
    return v


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream replay``: the recording, ``--channel``, ``--speed``,
    ``--loop``, the stream's name and source_id, and the other replay and LSL options.
    """
    p.add_argument("recording", help="recording: .npz (continuous or windowed), .edf or .bdf")
    p.add_argument("--channel", default=DEFAULT_CHANNEL,
                   help="EDF/BDF channel to stream, or a derivation of referential channels streamed as one "
                        "channel: F4-M1, C4-(M1+M2)/2 (default: %(default)s)")
    add_normalized_argument(p, "; the stream's description says so and `sleepstream live` scores it level-free")
    p.add_argument("--all-channels", action="store_true",
                   help="EDF/BDF: stream every channel of the file (the scorer picks one by label)")
    p.add_argument("--hypnogram", help="true stages for the <name>-truth stream (default: labels in the npz)")
    p.add_argument("--name", default="sleepstream-replay", help="stream name (default: %(default)s)")
    p.add_argument("--source-id", help="stream source_id (default: sleepstream-replay:<name>)")
    p.add_argument("--speed", type=parse_speed, default=1.0, metavar="1|N|max",
                   help="1 real time, N times faster, or max (as fast as possible) (default: 1)")
    p.add_argument("--chunk", type=int, metavar="N", help="samples per push (default: ~40 ms of signal)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    p.add_argument("--no-wait", action="store_true", help="start sending at once, without waiting for a consumer")
    p.add_argument("--linger", type=float, metavar="S",
                   help="at the end, keep the stream open up to S s while consumers are connected, so they "
                        "can pull what is still queued (default: 5; at max speed 5 + 0.1 per epoch)")
    p.add_argument("--index-channel", action="store_true",
                   help="add a 'sample_index' channel holding each sample's number (to check delivery)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from sleepstream.lsl_config import add_lsl_arguments

    add_lsl_arguments(p)


@command_doc
def run(args: argparse.Namespace) -> int:
    """Stream the recording into LSL (:class:`replay.player.Player`) until its end or Ctrl-C.

    Returns
    -------
    int
        0 when the whole recording was sent, 130 when stopped before the end.

    Raises
    ------
    SleepstreamError
        A recording or hypnogram that cannot be read, or bad replay options
        (:class:`replay.player.ReplayError`).
    """
    from sleepstream.lsl_config import configure_lsl

    lsl = configure_lsl(network=args.network, session_id=args.session_id)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from replay.player import Player, ReplayError, load_source
    from sleepstream.signals import stop_on_signals

    if args.chunk is not None and args.chunk < 1:
        raise ReplayError(f"--chunk must be at least 1 sample, got {args.chunk}")
    source = load_source(args.recording, args.channel, all_channels=args.all_channels, hypnogram=args.hypnogram,
                         normalized=True if args.normalized else None)
    if args.index_channel:
        source = source.with_index_channel()
    player = Player(source, name=args.name, source_id=args.source_id, speed=args.speed, chunk=args.chunk,
                    loop=args.loop, wait_for_consumer=not args.no_wait, linger_s=args.linger)
    console = Console(stderr=True)
    player.open()
    speed = "max" if args.speed is None else f"{args.speed:g}x"
    console.print(f"replaying {source.source}: {', '.join(source.channels)} at {source.sfreq:g} Hz, "
                  f"{source.duration_s / 60:.1f} min, speed {speed} -> LSL stream '{player.name}' "
                  f"(source_id {player.source_id!r})"
                  + (f" + '{player.name}-truth'" if player.has_truth else "") + f"; LSL: {lsl.describe()}")
    if source.normalised:
        console.print("per-epoch normalised signal (each 30-s epoch z-scored): the stream's description says so",
                      highlight=False)
    if player.wait_for_consumer:
        console.print(f"waiting for a consumer, e.g. sleepstream live --source-id '{player.source_id}'")
    with stop_on_signals() as stop:
        if args.quiet:
            result = player.run(stop)
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[where]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as prog:
                task = prog.add_task("streaming", total=None if args.loop else player.per_pass, where="")

                def progress(sent: int, total: int | None) -> None:
                    secs = (sent % player.per_pass) / source.sfreq
                    prog.update(task, completed=sent if total else sent % player.per_pass,
                                where=f"{int(secs // 60):d}:{secs % 60:04.1f} of the recording")

                result = player.run(stop, progress)
    if result.stopped:
        console.print(f"stopped after {result.samples_sent} samples ({result.markers_sent} truth markers)")
        return 130
    console.print(f"done: {result.samples_sent} samples, {result.markers_sent} truth markers "
                  f"in {result.elapsed_s:.1f} s")
    return 0
